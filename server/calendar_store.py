"""Schedules and calendar overrides in the database, and which of them apply to a site.

Schedules
    The ``schedules`` table holds named schedules (``definition`` is
    :meth:`server.schedule.Schedule.to_dict`). A name not in the table falls
    back to :data:`server.schedule.DEFAULT_SCHEDULES`; a row with the name of a
    default replaces that default. A site uses ``sites.schedule`` when set,
    otherwise the default of its kind: ``office`` → ``asn``, ``school`` →
    ``sekolah``, no or unknown kind → ``asn``.

Calendar
    ``calendar_days`` holds local overrides on top of the national holidays
    and cuti bersama of the ``holidays`` package. ``scope`` is ``""``
    (everywhere), ``regency:<name>`` (every site whose ``sites.regency`` is
    that name) or ``site:<code>``. For one site the scopes are merged so that
    the narrower one wins: site beats regency beats everywhere.

Re-reconciliation
    Changing a schedule, assigning one to sites or changing a calendar day
    queues the affected site days in ``reconcile_queue`` (reason
    ``schedule`` or ``calendar``): from the changed date up to the site's
    local today, never a day that has not begun. A schedule has no date of its
    own, so its changes apply from ``since`` (default: today), and days before
    that keep the outcome they had.
"""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.db import insert_for, utcnow
from server.errors import NotFound
from server.schedule import (CALENDAR_KINDS, DEFAULT_SCHEDULES, Calendar, CalendarDay,
                             Schedule, calendar_range, format_time, parse_time, site_timezone)
from server.queue import queue_pairs
from server.schema import calendar_days, schedules, sites

log = logging.getLogger(__name__)

#: The schedule of a site without ``sites.schedule``, by ``sites.kind``.
KIND_SCHEDULES: Mapping[str, str] = {"office": "asn", "school": "sekolah"}
#: The schedule of a site whose kind is unknown.
FALLBACK_SCHEDULE = "asn"
EVERYWHERE = ""
SCHEDULE_NAME_MAX = 64


# -- schedules --------------------------------------------------------------------------------
def load_schedules(conn: Connection) -> dict[str, Schedule]:
    """Every schedule by name: the defaults, replaced or extended by the table's rows.

    A stored definition that no longer parses is logged and skipped, so one
    bad row cannot stop the reconciliation of every other site.
    """
    found = dict(DEFAULT_SCHEDULES)
    for row in conn.execute(sa.select(schedules.c.name, schedules.c.definition)):
        try:
            found[row.name] = Schedule.from_dict(row.name, row.definition)
        except ValueError as exc:
            log.error("schedule %r in the database is invalid and is ignored: %s", row.name, exc)
    return found


def get_schedule(conn: Connection, name: str) -> Schedule:
    """The schedule called ``name`` (table first, then the defaults); NotFound otherwise."""
    row = conn.execute(sa.select(schedules.c.definition)
                       .where(schedules.c.name == name)).first()
    if row is not None:
        return Schedule.from_dict(name, row.definition)
    if name in DEFAULT_SCHEDULES:
        return DEFAULT_SCHEDULES[name]
    raise NotFound(f"no schedule {name!r} (attendance-server schedule list)")


def stored_schedule_names(conn: Connection) -> set[str]:
    """Names of the schedules kept in the table (defaults that were never changed are not)."""
    return set(conn.execute(sa.select(schedules.c.name)).scalars())


