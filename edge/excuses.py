"""Excuses (sakit, izin, dinas luar, cuti) marked on the operator's page.

They are kept in the edge's SQLite file and sent to the server by the sync
worker (``POST /api/v1/excuses``, idempotent by ``excuse_id``); ``sent_at`` is
set only once the server's reply names them, so a cut connection sends them
again and the server answers ``duplicate``.

An excuse recorded by mistake is withdrawn (:func:`withdraw_excuse`), never
deleted: from then on it counts nowhere on this device and is no longer pushed;
its withdrawal (``POST /api/v1/excuses/withdraw``, which carries the whole
excuse) is sent instead, and ``withdrawal_sent_at`` is set once the reply names
it. The excuse may be on the server already even when ``sent_at`` is empty (a
push whose reply was cut), and a server that never had it stores it withdrawn.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

import sqlite_utils

from edge.errors import EdgeError
from edge.outbox import immediate

KINDS = ("sakit", "izin", "dinas_luar", "cuti")
#: The server's pattern for person ids (server/openapi.py, ID_PATTERN), at most 32 long.
PERSON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$")
MAX_NOTE = 1000
MAX_DAYS = 366
_COLUMNS = ("excuse_id, person_id, kind, date_from, date_to, note, created_at, created_by, "
            "sent_at, withdrawn_at, withdrawn_by, withdrawal_sent_at")


class ExcuseError(EdgeError, ValueError):
    """An excuse that cannot be recorded; ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownExcuse(ExcuseError, LookupError):
    """No excuse of that ``excuse_id`` on this device."""


@dataclass(frozen=True)
class Excuse:
    excuse_id: str
    person_id: str
    kind: str
    date_from: date
    date_to: date
    note: str
    created_at: str
    created_by: str
    sent_at: str | None = None
    withdrawn_at: str | None = None
    withdrawn_by: str | None = None
    withdrawal_sent_at: str | None = None

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    def covers(self, day: date) -> bool:
        """Whether this excuse decides ``day`` (a withdrawn one decides none)."""
        return not self.is_withdrawn and self.date_from <= day <= self.date_to

    def payload(self) -> dict[str, Any]:
        """The item of ``POST /excuses`` and of ``POST /excuses/withdraw`` (docs/SYNC_API.md)."""
        return {"excuse_id": self.excuse_id, "person_id": self.person_id, "kind": self.kind,
                "date_from": self.date_from.isoformat(), "date_to": self.date_to.isoformat(),
                "note": self.note}


def _excuse(row: tuple[Any, ...]) -> Excuse:
    values = list(row)
    values[3] = date.fromisoformat(values[3])
    values[4] = date.fromisoformat(values[4])
    return Excuse(*values)


def add_excuse(db: sqlite_utils.Database, *, person_id: str, kind: str, date_from: date,
               date_to: date, note: str, created_by: str,
               now: datetime | None = None) -> Excuse:
    """Record an excuse (checked first; raises :class:`ExcuseError` naming the field)."""
    if not PERSON_ID.match(person_id):
        raise ExcuseError("person_id", f"{person_id!r} is not a person id")
    if kind not in KINDS:
        raise ExcuseError("kind", f"must be one of {', '.join(KINDS)}")
    if date_to < date_from:
        raise ExcuseError("date_to", "is before date_from")
    if (date_to - date_from).days >= MAX_DAYS:
        raise ExcuseError("date_to", f"an excuse covers at most {MAX_DAYS} days")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ExcuseError("note", f"at most {MAX_NOTE} characters")
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(
        timespec="microseconds")
    excuse = Excuse(str(uuid.uuid4()), person_id, kind, date_from, date_to, note, stamp,
                    created_by)
    with immediate(db) as conn:
        conn.execute(
            "INSERT INTO excuses (excuse_id, person_id, kind, date_from, date_to, note, "
            "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [excuse.excuse_id, person_id, kind, date_from.isoformat(), date_to.isoformat(),
             note, stamp, created_by])
    return excuse


