"""provisioning/server/attendance-backup and attendance-restore, run for real.

PostgreSQL: pg_dump of a scratch database the real server filled over HTTP, restored into
another scratch database, compared table by table, and served again. SQLite: a backup taken
while a writer commits, consistent and complete; restored over a live file. Failures exit
non-zero with a message and leave no partial file; retention removes only old backups.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from server.db import create_db_engine
from server.schema import metadata
from tests.server.conftest import PgDatabase
from tests.sync_env import CentralServer
from tests.syspart import need

PROV = Path(__file__).resolve().parent.parent / "provisioning" / "server"
BACKUP = PROV / "attendance-backup"
RESTORE = PROV / "attendance-restore"
NAME = re.compile(r"^attendance-\d{8}T\d{6}Z\.(dump|sqlite)$")


def run(script: Path, *args: str, url: str | None, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "ATTENDANCE_BACKUP_DIR",
                            "ATTENDANCE_BACKUP_KEEP_DAYS")}
    if url is not None:
        environ["DATABASE_URL"] = url
    environ.update(env)
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=environ,
                          stdin=subprocess.DEVNULL, timeout=300)


def need_pg_tools() -> None:
    for tool in ("pg_dump", "pg_restore", "psql"):
        need(shutil.which(tool) is not None, f"{tool} (apt install postgresql-client)")


def table_rows(url: str) -> dict[str, list[tuple]]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr)
                    for t in metadata.sorted_tables}
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def fill_through_http(central: CentralServer, taps: int = 40) -> str:
    """A site, an enrolled device and its taps, the way production fills a database."""
    central.setup_site()
    code = central.claim_code()
    central.start()
    try:
        url = central.url + "/api/v1"
        token = requests.post(url + "/devices/enroll", timeout=10,
                              json={"claim_code": code, "hardware_id": "pi-backup"}
                              ).json()["token"]
        batch = [{"event_id": str(uuid.uuid4()), "seq": i + 1, "card_uid": f"04{i:012X}",
                  "tapped_at": "2026-11-23T07:00:00.000+07:00", "boot_id": "b",
                  "mono_ns": i, "clock_synced": True, "reader": "r", "verdict": "accepted"}
                 for i in range(taps)]
        reply = requests.post(url + "/taps", json={"taps": batch}, timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200, reply.text
    finally:
        central.stop()
    return token


def only_file(directory: Path) -> Path:
    files = [p for p in directory.iterdir() if not p.name.startswith(".")]
    assert len(files) == 1, files
    return files[0]


# -- PostgreSQL ----------------------------------------------------------------------------
@pytest.mark.system
def test_postgresql_backup_restores_into_a_new_database(tmp_path: Path):
    need_pg_tools()
    source, target = PgDatabase(), PgDatabase()
    try:
        token = fill_through_http(CentralServer(tmp_path / "source", source.url))
        backups = tmp_path / "backups"
        made = run(BACKUP, "--dir", str(backups), url=source.url)
        assert made.returncode == 0, made.stderr
        dump = Path(made.stdout.strip())
        assert dump.parent == backups and NAME.match(dump.name), made.stdout
        assert stat.S_IMODE(dump.stat().st_mode) == 0o600
        assert [p.name for p in backups.iterdir() if p.name.endswith(".partial")] == []

        # Without --yes and without a terminal: refused, nothing restored.
        asked = run(RESTORE, str(dump), url=target.url)
        assert asked.returncode == 1 and "add --yes" in asked.stderr
        assert table_names(target.url) == set()
        restored = run(RESTORE, "--yes", str(dump), url=target.url)
        assert restored.returncode == 0, restored.stderr
        expected = table_rows(source.url)
        assert sum(len(rows) for rows in expected.values()) > 40
        assert len(expected["taps"]) == 40
        assert table_rows(target.url) == expected

        # Into a database that is not empty: refused, unchanged.
        again = run(RESTORE, "--yes", str(dump), url=target.url)
        assert again.returncode == 1
        assert "attendance-restore: error: the database of DATABASE_URL is not empty" in again.stderr
        assert table_rows(target.url) == expected

        # The restored database serves: the device's token still pushes.
        central = CentralServer(tmp_path / "target", target.url).start()
        try:
            health = requests.get(central.url + "/api/v1/health", timeout=10)
            assert health.status_code == 200
            tap = {"event_id": str(uuid.uuid4()), "seq": 41, "card_uid": "04000000000099",
                   "tapped_at": "2026-11-23T07:30:00.000+07:00", "boot_id": "b",
                   "mono_ns": 99, "clock_synced": True, "reader": "r", "verdict": "accepted"}
            push = requests.post(central.url + "/api/v1/taps", json={"taps": [tap]}, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})
            assert push.status_code == 200 and push.json()["results"][0]["status"] == "accepted"
        finally:
            central.stop()
    finally:
        source.drop()
        target.drop()


@pytest.mark.system
def test_password_goes_to_pg_dump_through_its_environment(tmp_path: Path):
    """A password in DATABASE_URL reaches pg_dump as PGPASSWORD, decoded, never in its
    arguments (visible to every user in ps) nor in the output. A wrapper on PATH records what
    pg_dump was given and runs the real one."""
    need_pg_tools()
    database = PgDatabase()
    role = f"backup_{uuid.uuid4().hex[:8]}"
    password = "p@ss:w/rd-" + uuid.uuid4().hex[:6]
    record = tmp_path / "record"
    wrapper = tmp_path / "bin" / "pg_dump"
    wrapper.parent.mkdir()
    wrapper.write_text(f"""#!/bin/sh
