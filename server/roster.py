"""Rosters: which card belongs to whom at each site, and the delta feed for the edges.

A roster import replaces the roster of one site (all or nothing). Each import
that changes anything takes the next *roster version* (the ``roster`` row of
``counters``; incrementing it locks the row until commit, so versions become
visible in order) and writes one ``roster_changes`` row per card it upserted or
removed at each site. ``GET /roster?since=CURSOR`` then answers from those
rows; a cursor is ``v<version>``.

A card leaving a site's roster is not deleted: it keeps its person (history for
reconciliation) and loses its site. A card listed for another site moves there
(the old site gets a ``remove``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.db import insert_for, utcnow
from server.devices import get_site
from server.schema import cards, counters, people, roster_changes

CURSOR_PREFIX = "v"


@dataclass(frozen=True)
class RosterLine:
    """One card of a roster, as imported (the edge's ``RosterEntry`` fields)."""

    card_uid: str
    person_id: str
    name: str = ""
    kind: str = ""
    group_name: str = ""
    status: str = "active"


@dataclass
class ImportSummary:
    site_code: str
    cards: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    moved_from: dict[str, int] = field(default_factory=dict)
    version: int | None = None  # None: nothing changed

    def describe(self) -> str:
        text = (f"site {self.site_code}: {self.cards} card(s); {self.added} added, "
                f"{self.changed} changed, {self.removed} removed")
        if self.moved_from:
            text += "; moved here from " + ", ".join(
                f"{site} ({n})" for site, n in sorted(self.moved_from.items()))
        text += f"; roster version {self.version}" if self.version else "; nothing changed"
        return text


def parse_roster_file(path: str | Path) -> list[RosterLine]:
    """Parse and check a roster CSV: the edge's format and rules (``edge.roster``), and
    one name, kind and group per person across the lines of that person's cards.

    Raises a ValueError listing every problem with file, line and field; then
    nothing may be imported.
    """
    from edge.errors import RosterImportError
    from edge.roster import parse_roster_csv

    entries = parse_roster_csv(path)
    lines = _lines_by_uid(path)
    problems = []
    seen: dict[str, tuple[int, tuple[str, str, str]]] = {}
    for entry in entries:
        about = (entry.name, entry.kind, entry.group_name)
        line = lines.get(entry.card_uid, 0)
        first_line, first = seen.setdefault(entry.person_id, (line, about))
        if first != about:
            problems.append((str(path), line, "person_id",
                             f"{entry.person_id} is {about} here but {first} on line "
                             f"{first_line} (name, kind, group must agree)"))
    if problems:
        raise RosterImportError(problems)
    return [RosterLine(e.card_uid, e.person_id, e.name, e.kind, e.group_name, e.status)
            for e in entries]


def _lines_by_uid(path: str | Path) -> dict[str, int]:
    """card UID -> line number, for a file ``parse_roster_csv`` already accepted."""
    import csv
    import io

    from hardware.errors import InvalidUID
    from hardware.uid import normalise_uid

    text = Path(path).read_bytes().decode("utf-8-sig")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower() for h in next(reader, [])]
    if "card_uid" not in header:
        return {}
    column = header.index("card_uid")
    found: dict[str, int] = {}
    for row in reader:
        if len(row) > column:
            try:
                found.setdefault(normalise_uid(row[column].strip()), reader.line_num)
            except InvalidUID:
                pass
    return found


def next_version(conn: Connection, name: str = "roster") -> int:
    result = conn.execute(counters.update().where(counters.c.name == name)
                          .values(value=counters.c.value + 1).returning(counters.c.value))
    return int(result.scalar_one())


def current_version(conn: Connection, name: str = "roster") -> int:
    value = conn.execute(sa.select(counters.c.value).where(counters.c.name == name)).scalar()
    return int(value or 0)


