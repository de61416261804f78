"""Builders of registry and ``attendance_days`` rows for the report and integrator API
tests: plain inserts, independent of how the reconciler decides a day."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

from server.db import utcnow
from server.schema import attendance_days, people, person_sites, sites

NOVEMBER = date(2026, 11, 1)  # a Sunday: 21 weekdays, 9 weekend days


def month_days(first: date = NOVEMBER) -> list[date]:
    day, out = first, []
    while day.month == first.month:
        out.append(day)
        day += timedelta(days=1)
    return out


def set_site_kind(engine: Any, code: str, kind: str) -> None:
    with engine.begin() as conn:
        conn.execute(sites.update().where(sites.c.code == code).values(kind=kind))


def add_person(engine: Any, person_id: str, name: str, kind: str, site: str, group: str = "",
               *, nip: str | None = None, nisn: str | None = None,
               since: date = date(2026, 1, 1), until: date | None = None) -> str:
    """A person registered at ``site`` with an assignment from ``since`` to ``until``."""
    with engine.begin() as conn:
        conn.execute(people.insert().values(
            person_id=person_id, kind=kind, name=name, site_code=site, group_name=group,
            updated_at=utcnow(), nip=nip, nisn=nisn))
        conn.execute(person_sites.insert().values(
            person_id=person_id, site_code=site, group_name=group, valid_from=since,
            valid_to=until))
    return person_id


def day_row(person_id: str, day: date, site: str, status: str, late: str | None = None,
            early: str | None = None, *, group: str = "", version: int = 1,
            tz: str = "Asia/Jakarta", **extra: Any) -> dict[str, Any]:
    """An ``attendance_days`` row; present days get a check-in at 07:20 and a check-out
    at 16:05 local time unless given."""
    zone = ZoneInfo(tz)
    row: dict[str, Any] = {
        "person_id": person_id, "day": day, "site_code": site, "group_name": group,
        "status": status, "late_code": late, "early_code": early, "check_in": None,
        "check_out": None, "minutes_late": None, "minutes_early": None, "tap_count": 0,
        "flags": [], "excuse_id": None, "version": version, "updated_at": utcnow()}
    if status == "H":
        row["check_in"] = datetime.combine(day, time(7, 20), zone).astimezone(timezone.utc)
        row["check_out"] = datetime.combine(day, time(16, 5), zone).astimezone(timezone.utc)
        row["tap_count"] = 2
    row.update(extra)
    return row


def put_rows(engine: Any, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        with engine.begin() as conn:
            conn.execute(attendance_days.insert(), list(rows))


def weekday_plan(person_id: str, site: str, days: Iterable[date],
                 special: dict[int, tuple[str, str | None, str | None]] | None = None, *,
                 group: str = "", version: int = 1) -> list[dict[str, Any]]:
    """Rows for ``days``: weekends LIBUR, weekdays H unless ``special`` gives (status, late,
    early) for that day of the month."""
    special = special or {}
    out = []
    for day in days:
        if day.day in special:
            status, late, early = special[day.day]
        elif day.weekday() >= 5:
            status, late, early = "LIBUR", None, None
        else:
            status, late, early = "H", None, None
        out.append(day_row(person_id, day, site, status, late, early, group=group,
                           version=version))
    return out
