"""People registries (employees, students): the diff against the database and its application.

A file is the full list of its scope: for employees every ASN employee of the
regency, for students every student of one school. Comparing it with the
database gives

* **joiners**: people not placed anywhere yet (new, or back after leaving the
  same site); they are placed at their site from the effective date;
* **transfers**: people placed (or last placed) at another site; the old
  placement ends the day before the effective date and the new one starts on it;
* **leavers**: people of the scope placed at a site of the scope but absent
  from the file; their placement ends the day before the effective date and
  ``people.active`` becomes false;
* **changes**: name, unit/rombel, position, status, NIK, sex or birth date differ;
  a new rombel changes the group of the current placement (no transfer).

The effective date is the row's ``effective_from``, else the ``--effective``
option, else today in the site's time zone; a date after today is refused
(import the file on or after that date). A placement starting on the very
effective date of a transfer is corrected in place rather than closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Iterable, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.registry.apply import ROSTER_FIELDS, Changes
from server.registry.diff import DiffEntry, RegistryDiff
from server.ids import nik_problem
from server.registry.problems import Problems
from server.registry.readers import Row, id_text, number_hint, parse_date
from server.schema import people, person_sites, sites

T = TypeVar("T")
#: ``progress(label, items, length)`` yields the items, showing progress if it likes.
Progress = Callable[[str, Iterable[T], int], Iterable[T]]
#: Registry fields of ``people`` compared with a file (``site_code`` is the placement).
PERSON_FIELDS = ("name", "group_name", "nik", "nip", "nisn", "position", "employment", "sex",
                 "birth_date")
_CHUNK = 5000
MAX_NAME = 200


def no_progress(label: str, items: Iterable[T], length: int) -> Iterable[T]:
    return items


def check_person_ids(row: Row, problems: Problems, seen: dict[str, dict[str, int]], key: str,
                     problem_of: Callable[[str], str | None], lines: str
                     ) -> tuple[str, str | None]:
    """The row's main id (``key``: nip or nisn) and NIK, each checked for its format
    and for a repeat within the file (``seen``: id -> first line, per key; ``lines``
    names the unit in the message, "lines" or "rows")."""
    main = id_text(row.values.get(key))
    problem = problem_of(main)
    if problem:
        problems.add(row.line, key, number_hint(main, problem))
    nik = id_text(row.values.get("nik")) or None
    if nik:
        problem = nik_problem(nik)
        if problem:
            problems.add(row.line, "nik", number_hint(nik, problem))
    for name, value in ((key, main), ("nik", nik)):
        if value and value in seen[name]:
            problems.add(row.line, name, f"{name.upper()} {value} is on {lines} "
                                         f"{seen[name][value]} and {row.line}")
        elif value:
            seen[name][value] = row.line
    return main, nik


def check_name(row: Row, problems: Problems) -> str:
    """The row's name: not empty, at most :data:`MAX_NAME` characters."""
    name = row.text("name")
    if not name:
        problems.add(row.line, "name", "is empty")
    elif len(name) > MAX_NAME:
        problems.add(row.line, "name", f"is longer than {MAX_NAME} characters")
    return name


def check_effective(row: Row, problems: Problems) -> date | None:
    """The row's own ``effective_from`` date, if it has one."""
    if not row.text("effective_from"):
        return None
    try:
        return parse_date(row.values["effective_from"])
    except ValueError as exc:
        problems.add(row.line, "effective_from", str(exc))
        return None


@dataclass
class PersonRecord:
    """One person as a file lists them; ``fields`` holds only the columns the file has."""

    line: int
    person_id: str
    site_code: str
    fields: dict[str, Any]
    effective: date | None = None
    #: False when the row has problems: it is still checked against the database
    #: (so that every problem is reported at once) but takes no part in the diff.
    valid: bool = True


@dataclass
class PeoplePlan:
    """What applying a people diff writes (computed by :func:`plan_people`)."""

    kind: str
    new_people: list[dict[str, Any]] = field(default_factory=list)
    person_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    held_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    row_updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    row_deletes: list[int] = field(default_factory=list)
    row_inserts: list[dict[str, Any]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    requeue: list[tuple[str, date]] = field(default_factory=list)


def _load(conn: Connection, table: sa.Table, column: sa.Column[Any], values: list[Any]
          ) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(values), _CHUNK):
        rows += conn.execute(sa.select(table).where(column.in_(values[start:start + _CHUNK]))
                             ).all()
    return rows