def import_roster(conn: Connection, site_code: str, lines: Iterable[RosterLine]) -> ImportSummary:
    """Make ``lines`` the roster of ``site_code``, in the caller's transaction."""
    get_site(conn, site_code)
    lines = list(lines)
    summary = ImportSummary(site_code, cards=len(lines))
    now = utcnow()
    wanted = {line.card_uid: line for line in lines}
    person_of = {line.person_id: line for line in lines}

    c, p = cards.c, people.c
    current = {r.card_uid: r for r in conn.execute(
        sa.select(c.card_uid, c.person_id, c.status, c.site_code)
        .where(sa.or_(c.site_code == site_code, c.card_uid.in_(list(wanted)))))}
    known_people = {r.person_id: r for r in conn.execute(
        sa.select(p.person_id, p.kind, p.name, p.site_code, p.group_name)
        .where(p.person_id.in_(list(person_of))))}

    people_rows = []
    changed_people = set()
    for pid, line in person_of.items():
        row = {"person_id": pid, "kind": line.kind or None, "name": line.name,
               "site_code": site_code, "group_name": line.group_name, "updated_at": now}
        old = known_people.get(pid)
        if old is None or (old.kind, old.name, old.site_code, old.group_name) != (
                row["kind"], row["name"], row["site_code"], row["group_name"]):
            people_rows.append(row)
            changed_people.add(pid)

    upserts: list[RosterLine] = []
    for uid, line in wanted.items():
        old = current.get(uid)
        if old is None:
            summary.added += 1
        elif old.site_code != site_code:
            summary.added += 1
            if old.site_code:
                summary.moved_from[old.site_code] = summary.moved_from.get(old.site_code, 0) + 1
        elif (old.person_id, old.status) != (line.person_id, line.status) \
                or line.person_id in changed_people:
            summary.changed += 1
        else:
            continue
        upserts.append(line)
    leaving = [uid for uid, r in current.items() if r.site_code == site_code and uid not in wanted]
    summary.removed = len(leaving)

    if not (people_rows or upserts or leaving):
        return summary
    version = next_version(conn)
    summary.version = version
    changes: list[dict[str, Any]] = []

    if people_rows:
        stmt = insert_for(conn, people)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[p.person_id],
            set_={k: stmt.excluded[k] for k in ("kind", "name", "site_code", "group_name",
                                                "updated_at")}), people_rows)
    if upserts:
        stmt = insert_for(conn, cards)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[c.card_uid],
            set_={k: stmt.excluded[k] for k in ("person_id", "status", "site_code",
                                                "changed_version", "updated_at")}),
            [{"card_uid": line.card_uid, "person_id": line.person_id, "status": line.status,
              "site_code": site_code, "changed_version": version, "updated_at": now}
             for line in upserts])
        for line in upserts:
            changes.append({"site_code": site_code, "version": version,
                            "card_uid": line.card_uid, "change": "upsert", "changed_at": now})
            old = current.get(line.card_uid)
            if old is not None and old.site_code and old.site_code != site_code:
                changes.append({"site_code": old.site_code, "version": version,
                                "card_uid": line.card_uid, "change": "remove",
                                "changed_at": now})
    if leaving:
        conn.execute(cards.update().where(c.card_uid.in_(leaving)).values(
            site_code=None, changed_version=version, updated_at=now))
        changes += [{"site_code": site_code, "version": version, "card_uid": uid,
                     "change": "remove", "changed_at": now} for uid in leaving]
    conn.execute(roster_changes.insert(), changes)
    return summary


# -- the edge's view -----------------------------------------------------------------------------
def _card_query(site_code: str) -> Any:
    c, p = cards.c, people.c
    return (sa.select(c.card_uid, c.person_id, p.name, p.kind, p.group_name, c.status)
            .join_from(cards, people, c.person_id == p.person_id)
            .where(c.site_code == site_code))


def _card_reply(r: Any) -> dict[str, str]:
    return {"card_uid": r.card_uid, "person_id": r.person_id, "name": r.name or "",
            "kind": r.kind or "", "group": r.group_name or "", "status": r.status}


def parse_cursor(cursor: str | None) -> int | None:
    if not cursor or not cursor.startswith(CURSOR_PREFIX):
        return None
    digits = cursor[len(CURSOR_PREFIX):]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


