"""Builders of registry and tap rows for the reconciliation tests (plain SQL inserts)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from server import devices as device_registry
from server.schema import (anomalies, attendance_days, card_history, cards, devices, people,
                           person_sites, reconcile_queue, sites, taps)

UTC = timezone.utc
WIB = ZoneInfo("Asia/Jakarta")
WITA = ZoneInfo("Asia/Makassar")
WIT = ZoneInfo("Asia/Jayapura")
#: Monday of a week without national holidays.
MONDAY = date(2026, 11, 16)
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def at(day: date, hhmm: str, tz: ZoneInfo = WIB) -> datetime:
    """``day`` at local ``HH:MM[:SS]`` in ``tz``, as an aware UTC datetime."""
    parts = [int(p) for p in hhmm.split(":")]
    return datetime.combine(day, time(*parts), tzinfo=tz).astimezone(UTC)


def add_site(engine: Any, code: str, *, tz: str = "Asia/Jakarta", kind: str | None = "office",
             regency: str = "", schedule: str | None = None,
             created_at: datetime = LONG_AGO) -> str:
    with engine.begin() as conn:
        device_registry.add_site(conn, code, f"Site {code}", tz)
        conn.execute(sites.update().where(sites.c.code == code).values(
            kind=kind, regency=regency, schedule=schedule, created_at=created_at))
    return code


def assign(engine: Any, person_id: str, site: str, since: date,
           until: date | None = None, group: str = "") -> None:
    with engine.begin() as conn:
        conn.execute(person_sites.insert().values(person_id=person_id, site_code=site,
                                                  group_name=group, valid_from=since,
                                                  valid_to=until))


def card_state(engine: Any, card_uid: str, person_id: str, status: str,
               effective_at: datetime) -> None:
    """Record that ``card_uid`` belongs to ``person_id`` in ``status`` from ``effective_at``."""
    with engine.begin() as conn:
        conn.execute(card_history.insert().values(card_uid=card_uid, person_id=person_id,
                                                  status=status, effective_at=effective_at,
                                                  recorded_at=effective_at))
        values = dict(person_id=person_id, status=status, updated_at=effective_at,
                      changed_version=0)
        exists = conn.execute(sa.select(cards.c.card_uid)
                              .where(cards.c.card_uid == card_uid)).first()
        if exists is None:
            conn.execute(cards.insert().values(card_uid=card_uid, **values))
        else:
            conn.execute(cards.update().where(cards.c.card_uid == card_uid).values(**values))


def add_person(engine: Any, person_id: str, site: str | None, *, since: date = date(2026, 1, 1),
               until: date | None = None, group: str = "", kind: str = "employee",
               card: str | None = None) -> str:
    """A person assigned to ``site`` from ``since``, with an active ``card`` if given."""
    with engine.begin() as conn:
        conn.execute(people.insert().values(person_id=person_id, kind=kind,
                                            name=f"Person {person_id}", site_code=site,
                                            updated_at=LONG_AGO))
    if site is not None:
        assign(engine, person_id, site, since, until, group)
    if card is not None:
        card_state(engine, card, person_id, "active", LONG_AGO)
    return person_id


def add_device(engine: Any, site: str, *, created_at: datetime = LONG_AGO,
               last_seen_at: datetime | None = None, backlog: int | None = 0,
               oldest_unsent_at: datetime | None = None,
               revoked_at: datetime | None = None) -> str:
    """A device row at ``site`` (not enrolled over HTTP: for the pending rules)."""
    device_id = f"dev_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(devices.insert().values(
            device_id=device_id, site_code=site, hardware_id="pi-test",
            token_hash=uuid.uuid4().hex, created_at=created_at, revoked_at=revoked_at,
            last_seen_at=last_seen_at, backlog=backlog, oldest_unsent_at=oldest_unsent_at))
    return device_id


def insert_taps(engine: Any, device_id: str, items: Iterable[tuple[str, datetime]], *,
                clock_status: str = "verified", site: str | None = None) -> list[str]:
    """Store taps ``(card_uid, corrected time)`` of ``device_id`` as the ingest would."""
    with engine.begin() as conn:
        site = site or conn.execute(sa.select(devices.c.site_code)
                                    .where(devices.c.device_id == device_id)).scalar_one()
        seq = conn.execute(sa.select(sa.func.max(taps.c.seq))
                           .where(taps.c.device_id == device_id)).scalar() or 0
        rows = []
        for card_uid, moment in items:
            seq += 1
            rows.append({
                "event_id": str(uuid.uuid4()), "device_id": device_id, "seq": seq,
                "card_uid": card_uid, "tapped_at": moment.isoformat(),
                "tapped_at_utc": moment, "boot_id": "boot-1", "mono_ns": seq * 10**9,
                "clock_synced": clock_status != "unverified", "reader": "gerbang",
                "verdict": "accepted", "received_at": moment, "corrected_at": moment,
                "clock_status": clock_status, "site_code": site})
        if rows:
            conn.execute(taps.insert(), rows)
    return [row["event_id"] for row in rows]


def attendance(engine: Any, *, site: str | None = None, day: date | None = None
               ) -> dict[tuple[str, date], dict[str, Any]]:
    """Stored attendance rows by (person, day)."""
    query = sa.select(attendance_days)
    if site is not None:
        query = query.where(attendance_days.c.site_code == site)
    if day is not None:
        query = query.where(attendance_days.c.day == day)
    with engine.connect() as conn:
        return {(r["person_id"], r["day"]): dict(r) for r in conn.execute(query).mappings()}


def anomaly_rows(engine: Any, *, site: str | None = None,
                 day: date | None = None) -> list[dict[str, Any]]:
    query = sa.select(anomalies).order_by(anomalies.c.kind, anomalies.c.key)
    if site is not None:
        query = query.where(anomalies.c.site_code == site)
    if day is not None:
        query = query.where(anomalies.c.day == day)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def queue_rows(engine: Any) -> dict[tuple[str, date], str]:
    """The reconcile queue as {(site, day): reason}."""
    with engine.connect() as conn:
        return {(r.site_code, r.day): r.reason
                for r in conn.execute(sa.select(reconcile_queue))}


def counter(engine: Any, name: str = "attendance") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT value FROM counters WHERE name = :n"),
                            {"n": name}).scalar_one()


def past_workday(today: date, back: int = 2) -> date:
    """A Monday-Friday date at least ``back`` days before ``today``, not a national holiday."""
    from server.schedule import Calendar

    calendar = Calendar()
    day = today - timedelta(days=back)
    while day.weekday() >= 5 or calendar.holiday_name(day) is not None:
        day -= timedelta(days=1)
    return day
