"""Reconciliation: taps, excuses, schedules and the calendar become ``attendance_days``.

For one *site day* (a site and a local date in the site's time zone) every
person assigned to the site on that date (``person_sites``) gets one
``attendance_days`` row decided by :func:`server.attendance_rules.decide_day`,
and the day's taps at the site are searched for anomalies
(:func:`server.attendance_rules.find_anomalies`). The rules are described in
``docs/ATTENDANCE.md``; this module loads the facts and writes the results.

Set-based loading
    Site days are handled by date, in batches of sites. A batch reads, in a
    handful of queries, the taps of its sites in the day grouped per site and
    card (first and last tap, count, any unverified clock), the states of those
    cards, the assignments, the excuses, the rows already stored, the devices.
    Nearly every card of a day is *plain* (one site, an active card all along,
    a handful of taps, a verified clock, its holder belongs there): the rules
    decide it from that one row (:class:`server.attendance_rules.TapSummary`).
    The others, and the same cards' taps at other sites (impossible travel),
    are read tap by tap, each judged by the card's state when it happened
    (:func:`_plain_and_detailed`). A date that covers every site is read
    without site filters at all. The facts are read outside the write
    transaction, then the sites are decided and their changes written in one
    transaction: on SQLite tap ingest is not held up while a city is read. A
    *fence* (count and versions of the batch's stored rows), read with the
    facts and checked under lock before writing, notices another
    reconciliation that wrote meanwhile; the batch is then read again.

Idempotence and versions
    Only rows whose content changed are written (one bulk upsert: COPY on
    PostgreSQL, one executemany on SQLite; rows not stored yet are first tried
    with a plain COPY, or on SQLite inserted by chunks on a second thread
    while the next sites are decided, see :class:`_NewRows`). A run that
    changes any row takes the next value of the ``attendance`` counter and
    sets it as ``version`` on the rows it changed; unchanged rows keep
    theirs, so a second run over the same facts writes nothing. Rows of the
    batch's sites for people no longer expected there are deleted. Anomalies are upserted by a deterministic
    ``key`` (site, day, kind and what the anomaly is about), and the site
    day's anomalies that no longer hold are deleted.

Pending days
    A site day is *pending* while it has not ended in the site's zone, or
    while any device of the site that is not revoked and was enrolled before
    the day's end has not yet shown that it is caught up past the day's end:
    ``last_seen_at`` >= day end and (``backlog`` == 0 or ``oldest_unsent_at``
    >= day end). A device that never reported its backlog has not shown that.
    On a pending day people without a valid tap are ``PENDING`` instead of
    ``A`` (and a lone check-in waits for its check-out). A pending site day
    stays in ``reconcile_queue`` (reason ``pending``) and is reconciled again
    on the next pass; a finished one leaves the queue. A dead device keeps
    its site's days pending until it syncs or is revoked.

Queue races
    A queue row is removed only when its ``queued_at`` is still the one read
    with the facts: a tap stored meanwhile re-queues the day with a newer
    ``queued_at`` and the day is reconciled again.

One person, one row a day
    ``attendance_days`` is keyed by person and date. A person assigned to two
    sites on one date is counted at the assignment that started last (then
    the larger id); the other site reports the person's taps as ``other_site``
    only when the person is not assigned there at all.
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import json
import logging
import os
import threading
import weakref
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from server.attendance_rules import (NO_TAPS, DayOutcome, ExcuseFact, RulesConfig, TapFact,
                                     TapSummary, decide_day, find_anomalies, summarize)
from server.calendar_store import (calendar_from, list_calendar_days, load_schedules,
                                   overrides_by_scope, resolve_site_schedule)
from server.db import insert_for, utcnow
from server.errors import NotFound
from server.schedule import DayPlan, local_day_bounds, plan_day, site_timezone
from server.schema import (anomalies, attendance_days, card_history, cards, devices, excuses,
                           people, person_sites, reconcile_queue, sites, taps)

log = logging.getLogger(__name__)

#: Sites read, decided and written together by :func:`reconcile_days` (unless the
#: date covers every site, which is one batch).
DEFAULT_BATCH_SITES = 50
#: How far back :func:`catch_up` goes for a site never reconciled.
CATCH_UP_MAX_DAYS = 62
#: The columns of an attendance row that make its content (compared before writing).
CONTENT_COLUMNS = ("site_code", "group_name", "status", "late_code", "early_code", "check_in",
                   "check_out", "minutes_late", "minutes_early", "tap_count", "flags",
                   "excuse_id")
_ANOMALY_CONTENT = ("card_uid", "person_id", "event_id", "detail")
# An attendance row's content is the site, the group and the rules' outcome, in this order.
assert DayOutcome._fields == CONTENT_COLUMNS[2:]
#: The PostgreSQL advisory lock key held by the background reconciler ("ATRC").
RECONCILER_LOCK = 0x4154_5243


# -- results ----------------------------------------------------------------------------------
@dataclass
class DaySummary:
    """What one reconciliation of a site day found and changed."""

    site_code: str
    day: date
    pending: bool
    workday: bool
    reason: str = ""  # "", "weekend" or "holiday: <name>" (DayPlan.reason)
    expected: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)  # late and early codes
    anomalies: dict[str, int] = field(default_factory=dict)
    changed: int = 0  # attendance rows inserted or updated
    removed: int = 0  # attendance rows deleted (people no longer expected)
    anomalies_changed: int = 0  # anomaly rows inserted, updated or deleted
    version: int | None = None  # the attendance version given to changed rows
    waiting_for: tuple[str, ...] = ()  # devices not yet caught up (pending)

    def describe(self) -> str:
        """One line for the command line."""
        parts = [f"{self.site_code} {self.day.isoformat()}:"]
        if not self.workday:
            parts.append(f"no work ({self.reason});")
        parts.append(f"{self.expected} expected")
        if self.statuses:
            parts.append("[" + ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items()))
                         + "]")
        if self.codes:
            parts.append("codes [" + ", ".join(f"{c} {n}" for c, n in sorted(self.codes.items()))
                         + "]")
        total = sum(self.anomalies.values())
        parts.append(f"{total} anomal{'y' if total == 1 else 'ies'}" + (
            " [" + ", ".join(f"{k} {n}" for k, n in sorted(self.anomalies.items())) + "]"
            if total else ""))
        parts.append(f"{self.changed} changed, {self.removed} removed")
        if self.version is not None:
            parts.append(f"(version {self.version})")
        if self.pending:
            why = (f"waiting for device(s) {', '.join(self.waiting_for)}" if self.waiting_for
                   else "the day is not over")
            parts.append(f"PENDING: {why}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"site_code": self.site_code, "day": self.day.isoformat(),
                "pending": self.pending, "workday": self.workday, "reason": self.reason,
                "expected": self.expected, "statuses": dict(self.statuses),
                "codes": dict(self.codes), "anomalies": dict(self.anomalies),
                "changed": self.changed, "removed": self.removed,
                "anomalies_changed": self.anomalies_changed, "version": self.version,
                "waiting_for": list(self.waiting_for)}


# -- pending (pure) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceState:
    """What the pending rule needs to know about one device of a site."""

    device_id: str
    created_at: datetime
    last_seen_at: datetime | None
    backlog: int | None
    oldest_unsent_at: datetime | None
    revoked_at: datetime | None = None


def device_caught_up(device: DeviceState, day_end: datetime) -> bool:
    """Whether ``device`` has shown it holds no tap of the day ending at ``day_end``."""
    if device.last_seen_at is None or device.last_seen_at < day_end:
        return False
    if device.backlog == 0:
        return True
    return device.oldest_unsent_at is not None and device.oldest_unsent_at >= day_end


def devices_holding_day(devices_of_site: Iterable[DeviceState],
                        day_end: datetime) -> tuple[str, ...]:
    """The devices that may still hold taps of the day ending at ``day_end``.

    Revoked devices and devices enrolled at or after the day's end cannot.
    """
    return tuple(sorted(d.device_id for d in devices_of_site
                        if d.revoked_at is None and d.created_at < day_end
                        and not device_caught_up(d, day_end)))


def is_pending(day_end: datetime, now: datetime, devices_of_site: Iterable[DeviceState]) -> bool:
    """A site day is pending until it has ended and every device has caught up past it."""
    return now < day_end or bool(devices_holding_day(devices_of_site, day_end))


# -- card states ------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _midnight(day: date, zone: str) -> datetime:
    from server.cards import local_midnight

    return local_midnight(day, zone)


class CardStates:
    """Who held each card, and in which status, at any moment.

    The rules are the card register's (:mod:`server.cards`): history rows, the
    validity dates of the current binding (outside them an ``active`` card
    counts as ``blocked``), a roster-imported card without history in force
    since always, unknown before its first state. ``timelines`` come from
    :func:`server.cards.build_timeline`. ``single`` holds the common case in
    a compact form, ``uid -> (effective_at, person_id, status, valid_from,
    valid_to, zone)`` for a card whose whole history is one row (no
    timeline is built: a city holds hundreds of thousands of such cards).
    """

    def __init__(self, timelines: Mapping[str, Sequence[Any]] | None = None,
                 single: Mapping[str, tuple[datetime, str, str, date | None, date | None, str]]
                 | None = None) -> None:
        self._timelines = {uid: list(changes) for uid, changes in (timelines or {}).items()
                           if changes}
        self._moments = {uid: [c[0] for c in changes] for uid, changes in self._timelines.items()}
        self._single: dict[str, tuple[datetime, str, str, datetime | None, datetime | None]] = {}
        for uid, (since, person, status, valid_from, valid_to, zone) in (single or {}).items():
            self._single[uid] = _compact(since, person, status, valid_from, valid_to, zone)

    def at(self, card_uid: str, moment: datetime) -> tuple[str | None, str | None]:
        """``(person_id, status)`` of the card at ``moment``; ``(None, None)`` when unknown."""
        one = self._single.get(card_uid)
        if one is not None:
            since, person, status, starts, ends = one
            if moment < since:
                return None, None
            if status == "active" and ((starts is not None and moment < starts)
                                       or (ends is not None and moment >= ends)):
                return person, "blocked"
            return person, status
        changes = self._timelines.get(card_uid)
        if changes is None:
            return None, None
        i = bisect.bisect_right(self._moments[card_uid], moment)
        if i == 0:
            return None, None
        return changes[i - 1][1], changes[i - 1][2]

    def steady(self, card_uid: str, first: datetime, last: datetime) -> bool:
        """Whether the card's ``(person_id, status)`` is the same at every moment from
        ``first`` to ``last`` (both included), so that :meth:`at` ``first`` holds for
        all the taps between."""
        one = self._single.get(card_uid)
        if one is not None:
            since, _, status, starts, ends = one
            if first < since <= last:
                return False
            if status != "active" or last < since:
                return True
            # An active card turns "blocked" outside its validity dates.
            return not ((starts is not None and first < starts <= last)
                        or (ends is not None and first < ends <= last))
        moments = self._moments.get(card_uid)
        if moments is None:
            return True
        return bisect.bisect_right(moments, first) == bisect.bisect_right(moments, last)


def _compact(since: datetime, person: str, status: str, valid_from: date | None,
             valid_to: date | None, zone: str | None
             ) -> tuple[datetime, str, str, datetime | None, datetime | None]:
    """A single-state card as :class:`CardStates` keeps it: the validity dates as the
    moments (UTC) at which an active card starts and stops counting."""
    from server.cards import DEFAULT_ZONE

    zone = zone or DEFAULT_ZONE
    return (since, person, status,
            _midnight(valid_from, zone) if valid_from is not None else None,
            _midnight(valid_to + timedelta(days=1), zone) if valid_to is not None else None)


def _card_states(conn: Connection, card_uids: Sequence[str] | None) -> CardStates:
    """The states of ``card_uids`` (None: every card), read set-based with the rules of
    :func:`server.cards.card_timelines`.

    A city has hundreds of thousands of cards, nearly all with one history row
    (or none) and no validity dates: those are read without joins and kept in
    the compact form; the zone of the validity dates is read only for the
    cards that have them, timelines built only for cards with several rows.
    """
    from server.cards import DEFAULT_ZONE, SINCE_ALWAYS, build_timeline

    c, h = cards.c, card_history.c
    card_query = sa.select(c.card_uid, c.person_id, c.status, _raw(c.valid_from),
                           _raw(c.valid_to))
    history_query = sa.select(h.card_uid, _raw(h.effective_at), h.person_id, h.status, h.id)
    if card_uids is None:
        registered = {r[0]: r for r in _fetch(conn, card_query)}
        history_rows = _fetch(conn, history_query)
    else:
        registered = {r[0]: r for r in _select_in(conn, card_query, c.card_uid, card_uids)}
        history_rows = _select_in(conn, history_query, h.card_uid, card_uids)
    dated = [uid for uid, card in registered.items() if card[3] or card[4]]
    zones: dict[str, str] = {}
    if dated:
        zone_query = (sa.select(c.card_uid, sites.c.timezone)
                      .join_from(cards, people, c.person_id == people.c.person_id,
                                 isouter=True)
                      .outerjoin(sites, sites.c.code == sa.func.coalesce(people.c.site_code,
                                                                         c.site_code)))
        zones = {uid: zone for uid, zone in _select_in(conn, zone_query, c.card_uid, dated)
                 if zone}

    first_event: dict[str, tuple[Any, ...]] = {}
    several: dict[str, list[tuple[Any, ...]]] = {}
    for row in history_rows:
        uid = row[0]
        known = first_event.get(uid)
        if known is None:
            first_event[uid] = row
        else:
            several.setdefault(uid, [known]).append(row)
    states = CardStates()
    no_card = (None, None, None, None, None)

    def validity(card: tuple[Any, ...]) -> tuple[date | None, date | None]:
        return (_date(card[3]) if card[3] else None, _date(card[4]) if card[4] else None)

    def keep_single(uid: str, since: datetime, person: str, status: str,
                    card: tuple[Any, ...]) -> None:
        if card[3] or card[4]:
            states._single[uid] = _compact(since, person, status, *validity(card),
                                           zones.get(uid))
        else:
            states._single[uid] = (since, person, status, None, None)

    for uid, row in first_event.items():
        if uid not in several:
            keep_single(uid, _utc(row[1]), row[2], row[3], registered.get(uid, no_card))
    for uid, card in registered.items():
        if uid not in first_event:
            keep_single(uid, SINCE_ALWAYS, card[1], card[2], card)
    for uid, rows in several.items():
        valid_from, valid_to = validity(registered.get(uid, no_card))
        events = sorted(((_utc(r[1]), r[2], r[3], r[4]) for r in rows),
                        key=lambda e: (e[0], e[3]))
        changes = build_timeline([e[:3] for e in events], valid_from=valid_from,
                                 valid_to=valid_to, zone=zones.get(uid) or DEFAULT_ZONE)
        if changes:
            states._timelines[uid] = list(changes)
            states._moments[uid] = [change[0] for change in changes]
    return states


# -- loading ----------------------------------------------------------------------------------
def _tap_fact_maker() -> Callable[..., TapFact]:
    """A maker of :class:`TapFact` for the hundreds of thousands of taps of a city day.

    The frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__`` and checks the time zone: three times the cost of
    filling the instance's dict at once. Every time given here is aware (UTC
    from the database), so the check has nothing to find. Should ``TapFact``
    ever change shape, the plain constructor is used.
    """
    names = tuple(f.name for f in dataclasses.fields(TapFact))
    if names != ("at", "site_code", "event_id", "card_uid", "clock_status", "card_status",
                 "person_id") or not hasattr(TapFact(datetime.now(timezone.utc), "", "", "",
                                                     "", None), "__dict__"):
        return TapFact
    new = object.__new__

    def make(at: datetime, site_code: str, event_id: str, card_uid: str, clock_status: str,
             card_status: str | None, person_id: str | None) -> TapFact:
        fact = new(TapFact)
        fact.__dict__.update(at=at, site_code=site_code, event_id=event_id, card_uid=card_uid,
                             clock_status=clock_status, card_status=card_status,
                             person_id=person_id)
        return fact

    return make


_make_tap = _tap_fact_maker()


@dataclass
class _Site:
    code: str
    timezone: str
    kind: str | None
    schedule: str | None
    regency: str
    zone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.zone = site_timezone(self.timezone)

    def as_mapping(self) -> dict[str, Any]:
        return {"code": self.code, "kind": self.kind, "schedule": self.schedule,
                "regency": self.regency, "timezone": self.timezone}


def _load_sites(conn: Connection, codes: Sequence[str]) -> dict[str, _Site]:
    s = sites.c
    found = {r.code: _Site(r.code, r.timezone, r.kind, r.schedule, r.regency or "")
             for r in conn.execute(sa.select(s.code, s.timezone, s.kind, s.schedule, s.regency)
                                   .where(_in(conn, s.code, codes)).order_by(s.code))}
    missing = sorted(set(codes) - set(found))
    if missing:
        raise NotFound(f"no site {missing[0]!r} (attendance-server site list)")
    return found


def _in(conn: Connection, column: Any, values: Sequence[Any]) -> Any:
    """``column IN (values)``; one array parameter on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return column == sa.any_(sa.bindparam(None, list(values),
                                              type_=postgresql.ARRAY(sa.String())))
    return column.in_(list(values))


