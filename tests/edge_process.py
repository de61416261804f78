"""Run ``attendance-edge`` as a real process for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge import control
from edge.errors import ControlError

EDGE = [sys.executable, "-m", "edge.cli"]


def write_config(tmp_path: Path, extra: str = "", readers: str | None = None,
                 web: str = '[web]\nenabled = false\n') -> Path:
    """An edge configuration in ``tmp_path``; the operator's page is off unless ``web``
    gives a ``[web]`` section (tests must not fight over its default port)."""
    data = tmp_path / "data"
    readers = readers if readers is not None else '[[readers]]\nname = "sim"\ndriver = "sim"\n'
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[device]\nname = "test-edge"\ndata_dir = "{data}"\n'
        f'[feedback]\nkind = "none"\n{readers}{web}{extra}'
    )
    return path


def edge_cmd(config: Path, *args: str, check: bool = True, env: dict | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run([*EDGE, "--config", str(config), *args], capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def sync_config(tmp_path: Path, server_url: str, *, batch: int = 500, timeout: float = 5,
                extra: str = "") -> Path:
    """An edge configuration syncing with ``server_url`` at test pace (pushes every
    0.2 s, heartbeat and roster every second)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_config(tmp_path, extra=(
        f'[sync]\nserver_url = "{server_url}"\nbatch_size = {batch}\n'
        f'push_interval_seconds = 0.2\ntimeout_seconds = {timeout}\n'
        f'heartbeat_seconds = 1\nroster_seconds = 1\n{extra}'))


def edge_taps(config: Path) -> list[dict]:
    """The edge's recorded taps (``attendance-edge taps --json``), oldest first."""
    out = edge_cmd(config, "taps", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def backlog(config: Path) -> int:
    """Taps the edge has not had acknowledged yet (``attendance-edge status``)."""
    return json.loads(edge_cmd(config, "status", "--json").stdout)["backlog"]


class EdgeProcess:
    def __init__(self, config: Path, env: dict | None = None) -> None:
        self.config = config
        self.socket = config.parent / "data" / "control.sock"
        self.log = config.parent / "edge.log"
        self._log_file = open(self.log, "ab")
        self.proc = subprocess.Popen([*EDGE, "--config", str(config), "run"],
                                     stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"edge exited early ({self.proc.returncode}):\n{self.output()}")
            try:
                if control.request(self.socket, {"cmd": "status"}, timeout=2).get("ok"):
                    return
            except ControlError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"edge not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()
