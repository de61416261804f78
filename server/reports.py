"""Reports over ``attendance_days``: monthly recaps, class recaps, a day's attendance,
the change feed and listings for integrators; CSV and XLSX writers.

Every count is made by the database (``GROUP BY`` with conditional counts per
person and site), so a month of a whole regency (160,000 people, 3.5 million
day rows) is one scan, not millions of rows shipped to Python. Only the
derived numbers (working days, percent present, allowance deduction) are
computed here, per person, with the formula of
:func:`server.attendance_rules.recap_days` (:func:`recap_from_counts`; a test
holds the two to the same numbers).

A person who moved to another site during the month has one recap row per
site, each with the days spent there (``first_day`` .. ``last_day``).

File formats (docs/REPORTS.md): CSV is UTF-8 with a byte order mark (so Excel
detects the encoding), comma separated, one header row of Indonesian column
names. XLSX has one sheet with a site column (a regency's 400 sites would not
fit Excel's sheet names nor be easy to filter as 400 sheets), a bold frozen
header row with filters, set column widths, and a second sheet ``Keterangan``
listing the parameters, the column names in English and the weights.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import IO, Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.attendance_rules import (RECAP_CODES, STATUSES, WORKING_STATUSES, Recap,
                                     RulesConfig)
from server.clock import format_utc
from server.schema import anomalies, attendance_days, people, sites

PERSON_KINDS = ("employee", "student")
FORMATS = ("json", "csv", "xlsx")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Characters that make Excel read a cell as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ReportError(ValueError):
    """A report asked for with bad parameters (the message says which)."""


# -- periods --------------------------------------------------------------------------------
def parse_month(text: str) -> date:
    """``"2026-11"`` -> ``date(2026, 11, 1)``; ReportError otherwise."""
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", text)
    try:
        if match is None:
            raise ValueError(text)
        return date(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise ReportError(f"month {text[:20]!r}: expected YYYY-MM, e.g. 2026-11") from None


def month_bounds(month: date) -> tuple[date, date]:
    """The first day of ``month`` and the first day of the next month."""
    if month.day != 1:
        raise ReportError(f"month {month}: give the first day of the month")
    following = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return month, following


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in PERSON_KINDS:
        raise ReportError(f"kind {kind!r}: expected employee or student")


# -- the recap arithmetic -----------------------------------------------------------------
def empty_counts(config: RulesConfig) -> dict[str, int]:
    """Zero counts of every status and code, in recap order (as ``recap_days`` keys them)."""
    codes = STATUSES[:1] + config.late_names + config.early_names + STATUSES[1:]
    counts = dict.fromkeys(RECAP_CODES, 0)
    counts.update(dict.fromkeys(codes, 0))
    return counts


def recap_from_counts(counts: Mapping[str, int], days: int,
                      config: RulesConfig = RulesConfig()) -> Recap:
    """A :class:`Recap` from counts made elsewhere (by SQL).

    Same formula as :func:`~server.attendance_rules.recap_days`: working days
    are H + A + S + I + DL + C; percent present H / working days x 100 (2
    decimals); the deduction is the sum of weight x count over every weighted
    code, capped at 100.
    """
    return _RecapArithmetic(config)(counts, days)


class _RecapArithmetic:
    """:func:`recap_from_counts` with the config's codes and weights looked up once
    (a regency's recap applies it 160,000 times)."""

    def __init__(self, config: RulesConfig) -> None:
        self.zero = empty_counts(config)
        self.weights = [(code, config.weight(code)) for code in config.weighted_codes
                        if config.weight(code)]

    def __call__(self, counts: Mapping[str, int], days: int) -> Recap:
        full = dict(self.zero)
        full.update(counts)
        working = sum(full[s] for s in WORKING_STATUSES)
        present = round(full["H"] / working * 100, 2) if working else 0.0
        deduction = math.fsum(weight * full[code] for code, weight in self.weights)
        return Recap(counts=full, days=days, working_days=working, percent_present=present,
                     deduction_percent=round(min(100.0, deduction), 2))


def _count_if(condition: Any) -> Any:
    return sa.func.count().filter(condition)


def _code_counts(config: RulesConfig) -> list[tuple[str, Any]]:
    """(code, aggregate) for every status and, on H days only, every late and early code
    (a pending day's provisional late code waits for the day to end, as in recap_days)."""
    ad = attendance_days.c
    out = [(status, _count_if(ad.status == status)) for status in STATUSES]
    out += [(code, _count_if(sa.and_(ad.status == "H", ad.late_code == code)))
            for code in config.late_names]
    out += [(code, _count_if(sa.and_(ad.status == "H", ad.early_code == code)))
            for code in config.early_names]
    return out


# -- monthly recap --------------------------------------------------------------------------
@dataclass(frozen=True)
class RecapRow:
    """One person's month at one site.

    ``deduction_percent`` is None for anyone but employees (the allowance, TPP,
    is an ASN matter); ``first_day``/``last_day`` are the first and last day
    with a row at this site (a transfer splits the month).
    """

    person_id: str
    name: str
    kind: str | None
    nip: str | None
    nisn: str | None
    site_code: str
    site_name: str
    group_name: str
    first_day: date
    last_day: date
    recap: Recap

    @property
    def counts(self) -> dict[str, int]:
        return self.recap.counts

    @property
    def working_days(self) -> int:
        return self.recap.working_days

    @property
    def percent_present(self) -> float:
        return self.recap.percent_present

    @property
    def deduction_percent(self) -> float | None:
        return self.recap.deduction_percent if self.kind == "employee" else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API (``GET /recap``)."""
        return {"person_id": self.person_id, "name": self.name, "kind": self.kind,
                "nip": self.nip, "nisn": self.nisn, "site": self.site_code,
                "site_name": self.site_name, "group": self.group_name,
                "first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat(),
                "counts": dict(self.counts), "days": self.recap.days,
                "working_days": self.working_days, "percent_present": self.percent_present,
                "deduction_percent": self.deduction_percent}

    def record(self) -> dict[str, Any]:
        """Flat values keyed like :func:`recap_columns`."""
        return {"person_id": self.person_id, "name": self.name, "kind": self.kind,
                "nip": self.nip, "nisn": self.nisn, "site_code": self.site_code,
                "site_name": self.site_name, "group": self.group_name,
                "first_day": self.first_day, "last_day": self.last_day, **self.counts,
                "days": self.recap.days, "working_days": self.working_days,
                "percent_present": self.percent_present,
                "deduction_percent": self.deduction_percent}


def monthly_recap(conn: Connection, month: date, *, site_code: str | None = None,
                  kind: str | None = None, config: RulesConfig = RulesConfig()
                  ) -> list[RecapRow]:
    """Per person and site: counts of the month's days, working days, percent present and,
    for employees, the allowance deduction; ordered by site, group, name, person id.

    ``month`` is the first day of the month; ``kind`` limits to employees or
    students. Days with a code the ``config`` does not name are counted under
    their status only.
    """
    _check_kind(kind)
    first, following = month_bounds(month)
    ad = attendance_days.c
    codes = _code_counts(config)
    where = [ad.day >= first, ad.day < following]
    if site_code is not None:
        where.append(ad.site_code == site_code)
    agg = (sa.select(ad.person_id, ad.site_code, sa.func.min(ad.day).label("first_day"),
                     sa.func.max(ad.day).label("last_day"), sa.func.count().label("days"),
                     *(aggregate.label(f"n_{i}") for i, (_, aggregate) in enumerate(codes)))
           .where(*where).group_by(ad.person_id, ad.site_code).subquery("agg"))
    # The group (class, unit) is the one of the person's last day at the site. A scalar
    # subquery is one primary-key lookup per person; as a join, PostgreSQL preferred
    # hashing the whole table.
    last = attendance_days.alias("last_day_row")
    group = (sa.select(last.c.group_name)
             .where(last.c.person_id == agg.c.person_id, last.c.day == agg.c.last_day)
             .scalar_subquery().label("group_name"))
    query = (sa.select(agg.c.person_id, agg.c.site_code, agg.c.first_day, agg.c.last_day,
                       agg.c.days, group, people.c.name, people.c.kind,
                       people.c.nip, people.c.nisn, sites.c.name,
                       *(agg.c[f"n_{i}"] for i in range(len(codes))))
             .select_from(agg)
             .join(people, people.c.person_id == agg.c.person_id)
             .join(sites, sites.c.code == agg.c.site_code)
             .order_by(agg.c.site_code, sa.literal_column("group_name"), people.c.name,
                       agg.c.person_id))
    if kind is not None:
        query = query.where(people.c.kind == kind)
    arithmetic = _RecapArithmetic(config)
    names = [code for code, _ in codes]
    out = []
    # Rows by position, not by name: 160,000 rows x 30 columns make name lookups count.
    for (person_id, site, first_day, last_day, days, group, name, person_kind, nip, nisn,
         site_name, *numbers) in conn.execute(query):
        out.append(RecapRow(
            person_id=person_id, name=name, kind=person_kind, nip=nip, nisn=nisn,
            site_code=site, site_name=site_name, group_name=group,
            first_day=_as_date(first_day), last_day=_as_date(last_day),
            recap=arithmetic(dict(zip(names, numbers)), days)))
    return out


def _as_date(value: Any) -> date:
    # min()/max() of a DATE come back as text from SQLite (the type is lost in the aggregate).
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# -- class recap (students) ------------------------------------------------------------------
@dataclass(frozen=True)
class ClassRecapRow:
    """A class's month: students, student-days by status, late days, percent present."""

    site_code: str
    group_name: str
    students: int
    counts: dict[str, int]
    late: int
    working_days: int
    percent_present: float

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site_code, "group": self.group_name, "students": self.students,
                "counts": dict(self.counts), "late": self.late,
                "working_days": self.working_days, "percent_present": self.percent_present}

    def record(self) -> dict[str, Any]:
        return {"site_code": self.site_code, "group": self.group_name,
                "students": self.students, **self.counts, "TL": self.late,
                "working_days": self.working_days, "percent_present": self.percent_present}


