"""What the dashboard reads from the database (no Flask): counts per site and day, the
fleet, a page of anomalies, late check-ins. Every function takes the sites the viewer may
see (``sites``: a list of codes, or None for every site) and never reads beyond them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.reports import month_bounds
from server.schema import anomalies, attendance_days, devices, people, sites

#: Kinds of anomaly reconciliation records (docs/DISKOMINFO_API.md).
ANOMALY_KINDS = ("unknown_card", "lost_card_used", "blocked_card_used", "replaced_card_used",
                 "inactive_card_used", "other_site", "impossible_travel", "many_taps",
                 "unverified_clock")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _in_sites(column: Any, codes: Sequence[str] | None) -> Any:
    return sa.true() if codes is None else column.in_(list(codes))


def site_list(conn: Connection, codes: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Code, name, time zone and kind of the sites (all, or ``codes``), by code."""
    s = sites.c
    rows = conn.execute(sa.select(s.code, s.name, s.timezone, s.kind)
                        .where(_in_sites(s.code, codes)).order_by(s.code)).mappings()
    return [dict(r) for r in rows]


def _status_counts(conn: Connection, where: list[Any], keys: Sequence[Any]
                   ) -> dict[tuple[Any, ...], dict[str, int]]:
    """Rows per status (and ``late``/``early``: H days with a late/early code) grouped by
    ``keys``."""
    ad = attendance_days.c
    late = sa.func.count().filter(sa.and_(ad.status == "H", ad.late_code.is_not(None)))
    early = sa.func.count().filter(sa.and_(ad.status == "H", ad.early_code.is_not(None)))
    query = (sa.select(*keys, ad.status, sa.func.count(), late, early).where(*where)
             .group_by(*keys, ad.status))
    out: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in conn.execute(query):
        *key, status, n, n_late, n_early = row
        counts = out[tuple(key)]
        counts[status] += n
        counts["late"] += n_late
        counts["early"] += n_early
        counts["rows"] += n
    return {k: dict(v) for k, v in out.items()}


def day_counts(conn: Connection, day: date, codes: Sequence[str] | None
               ) -> dict[str, dict[str, int]]:
    """Per site: attendance rows of ``day`` per status, plus ``late``, ``early``, ``rows``."""
    ad = attendance_days.c
    found = _status_counts(conn, [ad.day == day, _in_sites(ad.site_code, codes)],
                           [ad.site_code])
    return {key[0]: counts for key, counts in found.items()}


def month_counts(conn: Connection, month: date, codes: Sequence[str] | None, *,
                 kind: str | None = None) -> dict[str, dict[str, int]]:
    """Per site: person-days of the month per status, plus ``late``, ``early``, ``rows``
    and ``people`` (persons with a row); ``kind``: only employees or only students."""
    first, following = month_bounds(month)
    ad = attendance_days.c
    where = [ad.day >= first, ad.day < following, _in_sites(ad.site_code, codes)]
    if kind is not None:
        where.append(ad.person_id.in_(sa.select(people.c.person_id)
                                      .where(people.c.kind == kind)))
    found = {key[0]: counts for key, counts
             in _status_counts(conn, where, [ad.site_code]).items()}
    for code, n in conn.execute(sa.select(ad.site_code, sa.func.count(sa.distinct(ad.person_id)))
                                .where(*where).group_by(ad.site_code)):
        found.setdefault(code, {})["people"] = n
    return found


def daily_counts(conn: Connection, month: date, codes: Sequence[str] | None
                 ) -> dict[date, dict[str, int]]:
    """Per local date of the month: rows per status over the sites (all of ``codes``)."""
    first, following = month_bounds(month)
    ad = attendance_days.c
    where = [ad.day >= first, ad.day < following, _in_sites(ad.site_code, codes)]
    out = {}
    for key, counts in _status_counts(conn, where, [ad.day]).items():
        day = key[0] if isinstance(key[0], date) else date.fromisoformat(str(key[0]))
        out[day] = counts
    return out


