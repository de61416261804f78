"""A real central server and a real edge, as processes on loopback, for sync tests."""

from __future__ import annotations

import json
import sqlite3
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from edge.outbox import Outbox
from tests.edge_process import edge_cmd

SERVER = [sys.executable, "-m", "server.cli"]
CLAIM_CODE = re.compile(r"\b[A-Z0-9]{4}(?:-[A-Z0-9]{4}){2,}\b")


def wait_for(predicate: Any, timeout: float, what: str = "condition", *,
             interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or fail after
    ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CentralServer:
    """``attendance-server`` on a SQLite file (or ``database_url``), restartable."""

    def __init__(self, workdir: Path, database_url: str | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or f"sqlite:///{workdir / 'server.db'}"
        self.env = {**os.environ, "DATABASE_URL": self.database_url}
        self.env.pop("ATTENDANCE_SERVER_CONFIG", None)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*SERVER, *args], capture_output=True, text=True,
                                env=self.env, timeout=60)
        if check and result.returncode:
            raise AssertionError(f"attendance-server {args}: {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def setup_site(self, code: str = "20401234", name: str = "SDN 001 Pekanbaru") -> None:
        self.cli("init-db")
        self.cli("site", "add", code, "--name", name, "--timezone", "Asia/Jakarta")

    def claim_code(self, site: str = "20401234") -> str:
        out = self.cli("device", "add", "--site", site).stdout
        found = CLAIM_CODE.search(out)
        assert found, f"no claim code in: {out}"
        return found.group(0)

    def start(self) -> "CentralServer":
        log = self.log.open("ab")
        self.proc = subprocess.Popen([*SERVER, "run", "--host", "127.0.0.1", "--port",
                                      str(self.port)], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not up: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def heartbeat_status(self, token: str) -> int:
        """The HTTP status of a heartbeat sent with ``token`` (200: the token works)."""
        beat = {"boot_id": "probe", "mono_ns": 1, "wall_time": "2026-11-23T07:00:00+07:00"}
        return requests.post(self.url + "/api/v1/heartbeat", json=beat, timeout=10,
                             headers={"Authorization": f"Bearer {token}"}).status_code

    def stored_taps(self) -> list[dict]:
        out = self.cli("taps", "--json", "--limit", "100000").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def fill_outbox(db: Path, n: int, start: int = 0) -> list[str]:
    """Write ``n`` taps straight into the outbox (test setup; the recorder is tested apart)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    Outbox(db).close()  # create the schema
    conn = sqlite3.connect(db)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with conn:
        conn.executemany(
            "INSERT INTO taps (event_id, card_uid, tapped_at, tapped_at_utc, boot_id, mono_ns, "
            "clock_synced, reader, verdict) VALUES (?, ?, ?, ?, 'offline-boot', ?, 0, 'sim', "
            "'unknown')",
            [(e, f"04{start + i:012X}", "2026-11-16T07:00:00.000+07:00",
              "2026-11-16T00:00:00.000+00:00", (start + i) * 1000) for i, e in enumerate(ids)])
    conn.close()
    return ids


def assert_exactly_once(server: CentralServer, event_ids: list[str]) -> None:
    stored = Counter(t["event_id"] for t in server.stored_taps())
    assert not [e for e, n in stored.items() if n > 1], "a tap was stored twice"
    missing = set(event_ids) - set(stored)
    assert not missing, f"{len(missing)} acknowledged taps never reached the server"


def enrol(config: Path, server: CentralServer) -> None:
    out = edge_cmd(config, "enroll", "--server", server.url, "--code", server.claim_code())
    assert out.stdout.startswith("enrolled as dev_"), out.stdout