CLASS_STATUSES = ("H", "S", "I", "A", "DL", "C")


def class_recap(conn: Connection, month: date, site_code: str) -> list[ClassRecapRow]:
    """Students of ``site_code`` per class (the class of each day's row) for ``month``.

    ``working_days`` counts student-days with status H, S, I, A, DL or C;
    ``late`` the present days with a late code (TL, any bracket).
    """
    first, following = month_bounds(month)
    ad = attendance_days.c
    aggregates = [_count_if(ad.status == s).label(s) for s in CLASS_STATUSES]
    query = (sa.select(ad.group_name, sa.func.count(sa.distinct(ad.person_id)).label("students"),
                       *aggregates,
                       _count_if(sa.and_(ad.status == "H", ad.late_code.is_not(None)))
                       .label("late"))
             .select_from(attendance_days.join(people, people.c.person_id == ad.person_id))
             .where(ad.site_code == site_code, ad.day >= first, ad.day < following,
                    people.c.kind == "student")
             .group_by(ad.group_name).order_by(ad.group_name))
    out = []
    for row in conn.execute(query).mappings():
        counts = {s: row[s] for s in CLASS_STATUSES}
        working = sum(counts.values())
        out.append(ClassRecapRow(
            site_code=site_code, group_name=row["group_name"], students=row["students"],
            counts=counts, late=row["late"], working_days=working,
            percent_present=round(counts["H"] / working * 100, 2) if working else 0.0))
    return out


