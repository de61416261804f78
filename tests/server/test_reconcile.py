"""Reconciliation of site days (server.reconcile) on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from server.attendance_rules import RulesConfig
from server.calendar_store import add_calendar_day, scope_for
from server.reconcile import DaySummary, catch_up, reconcile_day, reconcile_days, run_queue
from server.schema import reconcile_queue, sites
from tests.server.attendance_data import (LONG_AGO, MONDAY, UTC, WIB, WIT, add_device,
                                          add_person, add_site, anomaly_rows, at, attendance,
                                          card_state, counter, insert_taps, queue_rows)
from tests.syspart import need

CONFIG = RulesConfig()
TUESDAY, WEDNESDAY = MONDAY + timedelta(days=1), MONDAY + timedelta(days=2)


def run(engine, site: str, day: date, now: datetime | None = None) -> DaySummary:
    """Reconcile one site day, by default as seen the next day at noon."""
    with engine.begin() as conn:
        return reconcile_day(conn, site, day, config=CONFIG,
                             now=now or at(day + timedelta(days=1), "12:00"))


@pytest.fixture
def office(engine):
    """An office (ASN schedule, 07:30-16:00 Monday-Thursday) in WIB with a synced device."""
    add_site(engine, "OPD-1", kind="office")
    device = add_device(engine, "OPD-1", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    return "OPD-1", device


@pytest.mark.parametrize("late, code", [(0, None), (1, "TL1"), (30, "TL1"), (31, "TL2")])
def test_minutes_late_and_brackets(engine, office, late, code):
    site, device = office
    add_person(engine, "P1", site, card="C1")
    check_in = at(MONDAY, "07:30") + timedelta(minutes=late, seconds=40)
    insert_taps(engine, device, [("C1", check_in), ("C1", at(MONDAY, "16:02"))])
    summary = run(engine, site, MONDAY)
    row = attendance(engine)[("P1", MONDAY)]
    assert (row["status"], row["late_code"], row["minutes_late"]) == ("H", code, late)
    assert (row["early_code"], row["minutes_early"], row["tap_count"]) == (None, 0, 2)
    assert row["check_in"] == check_in and row["check_out"] == at(MONDAY, "16:02")
    assert summary.statuses == {"H": 1} and not summary.pending
    assert summary.codes == ({code: 1} if code else {})


def test_statuses_of_a_day(engine, office):
    site, device = office
    for pid, card in (("ontime", "C1"), ("early", "C2"), ("absent", "C3"), ("nocard", None)):
        add_person(engine, pid, site, card=card, group="Bidang Umum")
    insert_taps(engine, device, [("C1", at(MONDAY, "07:10")), ("C1", at(MONDAY, "16:30")),
                                 ("C2", at(MONDAY, "07:29")), ("C2", at(MONDAY, "14:59"))])
    summary = run(engine, site, MONDAY)
    rows = attendance(engine, day=MONDAY)
    assert rows[("early", MONDAY)]["early_code"] == "PSW3"  # 61 minutes early
    assert rows[("early", MONDAY)]["minutes_early"] == 61
    assert {pid: r["status"] for (pid, _), r in rows.items()} == {
        "ontime": "H", "early": "H", "absent": "A", "nocard": "A"}
    assert {r["group_name"] for r in rows.values()} == {"Bidang Umum"}
    assert summary.expected == 4 and summary.statuses == {"H": 2, "A": 2}
    assert summary.codes == {"PSW3": 1}


def test_school_schedule_starts_at_seven(engine):
    add_site(engine, "20401234", kind="school")
    device = add_device(engine, "20401234", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    add_person(engine, "0051234567", "20401234", card="C1", kind="student", group="4A")
    insert_taps(engine, device, [("C1", at(MONDAY, "07:20")), ("C1", at(MONDAY, "14:05"))])
    run(engine, "20401234", MONDAY)
    row = attendance(engine)[("0051234567", MONDAY)]
    assert (row["late_code"], row["minutes_late"], row["group_name"]) == ("TL1", 20, "4A")


def test_idempotent_second_run_changes_nothing(engine, office):
    site, device = office
    add_person(engine, "P1", site, card="C1")
    add_person(engine, "P2", site, card="C2")
    insert_taps(engine, device, [("C1", at(MONDAY, "07:45")), ("C1", at(MONDAY, "16:00")),
                                 ("UNKNOWN1", at(MONDAY, "08:00"))])
    first = run(engine, site, MONDAY)
    rows, found, value = attendance(engine), anomaly_rows(engine), counter(engine)
    second = run(engine, site, MONDAY)
    assert first.changed == 2 and first.version == value
    assert (second.changed, second.removed, second.anomalies_changed, second.version) == (
        0, 0, 0, None)
    assert attendance(engine) == rows and anomaly_rows(engine) == found
    assert counter(engine) == value
    assert second.statuses == first.statuses and second.anomalies == {"unknown_card": 1}


def test_late_tap_changes_the_row_and_its_version(engine, office):
    site, device = office
    add_person(engine, "P1", site, card="C1")
    add_person(engine, "P2", site, card="C2")
    insert_taps(engine, device, [("C1", at(MONDAY, "07:20")), ("C2", at(MONDAY, "07:25")),
                                 ("C2", at(MONDAY, "16:05"))])
    run(engine, site, MONDAY)
    before = attendance(engine)
    assert before[("P1", MONDAY)]["early_code"] == "PSW4"  # no check-out (yet)
    insert_taps(engine, device, [("C1", at(MONDAY, "16:10"))])  # arrives a day late
    summary = run(engine, site, MONDAY)
    after = attendance(engine)
    assert summary.changed == 1
    assert after[("P1", MONDAY)]["check_out"] == at(MONDAY, "16:10")
    assert after[("P1", MONDAY)]["early_code"] is None
    assert after[("P1", MONDAY)]["version"] > before[("P1", MONDAY)]["version"]
    assert after[("P2", MONDAY)] == before[("P2", MONDAY)]


def test_transfer_mid_month(engine):
    for code in ("OLD", "NEW"):
        add_site(engine, code)
    add_person(engine, "P1", "OLD", until=TUESDAY, card="C1")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO person_sites (person_id, site_code, group_name, "
                             "valid_from) VALUES ('P1', 'NEW', '', :d)"), {"d": WEDNESDAY})
    old_device = add_device(engine, "OLD", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    new_device = add_device(engine, "NEW", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    insert_taps(engine, old_device, [("C1", at(TUESDAY, "07:20")), ("C1", at(TUESDAY, "16:01")),
                                     ("C1", at(WEDNESDAY, "07:00"))])  # a visit to the old office
    insert_taps(engine, new_device, [("C1", at(WEDNESDAY, "07:40")),
                                     ("C1", at(WEDNESDAY, "16:00"))])
    site_days = [(s, d) for s in ("OLD", "NEW") for d in (TUESDAY, WEDNESDAY)]
    summaries = reconcile_days(engine, site_days, config=CONFIG,
                               now=at(WEDNESDAY + timedelta(days=1), "12:00"))
    assert {(s.site_code, s.day): s.expected for s in summaries} == {
        ("OLD", TUESDAY): 1, ("NEW", TUESDAY): 0, ("OLD", WEDNESDAY): 0, ("NEW", WEDNESDAY): 1}
    rows = attendance(engine)
    assert rows[("P1", TUESDAY)]["site_code"] == "OLD" and rows[("P1", TUESDAY)]["status"] == "H"
    assert rows[("P1", WEDNESDAY)]["site_code"] == "NEW"
    assert rows[("P1", WEDNESDAY)]["late_code"] == "TL1"  # the visit elsewhere does not count
    [visit] = anomaly_rows(engine, site="OLD", day=WEDNESDAY)
    assert visit["kind"] == "other_site" and visit["person_id"] == "P1"
    assert visit["detail"]["home_site"] == "NEW"
    # Reconciling the old site's Wednesday again keeps the row the new site made.
    run(engine, "OLD", WEDNESDAY)
    assert attendance(engine)[("P1", WEDNESDAY)]["site_code"] == "NEW"


def test_a_retroactive_transfer_moves_and_removes_rows(engine):
    for code in ("OLD", "NEW"):
        add_site(engine, code)
    add_person(engine, "P1", "OLD")
    run(engine, "OLD", MONDAY)
    assert attendance(engine)[("P1", MONDAY)]["site_code"] == "OLD"
    with engine.begin() as conn:  # the registry learns that P1 moved on Monday
        conn.execute(sa.text("UPDATE person_sites SET valid_to = :d WHERE person_id = 'P1'"),
                     {"d": MONDAY - timedelta(days=1)})
        conn.execute(sa.text("INSERT INTO person_sites (person_id, site_code, group_name, "
                             "valid_from) VALUES ('P1', 'NEW', '', :d)"), {"d": MONDAY})
    summary = run(engine, "OLD", MONDAY)
    assert summary.removed == 1 and attendance(engine) == {}
    run(engine, "NEW", MONDAY)
    assert attendance(engine)[("P1", MONDAY)]["site_code"] == "NEW"


@pytest.mark.parametrize("split", [False, True])
def test_a_transfer_reconciled_at_the_new_site_first_takes_over_the_row(engine, split):
    """The new site has no row of P1 yet, but the old site still keeps one: the plain
    insert meets it and the row is overwritten instead (one row per person and day)."""
    for code in ("OLD", "NEW"):
        add_site(engine, code)
    device = add_device(engine, "NEW", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    add_person(engine, "P1", "OLD", card="C1")
    add_person(engine, "P2", "NEW")
    run(engine, "OLD", MONDAY)
    with engine.begin() as conn:  # the registry learns that P1 moved on Monday
        conn.execute(sa.text("INSERT INTO person_sites (person_id, site_code, group_name, "
                             "valid_from) VALUES ('P1', 'NEW', '', :d)"), {"d": MONDAY})
    insert_taps(engine, device, [("C1", at(MONDAY, "07:20")), ("C1", at(MONDAY, "16:05"))])
    if split:
        [summary] = reconcile_days(engine, [("NEW", MONDAY)], config=CONFIG,
                                   now=at(TUESDAY, "12:00"))
    else:
        summary = run(engine, "NEW", MONDAY)
    assert summary.changed == 2 and summary.statuses == {"H": 1, "A": 1}
    rows = attendance(engine)
    assert (rows[("P1", MONDAY)]["site_code"], rows[("P1", MONDAY)]["status"]) == ("NEW", "H")
    assert rows[("P2", MONDAY)]["status"] == "A"
    assert run(engine, "NEW", MONDAY).changed == 0


def test_two_assignments_on_one_day_count_at_the_newer(engine):
    for code in ("SCHOOL-A", "SCHOOL-B"):
        add_site(engine, code)
    add_person(engine, "T1", "SCHOOL-A", since=date(2026, 7, 1))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO person_sites (person_id, site_code, group_name, "
                             "valid_from) VALUES ('T1', 'SCHOOL-B', '', :d)"),
                     {"d": date(2026, 9, 1)})
    run(engine, "SCHOOL-A", MONDAY)
    run(engine, "SCHOOL-B", MONDAY)
    assert [r["site_code"] for r in attendance(engine).values()] == ["SCHOOL-B"]


def test_lost_card_counts_before_the_loss_only(engine, office):
    site, device = office
    add_person(engine, "P1", site, card="C1")
    card_state(engine, "C1", "P1", "lost", at(TUESDAY, "10:00"))
    late_out, morning = at(TUESDAY, "16:05"), at(WEDNESDAY, "07:20")
    insert_taps(engine, device, [("C1", at(MONDAY, "07:25")), ("C1", at(MONDAY, "16:00")),
                                 ("C1", at(TUESDAY, "07:25")), ("C1", late_out),
                                 ("C1", morning), ("C1", at(WEDNESDAY, "16:10"))])
    reconcile_days(engine, [(site, d) for d in (MONDAY, TUESDAY, WEDNESDAY)], config=CONFIG,
                   now=at(WEDNESDAY + timedelta(days=1), "12:00"))
    rows = attendance(engine)
    assert rows[("P1", MONDAY)]["status"] == "H" and rows[("P1", MONDAY)]["tap_count"] == 2
    tuesday = rows[("P1", TUESDAY)]
    assert (tuesday["status"], tuesday["tap_count"], tuesday["check_out"]) == ("H", 1, None)
    assert tuesday["early_code"] == "PSW4"
    assert rows[("P1", WEDNESDAY)]["status"] == "A"
    assert anomaly_rows(engine, day=MONDAY) == []
    [lost] = anomaly_rows(engine, day=TUESDAY)
    assert (lost["kind"], lost["card_uid"], lost["person_id"]) == ("lost_card_used", "C1", "P1")
    assert lost["detail"]["count"] == 1
    assert [a["kind"] for a in anomaly_rows(engine, day=WEDNESDAY)] == ["lost_card_used"]


def test_card_validity_dates_block_taps_outside_them(engine, office):
    site, device = office
    add_person(engine, "P1", site, card="C1")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cards SET valid_to = :d WHERE card_uid = 'C1'"),
                     {"d": MONDAY})
    insert_taps(engine, device, [("C1", at(MONDAY, "07:25")), ("C1", at(MONDAY, "16:00")),
                                 ("C1", at(TUESDAY, "07:25")), ("C1", at(TUESDAY, "16:00"))])
    reconcile_days(engine, [(site, MONDAY), (site, TUESDAY)], config=CONFIG,
                   now=at(WEDNESDAY, "12:00"))
    rows = attendance(engine)
    assert (rows[("P1", MONDAY)]["status"], rows[("P1", TUESDAY)]["status"]) == ("H", "A")
    assert [a["kind"] for a in anomaly_rows(engine, day=TUESDAY)] == ["blocked_card_used"]


def test_roster_card_without_history_counts(engine, office):
    site, device = office
    add_person(engine, "P1", site)
    with engine.begin() as conn:  # what `attendance-server roster import` leaves behind
        conn.execute(sa.text("INSERT INTO cards (card_uid, person_id, status, site_code, "
                             "changed_version, updated_at) VALUES ('C9', 'P1', 'active', "
                             ":site, 1, :now)"), {"site": site, "now": LONG_AGO})
    insert_taps(engine, device, [("C9", at(MONDAY, "07:25")), ("C9", at(MONDAY, "16:00"))])
    run(engine, site, MONDAY)
    assert attendance(engine)[("P1", MONDAY)]["status"] == "H"


def test_holidays_weekends_and_overrides(engine, office):
    site, device = office
    add_person(engine, "P1", site, card="C1")
    with engine.begin() as conn:
        conn.execute(sites.update().where(sites.c.code == site).values(regency="Kota Pekanbaru"))
        add_calendar_day(conn, WEDNESDAY, "holiday", name="HUT Kota",
                         scope=scope_for(regency="Kota Pekanbaru"))
        add_calendar_day(conn, date(2026, 12, 24), "workday", scope=scope_for(site=site))
    insert_taps(engine, device, [("C1", at(WEDNESDAY, "08:00"))])
    christmas, saturday = date(2026, 12, 25), MONDAY + timedelta(days=5)
    days = [WEDNESDAY, saturday, date(2026, 12, 24), christmas]
    summaries = {s.day: s for s in reconcile_days(engine, [(site, d) for d in days],
                                                  config=CONFIG, now=at(christmas, "23:00")
                                                  + timedelta(days=1))}
    rows = attendance(engine)
    assert rows[("P1", WEDNESDAY)]["status"] == "LIBUR"
    assert rows[("P1", WEDNESDAY)]["check_in"] == at(WEDNESDAY, "08:00")  # still recorded
    assert summaries[WEDNESDAY].reason == "holiday: HUT Kota"
    assert (rows[("P1", saturday)]["status"], summaries[saturday].reason) == ("LIBUR", "weekend")
    assert summaries[christmas].reason.startswith("holiday: ")
    assert rows[("P1", date(2026, 12, 24))]["status"] == "A"  # cuti bersama worked here


@pytest.mark.parametrize("zone, tz", [("Asia/Jakarta", WIB), ("Asia/Jayapura", WIT)])
def test_tap_after_local_midnight_belongs_to_the_next_day(engine, zone, tz):
    add_site(engine, "S1", tz=zone)
    device = add_device(engine, "S1", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    add_person(engine, "P1", "S1", card="C1")
    night = at(TUESDAY, "00:30", tz)  # still Monday in UTC
    assert night.date() == MONDAY
    insert_taps(engine, device, [("C1", at(MONDAY, "23:50", tz)), ("C1", night)])
    reconcile_days(engine, [("S1", MONDAY), ("S1", TUESDAY)], config=CONFIG,
                   now=at(WEDNESDAY, "12:00", tz))
    rows = attendance(engine)
    assert rows[("P1", MONDAY)]["tap_count"] == 1
    assert rows[("P1", MONDAY)]["check_out"] == at(MONDAY, "23:50", tz)
    assert rows[("P1", TUESDAY)]["tap_count"] == 1
    assert rows[("P1", TUESDAY)]["check_in"] == night


def test_excuses_give_their_status(engine, office):
    site, device = office
    add_site(engine, "ELSEWHERE")
    for pid in ("sick", "leave", "trip", "there"):
        add_person(engine, pid, site, card=f"C-{pid}")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO excuses (excuse_id, person_id, kind, date_from, date_to, site_code, "
            "received_at) VALUES (:id, :p, :k, :f, :t, :s, :now)"), [
            {"id": "e1", "p": "sick", "k": "sakit", "f": MONDAY, "t": TUESDAY, "s": site,
             "now": LONG_AGO},
            {"id": "e2", "p": "leave", "k": "cuti", "f": MONDAY, "t": MONDAY, "s": None,
             "now": LONG_AGO},
            {"id": "e3", "p": "trip", "k": "dinas_luar", "f": MONDAY, "t": MONDAY,
             "s": "ELSEWHERE", "now": LONG_AGO},  # entered at another site: not for this one
            {"id": "e4", "p": "there", "k": "izin", "f": MONDAY, "t": MONDAY, "s": site,
             "now": LONG_AGO}])
    insert_taps(engine, device, [("C-there", at(MONDAY, "07:20")),
                                 ("C-there", at(MONDAY, "12:00"))])
    run(engine, site, MONDAY)
    rows = {pid: r for (pid, _), r in attendance(engine).items()}
    assert (rows["sick"]["status"], rows["sick"]["excuse_id"]) == ("S", "e1")
    assert rows["leave"]["status"] == "C"
    assert rows["trip"]["status"] == "A"
    assert (rows["there"]["status"], rows["there"]["flags"]) == ("I", ["tap_during_excuse"])
    assert rows["there"]["late_code"] is None and rows["there"]["tap_count"] == 2


def test_pending_while_the_day_runs(engine, office):
    site, device = office
    add_person(engine, "P1", site, card="C1")
    add_person(engine, "P2", site, card="C2")
    insert_taps(engine, device, [("C1", at(MONDAY, "07:40"))])
    summary = run(engine, site, MONDAY, now=at(MONDAY, "10:00"))
    rows = attendance(engine)
    assert summary.pending and summary.waiting_for == ()
    assert rows[("P1", MONDAY)]["status"] == "PENDING"
    assert rows[("P1", MONDAY)]["late_code"] == "TL1"  # provisional
    assert rows[("P2", MONDAY)]["status"] == "PENDING"
    assert queue_rows(engine) == {(site, MONDAY): "pending"}
    done = run(engine, site, MONDAY, now=at(TUESDAY, "00:01"))
    assert not done.pending and queue_rows(engine) == {}
    rows = attendance(engine)
    assert (rows[("P1", MONDAY)]["status"], rows[("P2", MONDAY)]["status"]) == ("H", "A")


@pytest.mark.parametrize("device, pending", [
    ({"last_seen_at": None, "backlog": None}, True),
    ({"last_seen_at": "day", "backlog": 0}, True),  # seen during the day only
    ({"last_seen_at": "after", "backlog": 4}, True),
    ({"last_seen_at": "after", "backlog": None}, True),
    ({"last_seen_at": "after", "backlog": 0}, False),
    ({"last_seen_at": "after", "backlog": 4, "oldest_unsent_at": "after"}, False),
    ({"last_seen_at": "after", "backlog": 4, "oldest_unsent_at": "day"}, True),
    ({"last_seen_at": None, "backlog": None, "revoked_at": "day"}, False),
    ({"last_seen_at": None, "backlog": None, "created_at": "after"}, False),
])
def test_pending_while_a_device_may_hold_taps(engine, device, pending):
    add_site(engine, "S1")
    add_person(engine, "P1", "S1")
    moments = {"day": at(MONDAY, "12:00"), "after": at(TUESDAY, "06:00"), None: None}
    values = {k: (moments[v] if k != "backlog" else v) for k, v in device.items()}
    device_id = add_device(engine, "S1", **values)
    summary = run(engine, "S1", MONDAY, now=at(TUESDAY, "12:00"))
    assert summary.pending is pending
    assert summary.waiting_for == ((device_id,) if pending else ())
    assert attendance(engine)[("P1", MONDAY)]["status"] == ("PENDING" if pending else "A")
    assert queue_rows(engine) == ({("S1", MONDAY): "pending"} if pending else {})


def test_anomalies_of_each_kind_are_stored_once(engine):
    add_site(engine, "HERE")
    add_site(engine, "THERE")
    here = add_device(engine, "HERE", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    there = add_device(engine, "THERE", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    add_person(engine, "P-LOST", "HERE", card="LOST")
    card_state(engine, "LOST", "P-LOST", "lost", LONG_AGO + timedelta(days=1))
    add_person(engine, "P-BLOCK", "HERE", card="BLOCKED")
    card_state(engine, "BLOCKED", "P-BLOCK", "blocked", LONG_AGO + timedelta(days=1))
    add_person(engine, "P-VISIT", "THERE", card="VISITOR")
    add_person(engine, "P-FAST", "HERE", card="FAST")
    add_person(engine, "P-MANY", "HERE", card="MANY")
    add_person(engine, "P-CLOCK", "HERE", card="CLOCK")
    insert_taps(engine, here, [("NOBODY", at(MONDAY, "07:00")), ("NOBODY", at(MONDAY, "07:01")),
                               ("LOST", at(MONDAY, "07:02")), ("BLOCKED", at(MONDAY, "07:03")),
                               ("VISITOR", at(MONDAY, "09:00")), ("FAST", at(MONDAY, "07:20")),
                               ("FAST", at(MONDAY, "16:00"))]
                + [("MANY", at(MONDAY, f"{h:02d}:00")) for h in range(8, 15)])
    insert_taps(engine, there, [("FAST", at(MONDAY, "07:05"))])
    insert_taps(engine, here, [("CLOCK", at(MONDAY, "07:15"))], clock_status="unverified")
    first = run(engine, "HERE", MONDAY)
    stored = anomaly_rows(engine, site="HERE", day=MONDAY)
    kinds = sorted(a["kind"] for a in stored)
    assert kinds == sorted(["unknown_card", "lost_card_used", "blocked_card_used", "other_site",
                            "impossible_travel", "many_taps", "unverified_clock"])
    assert first.anomalies == {kind: 1 for kind in kinds}
    unknown = next(a for a in stored if a["kind"] == "unknown_card")
    assert unknown["detail"]["count"] == 2 and unknown["person_id"] is None
    travel = next(a for a in stored if a["kind"] == "impossible_travel")
    assert (travel["card_uid"], travel["detail"]["from_site"]) == ("FAST", "THERE")
    second = run(engine, "HERE", MONDAY)
    assert anomaly_rows(engine, site="HERE", day=MONDAY) == stored
    assert second.anomalies_changed == 0
    # The unknown card is registered (issued before the taps): its anomaly goes away.
    add_person(engine, "P-NEW", None, card="NOBODY")
    third = run(engine, "HERE", MONDAY)
    assert "unknown_card" not in {a["kind"] for a in anomaly_rows(engine, site="HERE")}
    assert third.anomalies_changed == 1
    # At the other site the traveller belongs elsewhere; the travel is reported where it ended.
    assert run(engine, "THERE", MONDAY).anomalies == {"other_site": 1}


def test_reconcile_days_whole_city_in_one_batch(engine):
    for n in range(3):
        add_site(engine, f"S{n}")
        add_device(engine, f"S{n}", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
        add_person(engine, f"P{n}", f"S{n}", card=f"C{n}")
    device = add_device(engine, "S1", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    insert_taps(engine, device, [("C1", at(MONDAY, "07:00")), ("C1", at(MONDAY, "17:00")),
                                 ("C0", at(MONDAY, "09:00"))])
    every = reconcile_days(engine, [(f"S{n}", MONDAY) for n in range(3)], config=CONFIG,
                           now=at(TUESDAY, "12:00"))
    single = [run(engine, f"S{n}", MONDAY) for n in range(3)]
    assert [s.statuses for s in every] == [s.statuses for s in single]
    assert [s.anomalies for s in every] == [{}, {"other_site": 1}, {}]
    assert [s.changed for s in single] == [0, 0, 0]


def test_read_outside_the_write_lock_notices_another_writer(engine, office, monkeypatch):
    import server.reconcile as reconcile

    site, device = office
    add_person(engine, "P1", site, card="C1")
    insert_taps(engine, device, [("C1", at(MONDAY, "07:40")), ("C1", at(MONDAY, "16:00"))])
    decide = reconcile._decide
    calls = []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # another reconciler writes between our read and our write
            run(engine, site, MONDAY)
        return decide(*args, **kwargs)

    monkeypatch.setattr(reconcile, "_decide", racing)
    [summary] = reconcile_days(engine, [(site, MONDAY)], config=CONFIG,
                               now=at(TUESDAY, "12:00"))
    assert len(calls) == 3  # ours, the other reconciler's, ours again after reading again
    assert summary.changed == 0 and counter(engine) == 1


def test_parallel_workers_give_the_same_result(engine, monkeypatch):
    import server.reconcile as reconcile

    # The app's login limiter starts a short timer thread; other threads (left running by
    # another test) would make this skip, and in CI fail.
    deadline = time.monotonic() + 2
    while not reconcile._fork_is_safe() and time.monotonic() < deadline:
        time.sleep(0.02)
    need(reconcile._fork_is_safe(), "other threads run in this test process ("
         + ", ".join(t.name for t in threading.enumerate()) + "): no worker processes")
    monkeypatch.setattr(reconcile, "PARALLEL_MIN_SITES", 2)
    for n in range(4):
        add_site(engine, f"S{n}")
        device = add_device(engine, f"S{n}", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
        add_person(engine, f"P{n}", f"S{n}", card=f"C{n}")
        insert_taps(engine, device, [(f"C{n}", at(MONDAY, f"07:{40 + n}"))])
    summaries = reconcile_days(engine, [(f"S{n}", MONDAY) for n in range(4)], config=CONFIG,
                               now=at(TUESDAY, "12:00"), workers=2, batch_sites=1)
    assert [s.site_code for s in summaries] == ["S0", "S1", "S2", "S3"]
    assert [row["late_code"] for row in attendance(engine).values()] == ["TL1"] * 4
    again = [run(engine, f"S{n}", MONDAY) for n in range(4)]
    assert [s.changed for s in again] == [0, 0, 0, 0]


def test_run_queue_takes_days_off_the_queue(engine, office):
    site, _ = office
    add_person(engine, "P1", site)
    today = date(2026, 11, 20)
    with engine.begin() as conn:
        conn.execute(reconcile_queue.insert(), [
            {"site_code": site, "day": d, "reason": "taps", "queued_at": LONG_AGO}
            for d in (MONDAY, TUESDAY, today, today + timedelta(days=30))])
    summaries = run_queue(engine, config=CONFIG, now=at(today, "09:00"))
    assert [(s.day, s.pending) for s in summaries] == [
        (MONDAY, False), (TUESDAY, False), (today, True)]
    assert queue_rows(engine) == {(site, today): "pending",
                                  (site, today + timedelta(days=30)): "taps"}
    assert run_queue(engine, config=CONFIG, now=at(today, "09:00"), limit=0) == []


def test_catch_up_queues_ended_days_once(engine):
    add_site(engine, "NEWSITE", created_at=at(MONDAY, "09:00"))
    add_site(engine, "OLDSITE", created_at=datetime(2025, 1, 1, tzinfo=UTC))
    now = at(date(2026, 11, 20), "08:00")  # Friday morning
    queued = catch_up(engine, now=now)
    days = queue_rows(engine)
    assert sorted(d for s, d in days if s == "NEWSITE") == [
        MONDAY + timedelta(days=n) for n in range(4)]
    old = sorted(d for s, d in days if s == "OLDSITE")
    assert old[0] == date(2026, 11, 20) - timedelta(days=62) and old[-1] == date(2026, 11, 19)
    assert queued == len(days)
    with engine.connect() as conn:
        through = dict(conn.execute(sa.select(sites.c.code, sites.c.reconciled_through)).all())
    assert through == {"NEWSITE": date(2026, 11, 19), "OLDSITE": date(2026, 11, 19)}
    assert catch_up(engine, now=now) == 0
    assert catch_up(engine, now=now + timedelta(days=1)) == 2  # Friday ended at both


def test_catch_up_starts_at_the_first_tap_or_assignment(engine):
    add_site(engine, "S1", created_at=at(WEDNESDAY, "09:00"))
    device = add_device(engine, "S1")
    insert_taps(engine, device, [("C1", at(TUESDAY, "08:00"))])
    add_person(engine, "P1", "S1", since=MONDAY)
    catch_up(engine, now=at(date(2026, 11, 20), "08:00"))
    assert min(d for _, d in queue_rows(engine)) == MONDAY


def test_reconciling_an_unknown_site_fails(engine):
    from server.errors import NotFound

    with pytest.raises(NotFound, match="no site 'NOPE'"):
        run(engine, "NOPE", MONDAY)


def test_summary_describes_itself():
    summary = DaySummary("S1", MONDAY, pending=True, workday=True, expected=3,
                         statuses={"H": 2, "PENDING": 1}, codes={"TL1": 1},
                         anomalies={"unknown_card": 1}, changed=3, version=7,
                         waiting_for=("dev_a",))
    text = summary.describe()
    assert text.startswith("S1 2026-11-16: 3 expected [H 2, PENDING 1] codes [TL1 1]")
    assert "1 anomaly [unknown_card 1]" in text and "(version 7)" in text
    assert text.endswith("PENDING: waiting for device(s) dev_a")
    assert summary.to_dict()["day"] == "2026-11-16"
    off = DaySummary("S1", MONDAY, pending=False, workday=False, reason="weekend")
    assert "no work (weekend);" in off.describe()