def late_check_in_minutes(conn: Connection, month: date, codes: Sequence[str] | None
                          ) -> list[int]:
    """Local minute of the day of every late check-in (H with a late code) in the month."""
    first, following = month_bounds(month)
    ad = attendance_days.c
    query = (sa.select(ad.check_in, sites.c.timezone)
             .join_from(attendance_days, sites, sites.c.code == ad.site_code)
             .where(ad.day >= first, ad.day < following, ad.status == "H",
                    ad.late_code.is_not(None), ad.check_in.is_not(None),
                    _in_sites(ad.site_code, codes)))
    out = []
    for check_in, zone in conn.execute(query):
        local = check_in.astimezone(_zone(zone))
        out.append(local.hour * 60 + local.minute)
    return out


# -- the fleet ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetDevice:
    """A device as the fleet page shows it."""

    device_id: str
    name: str
    site_code: str
    site_name: str
    timezone: str
    last_seen_at: datetime | None
    backlog: int | None
    oldest_unsent_at: datetime | None
    clock_offset_ms: int | None
    reader_ok: bool | None
    readers: list[dict[str, Any]]
    software: str | None
    revoked: bool
    offline: bool
    silent_for: timedelta | None  # since the last heartbeat (None: never seen)

    @property
    def reader_trouble(self) -> bool:
        return not self.revoked and self.reader_ok is False


def fleet(conn: Connection, codes: Sequence[str] | None, *, now: datetime,
          offline_after: timedelta) -> list[FleetDevice]:
    """The devices of the sites, offline ones first (never seen, then longest silent), then
    the others by site and name; revoked devices last."""
    d, s = devices.c, sites.c
    rows = conn.execute(
        sa.select(d.device_id, d.name, d.site_code, s.name.label("site_name"), s.timezone,
                  d.last_seen_at, d.backlog, d.oldest_unsent_at, d.clock_offset_ms,
                  d.reader_ok, d.readers, d.versions, d.revoked_at)
        .join_from(devices, sites, s.code == d.site_code)
        .where(_in_sites(d.site_code, codes))).mappings()
    out = []
    for r in rows:
        silent = now - r["last_seen_at"] if r["last_seen_at"] is not None else None
        revoked = r["revoked_at"] is not None
        versions = r["versions"] or {}
        out.append(FleetDevice(
            device_id=r["device_id"], name=r["name"] or "", site_code=r["site_code"],
            site_name=r["site_name"], timezone=r["timezone"], last_seen_at=r["last_seen_at"],
            backlog=r["backlog"], oldest_unsent_at=r["oldest_unsent_at"],
            clock_offset_ms=r["clock_offset_ms"], reader_ok=r["reader_ok"],
            readers=list(r["readers"] or []),
            software=str(versions.get("software")) if versions.get("software") else None,
            revoked=revoked, offline=not revoked and (silent is None or silent > offline_after),
            silent_for=silent))

    def order(device: FleetDevice) -> tuple[Any, ...]:
        if device.revoked:
            return (2, device.site_code, device.name, device.device_id)
        if device.offline:
            silent = device.silent_for.total_seconds() if device.silent_for else float("inf")
            return (0, -silent, device.site_code, device.device_id)
        return (1, device.site_code, device.name, device.device_id)

    return sorted(out, key=order)


# -- anomalies -------------------------------------------------------------------------------------
def anomaly_page(conn: Connection, codes: Sequence[str] | None, *, site: str | None = None,
                 date_from: date | None = None, date_to: date | None = None,
                 kind: str | None = None, page: int = 1, per_page: int = 50
                 ) -> tuple[list[dict[str, Any]], int]:
    """One page of anomalies, newest day first, and how many match in all."""
    an = anomalies.c
    where = [_in_sites(an.site_code, codes)]
    if site is not None:
        where.append(an.site_code == site)
    if date_from is not None:
        where.append(an.day >= date_from)
    if date_to is not None:
        where.append(an.day <= date_to)
    if kind is not None:
        where.append(an.kind == kind)
    total = conn.execute(sa.select(sa.func.count()).select_from(anomalies).where(*where)
                         ).scalar_one()
    rows = conn.execute(sa.select(anomalies, sites.c.timezone)
                        .join_from(anomalies, sites, sites.c.code == an.site_code)
                        .where(*where)
                        .order_by(an.day.desc(), an.id.desc())
                        .limit(per_page).offset((max(1, page) - 1) * per_page)).mappings()
    return [dict(r) for r in rows], int(total)
