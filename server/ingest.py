"""Storing a batch of taps: idempotent, all or nothing, with clock correction.

One call of :func:`ingest_taps` runs inside the caller's transaction:

1. every tap naming another device refuses the whole batch (403);
2. repeats inside the batch are sorted out in memory (a second copy is a
   ``duplicate``, a different tap with the same ``event_id`` or ``seq`` a
   ``conflict``);
3. the device row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
   ``BEGIN IMMEDIATE`` already serialises writers), so pushes of one device
   are applied one after the other;
4. the batch's ``clock`` becomes an anchor, the anchors near the batch's
   ``mono_ns`` are read in one query and every tap is corrected
   (:mod:`server.clock`);
5. one ``INSERT … ON CONFLICT DO NOTHING … RETURNING event_id`` stores the
   new taps; whatever it skipped is looked up in one query and answered
   ``duplicate`` (same content) or ``conflict`` (kept in ``tap_conflicts``);
6. the device's ``highest_seq`` and missing ranges are updated.

Two identical batches arriving at once (two workers) therefore store each
tap once: the unique constraints decide, and the loser sees duplicates.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from server.clock import Anchor, AnchorIndex, TapTime, parse_timestamp
from server.db import insert_for
from server.queue import queue_days
from server.devices import clock_offset_ms, record_anchor
from server.errors import ApiError
from server.schema import clock_anchors, devices, tap_conflicts, taps

ACCEPTED, DUPLICATE, CONFLICT = "accepted", "duplicate", "conflict"
#: Fields that make a tap's content; a repeat must match all of them to be a duplicate.
CONTENT_FIELDS = ("device_id", "seq", "card_uid", "tapped_at", "boot_id", "mono_ns",
                  "clock_synced", "reader", "verdict")
MISSING_REPLY_LIMIT = 100


@dataclass
class IngestResult:
    results: list[dict[str, Any]]
    highest_seq: int
    missing_seq: list[list[int]]
    counts: dict[str, int] = field(default_factory=dict)


# -- sequence bookkeeping (pure) ----------------------------------------------------------
def update_missing(missing: Iterable[Sequence[int]], highest: int,
                   received: Iterable[int]) -> tuple[list[list[int]], int]:
    """The ranges of ``seq`` never received, after ``received`` arrived.

    ``missing`` are the sorted, disjoint ranges ``[first, last]`` below
    ``highest``; seqs start at 1. Returns the new ranges and highest seq.
    """
    seqs = sorted(set(received))
    if not seqs:
        return [list(r) for r in missing], highest
    ranges = [(int(lo), int(hi)) for lo, hi in missing]
    new_highest = max(highest, seqs[-1])
    if new_highest > highest:
        ranges.append((highest + 1, new_highest))
    out: list[list[int]] = []
    for lo, hi in ranges:
        i = bisect.bisect_left(seqs, lo)
        start = lo
        while i < len(seqs) and seqs[i] <= hi:
            if seqs[i] > start:
                out.append([start, seqs[i] - 1])
            start = seqs[i] + 1
            i += 1
        if start <= hi:
            out.append([start, hi])
    return out, new_highest


# -- anchors -----------------------------------------------------------------------------------
def load_anchors(conn: Connection, device_id: str,
                 ranges: dict[str, tuple[int, int]]) -> list[Anchor]:
    """Every anchor a tap of each boot within ``(lowest, highest)`` mono_ns could need.

    Those inside the range, plus the nearest one below and above it: the
    nearest anchor of any tap in the range is among them. One query.
    """
    if not ranges:
        return []
    a = clock_anchors.c
    cols = (a.id, a.boot_id, a.mono_ns, a.server_time)
    parts: list[Any] = []
    for boot_id, (lo, hi) in ranges.items():
        def base() -> Any:
            return sa.select(*cols).where(a.device_id == device_id, a.boot_id == boot_id)
        below = base().where(a.mono_ns < lo).order_by(a.mono_ns.desc()).limit(1).subquery()
        above = base().where(a.mono_ns > hi).order_by(a.mono_ns.asc()).limit(1).subquery()
        parts += [base().where(a.mono_ns.between(lo, hi)), sa.select(*below.c),
                  sa.select(*above.c)]
    rows = conn.execute(sa.union_all(*parts)).all()
    return [Anchor(boot_id=r.boot_id, mono_ns=r.mono_ns, server_time=r.server_time, id=r.id)
            for r in rows]


def reevaluate_boot(conn: Connection, device_id: str, boot_id: str) -> int:
    """Correct again the taps of this boot that had no anchor yet; returns how many changed."""
    t = taps.c
    rows = conn.execute(sa.select(t.id, t.mono_ns, t.tapped_at_utc, t.clock_synced)
                        .where(t.device_id == device_id, t.boot_id == boot_id,
                               t.clock_anchor_id.is_(None))).all()
    if not rows:
        return 0
    monos = [r.mono_ns for r in rows]
    index = AnchorIndex(load_anchors(conn, device_id, {boot_id: (min(monos), max(monos))}))
    updates = []
    for r in rows:
        fix = index.correct(TapTime(boot_id, r.mono_ns, r.tapped_at_utc, r.clock_synced))
        if fix.anchor is not None:
            updates.append({"b_id": r.id, "b_corrected": fix.corrected_at,
                            "b_status": fix.clock_status, "b_anchor": fix.anchor.id})
    if updates:
        conn.execute(taps.update().where(t.id == sa.bindparam("b_id")).values(
            corrected_at=sa.bindparam("b_corrected"), clock_status=sa.bindparam("b_status"),
            clock_anchor_id=sa.bindparam("b_anchor")), updates)
    return len(updates)


# -- the batch -------------------------------------------------------------------------------
def _row(device_id: str, tap: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    tapped = parse_timestamp(tap["tapped_at"])
    return {
        "event_id": tap["event_id"],
        "device_id": device_id,
        "seq": int(tap["seq"]),
        "card_uid": tap["card_uid"],
        "tapped_at": tap["tapped_at"],
        "tapped_at_utc": tapped.astimezone(timezone.utc),
        "boot_id": tap["boot_id"],
        "mono_ns": int(tap["mono_ns"]),
        "clock_synced": bool(tap["clock_synced"]),
        "reader": tap.get("reader") or "",
        "verdict": tap["verdict"],
        "received_at": received_at,
    }


def _same(a: dict[str, Any], b: Any) -> bool:
    get = b.get if isinstance(b, dict) else lambda k: getattr(b, k)
    return all(a[k] == get(k) for k in CONTENT_FIELDS)


def _raw_hash(raw: dict[str, Any]) -> str:
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def refuse_foreign_taps(device_id: str, batch: list[dict[str, Any]]) -> None:
    for i, tap in enumerate(batch):
        named = tap.get("device_id")
        if named is not None and named != device_id:
            raise ApiError(403, "forbidden",
                           f"taps[{i}].device_id {named!r} is not this device ({device_id}); "
                           f"a device pushes only its own taps: nothing was stored",
                           details=[{"path": f"taps[{i}].device_id",
                                     "message": "not the device of this token"}])


def ingest_taps(conn: Connection, device_id: str, body: dict[str, Any], received_at: datetime,
                *, anchor_interval_s: float = 0.0) -> IngestResult:
    """Store a validated ``POST /taps`` body for ``device_id`` in the caller's transaction."""
    batch: list[dict[str, Any]] = body["taps"]
    refuse_foreign_taps(device_id, batch)
    rows = [_row(device_id, tap, received_at) for tap in batch]

    status: list[str | None] = [None] * len(rows)
    repeats: dict[int, int] = {}  # index -> index of the same tap earlier in the batch
    conflicts: dict[int, str] = {}  # index -> reason
    first_event: dict[str, int] = {}
    first_seq: dict[int, int] = {}
    candidates: list[int] = []
    for i, row in enumerate(rows):
        earlier = first_event.get(row["event_id"])
        if earlier is not None:
            if _same(rows[earlier], row):
                repeats[i] = earlier
            else:
                conflicts[i] = f"event_id repeated in the batch (taps[{earlier}]) with other content"
            continue
        earlier = first_seq.get(row["seq"])
        if earlier is not None:
            conflicts[i] = f"seq {row['seq']} repeated in the batch (taps[{earlier}])"
            continue
        first_event[row["event_id"]] = i
        first_seq[row["seq"]] = i
        candidates.append(i)

    device = conn.execute(sa.select(devices.c.highest_seq, devices.c.missing_seq,
                                    devices.c.site_code)
                          .where(devices.c.device_id == device_id).with_for_update()).one()
    device_update: dict[str, Any] = {"last_seen_at": received_at}
    clock = body.get("clock")
    if clock:
        anchor_id = record_anchor(conn, device_id, clock, received_at, source="taps",
                                  min_interval_s=anchor_interval_s)
        if anchor_id is not None:
            reevaluate_boot(conn, device_id, clock["boot_id"])
        device_update["clock_offset_ms"] = clock_offset_ms(clock, received_at)

    spans: dict[str, tuple[int, int]] = {}
    for i in candidates:
        boot, mono = rows[i]["boot_id"], rows[i]["mono_ns"]
        lo, hi = spans.get(boot, (mono, mono))
        spans[boot] = (min(lo, mono), max(hi, mono))
    index = AnchorIndex(load_anchors(conn, device_id, spans))
    for i in candidates:
        row = rows[i]
        fix = index.correct(TapTime(row["boot_id"], row["mono_ns"], row["tapped_at_utc"],
                                    row["clock_synced"]))
        row["corrected_at"] = fix.corrected_at
        row["clock_status"] = fix.clock_status
        row["clock_anchor_id"] = fix.anchor.id if fix.anchor else None
        row["site_code"] = device.site_code

    inserted = _insert_new(conn, [rows[i] for i in candidates])
    if inserted:
        queue_days(conn, device.site_code,
                   (rows[i]["corrected_at"] for i in candidates
                    if rows[i]["event_id"] in inserted), reason="taps")
    leftovers = [i for i in candidates if rows[i]["event_id"] not in inserted]
    if leftovers:
        _explain_skipped(conn, device_id, rows, leftovers, status, conflicts)
    for i in candidates:
        if status[i] is None and i not in conflicts:
            status[i] = ACCEPTED
    for i in conflicts:
        status[i] = CONFLICT
    for i, earlier in repeats.items():
        status[i] = DUPLICATE if status[earlier] in (ACCEPTED, DUPLICATE) else CONFLICT

    if conflicts:
        quarantine = [{"device_id": device_id, "event_id": rows[i]["event_id"],
                       "seq": rows[i]["seq"], "reason": reason[:300], "raw": batch[i],
                       "raw_sha256": _raw_hash(batch[i]), "received_at": received_at}
                      for i, reason in conflicts.items()]
        conn.execute(insert_for(conn, tap_conflicts).on_conflict_do_nothing(), quarantine)

    missing, highest = update_missing(device.missing_seq or [], device.highest_seq,
                                      (row["seq"] for row in rows))
    device_update.update(highest_seq=highest, missing_seq=missing)
    conn.execute(devices.update().where(devices.c.device_id == device_id)
                 .values(**device_update))

    results = [{"event_id": row["event_id"], "seq": row["seq"], "status": status[i]}
               for i, row in enumerate(rows)]
    counts = {s: status.count(s) for s in (ACCEPTED, DUPLICATE, CONFLICT)}
    return IngestResult(results, highest, missing[:MISSING_REPLY_LIMIT], counts)


