"""Excuse records (sakit, izin, dinas luar, cuti): idempotent by ``excuse_id``.

The first record stored under an ``excuse_id`` stays; a repeat is answered
``duplicate`` whatever it contains (the contract has no conflict status for
excuses), and a repeat with different content is logged.

An excuse can be withdrawn (:func:`withdraw_excuses`) by the site that
recorded it (its devices and its operator key) or by Diskominfo. It stays
stored, marked withdrawn, and no longer decides any day; the days it
covered are reconciled again. A withdrawal names the whole excuse, so one
the server never received (its push was cut off) is stored already withdrawn
and a late push of it is a ``duplicate`` that never applies.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.db import insert_for
from server.errors import ApiError
from server.schema import excuses, people, person_sites

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Who sent the excuses: a device (its id and site) or an API key (an operator's, with its
    site, or Diskominfo's, without)."""

    site_code: str | None
    device_id: str | None = None
    operator: str | None = None


def _row(item: dict[str, Any], index: int, source: Source, received_at: datetime,
         batch: str = "excuses") -> dict[str, Any]:
    start, end = date.fromisoformat(item["date_from"]), date.fromisoformat(item["date_to"])
    if end < start:
        raise ApiError(400, "validation_error",
                       f"{batch}[{index}].date_to: {item['date_to']} is before date_from "
                       f"{item['date_from']}",
                       details=[{"path": f"{batch}[{index}].date_to",
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


_CONTENT = ("person_id", "kind", "date_from", "date_to", "note")


def _log_differences(conn: Connection, rows: list[dict[str, Any]],
                     stored: dict[str, Any] | None = None) -> None:
    """Warn of ``rows`` sent again with other content than the stored excuse (``stored``:
    those excuses already read, by id; else they are read here)."""
    if stored is None:
        e = excuses.c
        stored = {r.excuse_id: r for r in conn.execute(
            sa.select(e.excuse_id, *(getattr(e, f) for f in _CONTENT))
            .where(e.excuse_id.in_([row["excuse_id"] for row in rows])))}
    for row in rows:
        old = stored.get(row["excuse_id"])
        if old is not None and any(getattr(old, f) != row[f] for f in _CONTENT):
            log.warning("excuse %s sent again with other content; the first one is kept",
                        row["excuse_id"])


def _forbidden(details: list[dict[str, str]], nothing: str) -> ApiError:
    """The 403 naming the first refused item (and how many more), ``details`` for each."""
    return ApiError(403, "forbidden", f"{details[0]['path']}: {details[0]['message']}"
                    + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
                    + f"; {nothing}", details=details[:100])


def withdraw_excuses(conn: Connection, items: list[dict[str, Any]], source: Source,
                     withdrawn_at: datetime, *,
                     check_new: Callable[[list[int]], None] | None = None
                     ) -> list[dict[str, str]]:
    """Withdraw the excuses ``items`` (the excuses themselves, as pushed) in the caller's
    transaction; returns the per-item results (``withdrawn`` or ``duplicate``).

    A source with a site may withdraw only excuses recorded for that site: any
    other stored one refuses the whole batch (403, nothing changed). Items the
    server does not have are stored already withdrawn, after ``check_new`` (given
    their indexes: an operator key's check that the people are of its site).
    """
    e = excuses.c
    rows = [_row(item, i, source, withdrawn_at, "withdrawals") for i, item in enumerate(items)]
    ids = sorted({row["excuse_id"] for row in rows})
    stored = {r.excuse_id: r for r in conn.execute(
        sa.select(e.excuse_id, e.person_id, e.kind, e.date_from, e.date_to, e.note,
                  e.site_code, e.withdrawn_at).where(e.excuse_id.in_(ids)))}
    if source.site_code is not None:
        details = [{"path": f"withdrawals[{i}].excuse_id",
                    "message": f"excuse {row['excuse_id']} was not recorded for site "
                               f"{source.site_code}"}
                   for i, row in enumerate(rows) if row["excuse_id"] in stored
                   and stored[row["excuse_id"]].site_code != source.site_code]
        if details:
            raise _forbidden(details, "nothing withdrawn")
    new = [i for i, item in enumerate(items) if item["excuse_id"] not in stored]
    if new and check_new is not None:
        check_new(new)

    by = source.device_id or source.operator
    results, done, queued, unknown = [], set(), [], {}
    for row in rows:
        excuse_id = row["excuse_id"]
        old = stored.get(excuse_id)
        withdrawn = excuse_id not in done and (old is None or old.withdrawn_at is None)
        done.add(excuse_id)
        results.append({"excuse_id": excuse_id,
                        "status": "withdrawn" if withdrawn else "duplicate"})
        if not withdrawn:
            continue
        if old is None:
            unknown[excuse_id] = {**row, "withdrawn_at": withdrawn_at, "withdrawn_by": by}
        else:
            queued.append(old._asdict())
    if stored:
        _log_differences(conn, [row for row in rows if row["excuse_id"] in stored], stored)
    if queued:
        conn.execute(excuses.update().where(e.excuse_id == sa.bindparam("b_id"))
                     .values(withdrawn_at=withdrawn_at, withdrawn_by=by),
                     [{"b_id": old["excuse_id"]} for old in queued])
    if unknown:
        # Stored already withdrawn: a late push of the same excuse is then a duplicate. Should
        # that push have been stored meanwhile (PostgreSQL: another transaction), it is
        # withdrawn all the same, and its days are queued below.
        stmt = insert_for(conn, excuses)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[e.excuse_id],
            set_={"withdrawn_at": stmt.excluded.withdrawn_at,
                  "withdrawn_by": stmt.excluded.withdrawn_by},
            where=e.withdrawn_at.is_(None)), list(unknown.values()))
    if queued or unknown:
        # The days the excuses decided are decided again without them.
        from server.reconcile import queue_excuse_days

        queue_excuse_days(conn, queued + list(unknown.values()), now=withdrawn_at)
    return results


def check_people_of_site(conn: Connection, items: list[dict[str, Any]], site_code: str, *,
                          batch: str = "excuses", only: set[int] | None = None,
                          nothing: str = "nothing stored") -> None:
    """403 unless every excuse's person (of the items at indexes ``only``, default all) is a
    person of ``site_code``: registered there now, or assigned there on a day the excuse
    covers. The error's details name each other item (``excuses[1].person_id``)."""
    checked = [item if only is None or i in only else None for i, item in enumerate(items)]
    ids = {item["person_id"] for item in checked if item is not None}
    here = set(conn.execute(sa.select(people.c.person_id).where(
        people.c.person_id.in_(ids), people.c.site_code == site_code)).scalars())
    ps = person_sites.c
    spans: dict[str, list[tuple[date, date | None]]] = defaultdict(list)
    for row in conn.execute(sa.select(ps.person_id, ps.valid_from, ps.valid_to).where(
            ps.person_id.in_(ids - here), ps.site_code == site_code)):
        spans[row.person_id].append((row.valid_from, row.valid_to))
    details = []
    for index, item in enumerate(checked):
        if item is None:
            continue
        person = item["person_id"]
        if person in here:
            continue
        start, end = date.fromisoformat(item["date_from"]), date.fromisoformat(item["date_to"])
        if end < start:
            continue  # refused as a bad request by store_excuses, which says why
        if any(first <= end and (last is None or start <= last)
               for first, last in spans.get(person, ())):
            continue
        details.append({"path": f"{batch}[{index}].person_id",
                        "message": f"{person} is not a person of site {site_code}"})
    if details:
        raise _forbidden(details, nothing)