# -- a day's attendance and the change feed ---------------------------------------------------
@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(at: datetime | None, zone: str) -> str | None:
    if at is None:
        return None
    return at.astimezone(_zone(zone)).isoformat(timespec="seconds")


def _attendance_query() -> Any:
    ad = attendance_days.c
    return (sa.select(attendance_days, people.c.name, people.c.kind, people.c.nip,
                      people.c.nisn, sites.c.timezone)
            .select_from(attendance_days
                         .join(people, people.c.person_id == ad.person_id)
                         .join(sites, sites.c.code == ad.site_code)))


def attendance_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One ``attendance_days`` row (joined with the person and site) as the API shows it:
    check-in/out in UTC and in the site's local time."""
    zone = row["timezone"]
    return {
        "person_id": row["person_id"], "name": row["name"], "kind": row["kind"],
        "nip": row["nip"], "nisn": row["nisn"], "site": row["site_code"],
        "group": row["group_name"], "date": _as_date(row["day"]).isoformat(),
        "status": row["status"], "late_code": row["late_code"],
        "early_code": row["early_code"],
        "check_in": format_utc(row["check_in"]) if row["check_in"] else None,
        "check_out": format_utc(row["check_out"]) if row["check_out"] else None,
        "check_in_local": _local(row["check_in"], zone),
        "check_out_local": _local(row["check_out"], zone),
        "timezone": zone, "minutes_late": row["minutes_late"],
        "minutes_early": row["minutes_early"], "tap_count": row["tap_count"],
        "flags": list(row["flags"] or []), "excuse_id": row["excuse_id"],
        "version": row["version"], "updated_at": format_utc(row["updated_at"]),
    }


