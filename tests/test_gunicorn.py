"""The production setup: gunicorn with several workers stores a batch pushed twice at once only once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

from tests.sync_env import CentralServer, free_port


def test_concurrent_duplicate_pushes_through_gunicorn_workers(tmp_path: Path):
    central = CentralServer(tmp_path / "server")
    central.setup_site()
    code = central.claim_code()
    port = free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    proc = subprocess.Popen([gunicorn, "--workers", "3", "--bind", f"127.0.0.1:{port}",
                             "server.app:create_app()"], env=central.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "gunicorn did not start"
            time.sleep(0.1)
        enrolled = requests.post(url + "/devices/enroll",
                                 json={"claim_code": code, "hardware_id": "pi-gunicorn"},
                                 timeout=10).json()
        headers = {"Authorization": f"Bearer {enrolled['token']}"}
        taps = [{"event_id": str(uuid.uuid4()), "seq": i + 1, "card_uid": f"04{i:012X}",
                 "tapped_at": "2026-11-23T07:00:00.000+07:00", "boot_id": "b",
                 "mono_ns": i, "clock_synced": True, "reader": "r", "verdict": "accepted"}
                for i in range(300)]
        replies = []

        def push():
            replies.append(requests.post(url + "/taps", json={"taps": taps}, headers=headers,
                                         timeout=60))

        threads = [threading.Thread(target=push) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        proc.wait(15)
    assert [r.status_code for r in replies] == [200] * 6
    statuses = [[x["status"] for x in r.json()["results"]] for r in replies]
    # Each tap accepted by exactly one of the six pushes, duplicate in the others.
    for i in range(300):
        column = [s[i] for s in statuses]
        assert column.count("accepted") == 1 and column.count("duplicate") == 5, column
    stored = central.stored_taps()
    assert len(stored) == 300 and len({t["event_id"] for t in stored}) == 300