def _fetch(conn: Connection, query: Any) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as the driver's plain tuples.

    For the few queries that return a row per tap, card or person of a city
    (hundreds of thousands): wrapping each in a Row costs more than the
    driver's own fetch. Their columns need no result processing (see _raw).
    """
    result = conn.execute(query)
    try:
        return result.cursor.fetchall() if result.cursor is not None else []
    finally:
        result.close()


def _fetch_at_once(conn: Connection, query: Any) -> list[Sequence[Any]]:
    """The rows of ``query`` (columns of JSON types: text, numbers, NULL), for a thread
    that reads beside another (see _read_beside).

    SQLite: as one JSON array of arrays built by SQLite, the whole query one step
    without the GIL. Fetched row by row, each row takes the GIL back and waits for
    it while the other thread runs Python.
    """
    if conn.dialect.name != "sqlite":
        return _fetch(conn, query)
    inner = query.subquery()
    text = conn.execute(sa.select(sa.func.json_group_array(
        sa.func.json_array(*inner.c)))).scalar()
    return json.loads(text) if text else []


#: Values per ``IN (…)`` on SQLite (its limit is 32,766 parameters a statement).
_SQLITE_IN_CHUNK = 5000


def _select_in(conn: Connection, query: Any, column: Any, values: Sequence[Any]) -> list[Any]:
    """Rows of ``query`` whose ``column`` is one of ``values``: one statement with an array
    on PostgreSQL, statements of :data:`_SQLITE_IN_CHUNK` values on SQLite."""
    values = list(values)
    if not values:
        return []
    if conn.dialect.name == "postgresql":
        return _fetch(conn, query.where(_in(conn, column, values)))
    rows: list[Any] = []
    for i in range(0, len(values), _SQLITE_IN_CHUNK):
        rows += _fetch(conn, query.where(column.in_(values[i:i + _SQLITE_IN_CHUNK])))
    return rows


# Hundreds of thousands of rows are read per city day: the columns are fetched as the driver
# returns them (SQLite: text, psycopg: Python values) and converted by these small functions,
# several times faster than SQLAlchemy's per-value result processing.
def _raw(column: Any) -> Any:
    return sa.type_coerce(column, sa.String()).label(column.key)


def _utc(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value + "+00:00")  # SQLite keeps UTC without an offset


@lru_cache(maxsize=8192)
def _date_text(value: str) -> date:
    return date.fromisoformat(value)


def _date(value: Any) -> date:
    # Dates repeat a lot (everyone's assignment starts on the first school day).
    return _date_text(value) if isinstance(value, str) else value


def _flags(value: Any) -> tuple[str, ...]:
    if value is None or value == "[]":
        return ()
    return tuple(json.loads(value) if isinstance(value, str) else value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class _Assignment(NamedTuple):
    """A ``person_sites`` row in force on the day.

    ``valid_from`` is as the driver returns it (ISO text on SQLite, a date on
    PostgreSQL); either orders by date within one database.
    """

    id: int
    person_id: str
    site_code: str
    group_name: str
    valid_from: Any


#: The content of an attendance row, in CONTENT_COLUMNS order (flags as a tuple).
_Content = tuple


@dataclass
class _Facts:
    """Everything a batch (one date, some sites) is decided from."""

    fence: tuple[int, int]  # count and sum of versions of the batch's rows when read
    queued: dict[str, datetime]
    plain: dict[str, dict[str, TapSummary]]  # site -> person -> summary of plain cards' taps
    taps: list[TapFact]  # every tap in the window of the cards that are not plain
    homes: _Homes  # the assignments in force
    excuses: list[Any]
    existing: dict[str, tuple[_Content, int]]  # person -> (content, version)
    existing_anomalies: dict[str, Any]
    devices: dict[str, list[DeviceState]]


_Group = tuple[str, str, datetime, datetime, int, bool]  # site, card, first, last, count, unverified


def _plain_and_detailed(groups: Iterable[_Group],
                        bounds: Mapping[str, tuple[datetime, datetime]], states: CardStates,
                        elsewhere: Iterable[str], many_taps: int
                        ) -> tuple[list[tuple[_Group, str]], set[str]]:
    """The groups of *plain* cards with their owners, and the cards whose taps must be
    read one by one.

    A card is plain when, in the window read, it was tapped at one site only
    (``bounds`` holds the sites decided and their local day), all those taps
    fall in that site's day, its state did not change between the first and
    the last of them and was ``active`` with a known owner, none had an
    unverified clock, and there were no more than ``many_taps``. Such taps are
    all valid and can raise no anomaly but ``other_site``, which is checked
    once the owners' assignments are known (see :class:`_Homes`); their
    summary is all the rules need.
    """
    detailed = set(elsewhere)
    site_of: dict[str, str] = {}
    candidates: list[tuple[_Group, str]] = []
    single = states._single
    for group in groups:
        site_code, card_uid, first, last, count, unverified = group
        if site_of.setdefault(card_uid, site_code) != site_code:
            detailed.add(card_uid)  # tapped at two sites: impossible travel looks at it
            continue
        limits = bounds.get(site_code)
        if limits is None:
            continue  # a site not decided here: only its other taps could make it matter
        if first < limits[0] or last >= limits[1] or count > many_taps or unverified:
            detailed.add(card_uid)
            continue
        one = single.get(card_uid)
        if (one is not None and one[2] == "active" and one[0] <= first and one[3] is None
                and one[4] is None and one[1] is not None):
            # The common case, CardStates.steady() and .at() inlined: active since before
            # the first tap, without validity dates.
            candidates.append((group, one[1]))
            continue
        if not states.steady(card_uid, first, last):
            detailed.add(card_uid)
            continue
        person_id, status = states.at(card_uid, first)
        if person_id is None or status != "active":
            detailed.add(card_uid)
            continue
        candidates.append((group, person_id))
    return [c for c in candidates if c[0][1] not in detailed], detailed


def _tap_facts(rows: Iterable[tuple[Any, ...]], states: CardStates) -> list[TapFact]:
    """Taps ``(event_id, card_uid, corrected_at, clock_status, site_code)`` as facts, each
    with the card's state when it happened."""
    facts = []
    for event_id, card_uid, moment, clock_status, site_code in rows:
        moment = _utc(moment)
        person_id, status = states.at(card_uid, moment)
        facts.append(_make_tap(moment, site_code or "", event_id, card_uid, clock_status,
                               status, person_id))
    return facts


