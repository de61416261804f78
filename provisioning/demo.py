"""``attendance-demo``: a central server and an edge with a simulated reader.

Creates (or reuses) a folder with a server database (SQLite) and an edge
configuration, registers a demo school with a small synthetic roster
(students and a few staff; every name and number is made up), starts
``attendance-server run``, enrols the edge with a claim code, starts
``attendance-edge run`` and prints how to tap cards from another terminal.
Taps sync to the server within seconds. Ctrl-C stops both; the data stays in
the folder.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

FIRST = ["Siti", "Budi", "Dewi", "Agus", "Rina", "Rizky", "Putri", "Fajar", "Nur", "Ahmad",
         "Ayu", "Dimas", "Indah", "Yusuf", "Lestari", "Hendra"]
LAST = ["Aminah", "Santoso", "Lestari", "Saputra", "Wulandari", "Pratama", "Hasibuan",
        "Siregar", "Nasution", "Harahap", "Rahmawati", "Hidayat"]


def demo_roster(seed: int = 2026) -> list[dict[str, str]]:
    """A small, deterministic roster: 12 students in two classes, 4 staff, one lost card."""
    rng = random.Random(seed)
    rows = []
    for i in range(12):
        birth_year = rng.choice([2011, 2012])
        nisn = f"{birth_year % 1000:03d}{rng.randrange(10**7):07d}"
        rows.append({
            "card_uid": f"04{rng.randrange(16**12):012X}",
            "person_id": nisn,
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "kind": "student",
            "group": "VII-A" if i < 6 else "VII-B",
            "status": "active",
        })
    for i in range(4):
        born = f"{rng.randrange(1970, 1995)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        tmt = f"{rng.randrange(2000, 2020)}{rng.randrange(1, 13):02d}"
        nip = f"{born}{tmt}{rng.choice('12')}{rng.randrange(1, 1000):03d}"
        rows.append({
            "card_uid": f"{rng.randrange(0x10, 0x100):02X}{rng.randrange(16**6):06X}",
            "person_id": nip,
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}, S.Pd.",
            "kind": "employee",
            "group": "Guru",
            "status": "active",
        })
    rows[-1]["status"] = "lost"
    return rows


def write_demo(directory: Path) -> tuple[Path, list[dict[str, str]]]:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    config = directory / "edge.toml"
    config.write_text(
        "# Demo edge: simulated reader, no LEDs. See provisioning/edge.example.toml.\n"
        f'[device]\nname = "demo-sdn-001-gerbang"\ndata_dir = "{data}"\n\n'
        '[[readers]]\nname = "gerbang"\ndriver = "sim"\n\n'
        '[recorder]\ndebounce_seconds = 60\n\n[feedback]\nkind = "none"\n'
    )
    rows = demo_roster()
    roster = directory / "roster.csv"
    with roster.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return config, rows


DEMO_SITE = "20401234"


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode:
        click.echo(f"attendance-demo: error: {what} failed:\n{result.stdout}{result.stderr}",
                   err=True)
        sys.exit(1)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port")


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's configuration and data (default: a new temp folder).")
@click.option("--port", type=int, default=8080, show_default=True,
              help="Port of the central server on 127.0.0.1 (another is taken if busy).")
def main(directory: Path | None, port: int) -> None:
    """Run a demo: a central server and an edge with a simulated reader and demo roster."""
    procs: list[subprocess.Popen] = []

    def stop() -> None:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def interrupted(*_: object) -> None:
        # Unwind whatever step is running (start-up included); the finally
        # below stops what was started. subprocess.run kills its own child.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    code = 0
    directory = directory or Path(tempfile.mkdtemp(prefix="attendance-demo-"))
    try:
        directory = directory.resolve()
        config, rows = write_demo(directory)
        roster = directory / "roster.csv"
        server_env = {**os.environ, "DATABASE_URL": f"sqlite:///{directory / 'server' / 'server.db'}"}
        server_env.pop("ATTENDANCE_SERVER_CONFIG", None)
        (directory / "server").mkdir(exist_ok=True)
        server = [sys.executable, "-m", "server.cli"]
        edge = [sys.executable, "-m", "edge.cli", "--config", str(config)]

        _check(_run([*server, "init-db"], server_env), "attendance-server init-db")
        sites = _run([*server, "site", "list", "--json"], server_env)
        _check(sites, "attendance-server site list")
        if DEMO_SITE not in sites.stdout:
            _check(_run([*server, "site", "add", DEMO_SITE, "--name",
                         "SD Negeri 001 Pekanbaru (demo)", "--timezone", "Asia/Jakarta"],
                        server_env), "attendance-server site add")
        _check(_run([*server, "roster", "import", "--site", DEMO_SITE, str(roster)], server_env),
               "attendance-server roster import")
        port = _free_port(port)
        url = f"http://127.0.0.1:{port}"
        server_proc = subprocess.Popen([*server, "run", "--host", "127.0.0.1", "--port", str(port)],
                                       env=server_env)
        procs.append(server_proc)

        if not _wait_http(url + "/api/v1/health", server_proc):
            click.echo("attendance-demo: error: the central server did not start", err=True)
            sys.exit(1)
        if not (directory / "data" / "device.json").exists():
            added = _run([*server, "device", "add", "--site", DEMO_SITE, "--name", "gerbang",
                          "--json"], server_env)
            _check(added, "attendance-server device add")
            code = json.loads(added.stdout)["claim_code"]
            _check(_run([*edge, "enroll", "--server", url, "--code", code]), "attendance-edge enroll")
        _check(_run([*edge, "roster", "load", str(roster)]), "attendance-edge roster load")
        edge_proc = subprocess.Popen([*edge, "run"])
        procs.append(edge_proc)
        sock = directory / "data" / "control.sock"
        deadline = time.monotonic() + 30
        while not sock.exists() and edge_proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if edge_proc.poll() is not None or not sock.exists():
            click.echo("attendance-demo: error: the edge service did not start", err=True)
            sys.exit(1)
        cli = shutil.which("attendance-edge") or f"{sys.executable} -m edge.cli"
        scli = shutil.which("attendance-server") or f"{sys.executable} -m server.cli"
        student, staff, lost = rows[0], rows[12], rows[-1]
        click.echo(f"""
Demo running (data in {directory}).
  central server: {url}/api/v1/health  (API {url}/api/v1/openapi.json)
  edge:           simulated reader "gerbang", enrolled at site {DEMO_SITE}

From another terminal, tap cards:

  {cli} --config {config} tap {student['card_uid']}   # {student['name']}, {student['group']}: accepted
  {cli} --config {config} tap {staff['card_uid']}           # {staff['name']}: accepted
  {cli} --config {config} tap {lost['card_uid']}           # a lost card: blocked
  {cli} --config {config} tap 04DEADBEEF0001       # not in the roster: unknown
  {cli} --config {config} tap 08A1B2C3             # a phone's random UID: refused

and look:

  {cli} --config {config} status
  DATABASE_URL=sqlite:///{directory / 'server' / 'server.db'} {scli} taps

Ctrl-C stops the demo.
""")
        sys.stdout.flush()
        code = edge_proc.wait()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        click.echo(f"demo stopped; its data stays in {directory}")
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
