"""Edge and central server as real processes over loopback HTTP, with faults.

Nothing acknowledged is lost and nothing is counted twice: after every
fault the server holds each tap of the edge exactly once.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.edge_process import EdgeProcess, backlog, edge_cmd, edge_taps, sync_config
from tests.fault_proxy import FaultProxy
from tests.sync_env import (CentralServer, assert_exactly_once, enrol, fill_outbox,
                            wait_for)


@pytest.fixture
def server(tmp_path):
    central = CentralServer(tmp_path / "server")
    central.setup_site()
    central.start()
    yield central
    central.stop()


def test_enrol_tap_sync_roster(tmp_path, server):
    roster = tmp_path / "roster.csv"
    roster.write_text("card_uid,person_id,name,kind,group,status\n"
                      "04A1B2C3D4E5F6,0051234567,Siti Aminah,student,VII-A,active\n"
                      "8C3F2A11,198703152010012003,Budi Santoso,employee,Guru,lost\n")
    server.cli("roster", "import", "--site", "20401234", str(roster))
    config = sync_config(tmp_path, server.url)
    enrol(config, server)
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        # The roster arrives by itself; then the known card is accepted offline-capable.
        wait_for(lambda: "04A1B2C3D4E5F6" in edge_cmd(config, "roster", "show").stdout,
                 20, "roster pull")
        assert edge_cmd(config, "tap", "04A1B2C3D4E5F6").stdout.startswith("accepted:")
        assert edge_cmd(config, "tap", "8C3F2A11").stdout.startswith("blocked:")
        assert edge_cmd(config, "tap", "04C0FFEE").stdout.startswith("unknown:")
        wait_for(lambda: backlog(config) == 0, 20, "backlog drained")
        status = json.loads(edge_cmd(config, "status", "--json").stdout)
        assert status["sync"]["last_error"] is None and status["sync"]["device_id"]
        assert status["clock"]["synced"] is True  # the server confirmed the clock
    finally:
        assert edge.terminate() == 0
    taps = server.stored_taps()
    assert sorted(t["event_id"] for t in taps) == sorted(t["event_id"] for t in edge_taps(config))
    assert {t["device_id"] for t in taps} == {status["sync"]["device_id"]}


def test_random_connection_faults_store_each_tap_once(tmp_path, server):
    with FaultProxy(("127.0.0.1", server.port), mode="random", seed=7) as proxy:
        config = sync_config(tmp_path, proxy.url, batch=20)
        proxy.mode = "pass"
        enrol(config, server)
        ids = fill_outbox(tmp_path / "data" / "edge.db", 400)
        proxy.mode = "random"
        rounds = 0
        while backlog(config) and rounds < 300:
            edge_cmd(config, "sync", check=False)
            rounds += 1
        proxy.mode = "pass"
        edge_cmd(config, "sync")
        stats = proxy.stats
    assert backlog(config) == 0
    assert stats["drop_after_request"] > 0 and stats["drop_mid_reply"] > 0
    assert stats["drop_before_request"] > 0
    assert_exactly_once(server, ids)
    assert len(server.stored_taps()) == 400


def test_server_killed_and_restarted_mid_backlog(tmp_path, server):
    config = sync_config(tmp_path, server.url, batch=200)
    enrol(config, server)
    ids = fill_outbox(tmp_path / "data" / "edge.db", 20_000)
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        wait_for(lambda: backlog(config) < 19_000, 60, "some batches pushed")
        server.kill()
        left = backlog(config)
        assert left > 0
        time.sleep(1.5)
        status = json.loads(edge_cmd(config, "status", "--json").stdout)
        assert status["sync"]["last_error"]
        server.start()
        wait_for(lambda: backlog(config) == 0, 120, "backlog drained after restart")
    finally:
        assert edge.terminate() == 0
    assert_exactly_once(server, ids)


@pytest.mark.parametrize("mode", ["http_503", "http_429"])
def test_overloaded_server_is_retried_after_its_retry_after(tmp_path, server, mode):
    with FaultProxy(("127.0.0.1", server.port)) as proxy:
        config = sync_config(tmp_path, proxy.url)
        enrol(config, server)
        ids = fill_outbox(tmp_path / "data" / "edge.db", 50)
        proxy.mode = mode
        failed = edge_cmd(config, "sync", check=False)
        assert failed.returncode == 1 and str(mode[-3:]) in failed.stdout
        edge = EdgeProcess(config)
        try:
            edge.wait_ready()
            wait_for(lambda: proxy.stats[mode] >= 2, 20, "retries")
            assert backlog(config) == 50
            proxy.mode = "pass"
            wait_for(lambda: backlog(config) == 0, 30, "drained once the server answers")
        finally:
            assert edge.terminate() == 0
    assert_exactly_once(server, ids)


def test_slow_server_times_out_then_succeeds(tmp_path, server):
    with FaultProxy(("127.0.0.1", server.port), delay_seconds=2.5) as proxy:
        config = sync_config(tmp_path, proxy.url, timeout=1)
        enrol(config, server)
        ids = fill_outbox(tmp_path / "data" / "edge.db", 30)
        proxy.mode = "delay"
        slow = edge_cmd(config, "sync", check=False)
        assert slow.returncode == 1 and "Timeout" in slow.stdout
        proxy.mode = "pass"
        done = edge_cmd(config, "sync")
        # The delayed request was processed: its taps come back as duplicates now.
        assert "duplicate 30" in done.stdout
    assert backlog(config) == 0
    assert_exactly_once(server, ids)


def test_revoked_device_stops_and_keeps_its_taps(tmp_path, server):
    config = sync_config(tmp_path, server.url)
    enrol(config, server)
    device = json.loads((tmp_path / "data" / "device.json").read_text())["device_id"]
    server.cli("device", "revoke", device)
    fill_outbox(tmp_path / "data" / "edge.db", 5)
    refused = edge_cmd(config, "sync", check=False)
    assert refused.returncode == 1 and "401" in refused.stdout
    assert backlog(config) == 5


def test_a_week_offline_then_catching_up(tmp_path, server):
    """100,000 taps buffered while the server was unreachable drain exactly once."""
    config = sync_config(tmp_path, server.url, batch=500, timeout=60)
    enrol(config, server)
    ids = fill_outbox(tmp_path / "data" / "edge.db", 100_000)
    assert backlog(config) == 100_000
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        wait_for(lambda: backlog(config) == 0, 240, "a week's backlog drained")
    finally:
        assert edge.terminate() == 0
    assert_exactly_once(server, ids)
    assert len(server.stored_taps()) == 100_000