class _Homes:
    """Where people belong on the day, from the assignments in force.

    A person is counted at the assignment that started last (then the larger
    id): the *main* one. Seen from a site, the person belongs there when it is
    the main site or one of the other sites the person is assigned to.
    """

    def __init__(self, assignments: Iterable[_Assignment]) -> None:
        self.main: dict[str, _Assignment] = {}
        rows = list(assignments)
        for row in rows:
            old = self.main.get(row.person_id)
            if old is None or (row.valid_from, row.id) > (old.valid_from, old.id):
                self.main[row.person_id] = row
        # Only people with several assignments need more than their main one.
        self.assigned: dict[str, set[str]] = {}
        for row in rows:
            main = self.main[row.person_id]
            if main is not row:
                self.assigned.setdefault(row.person_id, {main.site_code}).add(row.site_code)

    def home(self, person_id: str | None, site_code: str) -> str:
        """The site ``person_id`` belongs to, seen from ``site_code`` (that site itself for
        people without any assignment, who are no one else's)."""
        main = self.main.get(person_id) if person_id is not None else None
        if main is None or main.site_code == site_code \
                or site_code in self.assigned.get(person_id, ()):  # type: ignore[arg-type]
            return site_code
        return main.site_code


def _fence(conn: Connection, day: date, codes: Sequence[str]) -> tuple[int, int]:
    """Count and sum of versions of the stored rows of the batch: any write changes them."""
    a = attendance_days.c
    # The site filter even for every site: (site_code, day) is the index; day alone is not.
    count, total = conn.execute(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(a.version), 0))
        .where(a.day == day, _in(conn, a.site_code, codes))).one()
    return int(count), int(total)


def _read_beside(conn: Connection, query: Any, meanwhile: Callable[[], Any]
                 ) -> tuple[list[tuple[Any, ...]], Any]:
    """The rows of ``query``, read on a second connection in a short-lived thread, and
    what ``meanwhile()`` returns, run on ``conn`` at the same time: two CPUs for the
    day's two big reads.

    The second connection reads no earlier a state than ``conn`` (whose
    transaction has read already): it can only see taps stored after the
    queue was read, whose ingest queued the day again (see _settle_queue), as
    on PostgreSQL, where each statement of a read sees the latest commits
    anyway. The thread ends before this returns: no thread outlives the call
    (forking worker processes needs that, see _fork_is_safe).
    """
    from server.db import reading

    result: list[Any] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            with reading(conn.engine) as other:
                result.append(_fetch_at_once(other, query))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=read, name="reconcile-read", daemon=True)
    thread.start()
    try:
        value = meanwhile()
    finally:
        thread.join()
    if failure:
        raise failure[0]
    return result[0], value


