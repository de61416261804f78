"""Reconciliation end to end: taps, heartbeats and excuses through the sync API, the queue,
and the background reconciler of the app."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from server.app import create_app
from server.attendance_rules import RulesConfig
from server.db import utcnow
from server.excuses import Source, store_excuses
from server.reconcile import RECONCILER_LOCK, reconcile_days, run_queue
from server.schema import devices
from tests.server.attendance_data import (WIB, WIT, add_person, at, attendance, past_workday,
                                          queue_rows)
from tests.server.helpers import enroll_device, make_site, make_tap
from tests.sync_env import wait_for

CONFIG = RulesConfig()
CARD1, CARD2 = "04A1B2C3D4E5F6", "04A1B2C3D4E5F7"


def local_today(tz=WIB) -> date:
    return utcnow().astimezone(tz).date()


def enrolled_long_ago(engine: Any, device_id: str) -> None:
    """Make the device look enrolled before the days under test (it may hold their taps)."""
    with engine.begin() as conn:
        conn.execute(devices.update().where(devices.c.device_id == device_id)
                     .values(created_at=datetime(2026, 1, 1, tzinfo=WIB)))


def heartbeat(client: Any, device: Any, backlog: int, oldest: datetime | None = None) -> None:
    # A boot of its own: an anchor of the taps' boot would re-date them to "now".
    body = {"boot_id": "boot-heartbeat", "mono_ns": 10**12,
            "wall_time": utcnow().isoformat(), "clock_synced": True, "backlog": backlog,
            "oldest_unsent_at": oldest.isoformat() if oldest else None}
    reply = client.post("/api/v1/heartbeat", json=body, headers=device.headers)
    assert reply.status_code == 200, reply.json


def push(client: Any, device: Any, taps: list[tuple[str, datetime]], first_seq: int = 1,
         tz=WIB) -> None:
    batch = [make_tap(first_seq + i, device.device_id, card_uid=card,
                      tapped_at=moment.astimezone(tz).isoformat(timespec="milliseconds"))
             for i, (card, moment) in enumerate(taps)]
    reply = client.post("/api/v1/taps", json={"taps": batch}, headers=device.headers)
    assert reply.status_code == 200, reply.json
    assert {r["status"] for r in reply.json["results"]} == {"accepted"}


def test_excuse_from_a_device_makes_the_day_sakit(client, engine, device):
    day = past_workday(local_today())
    add_person(engine, "P1", device.site, card=CARD1)
    add_person(engine, "P2", device.site, card=CARD2)
    heartbeat(client, device, backlog=0)
    reply = client.post("/api/v1/excuses", headers=device.headers, json={"excuses": [
        {"excuse_id": "ex-1", "person_id": "P1", "kind": "sakit",
         "date_from": day.isoformat(), "date_to": (day + timedelta(days=60)).isoformat()}]})
    assert reply.status_code == 200 and reply.json["results"][0]["status"] == "accepted"
    queued = queue_rows(engine)
    assert (device.site, day) in queued and queued[(device.site, day)] == "excuse"
    assert max(d for _, d in queued) == local_today()  # not the future days of the excuse
    summaries = run_queue(engine, config=CONFIG, now=utcnow())
    rows = attendance(engine, day=day)
    assert (rows[("P1", day)]["status"], rows[("P1", day)]["excuse_id"]) == ("S", "ex-1")
    assert rows[("P2", day)]["status"] == "A"
    assert any(s.day == day and s.statuses == {"A": 1, "S": 1} for s in summaries)
    assert (device.site, day) not in queue_rows(engine)


def test_excuse_without_a_site_queues_the_persons_sites(engine):
    make_site(engine, "OLD")
    make_site(engine, "NEW")
    day = past_workday(local_today(), back=5)
    add_person(engine, "P1", "OLD", until=day)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO person_sites (person_id, site_code, group_name, "
                             "valid_from) VALUES ('P1', 'NEW', '', :d)"),
                     {"d": day + timedelta(days=1)})
        store_excuses(conn, [{"excuse_id": "ex-9", "person_id": "P1", "kind": "dinas_luar",
                              "date_from": day.isoformat(),
                              "date_to": (day + timedelta(days=1)).isoformat()}],
                      Source(site_code=None, operator="diskominfo"), utcnow())
    assert queue_rows(engine) == {("OLD", day): "excuse",
                                  ("NEW", day + timedelta(days=1)): "excuse"}


def test_pending_while_the_device_has_a_backlog_then_resolved(client, engine, device):
    day = past_workday(local_today())
    enrolled_long_ago(engine, device.device_id)
    add_person(engine, "P1", device.site, card=CARD1)
    heartbeat(client, device, backlog=2, oldest=at(day, "07:35"))
    [summary] = reconcile_days(engine, [(device.site, day)], config=CONFIG, now=utcnow())
    assert summary.pending and summary.waiting_for == (device.device_id,)
    assert attendance(engine)[("P1", day)]["status"] == "PENDING"
    assert queue_rows(engine) == {(device.site, day): "pending"}
    assert run_queue(engine, config=CONFIG, now=utcnow())[0].pending  # still waiting

    push(client, device, [(CARD1, at(day, "07:35")), (CARD1, at(day, "16:05"))])
    heartbeat(client, device, backlog=0)
    assert queue_rows(engine) == {(device.site, day): "taps"}
    [summary] = run_queue(engine, config=CONFIG, now=utcnow())
    row = attendance(engine)[("P1", day)]
    assert not summary.pending and summary.changed == 1
    assert (row["status"], row["late_code"], row["tap_count"]) == ("H", "TL1", 2)
    assert queue_rows(engine) == {}


def test_ingest_queues_the_local_day_of_a_tap_after_midnight(client, engine):
    make_site(engine, "PAPUA-1", "SD Jayapura", "Asia/Jayapura")
    papua = enroll_device(client, engine, "PAPUA-1")
    day = past_workday(local_today(WIT), back=3)
    add_person(engine, "P1", "PAPUA-1", card=CARD1)
    heartbeat(client, papua, backlog=0)
    night = at(day, "00:20", WIT)  # the previous day in UTC and in WIB
    push(client, papua, [(CARD1, night)], tz=WIT)
    assert queue_rows(engine) == {("PAPUA-1", day): "taps"}
    run_queue(engine, config=CONFIG, now=utcnow())
    row = attendance(engine)[("P1", day)]
    assert row["check_in"] == night and row["tap_count"] == 1


def test_the_test_app_runs_no_reconciler(app):
    assert "attendance_reconciler" not in app.extensions
    assert app.extensions["attendance_rules"] == RulesConfig()


@pytest.fixture
def reconciling_app(database_url):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "RECONCILE_INTERVAL_SECONDS": 0.2,
                      "ATTENDANCE_RULES": {"late_brackets": [15, 60, 90]}})
    yield app
    app.extensions["attendance_reconciler"].stop()
    app.extensions["attendance"].engine.dispose()


def test_background_thread_reconciles_after_ingest_and_stops(reconciling_app):
    app = reconciling_app
    engine = app.extensions["attendance"].engine
    client = app.test_client()
    reconciler = app.extensions["attendance_reconciler"]
    assert reconciler.running and reconciler.config.late_brackets == (15, 60, 90)
    make_site(engine, "20401234")
    device = enroll_device(client, engine, "20401234")
    day = past_workday(local_today())
    add_person(engine, "P1", "20401234", card=CARD1, since=day - timedelta(days=1))
    heartbeat(client, device, backlog=0)
    push(client, device, [(CARD1, at(day, "07:50")), (CARD1, at(day, "16:00"))])
    def reconciled() -> Any:
        row = attendance(engine).get(("P1", day))
        return row if row is not None and row["status"] == "H" else None

    row = wait_for(reconciled, 30, "the day reconciled", interval=0.05)
    assert (row["status"], row["late_code"]) == ("H", "TL2")  # 20 minutes: the configured brackets
    wait_for(lambda: queue_rows(engine) == {}, 30, "an empty queue", interval=0.05)
    reconciler.stop()
    assert not reconciler.running
    assert "attendance-reconciler" not in {t.name for t in threading.enumerate()}


def test_errors_do_not_end_the_background_thread(reconciling_app, monkeypatch):
    import server.reconcile as reconcile

    reconciler = reconciling_app.extensions["attendance_reconciler"]
    real = reconcile.run_queue
    failures = []

    def flaky(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(reconcile, "run_queue", flaky)
    start = reconciler.passes
    wait_for(lambda: reconciler.passes >= start + 4 and reconciler.last_error is None, 30,
             "four passes without an error", interval=0.05)
    assert len(failures) == 2 and reconciler.running


def test_one_worker_reconciles_at_a_time_on_postgresql(app):
    engine = app.extensions["attendance"].engine
    if engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    from server.reconcile import Reconciler

    reconciler = Reconciler(engine, interval=60, config=CONFIG)
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": RECONCILER_LOCK})
        assert reconciler.run_once() is None  # another worker is at it
        holder.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": RECONCILER_LOCK})
    assert reconciler.run_once() == []


def test_reconciler_refuses_a_zero_interval(engine):
    from server.reconcile import Reconciler

    with pytest.raises(ValueError, match="more than 0"):
        Reconciler(engine, interval=0, config=CONFIG)


def test_wake_runs_the_next_pass_at_once(engine):
    from server.reconcile import Reconciler

    reconciler = Reconciler(engine, interval=3600, config=CONFIG).start()
    try:
        wait_for(lambda: reconciler.passes >= 1, 30, "a first pass", interval=0.05)
        reconciler.wake()
        wait_for(lambda: reconciler.passes >= 2, 10, "a pass on waking", interval=0.05)
    finally:
        reconciler.stop()
    assert not reconciler.running
