"""Fleet alerts end to end: a real edge process with a (simulated) reader sends heartbeats
to a real server over loopback HTTP; when the edge stops, the silence becomes a warning,
then a critical alert, in the API and in ``attendance-server device alerts`` (exit code 2).

The thresholds are seconds instead of hours, given to the server as ``ATTENDANCE_ALERTS_*``
variables, as an operator would.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import requests

from tests.edge_process import EdgeProcess, edge_cmd, write_config
from tests.sync_env import CentralServer, wait_for

SITE = "20401234"
WARNING_S, CRITICAL_S = 6, 12


def test_a_stopped_edge_raises_a_silent_alert(tmp_path: Path) -> None:
    server = CentralServer(tmp_path / "server")
    server.env.update({"ATTENDANCE_ALERTS_SILENT_WARNING_MINUTES": str(WARNING_S / 60),
                       "ATTENDANCE_ALERTS_SILENT_CRITICAL_MINUTES": str(CRITICAL_S / 60)})
    server.setup_site(SITE)
    made = json.loads(server.cli("key", "add", "--name", "NOC", "--role", "diskominfo",
                                 "--json").stdout)
    headers = {"Authorization": f"Bearer {made['key']}"}
    server.start()
    edge = None
    try:
        (tmp_path / "edge").mkdir()
        config = write_config(tmp_path / "edge", extra=(
            f'[sync]\nserver_url = "{server.url}"\npush_interval_seconds = 0.2\n'
            f'timeout_seconds = 5\nheartbeat_seconds = 1\nroster_seconds = 5\n'))
        out = edge_cmd(config, "enroll", "--server", server.url, "--code",
                       server.claim_code(SITE)).stdout
        device_id = re.search(r"dev_[0-9a-f]+", out).group(0)

        def alerts() -> list[dict]:
            reply = requests.get(server.url + "/api/v1/alerts", headers=headers, timeout=5)
            assert reply.status_code == 200, reply.text
            return [a for a in reply.json()["alerts"] if a["device_id"] == device_id]

        def fleet() -> dict:
            reply = requests.get(server.url + "/api/v1/devices", headers=headers, timeout=5)
            return next(d for d in reply.json()["devices"] if d["device_id"] == device_id)

        # Enrolled, never heard from: nothing yet (enrolment is newer than the threshold).
        assert alerts() == []
        edge = EdgeProcess(config)
        edge.wait_ready()
        # Its heartbeats arrive with the reader's state; while it beats, no alert.
        seen = wait_for(lambda: (d := fleet())["last_seen_at"] and d["readers"] and d,
                        20, "the first heartbeat")
        assert seen["reader_ok"] is True and seen["readers"][0]["name"] == "sim"
        time.sleep(WARNING_S + 2)
        assert alerts() == []
        healthy = server.cli("device", "alerts", check=False)
        assert (healthy.returncode, healthy.stdout.splitlines()[0]) == (
            0, "OK: 0 critical, 0 warning alert(s)")

        # The edge stops: silent, first a warning, then critical.
        assert edge.terminate() == 0
        stopped = time.monotonic()
        severities: list[str] = []

        def critical() -> bool:
            found = alerts()
            if found:
                assert [a["kind"] for a in found] == ["silent"]
                if not severities or severities[-1] != found[0]["severity"]:
                    severities.append(found[0]["severity"])
            return severities[-1:] == ["critical"]

        wait_for(critical, CRITICAL_S + 20, "a critical silent alert")
        assert severities == ["warning", "critical"]
        assert time.monotonic() - stopped > WARNING_S
        alert = alerts()[0]
        assert alert["since"] == fleet()["last_seen_at"]
        assert alert["threshold"] == CRITICAL_S / 60 and alert["value"] >= alert["threshold"]

        check = server.cli("device", "alerts", check=False)
        assert check.returncode == 2, check.stdout + check.stderr
        assert check.stdout.splitlines()[0] == "CRITICAL: 1 critical, 0 warning alert(s)"
        as_json = server.cli("device", "alerts", "--json", "--site", SITE, check=False)
        assert as_json.returncode == 2
        assert [(a["device_id"], a["kind"], a["severity"]) for a in
                map(json.loads, as_json.stdout.splitlines())] == [
            (device_id, "silent", "critical")]

        # Revoked, the device raises nothing any more.
        server.cli("device", "revoke", device_id)
        assert alerts() == []
        assert server.cli("device", "alerts", check=False).returncode == 0
    finally:
        if edge is not None and edge.proc.poll() is None:
            edge.terminate()
        server.stop()