def _read_facts(conn: Connection, day: date, codes: list[str],
                windows: tuple[dict[str, tuple[datetime, datetime]], tuple[datetime, datetime]],
                every_site: bool, many_taps: int) -> _Facts:
    """Load the facts of ``day`` at ``codes``; ``every_site`` (``codes`` are all the sites)
    drops the site filters where a scan is cheaper."""
    # The queue and the fence first: whatever is stored after this is either seen
    # below, or re-queues the day (a newer queued_at, see _settle_queue), or moves
    # the fence (another reconciliation: the batch is read again).
    q = reconcile_queue.c
    queued = {r.site_code: r.queued_at for r in conn.execute(
        sa.select(q.site_code, q.queued_at).where(q.day == day, _in(conn, q.site_code, codes)))}
    fence = _fence(conn, day, codes)

    t, ps, a = taps.c, person_sites.c, attendance_days.c
    bounds, (lo, hi) = windows
    in_window = sa.and_(t.corrected_at >= lo, t.corrected_at < hi)
    # Taps per site and card: first, last, count, any unverified clock. A city day is
    # hundreds of thousands of taps, nearly all of them plain (see _plain_and_detailed): for
    # those the rules need no more (server.attendance_rules.TapSummary).
    group_query = sa.select(
        t.site_code, t.card_uid, _raw(sa.func.min(t.corrected_at)),
        _raw(sa.func.max(t.corrected_at)), sa.func.count(),
        sa.func.max(sa.case((t.clock_status == "unverified", 1), else_=0))
    ).where(in_window).group_by(t.site_code, t.card_uid)
    in_force = sa.and_(ps.valid_from <= day, sa.or_(ps.valid_to.is_(None), ps.valid_to >= day))
    query = sa.select(ps.id, ps.person_id, ps.site_code, ps.group_name, _raw(ps.valid_from)) \
        .where(in_force)
    prefetched: tuple[CardStates, list[Any]] | None = None
    if every_site:
        # The city's day: the grouped read runs in the database (SQLite: in C without
        # the GIL; PostgreSQL: in the server) while this thread reads every card state
        # and assignment, which do not depend on it. See _read_beside.
        group_rows, prefetched = _read_beside(
            conn, group_query, lambda: (_card_states(conn, None), _fetch(conn, query)))
        elsewhere_cards: set[str] = set()
    else:
        group_rows = _fetch(conn, group_query.where(_in(conn, t.site_code, codes)))
        # The same cards at other sites that day: only impossible travel looks at them.
        elsewhere_cards = set(r[0] for r in _select_in(
            conn, sa.select(t.card_uid).distinct().where(in_window, sa.or_(
                t.site_code.is_(None), sa.not_(_in(conn, t.site_code, codes)))),
            t.card_uid, sorted({r[1] for r in group_rows})))
    groups = [(site_code or "", card_uid, _utc(first), _utc(last), count, bool(unverified))
              for site_code, card_uid, first, last, count, unverified in group_rows]
    if prefetched is not None:
        states = prefetched[0]
    else:
        states = _card_states(conn, sorted({g[1] for g in groups})) if groups else CardStates()
    plain_groups, detailed = _plain_and_detailed(groups, bounds, states, elsewhere_cards,
                                                 many_taps)

    tap_query = sa.select(t.event_id, t.card_uid, _raw(t.corrected_at), t.clock_status,
                          t.site_code).where(in_window)
    # Every tap of the cards that are not plain, each judged by the card's state when it
    # happened.
    tap_facts = _tap_facts(_select_in(conn, tap_query, t.card_uid, sorted(detailed)), states)
    tapped_here = {person_id for _, person_id in plain_groups}
    tapped_here.update(f.person_id for f in tap_facts if f.site_code in bounds)
    tapped_here.discard(None)

    # Flags as text: most are "[]", and psycopg would parse every JSONB value.
    existing_query = sa.select(a.person_id, a.version, *(
        _raw(a[k]) if k in ("check_in", "check_out") else
        sa.cast(a[k], sa.Text()).label(k) if k == "flags" else a[k]
        for k in CONTENT_COLUMNS)).where(a.day == day, _in(conn, a.site_code, codes))
    existing_rows = _fetch(conn, existing_query)
    if prefetched is not None:
        assignment_rows = prefetched[1]
    else:
        # Everyone assigned here, with their other assignments (to pick their main site),
        # and everyone who tapped here (to know where they belong).
        expected_here = set(conn.execute(sa.select(ps.person_id).where(
            in_force, _in(conn, ps.site_code, codes))).scalars())
        assignment_rows = _select_in(conn, query, ps.person_id,
                                     sorted(expected_here | tapped_here))
    # Only the batch's own rows are compared: a row another site keeps for someone now
    # expected here is simply overwritten (one row per person and day).
    assignments = [_Assignment._make(row) for row in assignment_rows]

    # A plain card of someone who belongs to another site is reported (other_site): its
    # taps are read one by one as well.
    homes = _Homes(assignments)
    main, assigned = homes.main, homes.assigned  # homes.home(), inlined for 150,000 cards
    strangers = set()
    for group, person_id in plain_groups:
        row = main.get(person_id)
        if row is not None and row.site_code != group[0] \
                and group[0] not in assigned.get(person_id, ()):
            strangers.add(group[1])
    if strangers:
        tap_facts += _tap_facts(_select_in(conn, tap_query, t.card_uid, sorted(strangers)),
                                states)
    plain: dict[str, dict[str, TapSummary]] = defaultdict(dict)
    for (site_code, card_uid, first, last, count, unverified), person_id in plain_groups:
        if card_uid in strangers:
            continue
        summary = TapSummary(first, last, count, unverified)
        known = plain[site_code].get(person_id)
        plain[site_code][person_id] = summary if known is None else known.merge(summary)

    e = excuses.c
    excuse_query = sa.select(e.excuse_id, e.person_id, e.kind, e.date_from, e.date_to,
                             e.site_code).where(e.date_from <= day, e.date_to >= day,
                                                e.withdrawn_at.is_(None))
    if not every_site:
        excuse_query = excuse_query.where(sa.or_(e.site_code.is_(None),
                                                 _in(conn, e.site_code, codes)))
    excuse_rows = conn.execute(excuse_query).all()

    existing = {}
    for (person_id, version, site_code, group, status, late, early, check_in, check_out,
         m_late, m_early, count, flags, excuse_id) in existing_rows:
        existing[person_id] = ((site_code, group or "", status, late, early, _utc(check_in),
                                _utc(check_out), m_late, m_early, count, _flags(flags),
                                excuse_id), version)

    an = anomalies.c
    existing_anomalies = {r.key: r for r in conn.execute(
        sa.select(an.id, an.key, an.site_code, *(an[k] for k in _ANOMALY_CONTENT))
        .where(an.day == day, _in(conn, an.site_code, codes)))}

    d = devices.c
    device_rows: dict[str, list[DeviceState]] = defaultdict(list)
    for r in conn.execute(sa.select(d.device_id, d.site_code, d.created_at, d.last_seen_at,
                                    d.backlog, d.oldest_unsent_at, d.revoked_at)
                          .where(_in(conn, d.site_code, codes), d.revoked_at.is_(None))):
        device_rows[r.site_code].append(DeviceState(r.device_id, r.created_at, r.last_seen_at,
                                                    r.backlog, r.oldest_unsent_at, r.revoked_at))
    return _Facts(fence, queued, dict(plain), tap_facts, homes, excuse_rows, existing,
                  existing_anomalies, device_rows)


# -- deciding ---------------------------------------------------------------------------------
def anomaly_key(site_code: str, day: date, kind: str, card_uid: str | None,
                person_id: str | None, event_id: str | None) -> str:
    """The deterministic key of an anomaly: what it is about, not when it was seen.

    ``other_site`` is about a person, ``impossible_travel`` about one tap of a
    card, every other kind about a card; so a re-run (even after late taps)
    finds the same anomaly under the same key.
    """
    if kind == "other_site":
        subject = f"person:{person_id or ''}"
    elif kind == "impossible_travel":
        subject = f"card:{card_uid or ''}:event:{event_id or ''}"
    else:
        subject = f"card:{card_uid or ''}"
    return f"{site_code}|{day.isoformat()}|{kind}|{subject}"[:300]


def _json_ready(value: Any) -> Any:
    # The stored JSON comes back with lists and plain dicts; compare like with like.
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def suspect_taps(site_code: str, here: Sequence[TapFact], elsewhere: Sequence[TapFact],
                 home: Mapping[str, str], config: RulesConfig) -> list[TapFact]:
    """The taps :func:`find_anomalies` can report on: every tap of a suspect card.

    A card is suspect when one of its taps here is by an unknown or inactive
    card, has an unverified clock or is by someone who belongs to another site
    (``home``), when it was tapped here more than ``many_taps`` times, or when
    it was also tapped elsewhere that day. The other cards cannot give any of
    the anomaly kinds :func:`find_anomalies` documents, and a city day holds
    hundreds of thousands of their taps; a test holds the two to the same result.
    """
    counts: Counter[str] = Counter(tap.card_uid for tap in here)
    suspect = {card for card, n in counts.items() if n > config.many_taps}
    suspect.update(tap.card_uid for tap in elsewhere)
    for tap in here:
        if (tap.card_status != "active" or tap.clock_status == "unverified"
                or (tap.person_id is not None
                    and home.get(tap.person_id, site_code) != site_code)):
            suspect.add(tap.card_uid)
    if not suspect:
        return []
    return [tap for tap in (*here, *elsewhere) if tap.card_uid in suspect]


