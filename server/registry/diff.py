"""The difference between a registry file and the database, shown before it is applied.

Every import computes a :class:`RegistryDiff` first; ``--dry-run`` prints it
and stops, a real import applies exactly it. The categories depend on the
registry:

* people (employees, students): ``joiners``, ``leavers``, ``transfers``, ``changes``;
* sites: ``new``, ``changes``;
* cards: ``new``, ``rebound`` (the UID now belongs to someone else), ``changes``
  (status or validity dates).

Records that match the database are only counted (``unchanged``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

PEOPLE_CATEGORIES = ("joiners", "leavers", "transfers", "changes")
SITE_CATEGORIES = ("new", "changes")
CARD_CATEGORIES = ("new", "rebound", "changes")
CATEGORIES = {"employees": PEOPLE_CATEGORIES, "students": PEOPLE_CATEGORIES,
              "sites": SITE_CATEGORIES, "cards": CARD_CATEGORIES}
_MARKS = {"joiners": "+", "new": "+", "leavers": "-", "transfers": ">", "rebound": ">",
          "changes": "~"}


def _show(value: Any) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@dataclass
class DiffEntry:
    """One record that the import adds, removes, moves or changes.

    ``key`` is the person id (NIP, NISN), site code or card UID; ``changes``
    maps a field to its (old, new) values; ``site_from``/``site_to`` and
    ``effective`` describe a move (a transfer between sites, a joiner's or
    leaver's site, a card's previous and new holder in ``note``).
    """

    key: str
    name: str = ""
    line: int = 0
    site_from: str | None = None
    site_to: str | None = None
    effective: date | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        text = self.key + (f" {self.name}" if self.name else "")
        if self.site_from and self.site_to and self.site_from != self.site_to:
            text += f": {self.site_from} -> {self.site_to}"
        elif self.site_to:
            text += f": {self.site_to}"
        elif self.site_from:
            text += f": leaves {self.site_from}"
        if self.effective:
            text += f" from {self.effective.isoformat()}"
        if self.changes:
            text += (": " if not (self.site_from or self.site_to) else "; ") + ", ".join(
                f"{k} {_show(old)} -> {_show(new)}" for k, (old, new) in self.changes.items())
        if self.note:
            text += f" ({self.note})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "line": self.line or None,
            "site_from": self.site_from, "site_to": self.site_to,
            "effective": self.effective.isoformat() if self.effective else None,
            "changes": {k: [_jsonable(old), _jsonable(new)]
                        for k, (old, new) in self.changes.items()},
            "note": self.note,
        }


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


@dataclass
class RegistryDiff:
    """What an import of ``source`` into the ``registry`` changes (or changed, once applied)."""

    registry: str
    source: str
    site: str | None = None  # students: the school (NPSN) whose list the file is
    entries: dict[str, list[DiffEntry]] = field(default_factory=dict)
    unchanged: int = 0
    applied: bool = False

    def __post_init__(self) -> None:
        for category in CATEGORIES[self.registry]:
            self.entries.setdefault(category, [])

    def add(self, category: str, entry: DiffEntry) -> None:
        self.entries[category].append(entry)

    @property
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES[self.registry]

    def counts(self) -> dict[str, int]:
        counts = {c: len(self.entries[c]) for c in self.categories}
        counts["unchanged"] = self.unchanged
        return counts

    def is_empty(self) -> bool:
        """True when applying the diff would write nothing."""
        return not any(self.entries.values())

    def describe(self, limit: int = 10) -> str:
        """Counts, then the first ``limit`` entries of each category."""
        counts = self.counts()
        what = self.registry + (f" of {self.site}" if self.site else "")
        lines = [f"{self.source}: {what}: " + ", ".join(
            f"{n} {name}" for name, n in counts.items())]
        for category in self.categories:
            entries = self.entries[category]
            if not entries:
                continue
            lines.append(f"{category}:")
            mark = _MARKS[category]
            lines += [f"  {mark} {e.describe()}" for e in entries[:limit]]
            if len(entries) > limit:
                lines.append(f"  … and {len(entries) - limit} more")
        if self.is_empty():
            lines.append("nothing to change")
        return "\n".join(lines)

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """A JSON-ready form: counts and the entries (the first ``limit`` of each category)."""
        return {
            "registry": self.registry,
            "source": self.source,
            "site": self.site,
            "applied": self.applied,
            "counts": self.counts(),
            **{c: [e.to_dict() for e in self.entries[c][:limit]] for c in self.categories},
        }