def withdraw_excuse(db: sqlite_utils.Database, excuse_id: str, *, withdrawn_by: str,
                    now: datetime | None = None) -> Excuse:
    """Withdraw an excuse: it stops counting here at once and its withdrawal waits to be
    sent. Raises :class:`UnknownExcuse` for an unknown ``excuse_id`` and
    :class:`ExcuseError` (field ``excuse_id``) for one already withdrawn."""
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(
        timespec="microseconds")
    with immediate(db) as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM excuses WHERE excuse_id = ?",
                           [excuse_id]).fetchone()
        if row is None:
            raise UnknownExcuse("excuse_id", f"no excuse {excuse_id!r} on this device")
        excuse = _excuse(row)
        if excuse.is_withdrawn:
            raise ExcuseError("excuse_id", f"already withdrawn at {excuse.withdrawn_at}")
        conn.execute("UPDATE excuses SET withdrawn_at = ?, withdrawn_by = ? WHERE excuse_id = ?",
                     [stamp, withdrawn_by, excuse_id])
    return replace(excuse, withdrawn_at=stamp, withdrawn_by=withdrawn_by)


def excuses_between(db: sqlite_utils.Database, first: date, last: date) -> list[Excuse]:
    """Excuses (not withdrawn) that cover any day from ``first`` to ``last``, oldest first."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM excuses WHERE date_from <= ? AND date_to >= ? "
        "AND withdrawn_at IS NULL ORDER BY created_at, rowid",
        [last.isoformat(), first.isoformat()]).fetchall()
    return [_excuse(r) for r in rows]


def excuse_by_person(excuses: Iterable[Excuse], day: date) -> dict[str, Excuse]:
    """Each person's excuse for ``day``; the one recorded last wins (withdrawn ones never)."""
    found: dict[str, Excuse] = {}
    for excuse in excuses:
        if excuse.covers(day):
            found[excuse.person_id] = excuse
    return found


def recent_excuses(db: sqlite_utils.Database, *, since: date, limit: int = 200) -> list[Excuse]:
    """Excuses still running on or after ``since``, newest first, withdrawn ones too."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM excuses WHERE date_to >= ? "
        "ORDER BY created_at DESC, rowid DESC LIMIT ?",
        [since.isoformat(), limit]).fetchall()
    return [_excuse(r) for r in rows]


def unsent_excuses(db: sqlite_utils.Database, limit: int = 500) -> list[Excuse]:
    """Excuses the server has not acknowledged, oldest first; never a withdrawn one (its
    withdrawal carries it: :func:`unsent_withdrawals`)."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM excuses WHERE sent_at IS NULL AND withdrawn_at IS NULL "
        "ORDER BY created_at, rowid LIMIT ?", [limit]).fetchall()
    return [_excuse(r) for r in rows]


def unsent_withdrawals(db: sqlite_utils.Database, limit: int = 500) -> list[Excuse]:
    """Withdrawn excuses whose withdrawal the server has not acknowledged, oldest first."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM excuses WHERE withdrawn_at IS NOT NULL "
        "AND withdrawal_sent_at IS NULL ORDER BY withdrawn_at, rowid LIMIT ?",
        [limit]).fetchall()
    return [_excuse(r) for r in rows]


def waiting_count(db: sqlite_utils.Database) -> int:
    """Excuses and withdrawals waiting to be sent (the page's service box)."""
    return db.conn.execute(
        "SELECT count(*) FROM excuses WHERE (sent_at IS NULL AND withdrawn_at IS NULL) "
        "OR (withdrawn_at IS NOT NULL AND withdrawal_sent_at IS NULL)").fetchone()[0]


def mark_excuses_sent(db: sqlite_utils.Database, excuse_ids: list[str],
                      when: datetime | None = None) -> int:
    """Note that the server has these excuses; returns how many were newly marked."""
    return _mark_sent(db, "sent_at", "", excuse_ids, when)


def mark_withdrawals_sent(db: sqlite_utils.Database, excuse_ids: list[str],
                          when: datetime | None = None) -> int:
    """Note that the server has these withdrawals; returns how many were newly marked."""
    return _mark_sent(db, "withdrawal_sent_at", "AND withdrawn_at IS NOT NULL ", excuse_ids,
                      when)


def _mark_sent(db: sqlite_utils.Database, column: str, condition: str, excuse_ids: list[str],
               when: datetime | None) -> int:
    if not excuse_ids:
        return 0
    stamp = (when or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    with immediate(db) as conn:
        return sum(conn.execute(
            f"UPDATE excuses SET {column} = ? WHERE excuse_id = ? {condition}"
            f"AND {column} IS NULL", [stamp, excuse_id]).rowcount for excuse_id in excuse_ids)


def days_of(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