@dataclass
class _Decided:
    summary: DaySummary
    contents: dict[str, _Content]  # person -> content of the row
    anomalies: list[dict[str, Any]]


def _decide_site(site: _Site, day: date, plan: DayPlan, pending: bool,
                 waiting: tuple[str, ...], plain: Mapping[str, TapSummary],
                 here: list[TapFact], elsewhere: list[TapFact],
                 expected: list[_Assignment], homes: _Homes,
                 person_excuses: Mapping[str, list[tuple[ExcuseFact, str | None]]],
                 config: RulesConfig) -> _Decided:
    code = site.code
    by_person: dict[str, list[TapFact]] = defaultdict(list)
    for tap in here:
        if tap.person_id is not None:
            by_person[tap.person_id].append(tap)

    contents: dict[str, _Content] = {}
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    nothing: DayOutcome | None = None  # the outcome of a day without taps or excuse
    for assignment in expected:
        pid = assignment.person_id
        summary = plain.get(pid, NO_TAPS)
        person_taps = by_person.get(pid)
        if person_taps:
            summary = summary.merge(summarize(person_taps, code))
        excused = person_excuses.get(pid)
        applicable = [fact for fact, excuse_site in excused
                      if excuse_site is None or excuse_site == code] if excused else ()
        if not summary.count and not applicable:
            if nothing is None:
                nothing = decide_day(plan, NO_TAPS, (), pending=pending, config=config)
            outcome = nothing
        else:
            outcome = decide_day(plan, summary, applicable, pending=pending, config=config)
        contents[pid] = (code, assignment.group_name or "", *outcome)
        statuses[outcome.status] += 1
        if outcome.late_code is not None:
            codes[outcome.late_code] += 1
        if outcome.early_code is not None:
            codes[outcome.early_code] += 1

    # Only taps of cards that are not plain can raise anomalies (see _plain_and_detailed).
    home = {pid: homes.home(pid, code) for pid in by_person if pid in homes.main}
    found = find_anomalies(code, suspect_taps(code, here, elsewhere, home, config), home, config)
    anomaly_rows = [{
        "key": anomaly_key(code, day, a.kind, a.card_uid, a.person_id, a.event_id),
        "site_code": code, "day": day, "kind": a.kind, "card_uid": a.card_uid,
        "person_id": a.person_id, "event_id": a.event_id, "detail": _json_ready(dict(a.detail)),
    } for a in found]
    summary = DaySummary(code, day, pending, plan.workday, plan.reason,
                         expected=len(expected), statuses=dict(statuses), codes=dict(codes),
                         anomalies=dict(Counter(a.kind for a in found)), waiting_for=waiting)
    return _Decided(summary, contents, anomaly_rows)


def _day_window(day: date, site_rows: Mapping[str, _Site]
                ) -> tuple[dict[str, tuple[datetime, datetime]], tuple[datetime, datetime]]:
    bounds = {}
    for code, site in site_rows.items():
        start, end = local_day_bounds(day, site.zone)
        bounds[code] = (start.astimezone(timezone.utc), end.astimezone(timezone.utc))
    window = (min(b[0] for b in bounds.values()), max(b[1] for b in bounds.values()))
    return bounds, window


def _decide(conn: Connection, day: date, site_rows: Mapping[str, _Site], facts: _Facts, *,
            config: RulesConfig, now: datetime) -> Iterator[_Decided]:
    """Decide every site of ``site_rows`` from ``facts``, site by site as the result is
    iterated: :func:`_write` writes the first sites' rows while the next are decided.

    Reads the schedules and calendar now, with ``conn``; the iterator reads nothing.
    """
    bounds, _ = _day_window(day, site_rows)
    known = load_schedules(conn)
    by_scope = overrides_by_scope(list_calendar_days(conn, first=day, last=day))

    at_site: dict[str, list[TapFact]] = defaultdict(list)
    first_site: dict[str, str] = {}
    travelled: set[str] = set()  # cards tapped at more than one site
    for fact in facts.taps:
        if first_site.setdefault(fact.card_uid, fact.site_code) != fact.site_code:
            travelled.add(fact.card_uid)
        limits = bounds.get(fact.site_code)
        if limits is not None and limits[0] <= fact.at < limits[1]:
            at_site[fact.site_code].append(fact)
    by_card: dict[str, list[TapFact]] = defaultdict(list)
    if travelled:
        for fact in facts.taps:
            if fact.card_uid in travelled:
                by_card[fact.card_uid].append(fact)

    homes = facts.homes
    expected_at: dict[str, list[_Assignment]] = defaultdict(list)
    for row in homes.main.values():
        if row.site_code in site_rows:
            expected_at[row.site_code].append(row)
    person_excuses: dict[str, list[tuple[ExcuseFact, str | None]]] = defaultdict(list)
    for r in facts.excuses:
        person_excuses[r.person_id].append(
            (ExcuseFact(r.excuse_id, r.kind, _date(r.date_from), _date(r.date_to)), r.site_code))

    plans = {code: plan_day(resolve_site_schedule(site.as_mapping(), known),
                            calendar_from(by_scope, site.as_mapping()), day, site.zone)
             for code, site in site_rows.items()}

    def each_site() -> Iterator[_Decided]:
        for code, site in site_rows.items():
            start, end = bounds[code]
            waiting = devices_holding_day(facts.devices.get(code, ()), end)
            pending = now < end or bool(waiting)
            here = at_site.get(code, [])
            elsewhere = []
            if travelled:
                for card in {fact.card_uid for fact in here if fact.card_uid in travelled}:
                    elsewhere += [fact for fact in by_card[card]
                                  if fact.site_code != code and start <= fact.at < end]
            expected = sorted(expected_at.get(code, ()), key=lambda r: r.person_id)
            yield _decide_site(site, day, plans[code], pending, waiting,
                               facts.plain.get(code, {}), here, elsewhere, expected,
                               homes, person_excuses, config)

    return each_site()


# -- writing ----------------------------------------------------------------------------------
#: The columns an attendance upsert writes.
_WRITTEN = ("person_id", "day", "site_code", "group_name", "status", "late_code", "early_code",
            "check_in", "check_out", "minutes_late", "minutes_early", "tap_count", "flags",
            "excuse_id", "version", "updated_at")
_UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in _WRITTEN[2:])


def _upsert_attendance(conn: Connection, rows: list[tuple[Any, ...]], *,
                       new: bool = False) -> None:
    """Insert or replace ``rows`` (tuples in :data:`_WRITTEN` order, flags as a tuple) in
    one bulk operation; ``new``: the rows are believed not to be stored yet.

    A city day is 160,000 rows. Rows believed new are first written plainly in
    a savepoint (PostgreSQL: COPY straight into the table; SQLite: one
    ``executemany`` of ``INSERT``), which takes half the time of an upsert;
    should one be stored after all (a person's row of the day kept by a site
    outside the batch), the upsert is used instead. The upsert: PostgreSQL,
    COPY into a temporary table, then one ``INSERT … SELECT … ON CONFLICT``
    (binding one array per column cost psycopg ten times more); SQLite, one
    ``executemany`` of ``INSERT … ON CONFLICT`` with the stored text forms.
    """
    if not rows:
        return
    columns = ", ".join(_WRITTEN)
    postgresql = conn.dialect.name == "postgresql"
    values = f"({', '.join('?' for _ in _WRITTEN)})"
    stored = None if postgresql else _sqlite_rows(rows)
    if new:
        conflicts: tuple[type[Exception], ...] = (sa.exc.IntegrityError,)
        if postgresql:
            import psycopg

            conflicts += (psycopg.errors.UniqueViolation,)  # raised through the raw COPY
        try:
            with conn.begin_nested():
                if postgresql:
                    _copy_attendance(conn, "attendance_days", rows)
                else:
                    conn.exec_driver_sql(
                        f"INSERT INTO attendance_days ({columns}) VALUES {values}", stored)
            return
        except conflicts:
            log.info("a row of the day was stored meanwhile: upserting %d rows", len(rows))
    if not postgresql:
        conn.exec_driver_sql(f"INSERT INTO attendance_days ({columns}) VALUES {values} "
                             f"ON CONFLICT (person_id, day) DO UPDATE SET {_UPSERT_SET}",
                             stored)
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("CREATE TEMP TABLE attendance_incoming "
                    "(LIKE attendance_days INCLUDING DEFAULTS) ON COMMIT DROP")
    _copy_attendance(conn, "attendance_incoming", rows)
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(f"INSERT INTO attendance_days ({columns}) SELECT {columns} "
                    f"FROM attendance_incoming ON CONFLICT (person_id, day) DO UPDATE "
                    f"SET {_UPSERT_SET}")
        cur.execute("DROP TABLE attendance_incoming")