printf '%s\\n' "$@" > {record}.argv
printf '%s' "${{PGPASSWORD-<unset>}}" > {record}.password
exec {shutil.which("pg_dump")} "$@"
""")
    wrapper.chmod(0o755)
    admin = create_db_engine(database.url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            conn.execute(sa.text("CREATE TABLE t (x int)"))
            conn.execute(sa.text(f"GRANT SELECT ON t TO {role}"))
        from urllib.parse import quote

        url = f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1/{database.name}"
        made = run(BACKUP, "--dir", str(tmp_path / "good"), url=url,
                   PATH=f"{wrapper.parent}:{os.environ['PATH']}")
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS t"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
        database.drop()
    if made.returncode != 0 and "no pg_hba.conf entry" in made.stderr:
        pytest.skip("this PostgreSQL accepts no logins over TCP on 127.0.0.1")
    assert made.returncode == 0, made.stderr
    assert NAME.match(only_file(tmp_path / "good").name)
    assert Path(f"{record}.password").read_text() == password
    argv = Path(f"{record}.argv").read_text()
    assert f"--dbname=postgresql://{role}@127.0.0.1/{database.name}" in argv.splitlines()
    assert password not in argv and quote(password, safe="") not in argv
    assert password not in made.stdout + made.stderr


@pytest.mark.parametrize("url, message", [
    ("postgresql://nobody:hunter2@127.0.0.1:1/nothing", "pg_dump failed"),
    ("postgresql:///no_such_database_here?host=/var/run/postgresql", "pg_dump failed"),
    (None, "DATABASE_URL is not set"),
    ("mysql://u:hunter2@h/db", "DATABASE_URL: expected postgresql://… or sqlite:///…"),
    ("sqlite:////nonexistent/dir/server.db", "the SQLite database /nonexistent/dir/server.db does not exist"),
])
def test_failed_backup_exits_1_and_leaves_no_file(tmp_path: Path, url, message):
    if url and url.startswith("postgresql"):
        need_pg_tools()
    backups = tmp_path / "backups"
    result = run(BACKUP, "--dir", str(backups), url=url)
    assert result.returncode == 1
    assert f"attendance-backup: error: {message}" in result.stderr, result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert result.stdout == ""
    leftovers = [p.name for p in backups.iterdir()] if backups.exists() else []
    assert [n for n in leftovers if n != ".attendance-backup.lock"] == []


@pytest.mark.parametrize("args, message", [
    (["--keep-days", "0"], "--keep-days (ATTENDANCE_BACKUP_KEEP_DAYS): expected a whole number"),
    (["--keep-days", "two"], "--keep-days (ATTENDANCE_BACKUP_KEEP_DAYS): expected a whole "
                             "number of days, at least 1, got 'two'"),
    (["--frobnicate"], "unknown argument '--frobnicate'"),
])
def test_bad_arguments(tmp_path: Path, args, message):
    result = run(BACKUP, "--dir", str(tmp_path), *args, url=f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 1 and f"attendance-backup: error: {message}" in result.stderr


@pytest.mark.parametrize("script", [BACKUP, RESTORE])
def test_help(script: Path):
    result = run(script, "--help", url=None)
    assert result.returncode == 0 and result.stdout.startswith(f"Usage: {script.name}")


# -- retention -----------------------------------------------------------------------------
def sqlite_server(tmp_path: Path) -> str:
    central = CentralServer(tmp_path / "central")
    central.setup_site()
    return central.database_url


def test_retention_removes_only_old_backups(tmp_path: Path):
    url = sqlite_server(tmp_path)
    backups = tmp_path / "backups"
    backups.mkdir()
    now = datetime.now(timezone.utc)

    def stamp(days: float) -> str:
        return (now - timedelta(days=days)).strftime("%Y%m%dT%H%M%SZ")

    old = [f"attendance-{stamp(15)}.dump", f"attendance-{stamp(400)}.sqlite"]
    kept = [f"attendance-{stamp(13.9)}.dump", f"attendance-{stamp(1)}.sqlite",
            f"attendance-{stamp(400)}.dump.txt", "attendance-latest.dump", "notes.txt",
            f"other-{stamp(400)}.dump"]
    for name in old + kept:
        (backups / name).write_text("x")
    # Old by mtime but not by name: the name decides.
    recent_name = backups / f"attendance-{stamp(2)}.dump"
    recent_name.write_text("x")
    os.utime(recent_name, (0, 0))
    kept.append(recent_name.name)
    (backups / f".attendance-{stamp(1)}.dump.partial").write_text("left by a killed run")

    result = run(BACKUP, "--dir", str(backups), "--keep-days", "14", url=url)
    assert result.returncode == 0, result.stderr
    new = Path(result.stdout.strip()).name
    names = {p.name for p in backups.iterdir()}
    assert names == set(kept) | {new, ".attendance-backup.lock"}
    for name in old:
        assert f"removed {backups / name}" in result.stderr


def test_retention_from_the_environment(tmp_path: Path):
    url = sqlite_server(tmp_path)
    backups = tmp_path / "backups"
    backups.mkdir()
    two_days = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ")
    (backups / f"attendance-{two_days}.sqlite").write_text("x")
    result = run(BACKUP, url=url, ATTENDANCE_BACKUP_DIR=str(backups),
                 ATTENDANCE_BACKUP_KEEP_DAYS="1")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in backups.iterdir() if not p.name.startswith(".")] == [
        Path(result.stdout.strip()).name]


# -- SQLite --------------------------------------------------------------------------------
class Writer(threading.Thread):
    """Commits roster changes and the roster counter together, as fast as it can."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.committed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA busy_timeout=30000")
            while not self.stop.is_set():
                n = self.committed + 1
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO roster_changes (site_code, version, card_uid, change, "
                           "changed_at) VALUES ('20401234', ?, ?, 'upsert', "
                           "'2026-11-23 00:00:00.000000')", (n, f"04{n:012X}"))
                db.execute("UPDATE counters SET value = ? WHERE name = 'roster'", (n,))
                db.execute("COMMIT")
                self.committed = n
            db.close()
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_sqlite_backup_while_a_writer_commits(tmp_path: Path):
    url = sqlite_server(tmp_path)
    path = url.removeprefix("sqlite:///")
    # Some bulk, so that the copy takes a moment.
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO people (person_id, name, updated_at) VALUES (?, ?, ?)",
                       [(f"P{i:08d}", "x" * 200, "2026-11-23 00:00:00.000000")
                        for i in range(20000)])
    writer = Writer(path)
    writer.start()
    try:
        while writer.committed < 50 and writer.error is None:
            time.sleep(0.01)
        made = run(BACKUP, "--dir", str(tmp_path / "backups"), url=url)
        during = writer.committed
        time.sleep(0.2)
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None, writer.error
    assert made.returncode == 0, made.stderr
    assert writer.committed > during  # the writer was not stopped by the backup
    copy = Path(made.stdout.strip())
    assert NAME.match(copy.name) and copy.suffix == ".sqlite"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not Path(f"{copy}-wal").exists()
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT count(*) FROM roster_changes").fetchone()[0]
        counter = db.execute("SELECT value FROM counters WHERE name = 'roster'").fetchone()[0]
        people = db.execute("SELECT count(*) FROM people").fetchone()[0]
    # One consistent moment: every committed change with its counter, none half.
    assert rows == counter >= 50 and people == 20000
    assert rows <= writer.committed


