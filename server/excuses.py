"""Excuse records (sakit, izin, dinas luar, cuti): idempotent by ``excuse_id``.

The first record stored under an ``excuse_id`` stays; a repeat is answered
``duplicate`` whatever it contains (the contract has no conflict status for
excuses), and a repeat with different content is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.db import insert_for
from server.errors import ApiError
from server.schema import excuses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Who sent the excuses: a device (its id and site) or, later, an operator."""

    site_code: str | None
    device_id: str | None = None
    operator: str | None = None


def _row(item: dict[str, Any], index: int, source: Source, received_at: datetime) -> dict[str, Any]:
    start, end = date.fromisoformat(item["date_from"]), date.fromisoformat(item["date_to"])
    if end < start:
        raise ApiError(400, "validation_error",
                       f"excuses[{index}].date_to: {item['date_to']} is before date_from "
                       f"{item['date_from']}",
                       details=[{"path": f"excuses[{index}].date_to",
                                 "message": "is before date_from"}])
    return {"excuse_id": item["excuse_id"], "person_id": item["person_id"],
            "kind": item["kind"], "date_from": start, "date_to": end,
            "note": item.get("note") or "", "site_code": source.site_code,
            "source_device_id": source.device_id, "source_operator": source.operator,
            "received_at": received_at}


def store_excuses(conn: Connection, items: list[dict[str, Any]], source: Source,
                  received_at: datetime) -> list[dict[str, str]]:
    """Store validated excuses in the caller's transaction; returns the per-item results."""
    rows = [_row(item, i, source, received_at) for i, item in enumerate(items)]
    first: dict[str, int] = {}
    unique = []
    for i, row in enumerate(rows):
        if first.setdefault(row["excuse_id"], i) == i:
            unique.append(row)
    stmt = insert_for(conn, excuses).on_conflict_do_nothing().returning(excuses.c.excuse_id)
    inserted = set(conn.execute(stmt, unique).scalars())
    results = []
    for i, row in enumerate(rows):
        new = row["excuse_id"] in inserted and first[row["excuse_id"]] == i
        results.append({"excuse_id": row["excuse_id"],
                        "status": "accepted" if new else "duplicate"})
    # New excuses change the outcome of the days they cover: have those site days reconciled.
    from server.reconcile import queue_excuse_days

    queue_excuse_days(conn, [row for row in unique if row["excuse_id"] in inserted],
                      now=received_at)
    skipped = [row for row in unique if row["excuse_id"] not in inserted]
    if skipped:
        _log_differences(conn, skipped)
    return results


def _log_differences(conn: Connection, rows: list[dict[str, Any]]) -> None:
    e = excuses.c
    fields = ("person_id", "kind", "date_from", "date_to", "note")
    stored = {r.excuse_id: r for r in conn.execute(
        sa.select(e.excuse_id, *(getattr(e, f) for f in fields))
        .where(e.excuse_id.in_([row["excuse_id"] for row in rows])))}
    for row in rows:
        old = stored.get(row["excuse_id"])
        if old is not None and any(getattr(old, f) != row[f] for f in fields):
            log.warning("excuse %s sent again with other content; the first one is kept",
                        row["excuse_id"])