#: New rows per insert of :class:`_NewRows` on SQLite (a city day is 160,000).
NEW_ROWS_CHUNK = 10_000
_INSERT_JSON = (f"INSERT INTO attendance_days ({', '.join(_WRITTEN)}) SELECT "
                + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_WRITTEN)))
                + " FROM json_each(?)")


class _NewRows:
    """Rows not stored yet, written as they are decided (use as a context manager).

    SQLite: by chunks of :data:`NEW_ROWS_CHUNK`, each one ``INSERT … SELECT …
    FROM json_each(?)`` on a short-lived thread while this one decides and
    formats the next sites. SQLite runs that statement in one step, without
    the GIL, so the insert (a second or more of a city day) takes the other
    CPU; an ``executemany`` takes the GIL back for every row and could not
    share it. Each chunk goes in a savepoint: one that meets a row stored
    after all (a person's row of the day kept by a site outside the batch) is
    upserted at the end instead. The last chunk is written in this thread.
    PostgreSQL: every row at the end, in one COPY (:func:`_upsert_attendance`).

    Rows carry ``version()``, called first before any chunk is written. The
    thread never outlives the ``with`` block.
    """

    def __init__(self, conn: Connection, day: date, stamp: datetime,
                 version: Callable[[], int]) -> None:
        self.conn, self.day, self.stamp, self.version = conn, day, stamp, version
        self.chunked = conn.dialect.name == "sqlite"
        self.pending: list[tuple[str, _Content]] = []
        self.conflicting: list[tuple[Any, ...]] = []
        self.thread: threading.Thread | None = None
        self.failure: list[BaseException] = []

    def __enter__(self) -> _NewRows:
        return self

    def extend(self, rows: Iterable[tuple[str, _Content]]) -> None:
        self.pending.extend(rows)
        if self.chunked and len(self.pending) >= NEW_ROWS_CHUNK:
            rows = self._rows()
            text = json.dumps(_sqlite_rows(rows))  # while the previous chunk is inserted
            self._join()
            self.thread = threading.Thread(target=self._insert, args=(rows, text),
                                           name="reconcile-write", daemon=True)
            self.thread.start()

    def _rows(self) -> list[tuple[Any, ...]]:
        pending, self.pending = self.pending, []
        pending.sort(key=lambda row: row[0])  # fewer index pages touched
        version, day, stamp = self.version(), self.day, self.stamp
        return [(pid, day, *content, version, stamp) for pid, content in pending]

    def _insert(self, rows: list[tuple[Any, ...]], text: str) -> None:
        import sqlite3

        try:
            raw = self.conn.connection.dbapi_connection
            assert raw is not None
            cur = raw.cursor()
            cur.execute("SAVEPOINT attendance_new")
            try:
                cur.execute(_INSERT_JSON, (text,))
            except sqlite3.IntegrityError:
                cur.execute("ROLLBACK TO attendance_new")
                self.conflicting += rows
            cur.execute("RELEASE attendance_new")
        except BaseException as exc:  # re-raised in the caller's thread
            self.failure.append(exc)

    def _join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.failure:
            raise self.failure.pop()

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:  # the caller's error wins; the transaction is rolled back
            if self.thread is not None:
                self.thread.join()
            return
        self._join()
        if self.pending:
            _upsert_attendance(self.conn, self._rows(), new=True)
        if self.conflicting:
            log.info("a row of the day was stored meanwhile: upserting %d rows",
                     len(self.conflicting))
            self.conflicting.sort(key=lambda row: row[0])
            _upsert_attendance(self.conn, self.conflicting)


#: The PostgreSQL types of :data:`_WRITTEN`, for a binary COPY.
_COPY_TYPES = ("text", "date", "text", "text", "text", "text", "text", "timestamptz",
               "timestamptz", "int4", "int4", "int4", "jsonb", "text", "int8", "timestamptz")


@lru_cache(maxsize=64)
def _jsonb(flags: tuple[str, ...]) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(list(flags))


def _copy_attendance(conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    """COPY ``rows`` (:data:`_WRITTEN` order, flags as a tuple) into ``table`` (PostgreSQL).

    Binary COPY with declared types: half the time of the text format, on both
    sides of the connection.
    """
    flags_at = _WRITTEN.index("flags")
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        with cur.copy(f"COPY {table} ({', '.join(_WRITTEN)}) FROM STDIN (FORMAT BINARY)"
                      ) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row(row[:flags_at] + (_jsonb(row[flags_at]),) + row[flags_at + 1:])


@lru_cache(maxsize=64)
def _flags_json(flags: tuple[str, ...]) -> str:
    return json.dumps(list(flags))


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite text of a UTC datetime, ``YYYY-MM-DD HH:MM:SS.ffffff`` (see
    server.schema.UTCDateTime); ``isoformat`` is faster than ``strftime``."""
    if value is None:
        return None
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    text = value.isoformat(" ")[:-6]  # without "+00:00"
    return text if value.microsecond else text + ".000000"


def _sqlite_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` in :data:`_WRITTEN` order with SQLite's stored forms (the day, version and
    time of writing are the same in every row of a write)."""
    days: dict[date, str] = {}
    stamps: dict[datetime, str | None] = {}
    stored = []
    for (person_id, day, site_code, group_name, status, late_code, early_code, check_in,
         check_out, minutes_late, minutes_early, tap_count, flags, excuse_id, version,
         updated_at) in rows:
        day_text = days.get(day)
        if day_text is None:
            day_text = days[day] = day.isoformat()
        stamp = stamps.get(updated_at)
        if stamp is None:
            stamp = stamps[updated_at] = _sqlite_time(updated_at)
        stored.append((person_id, day_text, site_code, group_name, status, late_code,
                       early_code, _sqlite_time(check_in), _sqlite_time(check_out),
                       minutes_late, minutes_early, tap_count, _flags_json(flags), excuse_id,
                       version, stamp))
    return stored


class _FenceMoved(Exception):
    """Another reconciliation wrote the batch's rows between its read and its write."""


def _write(conn: Connection, day: date, codes: Sequence[str], decisions: Iterable[_Decided],
           facts: _Facts, *, check_fence: bool) -> list[_Decided]:
    """Write what ``decisions`` decided (consumed here, see :func:`_decide`); returns them.

    Rows not stored yet are handed to :class:`_NewRows` as the sites are decided;
    changed and removed rows are written at the end.
    """
    from server.roster import next_version
    from server.schema import counters

    if check_fence:
        # Writers of attendance queue on the counter row (SQLite: BEGIN IMMEDIATE already
        # did), so the fence cannot move between this check and the writes below.
        conn.execute(sa.select(counters.c.value).where(counters.c.name == "attendance")
                     .with_for_update()).scalar()
        if _fence(conn, day, codes) != facts.fence:
            raise _FenceMoved()
    stamp = utcnow()
    versions: list[int] = []

    def version() -> int:  # taken once, and only by a run that changes something
        if not versions:
            versions.append(next_version(conn, "attendance"))
        return versions[0]

    new_people = set()
    changed: list[tuple[str, _Content]] = []
    changed_at: Counter[str] = Counter()
    existing = facts.existing
    decided = []
    with _NewRows(conn, day, stamp, version) as added:
        for d in decisions:
            decided.append(d)
            fresh = []
            for pid, content in d.contents.items():
                new_people.add(pid)
                old = existing.get(pid)
                if old is None:
                    fresh.append((pid, content))
                elif old[0] != content:
                    changed.append((pid, content))
                else:
                    continue
                changed_at[content[0]] += 1
            added.extend(fresh)
    code_set = set(codes)
    gone = [(pid, old[0][0]) for pid, old in existing.items()
            if old[0][0] in code_set and pid not in new_people]
    removed_at = Counter(site for _, site in gone)

    if changed:
        changed.sort(key=lambda row: row[0])  # fewer index pages touched
        _upsert_attendance(conn, [(pid, day, *content, version(), stamp)
                                  for pid, content in changed])
    if gone:
        version()
        a = attendance_days.c
        conn.execute(attendance_days.delete().where(
            a.person_id == sa.bindparam("b_person"), a.day == sa.bindparam("b_day")),
            [{"b_person": pid, "b_day": day} for pid, _ in gone])

    # Anomalies: insert the new, update the changed, delete what no longer holds.
    wanted = {row["key"]: row for d in decided for row in d.anomalies}
    inserts, updates = [], []
    anomaly_changes: Counter[str] = Counter()
    for key, row in wanted.items():
        old = facts.existing_anomalies.get(key)
        if old is None:
            inserts.append({**row, "first_seen_at": stamp})
        elif any(row[k] != (_json(old.detail) if k == "detail" else getattr(old, k))
                 for k in _ANOMALY_CONTENT):
            updates.append({"b_id": old.id, **{f"b_{k}": row[k] for k in _ANOMALY_CONTENT}})
        else:
            continue
        anomaly_changes[row["site_code"]] += 1
    stale = [old for key, old in facts.existing_anomalies.items() if key not in wanted]
    for old in stale:
        anomaly_changes[old.site_code] += 1
    an = anomalies.c
    if inserts:
        # An upsert: another reconciliation may have stored the same finding meanwhile.
        stmt = insert_for(conn, anomalies)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[an.key], set_={k: stmt.excluded[k] for k in _ANOMALY_CONTENT}),
            inserts)
    if updates:
        conn.execute(anomalies.update().where(an.id == sa.bindparam("b_id")).values(
            **{k: sa.bindparam(f"b_{k}") for k in _ANOMALY_CONTENT}), updates)
    if stale:
        conn.execute(anomalies.delete().where(an.id == sa.bindparam("b_id")),
                     [{"b_id": old.id} for old in stale])

    for d in decided:
        code = d.summary.site_code
        d.summary.changed = changed_at[code]
        d.summary.removed = removed_at[code]
        d.summary.anomalies_changed = anomaly_changes[code]
        if changed_at[code] or removed_at[code]:
            d.summary.version = version()
    _settle_queue(conn, day, decided, facts.queued)
    return decided


