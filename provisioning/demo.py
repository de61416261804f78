"""``attendance-demo``: a central server and an edge with a simulated reader.

Creates (or reuses) a folder with a server database (SQLite) and an edge
configuration, writes the registry exports of a small synthetic city (one
office, two schools: sites, ASN, Dapodik student lists, card register; every
name and number is made up) and imports them as a regency would, starts
``attendance-server run``, enrols the edge with a claim code, starts
``attendance-edge run`` and prints how to tap cards from another terminal.
Taps sync to the server within seconds. Ctrl-C stops both; the data stays in
the folder.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from server.synthetic import SiteRow, SyntheticCity

#: The demo city: one office and two schools, generated (``server.synthetic``).
DEMO_SEED = 2026
DEMO_CITY = {"sites": 3, "staff": 20, "students": 60}


def demo_city() -> "SyntheticCity":
    from server.synthetic import SyntheticCity

    return SyntheticCity(DEMO_SEED, **DEMO_CITY)


def demo_school(city: "SyntheticCity") -> "SiteRow":
    """The school whose gate the demo edge stands at (the one with most students)."""
    by_school = city.students_by_school()
    return max((s for s in city.sites() if s.kind == "school"),
               key=lambda s: (len(by_school.get(s.code, ())), s.code))


def write_registries(directory: Path, city: "SyntheticCity") -> dict[str, Path]:
    """The registry exports of the demo city, in the formats a regency would import:
    sites, ASN employees, one Dapodik XLSX per school, the card register."""
    from server.synthetic import (write_cards_csv, write_employees_csv, write_sites_csv,
                                  write_students_xlsx)

    folder = directory / "registries"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"sites": folder / "sites.csv", "employees": folder / "employees.csv",
             "cards": folder / "cards.csv"}
    write_sites_csv(files["sites"], city.sites())
    write_employees_csv(files["employees"], city.employees())
    sites = {s.code: s for s in city.sites()}
    for npsn, students in sorted(city.students_by_school().items()):
        files[f"students:{npsn}"] = folder / f"peserta-didik-{npsn}.xlsx"
        write_students_xlsx(files[f"students:{npsn}"], sites[npsn], students,
                            downloaded_at=datetime(2026, 7, 20, 9, 0, 0))
    write_cards_csv(files["cards"], city.cards())
    return files


def demo_roster(city: "SyntheticCity | None" = None) -> list[dict[str, str]]:
    """The edge roster of the demo school (what the server will send it), students
    first; the last staff card is reported lost by the demo."""
    city = city or demo_city()
    school = demo_school(city)
    holder = {c.nip or c.nisn: c.card_uid for c in city.cards()}
    rows = [{"card_uid": holder[s.nisn], "person_id": s.nisn, "name": s.name, "kind": "student",
             "group": s.rombel, "status": "active"}
            for s in city.students() if s.npsn == school.code]
    rows += [{"card_uid": holder[e.nip], "person_id": e.nip, "name": e.name,
              "kind": "employee", "group": e.unit, "status": "active"}
             for e in city.employees() if e.site_code == school.code]
    rows[-1]["status"] = "lost"
    return rows


def write_demo(directory: Path, web_port: int = 8081) -> tuple[Path, list[dict[str, str]]]:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    config = directory / "edge.toml"
    config.write_text(
        "# Demo edge: simulated reader, no LEDs. See provisioning/edge.example.toml.\n"
        f'[device]\nname = "demo-gerbang"\ndata_dir = "{data}"\n\n'
        '[[readers]]\nname = "gerbang"\ndriver = "sim"\n\n'
        '[recorder]\ndebounce_seconds = 60\n\n[feedback]\nkind = "none"\n\n'
        f'[web]\nlisten = "127.0.0.1:{web_port}"\n'
    )
    rows = demo_roster()
    roster = directory / "roster.csv"
    with roster.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return config, rows


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
        web_port = _free_port(8081)
        config, rows = write_demo(directory, web_port)
        roster = directory / "roster.csv"
        server_env = {**os.environ, "DATABASE_URL": f"sqlite:///{directory / 'server' / 'server.db'}"}
        server_env.pop("ATTENDANCE_SERVER_CONFIG", None)
        (directory / "server").mkdir(exist_ok=True)
        server = [sys.executable, "-m", "server.cli"]
        edge = [sys.executable, "-m", "edge.cli", "--config", str(config)]

        _check(_run([*server, "init-db"], server_env), "attendance-server init-db")
        city = demo_city()
        school = demo_school(city).code
        files = write_registries(directory, city)
        _check(_run([*server, "import", "sites", str(files["sites"])], server_env),
               "attendance-server import sites")
        _check(_run([*server, "import", "employees", str(files["employees"])], server_env),
               "attendance-server import employees")
        for key, path in files.items():
            if key.startswith("students:"):
                _check(_run([*server, "import", "students", str(path), "--npsn",
                             key.split(":", 1)[1]], server_env), "attendance-server import students")
        _check(_run([*server, "import", "cards", str(files["cards"])], server_env),
               "attendance-server import cards")
        lost = rows[-1]["card_uid"]
        _check(_run([*server, "card", "lost", lost], server_env), "attendance-server card lost")
        password = secrets.token_urlsafe(9)
        for args in (["add", "admin", "--role", "diskominfo"], ["passwd", "admin"]):
            made = subprocess.run([*server, "user", *args, "--password-stdin"],
                                  input=password + "\n", capture_output=True, text=True,
                                  timeout=60, env=server_env)
            if made.returncode == 0:  # passwd when the folder is reused
                break
        _check(made, "attendance-server user add")
        port = _free_port(port)
        url = f"http://127.0.0.1:{port}"
        server_proc = subprocess.Popen([*server, "run", "--host", "127.0.0.1", "--port", str(port)],
                                       env=server_env)
        procs.append(server_proc)

        if not _wait_http(url + "/api/v1/health", server_proc):
            click.echo("attendance-demo: error: the central server did not start", err=True)
            sys.exit(1)
        if not (directory / "data" / "device.json").exists():
            added = _run([*server, "device", "add", "--site", school, "--name", "gerbang",
                          "--json"], server_env)
            _check(added, "attendance-server device add")
            code = json.loads(added.stdout)["claim_code"]
            _check(_run([*edge, "enroll", "--server", url, "--code", code]), "attendance-edge enroll")
        _check(_run([*edge, "roster", "load", str(roster)]), "attendance-edge roster load")
        for verb in ("add", "passwd"):  # passwd when the folder is reused
            made = subprocess.run([*edge, "operator", verb, "demo", "--password-stdin"],
                                  input=password + "\n", capture_output=True, text=True,
                                  timeout=60)
            if made.returncode == 0:
                break
        _check(made, "attendance-edge operator add")
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
        student, lost = rows[0], rows[-1]
        staff = next(r for r in rows if r["kind"] == "employee")
        click.echo(f"""
Demo running (data in {directory}).
  central server: {url}/api/v1/health  (API {url}/api/v1/openapi.json)
  dashboard:      {url}/dashboard/  (user admin, password {password})
  edge:           simulated reader "gerbang", enrolled at school {school}
  operator page:  http://127.0.0.1:{web_port}/  (user demo, password {password})

From another terminal, tap cards:

  {cli} --config {config} tap {student['card_uid']}   # {student['name']}, {student['group']}: accepted
  {cli} --config {config} tap {staff['card_uid']}           # {staff['name']}: accepted
  {cli} --config {config} tap {lost['card_uid']}           # a lost card: blocked
  {cli} --config {config} tap 04DEADBEEF0001       # not in the roster: unknown
  {cli} --config {config} tap 08A1B2C3             # a phone's random UID: refused

and look:

  {cli} --config {config} status
  export DATABASE_URL=sqlite:///{directory / 'server' / 'server.db'}
  {scli} taps
  {scli} reconcile --date $(date +%F) --site {school}
  {scli} report day --date $(date +%F) --site {school}

Registry exports of the demo city (3 sites, 20 ASN, 60 students) are in
{directory / 'registries'}.

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
