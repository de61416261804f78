"""Card requests made on the operator's page: bind a new card, report a card lost.

Each request changes the roster cache at once, in the same transaction that
queues it, so the gate obeys it from the next tap on; the sync worker then
sends it to the server (``POST /api/v1/cards/requests``, idempotent by
``request_id``) and stores the server's answer per request.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlite_utils

from edge.errors import EdgeError
from edge.outbox import immediate
from edge.rules import REFUSED_STATUSES
from hardware.uid import is_random_uid, normalise_uid

BIND = "bind"
LOST = "lost"
RESULTS = ("applied", "duplicate", "rejected")
_COLUMNS = "request_id, kind, card_uid, person_id, requested_at, created_by, sent_at, result, error"


class CardRequestError(EdgeError, ValueError):
    """A card request that cannot be made (card already bound, unknown person, ...)."""


@dataclass(frozen=True)
class CardRequest:
    request_id: str
    kind: str
    card_uid: str
    person_id: str | None
    requested_at: str
    created_by: str
    sent_at: str | None = None
    result: str | None = None
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        """The item of ``POST /cards/requests``: a lost card is sent without its holder."""
        return {"request_id": self.request_id, "kind": self.kind, "card_uid": self.card_uid,
                "person_id": self.person_id if self.kind == BIND else None,
                "requested_at": self.requested_at}


def _now(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(
        timespec="seconds")


def _person(conn: sqlite3.Connection, person_id: str) -> tuple[str, str, str] | None:
    """(name, kind, group) of a person from the people table, else from the roster."""
    row = conn.execute("SELECT name, kind, group_name FROM people WHERE person_id = ?",
                       [person_id]).fetchone()
    if row is None:
        row = conn.execute("SELECT name, kind, group_name FROM roster WHERE person_id = ? "
                           "ORDER BY updated_at DESC LIMIT 1", [person_id]).fetchone()
    return tuple(row) if row else None  # type: ignore[return-value]


def apply_to_roster(conn: sqlite3.Connection, kind: str, card_uid: str,
                    person_id: str | None, now: datetime | None = None) -> None:
    """Make the roster cache say what the request says (inside the caller's transaction)."""
    stamp = _now(now)
    if kind == LOST:
        conn.execute("UPDATE roster SET status = 'lost', updated_at = ? WHERE card_uid = ?",
                     [stamp, card_uid])
        return
    assert person_id is not None
    name, person_kind, group = _person(conn, person_id) or ("", "", "")
    conn.execute(
        "INSERT INTO roster (card_uid, person_id, name, kind, group_name, status, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 'active', ?) ON CONFLICT (card_uid) DO UPDATE SET "
        "person_id = excluded.person_id, name = excluded.name, kind = excluded.kind, "
        "group_name = excluded.group_name, status = 'active', updated_at = excluded.updated_at",
        [card_uid, person_id, name, person_kind, group, stamp])


def _queue(conn: sqlite3.Connection, kind: str, card_uid: str, person_id: str | None,
           created_by: str, now: datetime | None) -> CardRequest:
    request = CardRequest(str(uuid.uuid4()), kind, card_uid, person_id,
                          (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
                          .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                          created_by)
    conn.execute(f"INSERT INTO card_requests ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, "
                 "NULL, NULL)",
                 [request.request_id, kind, card_uid, person_id, request.requested_at,
                  created_by])
    apply_to_roster(conn, kind, card_uid, person_id, now)
    return request


def bind_card(db: sqlite_utils.Database, card_uid: str, person_id: str, created_by: str,
              now: datetime | None = None) -> CardRequest:
    """Give a card that is not in the roster to a person, here and now; queue the request."""
    uid = normalise_uid(card_uid)
    if is_random_uid(uid):
        raise CardRequestError(f"{uid} is a random (per-session) UID: it cannot be a card")
    with immediate(db) as conn:
        if _person(conn, person_id) is None:
            raise CardRequestError(f"no person {person_id!r} on this device")
        held = conn.execute("SELECT person_id, status FROM roster WHERE card_uid = ?",
                            [uid]).fetchone()
        if held is not None:
            holder, status = held
            state = "refused here" if status in REFUSED_STATUSES else "in use"
            raise CardRequestError(f"card {uid} already belongs to {holder} ({status}, {state})")
        return _queue(conn, BIND, uid, person_id, created_by, now)


def report_lost(db: sqlite_utils.Database, card_uid: str, created_by: str,
                now: datetime | None = None) -> CardRequest:
    """Mark a card of the roster lost (refused from the next tap on); queue the request."""
    uid = normalise_uid(card_uid)
    with immediate(db) as conn:
        held = conn.execute("SELECT person_id, status FROM roster WHERE card_uid = ?",
                            [uid]).fetchone()
        if held is None:
            raise CardRequestError(f"card {uid} is not in this device's roster")
        if held[1] == LOST:
            raise CardRequestError(f"card {uid} is already reported lost")
        return _queue(conn, LOST, uid, held[0], created_by, now)


def recent_requests(db: sqlite_utils.Database, limit: int = 50) -> list[CardRequest]:
    rows = db.conn.execute(f"SELECT {_COLUMNS} FROM card_requests "
                           "ORDER BY requested_at DESC, rowid DESC LIMIT ?", [limit]).fetchall()
    return [CardRequest(*r) for r in rows]


def unsent_requests(db: sqlite_utils.Database, limit: int = 500) -> list[CardRequest]:
    rows = db.conn.execute(f"SELECT {_COLUMNS} FROM card_requests WHERE sent_at IS NULL "
                           "ORDER BY requested_at, rowid LIMIT ?", [limit]).fetchall()
    return [CardRequest(*r) for r in rows]


def record_results(db: sqlite_utils.Database, sent: list[CardRequest], reply: dict[str, Any],
                   when: datetime | None = None) -> dict[str, str]:
    """Store the server's answer for each sent request it names; returns {request_id: status}.

    Requests the reply does not name (or names with an unknown status) stay
    unsent and go again with the next round. A duplicate whose first delivery
    was refused (``"outcome": "rejected"``) counts as rejected. A rejected *bind* is taken back
    from the roster cache (the server decides who holds a card); a rejected
    *lost* report leaves the card refused here, the safer side.
    """
    results = reply.get("results")
    if not isinstance(results, list):
        raise ValueError("reply to POST /cards/requests has no results list")
    by_id = {r.request_id: r for r in sent}
    stamp = (when or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    done: dict[str, str] = {}
    with immediate(db) as conn:
        for item in results:
            if not isinstance(item, dict):
                continue
            request = by_id.get(item.get("request_id"))  # type: ignore[arg-type]
            status = item.get("status")
            if request is None or status not in RESULTS:
                continue
            if status == "duplicate" and item.get("outcome") == "rejected":
                status = "rejected"  # sent before, and refused then
            error = item.get("error")
            conn.execute("UPDATE card_requests SET sent_at = ?, result = ?, error = ? "
                         "WHERE request_id = ? AND sent_at IS NULL",
                         [stamp, status, str(error)[:500] if error else None,
                          request.request_id])
            if status == "rejected" and request.kind == BIND:
                conn.execute("DELETE FROM roster WHERE card_uid = ? AND person_id = ?",
                             [request.card_uid, request.person_id])
            done[request.request_id] = status
    return done