def _settle_queue(conn: Connection, day: date, decided: list[_Decided],
                  queued: Mapping[str, datetime]) -> None:
    """Finished days leave the queue, pending ones stay (reason ``pending``).

    A queue row whose ``queued_at`` changed since it was read was queued again
    meanwhile (a late tap): it stays as it is, to be reconciled once more.
    """
    q = reconcile_queue.c
    finished = [{"b_site": d.summary.site_code, "b_queued": queued[d.summary.site_code]}
                for d in decided if not d.summary.pending and d.summary.site_code in queued]
    still = [{"b_site": d.summary.site_code, "b_queued": queued[d.summary.site_code]}
             for d in decided if d.summary.pending and d.summary.site_code in queued]
    new = [{"site_code": d.summary.site_code, "day": day, "reason": "pending",
            "queued_at": utcnow()}
           for d in decided if d.summary.pending and d.summary.site_code not in queued]
    same = sa.and_(q.site_code == sa.bindparam("b_site"), q.day == day,
                   q.queued_at == sa.bindparam("b_queued"))
    if finished:
        conn.execute(reconcile_queue.delete().where(same), finished)
    if still:
        conn.execute(reconcile_queue.update().where(same).values(reason="pending"), still)
    if new:
        conn.execute(insert_for(conn, reconcile_queue).on_conflict_do_nothing(), new)


_collector = {"paused": 0, "was_enabled": False}
_collector_lock = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (nested and threads: the last one out
    turns it back on, if it was on).

    A city day allocates millions of tuples, none in a reference cycle; every
    collection the allocations trigger walks all of them again (0.7 s of a
    6 s day). What the block leaves behind is collected after it.
    """
    with _collector_lock:
        if not _collector["paused"]:
            _collector["was_enabled"] = gc.isenabled()
            gc.disable()
        _collector["paused"] += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector["paused"] -= 1
            if not _collector["paused"] and _collector["was_enabled"]:
                gc.enable()


def _reconcile_batch(conn: Connection, day: date, codes: Sequence[str], *, config: RulesConfig,
                     now: datetime, every_site: bool = False) -> list[DaySummary]:
    """Reconcile ``day`` at every site of ``codes``, all in the caller's transaction."""
    with _collector_paused():
        site_rows = _load_sites(conn, codes)
        facts = _read_facts(conn, day, list(site_rows), _day_window(day, site_rows),
                            every_site, config.many_taps)
        decisions = _decide(conn, day, site_rows, facts, config=config, now=now)
        decided = _write(conn, day, list(site_rows), decisions, facts, check_fence=False)
        return [d.summary for d in decided]


def _reconcile_split(engine: Engine, day: date, codes: Sequence[str], *, config: RulesConfig,
                     now: datetime, every_site: bool, attempts: int = 3) -> list[DaySummary]:
    """Reconcile with the reading outside the write transaction.

    On SQLite the write lock is then held only while the sites are decided and
    their rows written (at the same time, see :class:`_NewRows`), not while a
    city's taps are read, so tap ingest is not held up for long. The fence
    (count and versions of the batch's stored rows), read with the facts and
    checked under lock before writing, detects another reconciliation that
    wrote meanwhile; the batch is then read and decided again.
    """
    from server.db import reading

    for attempt in range(attempts):
        with _collector_paused():
            with reading(engine) as conn:
                site_rows = _load_sites(conn, codes)
                facts = _read_facts(conn, day, list(site_rows), _day_window(day, site_rows),
                                    every_site, config.many_taps)
                decisions = _decide(conn, day, site_rows, facts, config=config, now=now)
            try:
                with engine.begin() as conn:
                    decided = _write(conn, day, list(site_rows), decisions, facts,
                                     check_fence=True)
            except _FenceMoved:
                log.info("attendance of %s changed while reconciling %d site(s); reading "
                         "again (attempt %d)", day, len(codes), attempt + 2)
                continue
        return [d.summary for d in decided]
    raise RuntimeError(f"reconciling {day}: other reconciliations kept writing the same "
                       f"site days; try again")


# -- entry points -----------------------------------------------------------------------------
def reconcile_day(conn: Connection, site_code: str, day: date, *, config: RulesConfig,
                  now: datetime) -> DaySummary:
    """Reconcile one site day in the caller's transaction (idempotent).

    ``now`` decides whether the day is over (pending); it is not written.
    """
    return _reconcile_batch(conn, day, [site_code], config=config, now=now)[0]


#: A city day is shared among worker processes from this many sites on.
PARALLEL_MIN_SITES = 100
_Task = tuple[date, list[str], bool]
_pool_state: dict[str, Any] = {}


def _fork_is_safe() -> bool:
    # A fork copies only the calling thread: with other threads running (a web server),
    # locks they hold would stay held in the child for ever.
    return (hasattr(os, "fork") and threading.active_count() == 1
            and threading.current_thread() is threading.main_thread())


def default_workers() -> int:
    """Worker processes for large runs: the CPUs (at most 4), or 1 where forking is unsafe."""
    return min(4, os.cpu_count() or 1) if _fork_is_safe() else 1


def _pool_init() -> None:
    # The parent's pooled connections are the parent's: open our own.
    _pool_state["engine"].dispose(close=False)


def _pool_task(task: _Task) -> tuple[_Task, list[DaySummary] | None, str | None]:
    day, codes, every_site = task
    try:
        return task, _reconcile_split(_pool_state["engine"], day, codes,
                                      config=_pool_state["config"], now=_pool_state["now"],
                                      every_site=every_site), None
    except Exception as exc:  # reported to the parent, which decides what to do
        log.exception("reconciling %s at %d site(s) failed", day, len(codes))
        return task, None, f"{type(exc).__name__}: {exc}"