def parse_schedule_file(path: str | Path, name: str) -> Schedule:
    """Read a schedule in its dictionary form from a ``.json`` or ``.toml`` file.

    ValueError names the file and the key of the first problem.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ValueError(f"{path}: give a .json or .toml file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError
        raise ValueError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    try:
        return Schedule.from_dict(name, data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _check_name(name: str) -> None:
    if not name or len(name) > SCHEDULE_NAME_MAX or name.strip() != name:
        raise ValueError(f"schedule name {name!r}: give 1-{SCHEDULE_NAME_MAX} characters "
                         f"without surrounding spaces")


def save_schedule(conn: Connection, schedule: Schedule, *, since: date | None = None,
                  now: datetime | None = None) -> int:
    """Store ``schedule`` (insert or replace) in the caller's transaction.

    The sites that use it have their days from ``since`` (default: their
    local today) up to today queued for reconciliation; returns how many site
    days were queued.
    """
    _check_name(schedule.name)
    now = now or utcnow()
    stmt = insert_for(conn, schedules)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[schedules.c.name],
        set_={"definition": stmt.excluded.definition, "updated_at": stmt.excluded.updated_at}),
        [{"name": schedule.name, "definition": schedule.to_dict(), "updated_at": now}])
    affected = [s for s in all_site_rows(conn)
                if schedule_name_for_site(s, known=None) == schedule.name]
    return _queue_from(conn, affected, since, now, "schedule")


def default_schedule_name(kind: str | None) -> str:
    """The schedule of a site of ``kind`` that names none of its own."""
    return KIND_SCHEDULES.get(kind or "", FALLBACK_SCHEDULE)


def schedule_name_for_site(site: Mapping[str, Any],
                           known: Mapping[str, Schedule] | None = None) -> str:
    """The name of the schedule ``site`` (a ``sites`` row) follows.

    With ``known`` given, a ``sites.schedule`` that names no known schedule
    falls back to the default of the site's kind (and is logged).
    """
    name = site.get("schedule")
    if name:
        if known is None or name in known:
            return str(name)
        log.warning("site %s names schedule %r, which does not exist; using %r",
                    site.get("code"), name, default_schedule_name(site.get("kind")))
    return default_schedule_name(site.get("kind"))


def resolve_site_schedule(site: Mapping[str, Any], known: Mapping[str, Schedule]) -> Schedule:
    """The :class:`Schedule` of ``site`` among ``known`` (see :func:`load_schedules`)."""
    return known[schedule_name_for_site(site, known)]


def site_schedule(conn: Connection, site: str | Mapping[str, Any]) -> Schedule:
    """The schedule of a site (its code or its ``sites`` row)."""
    return resolve_site_schedule(site_row(conn, site), load_schedules(conn))


def assign_schedule(conn: Connection, name: str, site_codes: Iterable[str], *,
                    since: date | None = None, now: datetime | None = None) -> int:
    """Give every site of ``site_codes`` (a group of sites) the schedule ``name``.

    The schedule must exist (table or defaults); every site must exist. The
    sites' days from ``since`` (default: their local today) are queued;
    returns how many site days were queued.
    """
    get_schedule(conn, name)
    codes = sorted(set(site_codes))
    if not codes:
        raise ValueError("name at least one site")
    rows = [r for r in all_site_rows(conn) if r["code"] in codes]
    missing = sorted(set(codes) - {r["code"] for r in rows})
    if missing:
        raise NotFound(f"no site {missing[0]!r} (attendance-server site list)")
    now = now or utcnow()
    conn.execute(sites.update().where(sites.c.code.in_(codes))
                 .values(schedule=name, updated_at=now))
    return _queue_from(conn, rows, since, now, "schedule")


# -- calendar overrides -----------------------------------------------------------------------
@dataclass(frozen=True)
class CalendarEntry:
    """One row of ``calendar_days``: an override of ``kind`` on ``day`` for ``scope``."""

    day: date
    scope: str
    kind: str
    name: str = ""
    end: time | None = None

    def to_calendar_day(self) -> CalendarDay:
        return CalendarDay(self.day, self.kind, self.name, self.end)

    @property
    def scope_label(self) -> str:
        """``everywhere``, ``regency:<name>`` or ``site:<code>``."""
        return self.scope or "everywhere"


def scope_for(*, regency: str | None = None, site: str | None = None) -> str:
    """The ``scope`` text of an override: everywhere, one regency or one site."""
    if regency and site:
        raise ValueError("give a regency or a site, not both")
    if site:
        return f"site:{site}"
    if regency:
        return f"regency:{regency}"
    return EVERYWHERE


def site_scopes(site: Mapping[str, Any]) -> tuple[str, ...]:
    """The scopes that apply to ``site``, widest first (so narrower ones win when merged)."""
    scopes = [EVERYWHERE]
    if site.get("regency"):
        scopes.append(f"regency:{site['regency']}")
    scopes.append(f"site:{site['code']}")
    return tuple(scopes)


def _entry(row: Any) -> CalendarEntry:
    return CalendarEntry(row.day, row.scope, row.kind, row.name or "",
                         parse_time(row.end_time) if row.end_time else None)


def list_calendar_days(conn: Connection, *, first: date | None = None, last: date | None = None,
                       scopes: Sequence[str] | None = None) -> list[CalendarEntry]:
    """Stored overrides between ``first`` and ``last`` (inclusive) of ``scopes`` (all if None),
    by day, then scope, then kind."""
    c = calendar_days.c
    query = sa.select(c.day, c.scope, c.kind, c.name, c.end_time)
    if first is not None:
        query = query.where(c.day >= first)
    if last is not None:
        query = query.where(c.day <= last)
    if scopes is not None:
        query = query.where(c.scope.in_(list(scopes)))
    return [_entry(r) for r in conn.execute(query.order_by(c.day, c.scope, c.kind))]


def overrides_by_scope(entries: Iterable[CalendarEntry]) -> dict[str, list[CalendarDay]]:
    """Group entries by scope, as :func:`calendar_from` takes them."""
    grouped: dict[str, list[CalendarDay]] = {}
    for entry in entries:
        grouped.setdefault(entry.scope, []).append(entry.to_calendar_day())
    return grouped


def site_overrides(by_scope: Mapping[str, Sequence[CalendarDay]],
                   site: Mapping[str, Any]) -> tuple[CalendarDay, ...]:
    """The overrides that apply to ``site``, widest scope first (narrower ones win)."""
    merged: list[CalendarDay] = []
    for scope in site_scopes(site):
        merged.extend(sorted(by_scope.get(scope, ()), key=lambda d: (d.date, d.kind)))
    return tuple(merged)


@lru_cache(maxsize=512)
def cached_calendar(overrides: tuple[CalendarDay, ...]) -> Calendar:
    """One shared :class:`Calendar` per set of overrides.

    Sites without overrides of their own share one calendar, so the national
    holidays of a year are computed once per process rather than once per site.
    """
    return Calendar(overrides)


def calendar_from(by_scope: Mapping[str, Sequence[CalendarDay]],
                  site: Mapping[str, Any]) -> Calendar:
    """The calendar of ``site`` from overrides grouped by scope (pure)."""
    return cached_calendar(site_overrides(by_scope, site))


def calendar_for_site(conn: Connection, site: str | Mapping[str, Any]) -> Calendar:
    """The calendar of a site (its code or ``sites`` row): national holidays and cuti
    bersama, then the overrides of everywhere, its regency and itself, narrower first."""
    row = site_row(conn, site)
    entries = list_calendar_days(conn, scopes=site_scopes(row))
    return calendar_from(overrides_by_scope(entries), row)


def add_calendar_day(conn: Connection, day: date, kind: str, *, name: str = "",
                     end: time | None = None, scope: str = EVERYWHERE,
                     now: datetime | None = None) -> int:
    """Add or replace the override of ``kind`` on ``day`` for ``scope``.

    ``holiday`` and ``workday`` exclude each other: adding one removes the
    other for the same day and scope. Returns how many site days were queued
    for reconciliation (``day`` at every affected site, if it has begun there).
    """
    return add_calendar_days(conn, [CalendarDay(day, kind, name.strip(), end)], scope=scope,
                             now=now)


def add_ramadan(conn: Connection, first: date, last: date, *, name: str = "Ramadan",
                scope: str = EVERYWHERE, now: datetime | None = None) -> int:
    """Mark every day from ``first`` to ``last`` as Ramadan (schedules' Ramadan profile)."""
    if (last - first).days > 40:
        raise ValueError(f"Ramadan from {first} to {last} is {(last - first).days + 1} days; "
                         f"it lasts 29 or 30")
    return add_calendar_days(conn, calendar_range("ramadan", first, last, name), scope=scope,
                             now=now)


def add_calendar_days(conn: Connection, days: Sequence[CalendarDay], *, scope: str = EVERYWHERE,
                      now: datetime | None = None) -> int:
    """Store several overrides for ``scope`` at once (see :func:`add_calendar_day`)."""
    if not days:
        return 0
    affected = _scope_sites(conn, scope)
    now = now or utcnow()
    c = calendar_days.c
    for day in days:
        if day.kind not in CALENDAR_KINDS:
            raise ValueError(f"calendar kind {day.kind!r}: give one of {', '.join(CALENDAR_KINDS)}")
        if day.kind in ("holiday", "workday"):
            other = "workday" if day.kind == "holiday" else "holiday"
            conn.execute(calendar_days.delete().where(c.day == day.date, c.scope == scope,
                                                      c.kind == other))
    rows = [{"day": d.date, "scope": scope, "kind": d.kind, "name": d.name,
             "end_time": format_time(d.end) if d.end is not None else None, "updated_at": now}
            for d in days]
    stmt = insert_for(conn, calendar_days)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[c.day, c.scope, c.kind],
        set_={"name": stmt.excluded.name, "end_time": stmt.excluded.end_time,
              "updated_at": stmt.excluded.updated_at}), rows)
    return _queue_dates(conn, affected, [d.date for d in days], now, "calendar")


