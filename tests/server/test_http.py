"""Real HTTP: the server under waitress on a loopback port, and the edge's own sync client."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import waitress

from tests.server.helpers import claim_code, count, make_tap, rows

ROOT = Path(__file__).parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(database_url, tmp_path):
    """``attendance-server run`` in a subprocess on a free loopback port."""
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text("[api]\nmax_content_length = 200000\n")
    env = {**os.environ, "DATABASE_URL": database_url, "ATTENDANCE_SERVER_CONFIG": str(config)}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "run", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(base + "/api/v1/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_run_serves_real_http(served, engine, site):
    base = served + "/api/v1"
    with requests.Session() as http:
        enrolled = http.post(base + "/devices/enroll",
                             json={"claim_code": claim_code(engine, site), "hardware_id": "pi"})
        assert enrolled.status_code == 200
        headers = {"Authorization": f"Bearer {enrolled.json()['token']}"}
        taps = [make_tap(i) for i in range(1, 11)]
        reply = http.post(base + "/taps", json={"taps": taps}, headers=headers)
        assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
        assert [r["status"] for r in reply.json()["results"]] == ["accepted"] * 10
        assert http.post(base + "/taps", data="{nope", headers=headers).status_code == 400
        big = {"taps": [make_tap(i) for i in range(1, 1000)]}  # ~250 kB > 200 kB limit
        reply = http.post(base + "/taps", json=big, headers=headers)
        assert reply.status_code == 413 and reply.json()["error"]["code"] == "too_large"

        def chunks():
            data = json.dumps(big).encode()
            for i in range(0, len(data), 16384):
                yield data[i:i + 16384]

        reply = http.post(base + "/taps", data=chunks(),
                          headers={**headers, "Content-Type": "application/json"})
        assert reply.status_code == 413, reply.text
        assert http.get(base + "/openapi.json").json()["openapi"].startswith("3.1")
        assert http.get(base + "/missing").status_code == 404
    assert count(engine, "taps") == 10


@pytest.fixture
def threaded_server(app):
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    server.task_dispatcher.shutdown()
    thread.join(5)


def test_edge_sync_worker_against_the_real_server(threaded_server, engine, site, tmp_path):
    """The contract test: what the edge's SyncWorker sends, to the real server over HTTP."""
    from edge.clock import FixedClock
    from edge.outbox import Outbox
    from edge.sync import SyncClient, SyncWorker
    from server.roster import RosterLine, import_roster

    with engine.begin() as conn:
        import_roster(conn, site, [RosterLine("04A1B2C3", "0051234567", "Siti", "student", "VII-A"),
                                   RosterLine("04B00000", "0051234568", "Budi", "student", "VII-A",
                                              "lost")])
    # A Pi that booted offline: its clock says 2019 and is not synced.
    wib = timezone(timedelta(hours=7))
    clock = FixedClock(datetime(2019, 1, 1, 7, 0, tzinfo=wib), synced=False, boot_id="pi-boot")
    with Outbox(tmp_path / "edge.db") as outbox:
        for uid in ("04A1B2C3", "04B00000", "04C0FFEE"):
            outbox.record_tap(uid, "gerbang", clock.now(), 60)
            clock.advance(10)
        clock.advance(30)  # the taps were 60, 50 and 40 s before the push

        client = SyncClient(threaded_server)
        enrolled = client.enroll(claim_code(engine, site), "pi-serial-0001", "gerbang utama")
        client.token = enrolled["token"]
        worker = SyncWorker(outbox, client, device_id=enrolled["device_id"], clock=clock)
        sent_at = datetime.now(timezone.utc)
        report = worker.run_round(force=True)
        assert report.error is None, report.error
        assert (report.pushed, report.accepted, report.duplicate) == (3, 3, 0)
        assert report.heartbeat and report.roster == "full, 2 card(s)"
        assert outbox.backlog() == (0, None)
        assert outbox.lookup("04B00000").status == "lost"

        stored = rows(engine, "SELECT seq, device_id, corrected_at, clock_status FROM taps "
                              "ORDER BY seq")
        assert [r["device_id"] for r in stored] == [enrolled["device_id"]] * 3
        for row, seconds in zip(stored, (60, 50, 40)):
            corrected = row["corrected_at"]
            if isinstance(corrected, str):
                corrected = datetime.fromisoformat(corrected)
            corrected = corrected.replace(tzinfo=corrected.tzinfo or timezone.utc)
            assert abs(corrected - (sent_at - timedelta(seconds=seconds))) < timedelta(seconds=5)
            assert row["clock_status"] == "corrected"

        again = worker.run_round(force=True)
        assert again.error is None and again.pushed == 0 and again.roster == "+0 -0"
        client.close()
