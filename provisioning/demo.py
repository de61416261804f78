"""``attendance-demo``: an edge with a simulated reader and a demo roster.

Creates (or reuses) a folder with an edge configuration, loads a small
synthetic roster (students of one school and a few staff; every name and
number is made up), starts ``attendance-edge run`` and prints how to tap
cards from another terminal. Ctrl-C stops it; the taps stay in the folder.
"""

from __future__ import annotations

import csv
import random
import shutil
import signal
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's configuration and data (default: a new temp folder).")
def main(directory: Path | None) -> None:
    """Run a demo edge with a simulated reader and a demo roster."""
    directory = directory or Path(tempfile.mkdtemp(prefix="attendance-demo-"))
    directory = directory.resolve()
    config, rows = write_demo(directory)
    edge = [sys.executable, "-m", "edge.cli", "--config", str(config)]
    loaded = subprocess.run([*edge, "roster", "load", str(directory / "roster.csv")],
                            capture_output=True, text=True)
    if loaded.returncode:
        click.echo(loaded.stderr, err=True)
        sys.exit(1)
    service = subprocess.Popen([*edge, "run"])
    sock = directory / "data" / "control.sock"
    deadline = time.monotonic() + 30
    while not sock.exists() and service.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if service.poll() is not None or not sock.exists():
        click.echo("attendance-demo: error: the edge service did not start", err=True)
        service.kill()
        sys.exit(1)
    cli = shutil.which("attendance-edge") or f"{sys.executable} -m edge.cli"
    student, staff, lost = rows[0], rows[12], rows[-1]
    click.echo(f"""
Demo edge running (data in {directory}).
From another terminal, tap cards:

  {cli} --config {config} tap {student['card_uid']}   # {student['name']}, {student['group']}: accepted
  {cli} --config {config} tap {staff['card_uid']}           # {staff['name']}: accepted
  {cli} --config {config} tap {lost['card_uid']}           # a lost card: blocked
  {cli} --config {config} tap 04DEADBEEF0001       # not in the roster: unknown
  {cli} --config {config} tap 08A1B2C3             # a phone's random UID: refused

and look:

  {cli} --config {config} status
  {cli} --config {config} taps

The roster is {directory / 'roster.csv'}. The central server comes in a later release;
until then taps stay in the edge's outbox. Ctrl-C stops the demo.
""", err=False)
    sys.stdout.flush()

    def stop(*_: object) -> None:
        service.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = service.wait()
    click.echo(f"demo stopped; its data stays in {directory}")
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