#: Columns of ``taps`` written by the ingest, with their PostgreSQL array types.
_PG_COLUMNS = (("event_id", "varchar"), ("device_id", "varchar"), ("seq", "bigint"),
               ("card_uid", "varchar"), ("tapped_at", "varchar"),
               ("tapped_at_utc", "timestamptz"), ("boot_id", "varchar"), ("mono_ns", "bigint"),
               ("clock_synced", "boolean"), ("reader", "varchar"), ("verdict", "varchar"),
               ("received_at", "timestamptz"), ("corrected_at", "timestamptz"),
               ("clock_status", "varchar"), ("clock_anchor_id", "bigint"),
               ("site_code", "varchar"))
_PG_INSERT = sa.text(
    f"INSERT INTO taps ({', '.join(c for c, _ in _PG_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _PG_COLUMNS)}) "
    f"ON CONFLICT DO NOTHING RETURNING event_id")


def _insert_new(conn: Connection, new_rows: list[dict[str, Any]]) -> set[str]:
    """INSERT … ON CONFLICT DO NOTHING … RETURNING event_id for all rows in one statement.

    PostgreSQL gets one array per column (``unnest``): one short statement
    whatever the batch size, where a VALUES list of 15 000 placeholders costs
    psycopg more to prepare than the server takes to insert it. SQLite gets
    SQLAlchemy's multi-row VALUES ("insertmanyvalues").
    """
    if not new_rows:
        return set()
    if conn.dialect.name == "postgresql":
        params = {c: [row[c] for row in new_rows] for c, _ in _PG_COLUMNS}
        return set(conn.execute(_PG_INSERT, params).scalars())
    stmt = insert_for(conn, taps).on_conflict_do_nothing().returning(taps.c.event_id)
    return set(conn.execute(stmt, new_rows).scalars())