def remove_calendar_day(conn: Connection, day: date, kind: str, *, scope: str = EVERYWHERE,
                        now: datetime | None = None) -> int:
    """Remove the override of ``kind`` on ``day`` for ``scope``.

    Returns how many site days were queued; NotFound when there was no such override.
    """
    affected = _scope_sites(conn, scope, must_exist=False)
    c = calendar_days.c
    removed = conn.execute(calendar_days.delete().where(c.day == day, c.scope == scope,
                                                        c.kind == kind)).rowcount
    if not removed:
        raise NotFound(f"no {kind} override on {day} for {scope or 'everywhere'} "
                       f"(attendance-server calendar list)")
    return _queue_dates(conn, affected, [day], now or utcnow(), "calendar")


# -- helpers ----------------------------------------------------------------------------------
_SITE_COLUMNS = (sites.c.code, sites.c.kind, sites.c.schedule, sites.c.regency, sites.c.timezone)


def all_site_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every site's code, kind, schedule, regency and time zone, by code."""
    return [dict(r) for r in conn.execute(sa.select(*_SITE_COLUMNS)
                                          .order_by(sites.c.code)).mappings()]


def site_row(conn: Connection, site: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """The row of a site given by code (NotFound if none), or the row itself."""
    if not isinstance(site, str):
        return site
    row = conn.execute(sa.select(*_SITE_COLUMNS).where(sites.c.code == site)).mappings().first()
    if row is None:
        raise NotFound(f"no site {site!r} (attendance-server site list)")
    return dict(row)


def _scope_sites(conn: Connection, scope: str, *, must_exist: bool = True
                 ) -> list[dict[str, Any]]:
    """The sites a scope covers; an unknown site (or empty regency name) is an error."""
    every = all_site_rows(conn)
    if scope == EVERYWHERE:
        return every
    kind, _, value = scope.partition(":")
    if kind == "site" and value:
        chosen = [s for s in every if s["code"] == value]
        if not chosen and must_exist:
            raise NotFound(f"no site {value!r} (attendance-server site list)")
        return chosen
    if kind == "regency" and value.strip():
        return [s for s in every if s["regency"] == value]
    raise ValueError(f"calendar scope {scope!r}: use '' (everywhere), 'regency:<name>' or "
                     f"'site:<code>'")


def _local_today(site: Mapping[str, Any], now: datetime) -> date:
    return now.astimezone(site_timezone(site["timezone"])).date()


def _queue_from(conn: Connection, affected: Sequence[Mapping[str, Any]], since: date | None,
                now: datetime, reason: str) -> int:
    pairs = []
    for site in affected:
        today = _local_today(site, now)
        day = since if since is not None else today
        while day <= today:
            pairs.append((site["code"], day))
            day += timedelta(days=1)
    return queue_pairs(conn, pairs, reason, now=now)


def _queue_dates(conn: Connection, affected: Sequence[Mapping[str, Any]], days: Sequence[date],
                 now: datetime, reason: str) -> int:
    pairs = []
    for site in affected:
        today = _local_today(site, now)
        pairs.extend((site["code"], day) for day in days if day <= today)
    return queue_pairs(conn, pairs, reason, now=now)