def reconcile_days(engine: Engine, site_days: Iterable[tuple[str, date]], *,
                   config: RulesConfig, now: datetime, batch_sites: int = DEFAULT_BATCH_SITES,
                   workers: int = 1,
                   on_error: Callable[[str, date, Exception], None] | None = None
                   ) -> list[DaySummary]:
    """Reconcile many site days, grouped by date, ``batch_sites`` sites per batch.

    Each batch is read and decided outside its write transaction (see
    :func:`_reconcile_split`). A date that covers every site is read without
    site filters, in one batch, unless worker processes share it: with
    ``workers`` > 1 (see :func:`default_workers`) and at least
    :data:`PARALLEL_MIN_SITES` sites on a date, the batches run in forked
    processes, each with its own connections. Forking is refused (one process
    is used) while other threads run, as in a web server.

    An error fails its batch (nothing written, its days stay queued) and is
    raised, or given to ``on_error(site_code, day, error)`` for each of its site
    days, after which the other batches go on.
    """
    by_day: dict[date, set[str]] = defaultdict(set)
    for code, day in site_days:
        by_day[day].add(code)
    if not by_day:
        return []
    with engine.connect() as conn:
        all_codes = set(conn.execute(sa.select(sites.c.code)).scalars())
    if workers > 1 and not _fork_is_safe():
        log.warning("other threads are running: reconciling in this process only")
        workers = 1
    serial: list[_Task] = []
    parallel: list[_Task] = []
    for day in sorted(by_day):
        codes = sorted(by_day[day])
        if workers > 1 and len(codes) >= PARALLEL_MIN_SITES:
            size = max(1, min(batch_sites, -(-len(codes) // workers)))
            parallel += [(day, codes[i:i + size], False) for i in range(0, len(codes), size)]
        elif set(codes) >= all_codes and len(codes) > 1:
            serial.append((day, codes, True))
        else:
            size = max(1, batch_sites)
            serial += [(day, codes[i:i + size], False) for i in range(0, len(codes), size)]

    summaries: list[DaySummary] = []

    def failed(task: _Task, exc: Exception) -> None:
        if on_error is None:
            raise exc
        for code in task[1]:
            on_error(code, task[0], exc)

    if parallel:
        import multiprocessing

        _pool_state.update(engine=engine, config=config, now=now)
        try:
            context = multiprocessing.get_context("fork")
            with context.Pool(min(workers, len(parallel)), initializer=_pool_init) as pool:
                for task, result, error in pool.imap_unordered(_pool_task, parallel):
                    if error is not None:
                        failed(task, RuntimeError(error))
                    else:
                        summaries += result or []
        finally:
            _pool_state.clear()
    for task in serial:
        day, codes, every_site = task
        try:
            summaries += _reconcile_split(engine, day, codes, config=config, now=now,
                                          every_site=every_site)
        except Exception as exc:
            failed(task, exc)
    summaries.sort(key=lambda s: (s.day, s.site_code))
    return summaries


def run_queue(engine: Engine, *, config: RulesConfig, now: datetime,
              limit: int | None = None, batch_sites: int = DEFAULT_BATCH_SITES,
              workers: int = 1) -> list[DaySummary]:
    """Reconcile the queued site days, oldest day first (at most ``limit`` of them).

    Days that have not begun yet in the site's zone (taps with a clock far
    ahead) wait in the queue. A failing batch is logged and left queued.
    """
    q = reconcile_queue.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(q.site_code, q.day).order_by(q.day, q.site_code)).all()
        zones = {r.code: site_timezone(r.timezone)
                 for r in conn.execute(sa.select(sites.c.code, sites.c.timezone))}
    chosen = []
    for r in rows:
        if limit is not None and len(chosen) >= limit:
            break
        zone = zones.get(r.site_code)
        if zone is None or local_day_bounds(r.day, zone)[0] > now:
            continue
        chosen.append((r.site_code, r.day))

    def report(code: str, day: date, exc: Exception) -> None:
        log.error("reconciling %s %s failed (left in the queue): %s", code, day, exc,
                  exc_info=exc)

    return reconcile_days(engine, chosen, config=config, now=now, batch_sites=batch_sites,
                          workers=workers, on_error=report)


def catch_up(engine: Engine, *, now: datetime) -> int:
    """Queue, for every site, each ended local day after ``sites.reconciled_through``.

    A site never reconciled starts at the earliest of its first tap day, first
    assignment day and creation day, but at most :data:`CATCH_UP_MAX_DAYS`
    back. ``reconciled_through`` is advanced to yesterday (local) in the same
    transaction: from then on the durable queue holds those days until they
    are reconciled. Returns how many site days were queued.
    """
    s, t, ps = sites.c, taps.c, person_sites.c
    queued = 0
    with engine.begin() as conn:
        for site in conn.execute(sa.select(s.code, s.timezone, s.created_at,
                                           s.reconciled_through)).all():
            zone = site_timezone(site.timezone)
            today = now.astimezone(zone).date()
            yesterday = today - timedelta(days=1)
            if site.reconciled_through is not None:
                if site.reconciled_through >= yesterday:
                    continue
                first = site.reconciled_through + timedelta(days=1)
            else:
                candidates = [site.created_at.astimezone(zone).date()]
                first_tap = conn.execute(sa.select(sa.func.min(t.corrected_at))
                                         .where(t.site_code == site.code)).scalar()
                if first_tap is not None:
                    candidates.append(first_tap.astimezone(zone).date())
                first_assignment = conn.execute(sa.select(sa.func.min(ps.valid_from))
                                                .where(ps.site_code == site.code)).scalar()
                if first_assignment is not None:
                    candidates.append(first_assignment)
                first = max(min(candidates), today - timedelta(days=CATCH_UP_MAX_DAYS))
            days = [first + timedelta(days=n) for n in range((yesterday - first).days + 1)]
            if days:
                stmt = insert_for(conn, reconcile_queue)
                conn.execute(stmt.on_conflict_do_nothing(),
                             [{"site_code": site.code, "day": day, "reason": "catch_up",
                               "queued_at": utcnow()} for day in days])
                queued += len(days)
            conn.execute(sites.update().where(s.code == site.code)
                         .values(reconciled_through=yesterday))
    return queued


def queue_excuse_days(conn: Connection, rows: Iterable[Mapping[str, Any]], *,
                      now: datetime | None = None) -> int:
    """Queue the site days the excuses ``rows`` touch (their dates up to today).

    An excuse touches the days on which its person is assigned (``person_sites``)
    to its ``site_code``, or to any site when it has none: the only days whose
    outcome it can change. Returns how many site days were queued.
    """
    from server.queue import queue_site_days

    rows = list(rows)
    if not rows:
        return 0
    now = now or utcnow()
    zones = {r.code: site_timezone(r.timezone)
             for r in conn.execute(sa.select(sites.c.code, sites.c.timezone))}
    ps = person_sites.c
    by_person: dict[str, list[Any]] = defaultdict(list)
    for a in conn.execute(sa.select(ps.person_id, ps.site_code, ps.valid_from, ps.valid_to)
                          .where(ps.person_id.in_(sorted({r["person_id"] for r in rows})))):
        by_person[a.person_id].append(a)
    wanted: dict[str, set[date]] = defaultdict(set)
    for r in rows:
        for a in by_person.get(r["person_id"], ()):
            if r.get("site_code") and a.site_code != r["site_code"]:
                continue
            zone = zones.get(a.site_code)
            if zone is None:
                continue
            day = max(r["date_from"], a.valid_from)
            last = min(r["date_to"], a.valid_to or r["date_to"], now.astimezone(zone).date())
            while day <= last:
                wanted[a.site_code].add(day)
                day += timedelta(days=1)
    return sum(queue_site_days(conn, code, days, "excuse") for code, days in wanted.items())


# -- the background reconciler ----------------------------------------------------------------
class Reconciler:
    """A daemon thread that runs :func:`catch_up` and :func:`run_queue` every ``interval``.

    On PostgreSQL each pass first takes a session advisory lock
    (``pg_try_advisory_lock``) and skips the pass when another process holds
    it, so only one gunicorn worker reconciles at a time. Errors are logged
    and the pass is tried again after the interval; they never end the thread.
    :meth:`stop` ends it and waits for it.
    """

    def __init__(self, engine: Engine, *, interval: float, config: RulesConfig,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if interval <= 0:
            raise ValueError("the reconciler's interval must be more than 0 seconds")
        self.engine = engine
        self.interval = interval
        self.config = config
        self.clock = clock
        self.passes = 0  # completed passes (for health checks and tests)
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Reconciler:
        """Start the thread (once); returns self."""
        if self.running:
            return self
        _LIVE.add(self)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="attendance-reconciler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to end after the current pass and wait up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the reconciler did not stop within %.0f s", timeout)
            else:
                self._thread = None

    def wake(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._wake.set()

    def run_once(self) -> list[DaySummary] | None:
        """One pass; None when another process holds the lock (PostgreSQL)."""
        if self.engine.dialect.name != "postgresql":
            return self._pass()
        with self.engine.connect() as lock_conn:
            got = lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                    {"key": RECONCILER_LOCK}).scalar()
            lock_conn.commit()  # the session lock outlives the transaction; do not idle in one
            if not got:
                return None
            try:
                return self._pass()
            finally:
                lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"),
                                  {"key": RECONCILER_LOCK})
                lock_conn.commit()

    def _restart_in_child(self) -> None:
        # Threads do not survive fork (gunicorn --preload builds the app in the master):
        # give the worker a thread of its own, with fresh events and without the
        # connections inherited from the parent, which are the parent's to use.
        was_running = self._thread is not None and not self._stop.is_set()
        self._stop, self._wake, self._thread = threading.Event(), threading.Event(), None
        if was_running:
            self.engine.dispose(close=False)
            self.start()

    def _pass(self) -> list[DaySummary]:
        now = self.clock()
        catch_up(self.engine, now=now)
        summaries = run_queue(self.engine, config=self.config, now=now)
        changed = sum(s.changed + s.removed for s in summaries)
        if changed:
            log.info("reconciled %d site day(s); %d attendance row(s) changed",
                     len(summaries), changed)
        return summaries

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # keep the thread alive; the next pass retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("reconciliation pass failed; retrying in %.0f s", self.interval)
            self.passes += 1
            self._wake.wait(self.interval)
            self._wake.clear()


_LIVE: weakref.WeakSet[Reconciler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reconciler in list(_LIVE):
        reconciler._restart_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
