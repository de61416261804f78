"""Reading a day (or a month) of the outbox for the operator's page and its exports.

Days are local days of the device (the site's time zone); taps are selected by
their UTC time between the local midnights.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import sqlite_utils

from edge import attendance
from edge.attendance import DayPlan
from edge.config import WebConfig, parse_hhmm
from edge.excuses import Excuse, excuse_by_person, excuses_between
from edge.outbox import immediate
from edge.people import Person, site_people

PLANS_KEY = "plans"


def local_midnight_utc(day: date) -> str:
    """The start of local ``day`` as an ISO UTC string (the form of ``tapped_at_utc``)."""
    local = datetime.combine(day, time()).astimezone()
    return local.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def to_local(utc_text: str) -> datetime:
    return datetime.fromisoformat(utc_text).astimezone()


# -- day plans -----------------------------------------------------------------------------
def load_plans(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [PLANS_KEY]).fetchone()
    if not row:
        return []
    try:
        return attendance.parse_plans(json.loads(row[0]))
    except ValueError:
        return []


def store_plans(db: sqlite_utils.Database, raw: Any, today: date) -> int:
    """Merge the ``plans`` of a roster reply into the stored ones; returns how many came."""
    new = attendance.parse_plans(raw)
    merged = attendance.merge_plans(load_plans(db), new, today)
    with immediate(db) as conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     [PLANS_KEY, json.dumps(merged)])
    return len(new)


def day_plan(db: sqlite_utils.Database, day: date, web: WebConfig) -> DayPlan:
    hours, minutes = parse_hhmm(web.start_time)
    return attendance.plan_for(day, load_plans(db), time(hours, minutes), web.grace_minutes)


# -- one day -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonDay:
    person: Person
    status: str
    first_tap: datetime | None = None
    last_tap: datetime | None = None
    excuse: Excuse | None = None


def accepted_taps(db: sqlite_utils.Database, first: date,
                  last: date) -> dict[tuple[str, date], tuple[datetime, datetime]]:
    """First and last accepted tap of each person on each local day from ``first`` to ``last``."""
    found: dict[tuple[str, date], tuple[datetime, datetime]] = {}
    rows = db.conn.execute(
        "SELECT person_id, tapped_at_utc FROM taps WHERE verdict = 'accepted' "
        "AND person_id IS NOT NULL AND tapped_at_utc >= ? AND tapped_at_utc < ?",
        [local_midnight_utc(first), local_midnight_utc(last + timedelta(days=1))])
    for person_id, at_utc in rows:
        local = to_local(at_utc)
        key = (person_id, local.date())
        earliest, latest = found.get(key, (local, local))
        found[key] = (min(earliest, local), max(latest, local))
    return found


def day_sheet(db: sqlite_utils.Database, day: date, plan: DayPlan, today: date,
              people: list[Person] | None = None) -> list[PersonDay]:
    """Every person of the site with their status on ``day``."""
    people = site_people(db) if people is None else people
    taps = accepted_taps(db, day, day)
    excused = excuse_by_person(excuses_between(db, day, day), day)
    sheet = []
    for person in people:
        first, last = taps.get((person.person_id, day), (None, None))
        excuse = excused.get(person.person_id)
        status = attendance.person_status(plan, first, excuse.kind if excuse else None,
                                          day_over=day < today)
        sheet.append(PersonDay(person, status, first, last, excuse))
    return sheet


def recent_taps(db: sqlite_utils.Database, day: date, *, limit: int = 50) -> list[dict[str, Any]]:
    """The latest taps of ``day``, newest first, with the holder's name where known."""
    rows = db.conn.execute(
        "SELECT t.seq, t.tapped_at_utc, t.card_uid, t.verdict, t.reader, t.person_id, "
        "coalesce(p.name, r.name, ''), coalesce(p.group_name, r.group_name, '') "
        "FROM taps t LEFT JOIN roster r ON r.card_uid = t.card_uid "
        "LEFT JOIN people p ON p.person_id = t.person_id "
        "WHERE t.tapped_at_utc >= ? AND t.tapped_at_utc < ? ORDER BY t.seq DESC LIMIT ?",
        [local_midnight_utc(day), local_midnight_utc(day + timedelta(days=1)), limit])
    taps = []
    for seq, at_utc, uid, verdict, reader, person_id, name, group in rows:
        taps.append({"seq": seq, "time": to_local(at_utc).strftime("%H:%M:%S"),
                     "card_uid": uid, "verdict": verdict, "reader": reader,
                     "person_id": person_id, "name": name if person_id else "",
                     "group": group if person_id else ""})
    return taps


@dataclass(frozen=True)
class UnknownCard:
    card_uid: str
    taps: int
    first_seen: datetime
    last_seen: datetime
    reader: str
    holder: str | None
    """Who holds the card now, if it was bound since (by this page or the server)."""


def unknown_cards(db: sqlite_utils.Database, since: date) -> list[UnknownCard]:
    """Cards tapped with the verdict "unknown" since local day ``since``, last seen first."""
    rows = db.conn.execute(
        "SELECT t.card_uid, count(*), min(t.tapped_at_utc), max(t.tapped_at_utc), "
        "max(t.reader), r.person_id, coalesce(p.name, r.name) "
        "FROM taps t LEFT JOIN roster r ON r.card_uid = t.card_uid "
        "LEFT JOIN people p ON p.person_id = r.person_id "
        "WHERE t.verdict = 'unknown' AND t.tapped_at_utc >= ? "
        "GROUP BY t.card_uid ORDER BY max(t.tapped_at_utc) DESC LIMIT 200",
        [local_midnight_utc(since)])
    return [UnknownCard(uid, n, to_local(first), to_local(last), reader,
                        (name or person) if person else None)
            for uid, n, first, last, reader, person, name in rows]


# -- a month -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonMonth:
    person: Person
    counts: dict[str, int]


def month_days(year: int, month: int, today: date) -> list[date]:
    last = calendar.monthrange(year, month)[1]
    return [d for d in (date(year, month, n) for n in range(1, last + 1)) if d <= today]


def month_sheet(db: sqlite_utils.Database, year: int, month: int, web: WebConfig,
                today: date) -> tuple[list[date], list[PersonMonth]]:
    """Counts per status for each person over the month's working days up to today.

    A day counts when the server's plan says it is a working day, or, without
    a plan for it, when anyone's card was accepted that day (the site was
    open). Today counts only what has happened so far: nobody is absent today.
    """
    days = month_days(year, month, today)
    people = site_people(db)
    if not days:
        return [], [PersonMonth(p, attendance.month_counts([])) for p in people]
    taps = accepted_taps(db, days[0], days[-1])
    open_days = {day for _, day in taps}
    excuses = excuses_between(db, days[0], days[-1])
    counted: list[date] = []
    statuses: dict[str, list[str]] = {p.person_id: [] for p in people}
    for day in days:
        plan = day_plan(db, day, web)
        if not (plan.workday if plan.from_server else day in open_days):
            continue
        counted.append(day)
        excused = excuse_by_person(excuses, day)
        for person in people:
            first = taps.get((person.person_id, day), (None, None))[0]
            excuse = excused.get(person.person_id)
            status = attendance.person_status(plan, first, excuse.kind if excuse else None,
                                              day_over=day < today)
            statuses[person.person_id].append(status)
    return counted, [PersonMonth(p, attendance.month_counts(statuses[p.person_id]))
                     for p in people]
