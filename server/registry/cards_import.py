"""The card register: ``cards.csv`` binds card UIDs to people.

Columns: ``card_uid`` (required), at least one of ``nip``, ``nisn``, ``nik``
(each row names the holder by one of them; when several are filled they must
name the same person), ``status`` (active, lost, blocked, replaced; also
aktif, hilang, blokir, diganti; default active), ``valid_from``, ``valid_to``.

The file is a register, not a full list: cards absent from it stay as they
are. Each listed card is new, given to someone else (``rebound``), changed
(status or validity) or unchanged; changes are recorded in the card history
from now (a new card from the local midnight of its first valid day), see
:mod:`server.cards`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.cards import CardWrite, latest_states, parse_card_uid, write_cards
from server.ids import nik_problem, nip_problem, nisn_problem
from server.registry.apply import Changes, lock_registry
from server.registry.diff import DiffEntry, RegistryDiff
from server.registry.people import Progress, no_progress
from server.registry.problems import Problems
from server.registry.readers import (Column, Source, Table, id_text, number_hint, parse_date,
                                     read_table)
from server.schema import CARD_STATUSES, cards, people

COLUMNS = (
    Column("card_uid", ("uid", "uid_kartu", "nomor_kartu"), required=True),
    Column("nip", ()),
    Column("nisn", ()),
    Column("nik", ()),
    Column("status", ("status_kartu",)),
    Column("valid_from", ("berlaku_dari", "berlaku_mulai")),
    Column("valid_to", ("berlaku_sampai", "berlaku_hingga")),
)
STATUS_ALIASES = {"aktif": "active", "hilang": "lost", "blokir": "blocked",
                  "diblokir": "blocked", "diganti": "replaced"}
_ID_CHECKS = {"nip": nip_problem, "nisn": nisn_problem, "nik": nik_problem}


def _parse_rows(table: Table, problems: Problems) -> list[dict[str, Any]]:
    out = []
    seen: dict[str, int] = {}
    for row in table.rows:
        before = len(problems)
        line = row.line
        uid = None
        try:
            uid = parse_card_uid(row.text("card_uid"))
        except ValueError as exc:
            problems.add(line, "card_uid", str(exc))
        if uid and uid in seen:
            problems.add(line, "card_uid", f"card {uid} is on lines {seen[uid]} and {line}")
        elif uid:
            seen[uid] = line
        ids = {}
        for key, check in _ID_CHECKS.items():
            value = id_text(row.values.get(key))
            if not value:
                continue
            problem = check(value)
            if problem:
                problems.add(line, key, number_hint(value, problem))
            else:
                ids[key] = value
        if not ids and len(problems) == before:
            problems.add(line, "nip", "name the card holder by nip, nisn or nik")
        status = STATUS_ALIASES.get(row.text("status").lower(), row.text("status").lower())
        status = status or "active"
        if status not in CARD_STATUSES:
            problems.add(line, "status", f"{row.text('status')!r} is not one of "
                                         f"{', '.join(CARD_STATUSES)}")
        dates: dict[str, date | None] = {}
        for key in ("valid_from", "valid_to"):
            dates[key] = None
            if row.text(key):
                try:
                    dates[key] = parse_date(row.values[key])
                except ValueError as exc:
                    problems.add(line, key, str(exc))
        if dates["valid_from"] and dates["valid_to"] and dates["valid_from"] > dates["valid_to"]:
            problems.add(line, "valid_to", f"{dates['valid_to']} is before valid_from "
                                           f"{dates['valid_from']}")
        # Rows with problems are still looked up (every problem is reported at once);
        # only valid rows take part in the diff.
        out.append({"line": line, "card_uid": uid, "ids": ids, "status": status, **dates,
                    "valid": len(problems) == before})
    return out


def _resolve_holders(conn: Connection, rows: list[dict[str, Any]], problems: Problems) -> None:
    """Set each row's ``person_id`` from its ids (problems for unknown or disagreeing ids)."""
    p = people.c
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    for key in _ID_CHECKS:
        values = sorted({r["ids"][key] for r in rows if key in r["ids"]})
        for start in range(0, len(values), 5000):
            for r in conn.execute(sa.select(p.person_id, p.name, p[key])
                                  .where(p[key].in_(values[start:start + 5000]))):
                owners[(key, r[2])] = (r.person_id, r.name)
    for row in rows:
        found: dict[str, str] = {}
        for key, value in row["ids"].items():
            owner = owners.get((key, value))
            if owner is None:
                problems.add(row["line"], key, f"no person with {key.upper()} {value} in the "
                                               f"registry (import employees or students first)")
            else:
                found[key] = owner[0]
                row["name"] = owner[1]
        if len(set(found.values())) > 1:
            problems.add(row["line"], "nik" if "nik" in found else "nisn",
                         "the ids name different people: " + ", ".join(
                             f"{k.upper()} {row['ids'][k]} is {v}" for k, v in found.items()))
        elif found and len(found) == len(row["ids"]):
            row["person_id"] = next(iter(found.values()))