def check_effective_option(problems: Problems, effective: date | None, changes: Changes,
                           site_codes: Iterable[str]) -> None:
    """``--effective`` may not be after today in any of the sites concerned."""
    if effective is None:
        return
    codes = list(site_codes)
    latest = max((changes.today(code) for code in codes), default=changes.today(None))
    if effective > latest:
        problems.add(0, "--effective", f"{effective} is after today ({latest}); import the "
                                       f"file on or after the day the changes take effect")


def plan_people(conn: Connection, changes: Changes, problems: Problems,
                records: list[PersonRecord], *, kind: str, registry: str,
                scope_site: str | None, effective: date | None,
                labels: dict[str, str], key_field: str,
                progress: Progress[Any] = no_progress) -> tuple[RegistryDiff, PeoplePlan]:
    """Compare ``records`` with the database; problems found here go to ``problems``."""
    diff = RegistryDiff(registry, problems.file, site=scope_site)
    plan = PeoplePlan(kind)
    known_sites = {r.code for r in conn.execute(sa.select(sites.c.code))}
    ids = [r.person_id for r in records]
    p, ps = people.c, person_sites.c
    existing = {r.person_id: r for r in _load(conn, people, p.person_id, ids)}
    placements: dict[str, list[Any]] = {}
    for r in sorted(_load(conn, person_sites, ps.person_id, ids),
                    key=lambda r: (r.valid_from, r.id)):
        placements.setdefault(r.person_id, []).append(r)
    owners: dict[tuple[str, str], str] = {}
    for column in ("nik", "nip", "nisn"):
        values = sorted({r.fields[column] for r in records if r.fields.get(column)})
        for r in _load(conn, people, p[column], values):
            owners[(column, getattr(r, column))] = r.person_id

    for rec in progress("comparing", records, len(records)):
        pid = rec.person_id
        site_field = "npsn" if scope_site else "site_code"
        if rec.site_code not in known_sites:
            problems.add(rec.line, site_field,
                         f"unknown site {rec.site_code} (import sites.csv first, or "
                         f"attendance-server site add)")
            continue
        today = changes.today(rec.site_code)
        eff = rec.effective or effective or today
        if rec.effective and rec.effective > today:
            problems.add(rec.line, "effective_from",
                         f"{rec.effective} is after today ({today} at {rec.site_code}); import "
                         f"the file on or after the day the change takes effect")
            continue
        old = existing.get(pid)
        if old is not None and old.kind and old.kind != kind:
            problems.add(rec.line, key_field, f"{pid} is registered as {old.kind}, not {kind}")
            continue
        clash = False
        for column in ("nik", "nip", "nisn"):
            value = rec.fields.get(column)
            owner = owners.get((column, value)) if value else None
            if owner is not None and owner != pid:
                problems.add(rec.line, column, f"{column.upper()} {value} already belongs to "
                                               f"{owner} in the registry")
                clash = True
        if clash or not rec.valid:
            continue

        wanted = {f: (getattr(old, f) if old is not None else None) for f in PERSON_FIELDS}
        if old is None:
            wanted.update(name="", group_name="", position="", employment="")
        wanted.update(rec.fields)
        group = wanted["group_name"] or ""
        history = placements.get(pid, [])
        latest = history[-1] if history else None
        entry = DiffEntry(pid, wanted["name"] or "", rec.line)
        if old is not None:
            entry.changes = {labels.get(f, f): (getattr(old, f), wanted[f]) for f in PERSON_FIELDS
                             if (getattr(old, f) or None) != (wanted[f] or None)}

        category: str | None = None
        if latest is None:
            category = "joiners"
            plan.row_inserts.append(_placement(pid, rec.site_code, group, eff))
            entry.site_to, entry.effective = rec.site_code, eff
            if old is not None:
                entry.note = "already known, now placed"
        elif latest.valid_to is None and latest.site_code == rec.site_code:
            if latest.group_name != group:
                plan.row_updates.append((latest.id, {"group_name": group}))
                entry.changes.setdefault(labels.get("group_name", "group_name"),
                                         (latest.group_name, group))
            category = "changes" if entry.changes else None
        else:
            is_open = latest.valid_to is None
            category = "transfers" if (is_open or latest.site_code != rec.site_code) \
                else "joiners"
            if eff < latest.valid_from:
                problems.add(rec.line, "effective_from" if rec.effective else "--effective",
                             f"{pid} was placed at {latest.site_code} from "
                             f"{latest.valid_from}; the change cannot take effect earlier "
                             f"({eff})")
                continue
            if eff == latest.valid_from:
                # The earlier placement never took effect: correct it in place.
                plan.row_updates.append((latest.id, {"site_code": rec.site_code,
                                                     "group_name": group, "valid_to": None}))
            else:
                last_day = eff - timedelta(days=1)
                end = last_day if is_open else min(latest.valid_to, last_day)
                if not is_open and latest.site_code == rec.site_code and end == last_day:
                    plan.row_updates.append((latest.id, {"valid_to": None, "group_name": group}))
                else:
                    if end != latest.valid_to:
                        plan.row_updates.append((latest.id, {"valid_to": end}))
                    plan.row_inserts.append(_placement(pid, rec.site_code, group, eff))
            entry.site_from = latest.site_code
            entry.site_to, entry.effective = rec.site_code, eff
            if not is_open:
                entry.note = f"left {latest.site_code} after {latest.valid_to}"
            plan.touched.add(latest.site_code)
            plan.requeue.append((latest.site_code, eff))
        if category is None:
            diff.unchanged += 1
            continue
        diff.add(category, entry)
        plan.touched.add(rec.site_code)
        if category in ("joiners", "transfers"):
            plan.requeue.append((rec.site_code, eff))
        row = {**wanted, "kind": kind, "site_code": rec.site_code, "active": True}
        if old is None:
            plan.new_people.append({"person_id": pid, **row, "updated_at": changes.now})
            continue
        registry_fields = {k: v for k, v in row.items()
                           if k not in ROSTER_FIELDS and getattr(old, k) != v}
        if registry_fields:
            plan.person_updates[pid] = registry_fields
        held = {k: v for k, v in row.items() if k in ROSTER_FIELDS and getattr(old, k) != v}
        if held:
            plan.held_fields[pid] = held

    _plan_leavers(conn, changes, plan, diff, ids, kind=kind, scope_site=scope_site,
                  effective=effective)
    return diff, plan


