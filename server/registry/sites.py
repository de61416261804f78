"""The site registry: ``sites.csv`` with OPD offices and schools.

Columns: ``code``, ``name``, ``kind`` (``school``/``sekolah`` or
``office``/``kantor``), ``timezone`` (WIB, WITA, WIT or an IANA name; the IANA
name is stored), and optionally ``schedule`` (a schedule name) and
``regency``. A school's code is its NPSN. Sites already in the database
(for example made with ``attendance-server site add``) are updated; sites
missing from the file stay.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.db import utcnow
from server.devices import SITE_CODE
from server.ids import npsn_problem
from server.registry.apply import lock_registry
from server.registry.diff import DiffEntry, RegistryDiff
from server.registry.people import Progress, no_progress
from server.registry.problems import Problems
from server.registry.readers import Column, Source, Table, read_table
from server.schema import sites

COLUMNS = (
    Column("code", ("kode", "kode_site", "kode_opd", "npsn"), required=True),
    Column("name", ("nama", "nama_site", "nama_sekolah", "nama_opd"), required=True),
    Column("kind", ("jenis", "jenis_site", "tipe"), required=True),
    Column("timezone", ("zona_waktu", "zona", "tz"), required=True),
    Column("schedule", ("jadwal", "nama_jadwal")),
    Column("regency", ("kabupaten_kota", "kabupaten", "kota", "kab_kota")),
)
#: Indonesia's zone abbreviations and the IANA zones stored for them.
ZONES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
KINDS = {"school": "school", "sekolah": "school", "office": "office", "kantor": "office"}
SCHEDULE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
FIELDS = ("name", "kind", "timezone", "schedule", "regency")


def zone_name(text: str) -> str:
    """The IANA zone for WIB/WITA/WIT (any case) or an IANA name; ValueError otherwise."""
    text = text.strip()
    if text.upper() in ZONES:
        return ZONES[text.upper()]
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not WIB, WITA, WIT or an IANA zone such as "
                         f"Asia/Jakarta") from None
    return text


def parse_sites(table: Table, problems: Problems) -> list[tuple[int, dict[str, Any]]]:
    """Check every row; (line, site fields) of the rows without problems."""
    out = []
    seen: dict[str, int] = {}
    for row in table.rows:
        before = len(problems)
        line = row.line
        code = row.text("code")
        kind_text = row.text("kind").lower()
        kind = KINDS.get(kind_text)
        if kind is None:
            problems.add(line, "kind", f"{kind_text!r} is not school (sekolah) or "
                                       f"office (kantor)")
        if not SITE_CODE.fullmatch(code):
            problems.add(line, "code", f"{code!r}: use 1-32 letters, digits, '.', '_' or '-'")
        elif kind == "school" and npsn_problem(code):
            problems.add(line, "code", f"a school's code is its NPSN: {npsn_problem(code)}")
        if code in seen:
            problems.add(line, "code", f"site {code} is on lines {seen[code]} and {line}")
        elif code:
            seen[code] = line
        name = row.text("name")
        if not name:
            problems.add(line, "name", "is empty")
        elif len(name) > 200:
            problems.add(line, "name", "is longer than 200 characters")
        try:
            timezone = zone_name(row.text("timezone"))
        except ValueError as exc:
            problems.add(line, "timezone", str(exc))
            timezone = ""
        fields: dict[str, Any] = {"name": name, "kind": kind, "timezone": timezone}
        if row.has("schedule"):
            schedule = row.text("schedule") or None
            if schedule and (not SCHEDULE_NAME.fullmatch(schedule) or len(schedule) > 64):
                problems.add(line, "schedule", f"{schedule!r} is not a schedule name (lower-case "
                                               f"letters, digits, '_' and '-')")
            fields["schedule"] = schedule
        if row.has("regency"):
            regency = row.text("regency")
            if len(regency) > 100:
                problems.add(line, "regency", "is longer than 100 characters")
            fields["regency"] = regency
        if len(problems) == before:
            out.append((line, {"code": code, **fields}))
    return out


def import_sites(conn: Connection, source: Source, *, name: str | None = None,
                 fmt: str | None = None, dry_run: bool = False, now: datetime | None = None,
                 progress: Progress[Any] = no_progress) -> RegistryDiff:
    """Add and update the sites listed in ``source``; all or nothing, in the caller's
    transaction. Returns the diff (applied unless ``dry_run``)."""
    if not dry_run:
        lock_registry(conn)
    table = read_table(source, COLUMNS, name=name, fmt=fmt)
    problems = Problems(table.file, table.unit)
    parsed = parse_sites(table, problems)
    problems.raise_if_any()
    diff = RegistryDiff("sites", table.file)
    existing = {r.code: r for r in conn.execute(sa.select(sites))}
    inserts, updates = [], []
    now = now or utcnow()
    for line, wanted in progress("comparing", parsed, len(parsed)):
        old = existing.get(wanted["code"])
        if old is None:
            inserts.append({"schedule": None, "regency": "", **wanted, "created_at": now,
                            "updated_at": now})
            diff.add("new", DiffEntry(wanted["code"], wanted["name"], line,
                                      note=f"{wanted['kind']}, {wanted['timezone']}"))
            continue
        changed = {k: (getattr(old, k), v) for k, v in wanted.items()
                   if k in FIELDS and getattr(old, k) != v}
        if not changed:
            diff.unchanged += 1
            continue
        updates.append((wanted["code"], {k: new for k, (_old, new) in changed.items()}))
        diff.add("changes", DiffEntry(wanted["code"], wanted["name"], line, changes=changed))
    if dry_run or diff.is_empty():
        return diff
    if inserts:
        conn.execute(sites.insert(), inserts)
    for code, values in updates:
        conn.execute(sites.update().where(sites.c.code == code)
                     .values(**values, updated_at=now))
    diff.applied = True
    return diff
