"""After a registry change: rebuild the affected rosters and requeue past days.

The rosters the edges follow are derived from the registry: a site's roster
is the cards of the people whose placement (``person_sites``) is that site
today, with the holder and status of each card's newest history row and its
status as the gates must apply it (:func:`server.cards.gate_status`). Cards at
a site whose holder the registry does not place anywhere (people loaded with
``attendance-server roster import``) stay on that site's roster as they are,
so sites managed by roster files keep working.

:func:`server.roster.import_roster` compares the roster lines with the
``cards`` and ``people`` rows and writes the delta feed. That comparison is
why the order of writes matters: a change of name, holder or status must not
reach ``people.name``/``kind``/``group_name``/``site_code`` or
``cards.person_id``/``status`` before the rosters are rebuilt, otherwise the
roster import sees nothing to send. :class:`Changes` therefore holds those
fields back and writes them in :meth:`Changes.finish`, after the rosters.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.cards import DEFAULT_ZONE, gate_status
from server.db import is_postgresql, utcnow
from server.queue import queue_site_days
from server.roster import ImportSummary, RosterLine, current_version, import_roster
from server.schema import card_history, cards, people, person_sites, sites

#: Arbitrary key of the PostgreSQL advisory lock that serialises registry changes.
_REGISTRY_LOCK = 0x52_45_47_49  # "REGI"
#: Person fields that a roster import also writes (see the module text).
ROSTER_FIELDS = ("name", "kind", "group_name", "site_code")
QUEUE_REASON = "registry"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def lock_registry(conn: Connection) -> None:
    """Serialise registry changes until the end of the transaction.

    A change is planned from what it reads, so two imports running at once
    must not both plan against the state before the other. SQLite write
    transactions are already serialised (``BEGIN IMMEDIATE``).
    """
    if is_postgresql(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REGISTRY_LOCK})


class Changes:
    """The side effects of one registry change, finished in the caller's transaction.

    Collects the sites whose rosters must be rebuilt, the people fields held
    back until then, the cards whose holder or status changed, and the site
    days to requeue; :meth:`finish` does it all.
    """

    def __init__(self, conn: Connection, *, now: datetime | None = None) -> None:
        self.conn = conn
        self.now = now or utcnow()
        self.sites: set[str] = set()
        self.people_fields: dict[str, dict[str, Any]] = {}
        self.cards: set[str] = set()
        self.days: dict[str, set[date]] = defaultdict(set)
        self._zones: dict[str, str] | None = None
        self._person_site: dict[str, str | None] = {}
        self._placements: dict[str, list[Any]] = {}
        self._version: int | None = None
        self.summaries: list[ImportSummary] = []

    # -- zones and days ------------------------------------------------------------------
    def site_zone(self, site_code: str | None) -> str:
        if self._zones is None:
            self._zones = {r.code: r.timezone for r in self.conn.execute(
                sa.select(sites.c.code, sites.c.timezone))}
        return self._zones.get(site_code or "", DEFAULT_ZONE)

    def today(self, site_code: str | None) -> date:
        """Today's date in the site's time zone."""
        return self.now.astimezone(_zone(self.site_zone(site_code))).date()

    def load_people(self, person_ids: Iterable[str]) -> None:
        """Read the site and placements of these people once (cached for this change)."""
        missing = sorted({p for p in person_ids if p not in self._person_site})
        ps = person_sites.c
        for start in range(0, len(missing), 5000):
            chunk = missing[start:start + 5000]
            for pid in chunk:
                self._person_site[pid] = None
                self._placements[pid] = []
            for r in self.conn.execute(sa.select(people.c.person_id, people.c.site_code)
                                       .where(people.c.person_id.in_(chunk))):
                self._person_site[r.person_id] = r.site_code
            for r in self.conn.execute(sa.select(ps.person_id, ps.site_code, ps.valid_from,
                                                 ps.valid_to).where(ps.person_id.in_(chunk))):
                self._placements[r.person_id].append(r)

    def person_zone(self, person_id: str) -> str:
        """The time zone of the person's site (Asia/Jakarta when they have none)."""
        self.load_people([person_id])
        return self.site_zone(self._person_site[person_id])

    def current_sites(self, person_id: str) -> set[str]:
        """The sites where the person is placed today (normally one; none for a leaver)."""
        self.load_people([person_id])
        return {r.site_code for r in self._placements[person_id]
                if r.valid_from <= self.today(r.site_code)
                and (r.valid_to is None or r.valid_to >= self.today(r.site_code))}

    def roster_version(self) -> int:
        if self._version is None:
            self._version = current_version(self.conn)
        return self._version

    # -- collecting ----------------------------------------------------------------------
    def touch(self, site_code: str | None) -> None:
        """Rebuild this site's roster at the end."""
        if site_code:
            self.sites.add(site_code)

    def hold_person_fields(self, person_id: str, fields: dict[str, Any]) -> None:
        """Write these :data:`ROSTER_FIELDS` of an existing person after the rosters."""
        self.people_fields.setdefault(person_id, {}).update(fields)

    def requeue(self, site_code: str, first: date, last: date | None = None) -> None:
        """Queue the site's days from ``first`` to ``last`` (default and at most: today)."""
        today = self.today(site_code)
        last = min(last or today, today)
        day = first
        while day <= last:
            self.days[site_code].add(day)
            day += timedelta(days=1)

    def requeue_person(self, person_id: str, first: date) -> None:
        """Queue the days from ``first`` to today at every site the person was placed."""
        self.load_people([person_id])
        for r in self._placements[person_id]:
            if r.valid_to is None or r.valid_to >= first:
                self.requeue(r.site_code, max(first, r.valid_from), r.valid_to)

    def card_changed(self, card_uid: str, person_ids: Iterable[str],
                     past: datetime | None = None) -> None:
        """A card's holder, status or validity changed (``past``: the change is dated then)."""
        self.cards.add(card_uid)
        for person_id in person_ids:
            for site in self.current_sites(person_id):
                self.touch(site)
            if past is not None:
                zone = _zone(self.person_zone(person_id))
                self.requeue_person(person_id, past.astimezone(zone).date())

    # -- finishing -----------------------------------------------------------------------
    def finish(self) -> list[ImportSummary]:
        """Rebuild the touched rosters, write the held-back fields, queue the days."""
        conn = self.conn
        if self.sites:
            lines = roster_lines(conn, self.sites, self, overrides=self.people_fields)
            for site in sorted(self.sites):
                self.summaries.append(import_roster(conn, site, lines.get(site, [])))
        self._write_people_fields()
        self._sync_cards()
        for site, days in sorted(self.days.items()):
            queue_site_days(conn, site, days, reason=QUEUE_REASON)
        return self.summaries

    def _write_people_fields(self) -> None:
        if not self.people_fields:
            return
        p = people.c
        ids = list(self.people_fields)
        current = {}
        for start in range(0, len(ids), 5000):
            for r in self.conn.execute(sa.select(p.person_id, *(p[f] for f in ROSTER_FIELDS))
                                       .where(p.person_id.in_(ids[start:start + 5000]))):
                current[r.person_id] = r
        for person_id, fields in self.people_fields.items():
            row = current.get(person_id)
            if row is None:
                continue
            wanted = {k: v for k, v in fields.items() if getattr(row, k) != v}
            if wanted:
                self.conn.execute(people.update().where(p.person_id == person_id)
                                  .values(**wanted, updated_at=self.now))

    def _sync_cards(self) -> None:
        """Cards on no roster: their holder and status are not written by a roster import."""
        if not self.cards:
            return
        from server.cards import latest_states

        c = cards.c
        uids = sorted(self.cards)
        off: list[Any] = []
        for start in range(0, len(uids), 5000):
            off += self.conn.execute(sa.select(c.card_uid, c.person_id, c.status, c.valid_from,
                                               c.valid_to)
                                     .where(c.card_uid.in_(uids[start:start + 5000]),
                                            c.site_code.is_(None))).all()
        latest = latest_states(self.conn, [r.card_uid for r in off])
        self.load_people({s.person_id for s in latest.values()})
        for card in off:
            state = latest.get(card.card_uid)
            if state is None:
                continue
            today = self.now.astimezone(_zone(self.person_zone(state.person_id))).date()
            status = gate_status(state.status, card.valid_from, card.valid_to, today)
            if (card.person_id, card.status) != (state.person_id, status):
                self.conn.execute(cards.update().where(c.card_uid == card.card_uid).values(
                    person_id=state.person_id, status=status, updated_at=self.now))


