"""The site's people as this device knows them.

Two sources: the roster cache (people with a card, from ``GET /roster``) and
the ``people`` table (everyone of the site, with or without a card, from
``GET /roster/people``). The operator's page lists the union: a person without
a card can still be marked sakit, and can be given a new card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlite_utils

from edge.outbox import immediate


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str = ""
    kind: str = ""
    group_name: str = ""
    cards: tuple[tuple[str, str], ...] = field(default=())
    """(card_uid, status) of the person's cards in the roster cache."""

    @property
    def label(self) -> str:
        return self.name or self.person_id


def site_people(db: sqlite_utils.Database) -> list[Person]:
    """Everyone known here, sorted by group then name."""
    found: dict[str, dict[str, Any]] = {}
    for person_id, name, kind, group in db.conn.execute(
            "SELECT person_id, name, kind, group_name FROM people"):
        found[person_id] = {"name": name, "kind": kind, "group_name": group, "cards": []}
    for uid, person_id, name, kind, group, status in db.conn.execute(
            "SELECT card_uid, person_id, name, kind, group_name, status FROM roster "
            "WHERE person_id != '' ORDER BY card_uid"):
        entry = found.setdefault(person_id, {"name": name, "kind": kind, "group_name": group,
                                             "cards": []})
        for key, value in (("name", name), ("kind", kind), ("group_name", group)):
            entry[key] = entry[key] or value
        entry["cards"].append((uid, status))
    people = [Person(pid, e["name"], e["kind"], e["group_name"], tuple(e["cards"]))
              for pid, e in found.items()]
    people.sort(key=lambda p: (p.group_name.casefold(), p.name.casefold(), p.person_id))
    return people


def find_person(db: sqlite_utils.Database, person_id: str) -> Person | None:
    for person in site_people_of(db, [person_id]):
        return person
    return None


def site_people_of(db: sqlite_utils.Database, person_ids: list[str]) -> list[Person]:
    wanted = set(person_ids)
    return [p for p in site_people(db) if p.person_id in wanted]


def groups(people: list[Person]) -> list[str]:
    return sorted({p.group_name for p in people}, key=str.casefold)


def people_from_reply(items: Any) -> list[Person]:
    """The ``people`` list of a ``GET /roster/people`` reply; bad entries raise ValueError."""
    if not isinstance(items, list):
        raise ValueError("people must be a list")
    people = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("person_id"), str) \
                or not item["person_id"]:
            raise ValueError(f"people[{index}]: person_id missing")
        people.append(Person(item["person_id"], str(item.get("name") or ""),
                             str(item.get("kind") or ""), str(item.get("group_name") or "")))
    return people


def replace_people(db: sqlite_utils.Database, people: list[Person],
                   now: datetime | None = None) -> None:
    """Replace the people table with the server's list, in one transaction."""
    stamp = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    with immediate(db) as conn:
        conn.execute("DELETE FROM people")
        conn.executemany(
            "INSERT OR REPLACE INTO people (person_id, name, kind, group_name, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(p.person_id, p.name, p.kind, p.group_name, stamp) for p in people])
