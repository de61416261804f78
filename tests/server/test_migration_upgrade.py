"""Upgrading a database of the first release with the real ``attendance-server migrate``.

A database at revision 0001 (the first released schema), filled with the rows a deployed
server of that release holds (sites, devices with tokens, claim codes, people, cards, roster
changes, clock anchors, taps, a quarantined tap, an excuse), is brought to head by the CLI in a
subprocess, on a SQLite file and on a scratch PostgreSQL database. Afterwards every row is still
there, and the server works on it over real HTTP: health 200, the old device token pushes taps,
the unused claim code still enrols, the revoked token stays revoked. Also: one revision at a
time, migrate twice, and two migrate processes at once on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from server import schema
from server.db import _alembic_config, create_db_engine, head_revision
from server.devices import normalise_claim_code, sha256_hex
from tests.server.conftest import BACKENDS, PgDatabase
from tests.sync_env import SERVER, CentralServer

FIRST = "0001"
T0 = datetime(2026, 11, 20, 0, 5, tzinfo=timezone.utc)
TOKEN = "tok-" + "a" * 60
REVOKED_TOKEN = "tok-" + "r" * 60
CLAIM = "ABCD-EFGH-JKLM"
DEVICE = "dev_0001_release"


def revisions() -> list[str]:
    """Every revision from the first to head, in order (whatever head is today)."""
    script = ScriptDirectory.from_config(_alembic_config())
    chain = [rev.revision for rev in script.walk_revisions("base", "heads")]
    chain.reverse()
    return chain


def migrate_cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("ATTENDANCE_SERVER_CONFIG", None)
    result = subprocess.run([*SERVER, "migrate", *args], capture_output=True, text=True,
                            env=env, timeout=180)
    if check:
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/server.db"
        return
    database = PgDatabase()
    try:
        yield database.url
    finally:
        database.drop()


def table(name: str, columns: list[str]) -> sa.TableClause:
    """``name`` with only ``columns``, typed as the server types them (UTC times, JSON)."""
    current = schema.metadata.tables[name]
    return sa.table(name, *[sa.column(c, current.c[c].type) for c in columns])


def release_rows() -> dict[str, list[dict[str, Any]]]:
    """What a server of the first release holds after a few days at one school and one office."""
    later = T0 + timedelta(days=2)
    taps = []
    for seq in (1, 2, 3):
        taps.append({
            "id": seq, "event_id": f"00000000-0000-4000-8000-00000000000{seq}",
            "device_id": DEVICE, "seq": seq, "card_uid": "04A1B2C3D4E5F6" if seq != 2 else "04FFEEDDCCBBAA",
            "tapped_at": f"2026-11-20T07:0{seq}:00.000+07:00",
            "tapped_at_utc": T0 + timedelta(minutes=seq - 5),
            "boot_id": "boot-1", "mono_ns": 5_000_000_000 + seq, "clock_synced": True,
            "reader": "gerbang", "verdict": "accepted" if seq != 2 else "blocked",
            "received_at": T0 + timedelta(minutes=seq), "corrected_at": T0 + timedelta(minutes=seq - 5),
            "clock_status": "verified", "clock_anchor_id": 1})
    return {
        "sites": [
            {"code": "20401234", "name": "SDN 001 Pekanbaru", "timezone": "Asia/Jakarta", "created_at": T0},
            {"code": "1.01.01", "name": "Dinas Pendidikan", "timezone": "Asia/Makassar", "created_at": T0},
        ],
        "devices": [
            {"device_id": DEVICE, "site_code": "20401234", "name": "gerbang utama",
             "hardware_id": "pi-serial-00000000a1b2c3d4", "token_hash": sha256_hex(TOKEN),
             "created_at": T0, "revoked_at": None, "last_seen_at": later, "boot_id": "boot-1",
             "backlog": 0, "oldest_unsent_at": None, "reader_ok": True,
             "readers": [{"name": "gerbang", "driver": "pcsc", "connected": True, "error": None}],
             "versions": {"software": "0.1.0"}, "clock_offset_ms": 120, "highest_seq": 3,
             "missing_seq": []},
            {"device_id": "dev_0001_revoked", "site_code": "1.01.01", "name": "lobi",
             "hardware_id": "pi-serial-00000000deadbeef", "token_hash": sha256_hex(REVOKED_TOKEN),
             "created_at": T0, "revoked_at": later, "last_seen_at": T0, "boot_id": "boot-9",
             "backlog": 4, "oldest_unsent_at": T0, "reader_ok": False, "readers": [],
             "versions": {"software": "0.1.0"}, "clock_offset_ms": None, "highest_seq": 0,
             "missing_seq": None},
        ],
        "people": [
            {"person_id": "0012345678", "kind": "student", "name": "Siti Aminah",
             "site_code": "20401234", "group_name": "5A", "updated_at": T0},
            {"person_id": "198001012005011001", "kind": "employee", "name": "Budi Santoso",
             "site_code": "1.01.01", "group_name": "", "updated_at": T0},
            {"person_id": "0012345679", "kind": None, "name": "", "site_code": None,
             "group_name": "", "updated_at": T0},
        ],
        "roster_changes": [
            {"site_code": "20401234", "version": 1, "card_uid": "04A1B2C3D4E5F6",
             "change": "upsert", "changed_at": T0},
            {"site_code": "20401234", "version": 2, "card_uid": "04FFEEDDCCBBAA",
             "change": "upsert", "changed_at": T0},
            {"site_code": "20401234", "version": 3, "card_uid": "04FFEEDDCCBBAA",
             "change": "remove", "changed_at": later},
        ],
        "cards": [
            {"card_uid": "04A1B2C3D4E5F6", "person_id": "0012345678", "status": "active",
             "site_code": "20401234", "changed_version": 1, "updated_at": T0},
            {"card_uid": "04FFEEDDCCBBAA", "person_id": "0012345679", "status": "lost",
             "site_code": "20401234", "changed_version": 3, "updated_at": later},
            {"card_uid": "0411223344556677", "person_id": "198001012005011001",
             "status": "active", "site_code": "1.01.01", "changed_version": 1, "updated_at": T0},
        ],
        "claim_codes": [
            {"code_hash": sha256_hex("USEDUSEDUSED"), "site_code": "20401234",
             "device_name": "", "created_at": T0, "expires_at": T0 + timedelta(hours=72),
             "used_at": T0 + timedelta(minutes=1), "device_id": DEVICE},
            # Made just before the upgrade, not used yet: it must still enrol afterwards.
            {"code_hash": sha256_hex(normalise_claim_code(CLAIM)), "site_code": "1.01.01",
             "device_name": "pintu samping", "created_at": datetime.now(timezone.utc),
             "expires_at": datetime.now(timezone.utc) + timedelta(hours=72), "used_at": None,
             "device_id": None},
        ],
        "clock_anchors": [
            {"id": 1, "device_id": DEVICE, "boot_id": "boot-1", "mono_ns": 4_000_000_000,
             "device_wall": T0 - timedelta(minutes=6), "device_synced": True,
             "server_time": T0 - timedelta(minutes=6), "source": "heartbeat"},
        ],
        "excuses": [
            {"excuse_id": "exc-1", "person_id": "0012345678", "kind": "sakit",
             "date_from": T0.date(), "date_to": T0.date() + timedelta(days=1), "note": "demam",
             "site_code": "20401234", "source_device_id": DEVICE, "source_operator": "operator1",
             "received_at": later},
        ],
        "tap_conflicts": [
            {"id": 1, "device_id": DEVICE, "event_id": "00000000-0000-4000-8000-000000000003",
             "seq": 3, "reason": "event_id stored with other content",
             "raw": {"seq": 3, "card_uid": "04000000000000"}, "raw_sha256": "c" * 64,
             "received_at": later},
        ],
        "taps": taps,
    }


def fill(engine: sa.Engine, data: dict[str, list[dict[str, Any]]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE counters SET value = 3 WHERE name = 'roster'"))
        for name, rows in data.items():  # in dependency order
            conn.execute(sa.insert(table(name, list(rows[0]))), rows)
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences on
            for name in ("taps", "clock_anchors", "tap_conflicts"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                     f"(SELECT max(id) FROM {name}))"))


def snapshot(engine: sa.Engine, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The rows of the first release's columns, as comparable values."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for name, rows in data.items():
            columns = list(rows[0])
            t = table(name, columns)
            result = conn.execute(sa.select(*t.c).order_by(*t.c[:1])).all()
            out[name] = sorted(json.dumps([_plain(v) for v in row], sort_keys=True)
                               for row in result)
        out["counter"] = conn.execute(sa.text(
            "SELECT value FROM counters WHERE name = 'roster'")).scalar_one()
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def build_first_release(url: str) -> dict[str, list[dict[str, Any]]]:
    out = migrate_cli(url, "--revision", FIRST).stdout
    assert f"-> {FIRST}" in out, out
    data = release_rows()
    engine = create_db_engine(url)
    try:
        fill(engine, data)
    finally:
        engine.dispose()
    return data


def tap(seq: int, card: str = "04A1B2C3D4E5F6") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "device_id": DEVICE, "seq": seq, "card_uid": card,
            "tapped_at": "2026-11-23T07:00:00.000+07:00", "boot_id": "boot-2",
            "mono_ns": 9_000_000_000 + seq, "clock_synced": True, "reader": "gerbang",
            "verdict": "accepted"}


def test_first_release_upgrades_to_head_with_its_data(database_url: str, tmp_path: Path):
    data = build_first_release(database_url)
    engine = create_db_engine(database_url)
    try:
        before = snapshot(engine, data)
        result = migrate_cli(database_url)
        assert f"schema {FIRST} -> {head_revision()}" in result.stdout, result.stdout
        assert snapshot(engine, data) == before
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")
                                ).scalar_one() == head_revision()
    finally:
        engine.dispose()

    central = CentralServer(tmp_path / "central", database_url).start()
    try:
        url = central.url + "/api/v1"
        health = requests.get(url + "/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text

        # The token the first release handed out still pushes; an old event is a duplicate.
        headers = {"Authorization": f"Bearer {TOKEN}"}
        old = dict(data["taps"][0])
        resent = {k: old[k] for k in ("event_id", "device_id", "seq", "card_uid", "tapped_at",
                                      "boot_id", "mono_ns", "clock_synced", "reader", "verdict")}
        clock = {"boot_id": "boot-2", "mono_ns": 9_500_000_000,
                 "wall_time": "2026-11-23T07:01:00.000+07:00", "clock_synced": True}
        push = requests.post(url + "/taps", headers=headers, timeout=30,
                             json={"clock": clock, "taps": [resent, tap(4), tap(5)]})
        assert push.status_code == 200, push.text
        assert [r["status"] for r in push.json()["results"]] == ["duplicate", "accepted",
                                                                 "accepted"]
        assert push.json()["highest_seq"] == 5 and push.json()["missing_seq"] == []

        roster = requests.get(url + "/roster", headers=headers, timeout=10)
        assert roster.status_code == 200, roster.text
        assert {c["card_uid"]: c["status"] for c in roster.json()["cards"]}.get(
            "04A1B2C3D4E5F6") == "active"

        revoked = requests.post(url + "/taps", timeout=10,
                                headers={"Authorization": f"Bearer {REVOKED_TOKEN}"},
                                json={"clock": clock, "taps": [tap(1)]})
        assert revoked.status_code == 401

        enrolled = requests.post(url + "/devices/enroll", timeout=10,
                                 json={"claim_code": CLAIM, "hardware_id": "pi-new"})
        assert enrolled.status_code == 200, enrolled.text
        assert enrolled.json()["site"]["code"] == "1.01.01"
    finally:
        central.stop()

    stored = central.stored_taps()
    assert len(stored) == 5
    assert {t["seq"] for t in stored if t["device_id"] == DEVICE} == {1, 2, 3, 4, 5}


def test_each_revision_upgrades_to_the_next_with_the_data(database_url: str):
    chain = revisions()
    assert chain[0] == FIRST and chain[-1] == head_revision()
    data = build_first_release(database_url)
    engine = create_db_engine(database_url)
    try:
        before = snapshot(engine, data)
        for previous, revision in zip(chain, chain[1:]):
            out = migrate_cli(database_url, "--revision", revision).stdout
            assert f"schema {previous} -> {revision}" in out, out
            assert snapshot(engine, data) == before, f"data changed by {revision}"
    finally:
        engine.dispose()


def test_migrate_twice_changes_nothing(database_url: str):
    build_first_release(database_url)
    migrate_cli(database_url)
    engine = create_db_engine(database_url)
    try:
        inspector_before = _schema_of(engine)
        again = migrate_cli(database_url)
        assert again.stdout.strip() == f"schema {head_revision()}: nothing to do"
        assert _schema_of(engine) == inspector_before
    finally:
        engine.dispose()


def _schema_of(engine: sa.Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    return {name: ([(c["name"], str(c["type"])) for c in inspector.get_columns(name)],
                   sorted(i["name"] for i in inspector.get_indexes(name)))
            for name in sorted(inspector.get_table_names())}


@pytest.mark.system
def test_two_migrate_processes_at_once_on_postgresql(tmp_path: Path):
    database = PgDatabase()
    try:
        build_first_release(database.url)
        env = {**os.environ, "DATABASE_URL": database.url}
        env.pop("ATTENDANCE_SERVER_CONFIG", None)
        procs = [subprocess.Popen([*SERVER, "migrate"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        lines = sorted(out.strip() for out, _ in outputs)
        # One did the work (under the advisory lock), the other found it done.
        assert lines == sorted([f"schema {FIRST} -> {head_revision()}",
                                f"schema {head_revision()}: nothing to do"]), outputs
        engine = create_db_engine(database.url)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")
                                    ).scalar_one() == 1
                assert conn.execute(sa.text("SELECT count(*) FROM taps")).scalar_one() == 3
        finally:
            engine.dispose()
    finally:
        database.drop()
