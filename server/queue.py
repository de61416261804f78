"""The reconciliation queue: site days whose attendance must be (re)computed.

Whatever can change a day's attendance puts that site day here, in its own
transaction: new taps (:mod:`server.ingest`), excuses, registry and calendar
changes, a day that came out "pending". :mod:`server.reconcile` takes days off
the queue. Queueing is an upsert, so a day queued twice is reconciled once.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Iterable
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.db import insert_for, utcnow
from server.schema import reconcile_queue, sites


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_days(moments: Iterable[datetime], timezone: str) -> set[date]:
    """The local dates, in ``timezone`` (IANA name), of aware ``moments``."""
    zone = _zone(timezone)
    return {moment.astimezone(zone).date() for moment in moments}


def queue_site_days(conn: Connection, site_code: str, days: Iterable[date],
                    reason: str, *, now: datetime | None = None) -> int:
    """Queue ``days`` of ``site_code``; returns how many rows were given."""
    return queue_pairs(conn, ((site_code, day) for day in days), reason, now=now)


def queue_pairs(conn: Connection, pairs: Iterable[tuple[str, date]], reason: str, *,
                now: datetime | None = None) -> int:
    """Queue (site code, day) ``pairs``, replacing the reason and time of those already
    queued; returns how many rows were given."""
    queued_at = now or utcnow()
    rows = [{"site_code": site_code, "day": day, "reason": reason[:32], "queued_at": queued_at}
            for site_code, day in sorted(set(pairs))]
    if rows:
        stmt = insert_for(conn, reconcile_queue)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[reconcile_queue.c.site_code, reconcile_queue.c.day],
            set_={"reason": stmt.excluded.reason, "queued_at": stmt.excluded.queued_at}), rows)
    return len(rows)


def queue_days(conn: Connection, site_code: str, moments: Iterable[datetime],
               reason: str) -> int:
    """Queue the local days (in the site's time zone) on which ``moments`` fall."""
    moments = list(moments)
    if not moments:
        return 0
    timezone = conn.execute(sa.select(sites.c.timezone)
                            .where(sites.c.code == site_code)).scalar_one()
    return queue_site_days(conn, site_code, local_days(moments, timezone), reason)


def queued(conn: Connection) -> list[tuple[str, date]]:
    """Everything in the queue, oldest day first."""
    q = reconcile_queue.c
    return [(r.site_code, r.day) for r in conn.execute(
        sa.select(q.site_code, q.day).order_by(q.day, q.site_code))]
