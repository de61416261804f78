import json
import socket
import subprocess
import threading

import pytest

from tests.edge_process import EDGE, EdgeProcess, edge_cmd, write_config


@pytest.fixture
def edge(tmp_path):
    config = write_config(tmp_path, extra='[recorder]\ndebounce_seconds = 60\n')
    roster = tmp_path / "roster.csv"
    roster.write_text("card_uid,person_id,name,status\n04A1B2C3,p1,Siti,active\n"
                      "04B00000,p2,Budi,lost\n")
    edge_cmd(config, "roster", "load", str(roster))
    proc = EdgeProcess(config)
    proc.wait_ready()
    yield proc
    proc.terminate()


def test_tap_status_taps(edge):
    cfg = edge.config
    out = edge_cmd(cfg, "tap", "04:a1:b2:c3").stdout
    assert out.startswith("accepted: card 04A1B2C3 seq 1 ")
    assert edge_cmd(cfg, "tap", "04A1B2C3").stdout.startswith("duplicate: card 04A1B2C3 seq 2")
    assert edge_cmd(cfg, "tap", "04B00000").stdout.startswith("blocked:")
    assert edge_cmd(cfg, "tap", "04C0FFEE").stdout.startswith("unknown:")
    assert edge_cmd(cfg, "tap", "08AABBCC").stdout.startswith("random:")
    bad = edge_cmd(cfg, "tap", "xyz", check=False)
    assert bad.returncode == 1 and "attendance-edge: error: card UID 'xyz'" in bad.stderr

    status = json.loads(edge_cmd(cfg, "status", "--json").stdout)
    assert status["running"] is True
    assert status["taps_today"] == 4
    assert status["taps_today_by_verdict"] == {"accepted": 1, "unknown": 1, "blocked": 1,
                                               "duplicate": 1}
    assert status["backlog"] == 4
    assert status["last_tap"]["card_uid"] == "04C0FFEE"
    assert status["readers"] == [{"name": "sim", "driver": "sim", "connected": True, "error": None}]
    assert status["refused_random_uids"] == 1
    assert set(status["clock"]) >= {"synced", "boot_id", "now"}
    text = edge_cmd(cfg, "status").stdout
    assert "Reader:   sim [sim] connected" in text and "Backlog:  4 not yet" in text

    lines = edge_cmd(cfg, "taps", "--json").stdout.splitlines()
    taps = [json.loads(line) for line in lines]
    assert [t["seq"] for t in taps] == [1, 2, 3, 4]
    assert set(taps[0]) >= {"event_id", "device_id", "seq", "card_uid", "tapped_at", "boot_id",
                            "mono_ns", "clock_synced", "reader", "verdict"}
    assert taps[0]["person_id"] == "p1"
    assert edge_cmd(cfg, "taps", "--json", "--since", "2999-01-01").stdout == ""
    assert len(edge_cmd(cfg, "taps", "--since", "today").stdout.splitlines()) == 4
    bad_since = edge_cmd(cfg, "taps", "--since", "kemarin", check=False)
    assert bad_since.returncode == 2 and "is not a date" in bad_since.stderr


def test_concurrent_injections_get_distinct_gapless_seq(edge):
    results = []

    def worker(n):
        for i in range(10):
            results.append(edge_cmd(edge.config, "tap", f"04{n:02X}{i:04X}").stdout.split()[4])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(s) for s in results) == list(range(1, 41))


def test_status_when_not_running(tmp_path, edge):
    edge.terminate()
    status = json.loads(edge_cmd(edge.config, "status", "--json").stdout)
    assert status["running"] is False and "not running" in status["not_running_reason"]
    tap = edge_cmd(edge.config, "tap", "04A1B2C3", check=False)
    assert tap.returncode == 1 and "edge service is not running" in tap.stderr


def test_sigterm_is_clean(edge):
    edge_cmd(edge.config, "tap", "04A1B2C3")
    assert edge.terminate() == 0
    out = edge.output()
    assert "edge test-edge stopped" in out and "Traceback" not in out
    assert not edge.socket.exists()


def test_second_instance_refused(edge):
    other = EdgeProcess(edge.config)
    assert other.proc.wait(20) != 0
    assert "already running" in other.output()
    other.kill()


def test_tap_to_non_sim_reader_is_refused(tmp_path):
    config = write_config(tmp_path, readers='[[readers]]\nname = "gerbang"\ndriver = "pcsc"\n'
                                             'match = "no such reader"\n')
    proc = EdgeProcess(config)
    try:
        proc.wait_ready()
        result = edge_cmd(config, "tap", "04A1B2C3", check=False)
        assert result.returncode == 1 and "no simulated reader" in result.stderr
        status = edge_cmd(config, "status", "--json").stdout
        reader = json.loads(status)["readers"][0]
        assert reader["connected"] is False and reader["error"]
    finally:
        assert proc.terminate() == 0


def test_systemd_notify(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(20)
    config = write_config(tmp_path)
    proc = EdgeProcess(config, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    try:
        messages = [sock.recv(4096).decode() for _ in range(3)]
        assert messages[0].startswith("READY=1\nSTATUS=1/1 readers up")
        assert "WATCHDOG=1" in messages[1:]
    finally:
        assert proc.terminate() == 0
        sock.close()


def test_bad_config_names_key(tmp_path):
    config = write_config(tmp_path, extra='[recorder]\ndebounce_seconds = "lama"\n')
    # As the issue and systemd unit spell it: the option after the command.
    result = subprocess.run([*EDGE, "run", "--config", str(config)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"attendance-edge: error: {config}: [recorder] debounce_seconds: "
        "expected a number, got 'lama'")


def test_reader_down_and_up_drive_feedback(tmp_path):
    from edge.config import load_config
    from edge.service import EdgeService
    from hardware.feedback import Feedback
    from hardware.reader import FakeReader

    config = load_config(write_config(tmp_path), environ={})
    reader = FakeReader("gerbang")
    feedback = Feedback()
    service = EdgeService(config, readers=[reader], feedback=feedback)
    service.start()
    try:
        reader.tap("04A1B2C3")
        reader.unplug("USB cable pulled")
        status = service.status()
        assert status["readers"] == [{"name": "gerbang", "driver": "fake", "connected": False,
                                      "error": "USB cable pulled"}]
        reader.plug()
        reader.tap("04A1B2C4")
        assert feedback.history == ["unknown_card", "reader_down", "reader_up", "unknown_card"]
        assert service.status()["taps_today"] == 2
    finally:
        service.stop()