def import_cards(conn: Connection, source: Source, *, name: str | None = None,
                 fmt: str | None = None, dry_run: bool = False, now: datetime | None = None,
                 progress: Progress[Any] = no_progress) -> RegistryDiff:
    """Import the card register from ``source``; all or nothing, in the caller's
    transaction. Returns the diff (applied unless ``dry_run``)."""
    if not dry_run:
        lock_registry(conn)
    table = read_table(source, COLUMNS, name=name, fmt=fmt)
    problems = Problems(table.file, table.unit)
    if not table.columns & set(_ID_CHECKS):
        problems.add(table.header_line, "nip",
                     "the header needs at least one of the columns nip, nisn, nik")
        problems.raise_if_any()
    rows = _parse_rows(table, problems)
    _resolve_holders(conn, rows, problems)
    problems.raise_if_any()
    rows = [r for r in rows if r["valid"]]

    diff = RegistryDiff("cards", table.file)
    c = cards.c
    existing = {}
    uids = [r["card_uid"] for r in rows]
    for start in range(0, len(uids), 5000):
        chunk = uids[start:start + 5000]
        for r in conn.execute(sa.select(c.card_uid, c.person_id, c.status, c.valid_from,
                                        c.valid_to).where(c.card_uid.in_(chunk))):
            existing[r.card_uid] = r
    latest = latest_states(conn, [u for u in uids if u in existing])
    todo = []
    for row in progress("comparing", rows, len(rows)):
        uid, pid = row["card_uid"], row["person_id"]
        entry = DiffEntry(uid, row.get("name", ""), row["line"])
        old = existing.get(uid)
        if old is None:
            entry.note = f"{pid}, {row['status']}"
            diff.add("new", entry)
            todo.append(row)
            continue
        state = latest.get(uid)
        holder, status = (state.person_id, state.status) if state else \
            (old.person_id, old.status)
        for key, before, after in (("status", status, row["status"]),
                                   ("valid_from", old.valid_from, row["valid_from"]),
                                   ("valid_to", old.valid_to, row["valid_to"])):
            if before != after:
                entry.changes[key] = (before, after)
        if holder != pid:
            entry.note = f"was {holder}, now {pid}"
            diff.add("rebound", entry)
        elif entry.changes:
            diff.add("changes", entry)
        else:
            diff.unchanged += 1
            continue
        todo.append(row)
    if dry_run or diff.is_empty():
        return diff
    changes = Changes(conn, now=now)
    batch = 2000
    for start in progress("writing cards", range(0, len(todo), batch),
                          (len(todo) + batch - 1) // batch):
        write_cards(conn, changes, [
            CardWrite(r["card_uid"], r["person_id"], r["status"], r["valid_from"],
                      r["valid_to"]) for r in todo[start:start + batch]])
    changes.finish()
    diff.applied = True
    return diff