def _in(conn: Connection, column: Any, values: list[Any], item_type: Any) -> Any:
    """``column IN (values)``; one array parameter on PostgreSQL instead of one per value."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(item_type)))
    return column.in_(values)


def _explain_skipped(conn: Connection, device_id: str, rows: list[dict[str, Any]],
                     leftovers: list[int], status: list[str | None],
                     conflicts: dict[int, str]) -> None:
    """Sort the taps the INSERT skipped into duplicates and conflicts (one query)."""
    t = taps.c
    events = [rows[i]["event_id"] for i in leftovers]
    seqs = [rows[i]["seq"] for i in leftovers]
    cols = [t.event_id, *(getattr(t, f) for f in CONTENT_FIELDS if f != "seq"), t.seq]
    stored = conn.execute(sa.select(*cols).where(sa.or_(
        _in(conn, t.event_id, events, sa.String()),
        sa.and_(t.device_id == device_id, _in(conn, t.seq, seqs, sa.BigInteger()))))).all()
    by_event = {r.event_id: r for r in stored}
    by_seq = {r.seq: r for r in stored if r.device_id == device_id}
    for i in leftovers:
        row = rows[i]
        same_event = by_event.get(row["event_id"])
        if same_event is not None:
            if _same(row, same_event):
                status[i] = DUPLICATE
            elif same_event.device_id != device_id:
                conflicts[i] = "event_id already stored for another device"
            else:
                conflicts[i] = (f"event_id already stored with other content "
                                f"(seq {same_event.seq})")
            continue
        same_seq = by_seq.get(row["seq"])
        if same_seq is not None:
            conflicts[i] = f"seq {row['seq']} already stored as event_id {same_seq.event_id}"
        else:  # pragma: no cover - rows are never deleted, so something must have matched
            conflicts[i] = "refused by a unique constraint"