def _placement(person_id: str, site_code: str, group: str, start: date) -> dict[str, Any]:
    return {"person_id": person_id, "site_code": site_code, "group_name": group,
            "valid_from": start, "valid_to": None}


def _plan_leavers(conn: Connection, changes: Changes, plan: PeoplePlan, diff: RegistryDiff,
                  listed: list[str], *, kind: str, scope_site: str | None,
                  effective: date | None) -> None:
    """People of the scope placed today (an open placement) and absent from the file."""
    ps, p = person_sites.c, people.c
    query = (sa.select(ps.id, ps.person_id, ps.site_code, ps.valid_from, p.name)
             .join_from(person_sites, people, ps.person_id == p.person_id)
             .where(ps.valid_to.is_(None), p.kind == kind)
             .order_by(ps.person_id))
    if scope_site is not None:
        query = query.where(ps.site_code == scope_site)
    in_file = set(listed)
    for r in conn.execute(query):
        if r.person_id in in_file:
            continue
        eff = effective or changes.today(r.site_code)
        if eff > r.valid_from:
            plan.row_updates.append((r.id, {"valid_to": eff - timedelta(days=1)}))
        else:
            # Gone before the placement started: it never took effect.
            plan.row_deletes.append(r.id)
        plan.person_updates.setdefault(r.person_id, {})["active"] = False
        plan.touched.add(r.site_code)
        plan.requeue.append((r.site_code, eff))
        diff.add("leavers", DiffEntry(r.person_id, r.name or "", 0, site_from=r.site_code,
                                      effective=eff))


def apply_people(conn: Connection, changes: Changes, plan: PeoplePlan,
                 progress: Progress[Any] = no_progress) -> None:
    """Write a plan in the caller's transaction, then rebuild rosters and queue days."""
    now = changes.now
    p, ps = people.c, person_sites.c
    if plan.new_people:
        for start in progress("adding people", range(0, len(plan.new_people), 1000),
                              (len(plan.new_people) + 999) // 1000):
            conn.execute(people.insert(), plan.new_people[start:start + 1000])
    for pid, values in progress("updating people", list(plan.person_updates.items()),
                                len(plan.person_updates)):
        conn.execute(people.update().where(p.person_id == pid).values(**values, updated_at=now))
    # Close and correct placements before opening new ones.
    for row_id, values in plan.row_updates:
        conn.execute(person_sites.update().where(ps.id == row_id).values(**values))
    if plan.row_deletes:
        conn.execute(person_sites.delete().where(ps.id.in_(plan.row_deletes)))
    if plan.row_inserts:
        for start in range(0, len(plan.row_inserts), 1000):
            conn.execute(person_sites.insert(), plan.row_inserts[start:start + 1000])
    for pid, values in plan.held_fields.items():
        changes.hold_person_fields(pid, values)
    for site in plan.touched:
        changes.touch(site)
    for site, first in plan.requeue:
        changes.requeue(site, first)
    changes.finish()