def day_attendance(conn: Connection, day: date, site_code: str | None = None, *,
                   after: tuple[str, str] | None = None, limit: int | None = None
                   ) -> list[dict[str, Any]]:
    """The attendance rows of local ``day`` (at ``site_code``, or every site), ordered by
    site and person; ``after`` = (site, person_id) of the previous page's last row."""
    ad = attendance_days.c
    query = _attendance_query().where(ad.day == day)
    if site_code is not None:
        query = query.where(ad.site_code == site_code)
    if after is not None:
        query = query.where(sa.tuple_(ad.site_code, ad.person_id) > sa.tuple_(*after))
    query = query.order_by(ad.site_code, ad.person_id)
    if limit is not None:
        query = query.limit(limit)
    return [attendance_record(row) for row in conn.execute(query).mappings()]


def attendance_changes(conn: Connection, after_version: int, limit: int,
                       site_code: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Attendance rows with ``version > after_version``, oldest version first, and the
    cursor to pass next (the last version given, or ``after_version`` when none).

    Versions come from the ``attendance`` counter, whose row stays locked until
    the writer commits, so a row with a lower version never appears after a
    higher one was read: following the cursor misses nothing. A row that changes
    again gets a new version and is delivered again (at-least-once).
    """
    ad = attendance_days.c
    query = _attendance_query().where(ad.version > after_version)
    if site_code is not None:
        query = query.where(ad.site_code == site_code)
    rows = [attendance_record(r) for r in conn.execute(
        query.order_by(ad.version, ad.person_id, ad.day).limit(limit)).mappings()]
    return rows, (rows[-1]["version"] if rows else after_version)


# -- listings ----------------------------------------------------------------------------------
def list_anomalies(conn: Connection, *, date_from: date | None = None,
                   date_to: date | None = None, site_code: str | None = None,
                   kind: str | None = None, after_id: int = 0, limit: int = 1000
                   ) -> list[dict[str, Any]]:
    """Anomalies found by reconciliation, oldest first (by id), filtered."""
    an = anomalies.c
    query = sa.select(anomalies).where(an.id > after_id)
    if date_from is not None:
        query = query.where(an.day >= date_from)
    if date_to is not None:
        query = query.where(an.day <= date_to)
    if site_code is not None:
        query = query.where(an.site_code == site_code)
    if kind is not None:
        query = query.where(an.kind == kind)
    out = []
    for row in conn.execute(query.order_by(an.id).limit(limit)).mappings():
        out.append({"id": row["id"], "site": row["site_code"],
                    "date": _as_date(row["day"]).isoformat(), "kind": row["kind"],
                    "card_uid": row["card_uid"], "person_id": row["person_id"],
                    "event_id": row["event_id"], "detail": row["detail"] or {},
                    "first_seen_at": format_utc(row["first_seen_at"])})
    return out


def list_people(conn: Connection, site_code: str | None = None, *, after: str | None = None,
                limit: int = 1000) -> list[dict[str, Any]]:
    """People of the registry (at ``site_code``: its current people), by person id.

    NIK is left out on purpose: it is the most sensitive number a person has
    (personal data protection law) and integrators match people by NIP or NISN.
    """
    p = people.c
    query = sa.select(p.person_id, p.kind, p.name, p.nip, p.nisn, p.site_code, p.group_name,
                      p.position, p.employment, p.active)
    if site_code is not None:
        query = query.where(p.site_code == site_code)
    if after is not None:
        query = query.where(p.person_id > after)
    rows = conn.execute(query.order_by(p.person_id).limit(limit)).mappings()
    return [{"person_id": r["person_id"], "kind": r["kind"], "name": r["name"],
             "nip": r["nip"], "nisn": r["nisn"], "site": r["site_code"],
             "group": r["group_name"], "position": r["position"],
             "employment": r["employment"], "active": bool(r["active"])} for r in rows]


# -- cursors --------------------------------------------------------------------------------
def encode_cursor(*parts: str | int) -> str:
    """An opaque page cursor holding ``parts`` (URL-safe, no padding)."""
    raw = json.dumps(list(parts), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str, types: Sequence[type]) -> tuple[Any, ...]:
    """The parts of a cursor made by :func:`encode_cursor`; ReportError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        parts = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ReportError("cursor: not a cursor this server gave out") from None
    if (not isinstance(parts, list) or len(parts) != len(types)
            or not all(type(v) is t for v, t in zip(parts, types))):
        raise ReportError("cursor: not a cursor this server gave out")
    return tuple(parts)


# -- writers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column of a report file: record key, Indonesian header, English meaning, width."""

    key: str
    header: str
    english: str
    width: int = 8
    text: bool = False  # free text from the registries: guarded against formula injection


def recap_columns(config: RulesConfig = RulesConfig()) -> list[Column]:
    """The monthly recap's columns (codes follow ``config``'s late and early names)."""
    codes = [Column(c, c, f"days {c}", 6) for c in
             ("H", *config.late_names, *config.early_names, "S", "I", "A", "DL", "C")]
    return [
        Column("person_id", "ID", "person id (NIP, NISN or local id)", 20, True),
        Column("name", "Nama", "name", 32, True),
        Column("kind", "Jenis", "kind (employee or student)", 10),
        Column("nip", "NIP", "NIP (employees)", 20, True),
        Column("nisn", "NISN", "NISN (students)", 12, True),
        Column("site_code", "Kode Unit", "site code (NPSN or OPD code)", 12, True),
        Column("site_name", "Nama Unit", "site name", 30, True),
        Column("group", "Rombel/Unit", "class or work unit", 16, True),
        Column("first_day", "Dari", "first day at this site in the month", 11),
        Column("last_day", "Sampai", "last day at this site in the month", 11),
        *codes,
        Column("LIBUR", "Libur", "non-working days", 6),
        Column("PENDING", "Belum Final", "days not final yet (PENDING)", 8),
        Column("working_days", "Hari Kerja", "working days (H+S+I+A+DL+C)", 8),
        Column("percent_present", "% Hadir", "percent present (H / working days)", 9),
        Column("deduction_percent", "% Potongan TPP",
               "allowance (TPP) deduction percent, employees only", 10),
    ]


CLASS_COLUMNS: list[Column] = [
    Column("site_code", "Kode Unit", "site code (NPSN)", 12, True),
    Column("group", "Rombel", "class", 16, True),
    Column("students", "Jumlah Siswa", "students with days in this class", 8),
    *(Column(s, s, f"student-days {s}", 6) for s in CLASS_STATUSES),
    Column("TL", "Terlambat", "present days with a late code", 9),
    Column("working_days", "Hari Sekolah", "student-days H+S+I+A+DL+C", 9),
    Column("percent_present", "% Hadir", "percent present (H / school days)", 9),
]

DAY_COLUMNS: list[Column] = [
    Column("person_id", "ID", "person id", 20, True),
    Column("name", "Nama", "name", 32, True),
    Column("kind", "Jenis", "kind (employee or student)", 10),
    Column("nip", "NIP", "NIP", 20, True),
    Column("nisn", "NISN", "NISN", 12, True),
    Column("site", "Kode Unit", "site code", 12, True),
    Column("group", "Rombel/Unit", "class or work unit", 16, True),
    Column("date", "Tanggal", "local date", 11),
    Column("status", "Status", "status (H, A, S, I, DL, C, LIBUR, PENDING)", 8),
    Column("late_code", "Terlambat", "late code (TL1-TL4)", 9),
    Column("early_code", "Pulang Cepat", "early-leave code (PSW1-PSW4)", 9),
    Column("check_in_time", "Jam Masuk", "check-in, local time", 9),
    Column("check_out_time", "Jam Pulang", "check-out, local time", 9),
    Column("minutes_late", "Menit Terlambat", "minutes late", 9),
    Column("minutes_early", "Menit Pulang Cepat", "minutes early", 9),
    Column("tap_count", "Jumlah Tap", "valid taps", 7),
    Column("flags", "Catatan", "flags", 20),
    Column("excuse_id", "ID Izin", "excuse id", 20, True),
    Column("check_in", "Masuk (UTC)", "check-in, UTC", 24),
    Column("check_out", "Pulang (UTC)", "check-out, UTC", 24),
]


def day_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An :func:`attendance_record` flattened for :data:`DAY_COLUMNS`."""
    def clock(local: str | None) -> str | None:
        return local[11:19] if local else None

    return {**row, "check_in_time": clock(row["check_in_local"]),
            "check_out_time": clock(row["check_out_local"]), "flags": ", ".join(row["flags"])}


def _cell_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ya" if value else "tidak"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _guard(text: str) -> str:
    # Excel runs "=cmd|..." typed in a name; a leading quote makes it plain text.
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(out: IO[bytes], columns: Sequence[Column],
              records: Iterable[Mapping[str, Any]]) -> int:
    """Write a header row and one line per record as UTF-8 with BOM; the number of records."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    try:
        writer = csv.writer(text)
        writer.writerow([c.header for c in columns])
        count = 0
        for record in records:
            values = []
            for column in columns:
                value = _cell_text(record.get(column.key))
                if column.text and isinstance(value, str):
                    value = _guard(value)
                values.append(value)
            writer.writerow(values)
            count += 1
        text.flush()
    finally:
        text.detach()  # leave ``out`` open for the caller
    return count


def write_xlsx(out: IO[bytes] | str, columns: Sequence[Column],
               records: Iterable[Mapping[str, Any]], *, sheet: str,
               about: Sequence[tuple[str, Any]] = ()) -> int:
    """Write an XLSX workbook: sheet ``sheet`` with a bold, frozen, filterable header row
    and the records; sheet ``Keterangan`` with ``about`` (label, value) pairs and the
    column legend. Returns the number of records."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)  # streams rows: a regency's recap fits in memory
    data = workbook.create_sheet(sheet[:31])
    bold = Font(bold=True)
    for index, column in enumerate(columns, start=1):
        data.column_dimensions[get_column_letter(index)].width = max(column.width,
                                                                     len(column.header) + 2)
    data.freeze_panes = "A2"
    header = []
    for column in columns:
        cell = WriteOnlyCell(data, column.header)
        cell.font = bold
        header.append(cell)
    data.append(header)
    count = 0
    for record in records:
        values: list[Any] = []
        for column in columns:
            value = _cell_text(record.get(column.key))
            if isinstance(value, str) and value.startswith("="):
                # openpyxl writes a string starting with "=" as a formula; keep it text.
                cell = WriteOnlyCell(data, value)
                cell.data_type = "s"
                value = cell
            values.append(value)
        data.append(values)
        count += 1
    last = get_column_letter(len(columns))
    data.auto_filter.ref = f"A1:{last}{count + 1}"

    legend = workbook.create_sheet("Keterangan")
    legend.column_dimensions["A"].width = 24
    legend.column_dimensions["B"].width = 60
    for label, value in about:
        legend.append([_cell(legend, label, bold), _cell_text(value)])
    legend.append([])
    legend.append([_cell(legend, "Kolom", bold), _cell(legend, "Arti (English)", bold)])
    for column in columns:
        legend.append([column.header, column.english])
    workbook.save(out)
    return count


def _cell(sheet: Any, value: Any, font: Any) -> Any:
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value)
    cell.font = font
    return cell


def weights_text(config: RulesConfig) -> str:
    """``TL1 0.5, TL2 1, …`` for the legend sheet."""
    return ", ".join(f"{code} {config.weight(code):g}" for code in config.weighted_codes
                     if config.weight(code))


def render(fmt: str, columns: Sequence[Column], records: Iterable[Mapping[str, Any]], *,
           sheet: str, about: Sequence[tuple[str, Any]] = ()) -> bytes:
    """The file of ``fmt`` (``csv`` or ``xlsx``) as bytes."""
    buffer = io.BytesIO()
    if fmt == "csv":
        write_csv(buffer, columns, records)
    elif fmt == "xlsx":
        write_xlsx(buffer, columns, records, sheet=sheet, about=about)
    else:
        raise ReportError(f"format {fmt!r}: expected csv or xlsx")
    return buffer.getvalue()


@dataclass(frozen=True)
class RecapReport:
    """A monthly recap with its parameters, ready to be written in any format."""

    month: date
    rows: list[RecapRow]
    config: RulesConfig = field(default_factory=RulesConfig)
    site_code: str | None = None
    kind: str | None = None

    def about(self) -> list[tuple[str, Any]]:
        return [("Laporan", "Rekap kehadiran bulanan"), ("Bulan", self.month.strftime("%Y-%m")),
                ("Unit", self.site_code or "semua"), ("Jenis", self.kind or "semua"),
                ("Bobot potongan TPP (% per hari)", weights_text(self.config)),
                ("Dibuat (UTC)", format_utc(datetime.now(timezone.utc)))]

    def to_dict(self) -> dict[str, Any]:
        return {"month": self.month.strftime("%Y-%m"), "site": self.site_code,
                "kind": self.kind, "weights": dict(self.config.deduction_weights),
                "rows": [row.to_dict() for row in self.rows]}

    def render(self, fmt: str) -> bytes:
        return render(fmt, recap_columns(self.config), (r.record() for r in self.rows),
                      sheet="Rekap", about=self.about())