def test_sqlite_restore_replaces_the_file_and_keeps_the_old_one(tmp_path: Path):
    central = CentralServer(tmp_path / "central")
    token = fill_through_http(central, taps=10)
    url = central.database_url
    path = Path(url.removeprefix("sqlite:///"))
    made = run(BACKUP, "--dir", str(tmp_path / "backups"), url=url)
    assert made.returncode == 0, made.stderr
    copy = Path(made.stdout.strip())
    expected = table_rows(url)

    # Later changes (a new site) are undone by the restore; the replaced file is kept.
    central.cli("site", "add", "99999999", "--name", "Sesudah", "--timezone", "Asia/Jakarta")
    after_backup = table_rows(url)
    assert after_backup != expected

    mismatch = run(RESTORE, "--yes", str(copy), url="postgresql:///x?host=/nonexistent")
    assert mismatch.returncode == 1 and "is a sqlite backup but DATABASE_URL is a postgresql" \
        in mismatch.stderr
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    bad = run(RESTORE, "--yes", str(broken), url=url)
    assert bad.returncode == 1 and "not a sound SQLite database; nothing changed" in bad.stderr
    assert table_rows(url) == after_backup

    restored = run(RESTORE, "--yes", str(copy), url=url)
    assert restored.returncode == 0, restored.stderr
    assert table_rows(url) == expected
    kept = [p for p in path.parent.iterdir() if ".before-restore-" in p.name
            and not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and table_rows(f"sqlite:///{kept[0]}") == after_backup
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".partial")] == []

    central.start()
    try:
        health = requests.get(central.url + "/api/v1/health", timeout=10)
        assert health.status_code == 200
        roster = requests.get(central.url + "/api/v1/roster", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
        assert roster.status_code == 200
    finally:
        central.stop()