def roster_lines(conn: Connection, site_codes: Iterable[str], changes: Changes, *,
                 overrides: dict[str, dict[str, Any]] | None = None
                 ) -> dict[str, list[RosterLine]]:
    """The roster of each site as the registry says it should be today.

    ``overrides`` gives person fields (name, kind, group_name) decided but not
    yet written. A handful of queries, whatever the number of sites.
    """
    codes = sorted(set(site_codes))
    if not codes:
        return {}
    overrides = overrides or {}
    ps, c, h, p = person_sites.c, cards.c, card_history.c, people.c
    earliest = min(changes.today(s) for s in codes)
    latest_day = max(changes.today(s) for s in codes)

    # Who is placed at these sites today.
    placed: dict[str, tuple[str, str]] = {}
    for r in conn.execute(sa.select(ps.person_id, ps.site_code, ps.group_name, ps.valid_from,
                                    ps.valid_to)
                          .where(ps.site_code.in_(codes), ps.valid_from <= latest_day,
                                 sa.or_(ps.valid_to.is_(None), ps.valid_to >= earliest))):
        today = changes.today(r.site_code)
        if r.valid_from <= today and (r.valid_to is None or r.valid_to >= today):
            placed[r.person_id] = (r.site_code, r.group_name)

    here = (sa.select(ps.person_id)
            .where(ps.site_code.in_(codes), sa.or_(ps.valid_to.is_(None), ps.valid_to >= earliest)))
    related = sa.union(
        sa.select(h.card_uid).where(h.person_id.in_(here)),
        sa.select(c.card_uid).where(sa.or_(c.site_code.in_(codes), c.person_id.in_(here))),
    ).subquery()
    ranked = (sa.select(h.card_uid, h.person_id, h.status,
                        sa.func.row_number().over(partition_by=h.card_uid,
                                                  order_by=(h.effective_at.desc(), h.id.desc()))
                        .label("rank"))
              .where(h.card_uid.in_(sa.select(related.c.card_uid))).subquery())
    newest = sa.select(ranked).where(ranked.c.rank == 1).subquery()
    found = conn.execute(
        sa.select(c.card_uid, c.person_id, c.status, c.site_code, c.valid_from, c.valid_to,
                  newest.c.person_id.label("holder"), newest.c.status.label("registry_status"))
        .outerjoin(newest, newest.c.card_uid == c.card_uid)
        .where(c.card_uid.in_(sa.select(related.c.card_uid)))).all()

    holders = sorted({r.holder or r.person_id for r in found})
    names: dict[str, tuple[str, str, str]] = {}
    managed: set[str] = set()
    for start in range(0, len(holders), 5000):
        chunk = holders[start:start + 5000]
        for r in conn.execute(sa.select(p.person_id, p.name, p.kind, p.group_name)
                              .where(p.person_id.in_(chunk))):
            names[r.person_id] = (r.name or "", r.kind or "", r.group_name or "")
        managed.update(conn.execute(sa.select(ps.person_id).distinct()
                                    .where(ps.person_id.in_(chunk))).scalars())

    wanted = set(codes)
    out: dict[str, list[RosterLine]] = {code: [] for code in codes}
    for r in found:
        holder = r.holder or r.person_id
        if holder in placed:
            site, group = placed[holder]
        elif holder not in managed and r.site_code in wanted:
            site, group = r.site_code, names.get(holder, ("", "", ""))[2]
        else:
            continue
        name, kind, _ = names.get(holder, ("", "", ""))
        extra = overrides.get(holder, {})
        name, kind = extra.get("name", name), extra.get("kind", kind) or ""
        if holder not in placed:
            group = extra.get("group_name", group)
        if r.registry_status is None:
            status = r.status  # a roster-import card: as it is
        else:
            status = gate_status(r.registry_status, r.valid_from, r.valid_to, changes.today(site))
        out[site].append(RosterLine(r.card_uid, holder, name, kind, group, status))
    return out


def refresh_rosters(conn: Connection, site_codes: Iterable[str] | None = None, *,
                    now: datetime | None = None) -> list[ImportSummary]:
    """Rebuild the rosters of ``site_codes`` (default: every site) as of today."""
    lock_registry(conn)
    changes = Changes(conn, now=now)
    if site_codes is None:
        site_codes = conn.execute(sa.select(sites.c.code)).scalars().all()
    for code in site_codes:
        changes.touch(code)
    return changes.finish()