def roster_for_site(conn: Connection, site_code: str, since: str | None) -> dict[str, Any]:
    """The ``GET /roster`` reply (without ``server_time``) for a device of ``site_code``."""
    # Read the version first: any change after it is sent again next time (an upsert
    # twice is harmless), and none before it can still be uncommitted.
    version = current_version(conn)
    start = parse_cursor(since)
    if start is None or start > version:
        rows = conn.execute(_card_query(site_code).order_by(cards.c.card_uid)).all()
        return {"cursor": f"{CURSOR_PREFIX}{version}", "full": True,
                "cards": [_card_reply(r) for r in rows], "removed": []}
    rc = roster_changes.c
    last: dict[str, str] = {}
    for r in conn.execute(sa.select(rc.card_uid, rc.change)
                          .where(rc.site_code == site_code, rc.version > start,
                                 rc.version <= version)
                          .order_by(rc.version)):
        last[r.card_uid] = r.change
    upserted = [uid for uid, change in last.items() if change == "upsert"]
    rows = []
    if upserted:
        rows = conn.execute(_card_query(site_code).where(cards.c.card_uid.in_(upserted))
                            .order_by(cards.c.card_uid)).all()
    present = {r.card_uid for r in rows}
    removed = sorted(uid for uid, change in last.items()
                     if change == "remove" or uid not in present)
    return {"cursor": f"{CURSOR_PREFIX}{version}", "full": False,
            "cards": [_card_reply(r) for r in rows], "removed": removed}


def site_cards(conn: Connection, site_code: str) -> list[dict[str, str]]:
    return [_card_reply(r) for r in conn.execute(_card_query(site_code)
                                                 .order_by(cards.c.card_uid))]


# -- the edge's view of the site's people and coming days -------------------------------------
def people_for_site(conn: Connection, site_code: str, today: Any) -> list[dict[str, str]]:
    """The active people of a site (registered there, or assigned there on ``today``, the
    site's local date), with or without a card, by person id: ``GET /roster/people``."""
    from server.schema import person_sites

    p, ps = people.c, person_sites.c
    assigned = sa.select(ps.person_id).where(
        ps.site_code == site_code, ps.valid_from <= today,
        sa.or_(ps.valid_to.is_(None), ps.valid_to >= today))
    rows = conn.execute(sa.select(p.person_id, p.name, p.kind, p.group_name)
                        .where(p.active == sa.true(),
                               sa.or_(p.site_code == site_code, p.person_id.in_(assigned)))
                        .order_by(p.person_id))
    return [{"person_id": r.person_id, "name": r.name or "", "kind": r.kind or "",
             "group_name": r.group_name or ""} for r in rows]


def people_version(items: list[dict[str, str]]) -> str:
    """A version of a people list: the same list always gives the same string."""
    import hashlib
    import json

    text = json.dumps(items, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "p" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


#: Days of plans in the roster reply: today and the next six.
PLAN_DAYS = 7


def plans_for_site(conn: Connection, site_code: str, now: Any,
                   days: int = PLAN_DAYS) -> list[dict[str, Any]]:
    """The plan (working day, hours, grace, reason) of today and the following days in the
    site's local time, from its schedule and calendar, as the reconciler decides them."""
    from datetime import timedelta

    from server.calendar_store import calendar_for_site, site_row, site_schedule
    from server.schedule import format_time, plan_day, site_timezone

    row = site_row(conn, site_code)
    zone = site_timezone(row["timezone"])
    schedule = site_schedule(conn, row)
    calendar = calendar_for_site(conn, row)
    today = now.astimezone(zone).date()
    out = []
    for offset in range(days):
        plan = plan_day(schedule, calendar, today + timedelta(days=offset), zone)
        out.append({"date": plan.date.isoformat(), "workday": plan.workday,
                    "start": format_time(plan.start.time()) if plan.start else None,
                    "end": format_time(plan.end.time()) if plan.end else None,
                    "grace_minutes": plan.grace_minutes, "reason": plan.reason})
    return out
