"""The page's tables in the edge's SQLite file: excuses, card requests, people, a day's sheet."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, time

import pytest

from edge import cards, daily, excuses, operators
from edge.attendance import DayPlan
from edge.clock import FixedClock
from edge.config import WebConfig
from edge.outbox import Outbox, connect, migrations, open_database
from edge.people import Person, replace_people, site_people
from tests.edge_web.conftest import ROSTER

DAY = date(2026, 11, 20)  # a Friday


def local(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm)).astimezone()


def tap(outbox: Outbox, uid: str, when: datetime) -> str:
    # One boot per tap: the taps are compared by their wall times.
    return outbox.record_tap(uid, "sim", FixedClock(when, boot_id=when.isoformat()).now(),
                             60).verdict


def test_m001_is_kept_and_m002_upgrades_an_existing_database(tmp_path):
    path = tmp_path / "old.db"
    db = connect(path)
    migrations.apply(db, stop_before="m002_operator_page")
    db.execute("INSERT INTO taps (event_id, card_uid, tapped_at, tapped_at_utc, boot_id, "
               "mono_ns, clock_synced, reader, verdict) VALUES ('e1', '04A1B2C3', "
               "'2026-11-20T07:00:00.000+07:00', '2026-11-20T00:00:00.000+00:00', 'b', 1, 0, "
               "'sim', 'unknown')")
    db.conn.commit()
    db.close()
    with Outbox(path) as outbox:
        assert [t.event_id for t in outbox.taps()] == ["e1"]
        applied = [m.name for m in migrations.applied(outbox.db)]
        assert applied == ["m001_initial", "m002_operator_page", "m003_excuse_withdrawals"]
        assert {"operators", "excuses", "card_requests", "people"} <= set(
            outbox.db.table_names())


def test_operator_accounts(outbox):
    db = outbox.db
    operators.add_operator(db, "guru.piket", "kata-sandi-1")
    with pytest.raises(operators.OperatorError, match="already exists"):
        operators.add_operator(db, "guru.piket", "kata-sandi-2")
    with pytest.raises(operators.OperatorError, match="at least 8"):
        operators.add_operator(db, "tu", "pendek")
    with pytest.raises(operators.OperatorError, match="username"):
        operators.add_operator(db, "-x y", "kata-sandi-1")
    assert [o.username for o in operators.list_operators(db)] == ["guru.piket"]
    operators.set_password(db, "guru.piket", "kata-sandi-3")
    assert operators.verify_password(db, "guru.piket", "kata-sandi-3")
    assert not operators.verify_password(db, "guru.piket", "kata-sandi-1")
    operators.remove_operator(db, "guru.piket")
    with pytest.raises(operators.OperatorError, match="no operator"):
        operators.remove_operator(db, "guru.piket")


def test_excuses(outbox):
    db = outbox.db
    first = excuses.add_excuse(db, person_id="0051234567", kind="izin", date_from=DAY,
                               date_to=DAY, note="acara keluarga", created_by="guru")
    second = excuses.add_excuse(db, person_id="0051234567", kind="sakit",
                                date_from=date(2026, 11, 19), date_to=date(2026, 11, 21),
                                note=" demam ", created_by="guru")
    assert second.note == "demam"
    found = excuses.excuse_by_person(excuses.excuses_between(db, DAY, DAY), DAY)
    assert found["0051234567"].excuse_id == second.excuse_id  # the later one wins
    assert excuses.excuses_between(db, date(2026, 11, 22), date(2026, 11, 30)) == []
    for kwargs, field in [({"kind": "alpa"}, "kind"), ({"person_id": "x y"}, "person_id"),
                          ({"date_to": date(2026, 11, 1)}, "date_to"),
                          ({"note": "x" * 1001}, "note")]:
        with pytest.raises(excuses.ExcuseError) as caught:
            excuses.add_excuse(db, **{"person_id": "0051234567", "kind": "sakit",
                                      "date_from": DAY, "date_to": DAY, "note": "",
                                      "created_by": "guru", **kwargs})
        assert caught.value.field == field
    assert [e.excuse_id for e in excuses.unsent_excuses(db)] == [first.excuse_id,
                                                                second.excuse_id]
    assert excuses.mark_excuses_sent(db, [first.excuse_id, "no-such-id"]) == 1
    assert excuses.mark_excuses_sent(db, [first.excuse_id]) == 0
    assert [e.excuse_id for e in excuses.unsent_excuses(db)] == [second.excuse_id]
    assert second.payload() == {"excuse_id": second.excuse_id, "person_id": "0051234567",
                                "kind": "sakit", "date_from": "2026-11-19",
                                "date_to": "2026-11-21", "note": "demam"}


def roster_row(db, uid):
    return db.conn.execute("SELECT person_id, status FROM roster WHERE card_uid = ?",
                           [uid]).fetchone()


def test_bind_and_lost_change_the_roster_at_once_and_queue_requests(outbox):
    db = outbox.db
    replace_people(db, [Person("0051234570", "Eka Putri", "student", "VII-B")])
    bound = cards.bind_card(db, "04:c0:ff:ee", "0051234570", "guru")
    assert bound.card_uid == "04C0FFEE" and roster_row(db, "04C0FFEE") == ("0051234570", "active")
    assert outbox.lookup("04C0FFEE").name == "Eka Putri"
    with pytest.raises(cards.CardRequestError, match="already belongs"):
        cards.bind_card(db, "04C0FFEE", "0051234567", "guru")
    with pytest.raises(cards.CardRequestError, match="no person"):
        cards.bind_card(db, "04C0FFEF", "nobody", "guru")
    lost = cards.report_lost(db, "04A1B2C3D4E5F6", "guru")
    assert roster_row(db, "04A1B2C3D4E5F6") == ("0051234567", "lost")
    assert lost.person_id == "0051234567" and lost.payload()["person_id"] is None
    with pytest.raises(cards.CardRequestError, match="already reported lost"):
        cards.report_lost(db, "04A1B2C3D4E5F6", "guru")
    with pytest.raises(cards.CardRequestError, match="not in this device"):
        cards.report_lost(db, "04FFFFFF", "guru")
    assert tap(outbox, "04A1B2C3D4E5F6", local(DAY, 7, 0)) == "blocked"
    assert tap(outbox, "04C0FFEE", local(DAY, 7, 0)) == "accepted"
    assert bound.payload()["requested_at"].endswith("Z")
    assert [r.kind for r in cards.unsent_requests(db)] == ["bind", "lost"]


def test_pending_requests_survive_a_full_roster_from_the_server(outbox):
    db = outbox.db
    cards.bind_card(db, "04C0FFEE", "0051234567", "guru")
    cards.report_lost(db, "8C3F2A11", "guru")
    # A full roster reply that knows neither request yet.
    outbox.apply_roster(ROSTER, [], full=True, cursor="v9")
    assert roster_row(db, "04C0FFEE") == ("0051234567", "active")
    assert roster_row(db, "8C3F2A11")[1] == "lost"
    outbox.replace_roster(ROSTER)  # a CSV load, likewise
    assert roster_row(db, "04C0FFEE") == ("0051234567", "active")


def test_record_results(outbox):
    db = outbox.db
    bind = cards.bind_card(db, "04C0FFEE", "0051234567", "guru")
    other = cards.bind_card(db, "04C0FFEF", "0051234568", "guru")
    lost = cards.report_lost(db, "8C3F2A11", "guru")
    sent = cards.unsent_requests(db)
    done = cards.record_results(db, sent, {"results": [
        {"request_id": bind.request_id, "status": "applied"},
        {"request_id": other.request_id, "status": "rejected", "error": "card of another"},
        {"request_id": "not-sent", "status": "applied"},
        {"request_id": lost.request_id, "status": "maybe"},
    ]})
    assert done == {bind.request_id: "applied", other.request_id: "rejected"}
    assert [r.request_id for r in cards.unsent_requests(db)] == [lost.request_id]
    assert roster_row(db, "04C0FFEF") is None  # a refused bind is taken back
    assert roster_row(db, "04C0FFEE") == ("0051234567", "active")
    stored = {r.request_id: r for r in cards.recent_requests(db)}
    assert stored[other.request_id].error == "card of another"
    with pytest.raises(ValueError):
        cards.record_results(db, sent, {"nope": []})


def test_site_people_is_the_union_of_people_and_roster(outbox):
    db = outbox.db
    replace_people(db, [Person("0051234567", "Siti Aminah", "student", "VII-A"),
                        Person("0051234570", "Eka Putri", "student", "VII-B")])
    people = site_people(db)
    assert [p.person_id for p in people] == [
        "198703152010012003", "0051234568", "0051234567", "0051234569", "0051234570"]
    by_id = {p.person_id: p for p in people}
    assert by_id["0051234570"].cards == ()
    assert by_id["0051234567"].cards == (("04A1B2C3D4E5F6", "active"),)


def test_day_sheet_and_month(outbox):
    db = outbox.db
    web = WebConfig(start_time="07:00", grace_minutes=5)
    tap(outbox, "04A1B2C3D4E5F6", local(DAY, 6, 50))     # Siti on time
    tap(outbox, "04A1B2C3D4E5F6", local(DAY, 14, 5))
    tap(outbox, "04A1B2C3D4E5F7", local(DAY, 7, 20))     # Budi late
    tap(outbox, "04C0FFEE", local(DAY, 7, 1))            # unknown card
    excuses.add_excuse(db, person_id="0051234569", kind="sakit", date_from=DAY, date_to=DAY,
                       note="", created_by="guru")
    plan = daily.day_plan(db, DAY, web)
    assert plan == DayPlan(DAY, True, time(7, 0), None, 5)
    sheet = {row.person.person_id: row for row in daily.day_sheet(db, DAY, plan, DAY)}
    assert {k: v.status for k, v in sheet.items()} == {
        "0051234567": "present", "0051234568": "late", "0051234569": "sakit",
        "198703152010012003": "not_arrived"}
    assert sheet["0051234567"].first_tap.strftime("%H:%M") == "06:50"
    assert sheet["0051234567"].last_tap.strftime("%H:%M") == "14:05"
    later = daily.day_sheet(db, DAY, plan, date(2026, 11, 21))
    assert {r.status for r in later if r.person.person_id == "198703152010012003"} == {"absent"}
    taps = daily.recent_taps(db, DAY)
    assert [(t["time"], t["verdict"], t["name"]) for t in taps[:2]] == [
        ("07:01:00", "unknown", ""), ("07:20:00", "accepted", "Budi Santoso")]
    unknown = daily.unknown_cards(db, DAY)
    assert [(u.card_uid, u.taps, u.holder) for u in unknown] == [("04C0FFEE", 1, None)]

    # The month: the 20th had taps (counted); the 19th had none and no plan (not counted);
    # a plan from the server makes the 18th a working day nobody came to.
    daily.store_plans(db, [{"date": "2026-11-18", "workday": True, "start": "07:00"}],
                      today=DAY)
    days, month = daily.month_sheet(db, 2026, 11, web, DAY)
    assert days == [date(2026, 11, 18), DAY]
    counts = {row.person.person_id: row.counts for row in month}
    assert counts["0051234567"]["present"] == 1 and counts["0051234567"]["absent"] == 1
    assert counts["0051234568"]["late"] == 1
    assert counts["0051234569"]["sakit"] == 1


def test_plans_are_merged_and_used(outbox):
    db = outbox.db
    assert daily.store_plans(db, [{"date": "2026-11-20", "workday": False,
                                   "reason": "Hari Guru"}], today=DAY) == 1
    daily.store_plans(db, [{"date": "2026-11-23", "start": "06:30", "grace_minutes": 10}],
                      today=DAY)
    assert [p["date"] for p in daily.load_plans(db)] == ["2026-11-20", "2026-11-23"]
    assert not daily.day_plan(db, DAY, WebConfig()).workday
    monday = daily.day_plan(db, date(2026, 11, 23), WebConfig())
    assert (monday.start, monday.grace_minutes, monday.from_server) == (time(6, 30), 10, True)
    broken = sqlite3.connect(outbox.path)
    with broken:
        broken.execute("UPDATE meta SET value = 'not json' WHERE key = 'plans'")
    broken.close()
    assert daily.load_plans(db) == []


def test_open_database_applies_migrations_and_the_schema_stays_on_page_one(tmp_path):
    db = open_database(tmp_path / "sub" / "edge.db")
    try:
        assert "operators" in db.table_names()
        # Damage in the middle of the file must not take the schema with it (salvage_taps).
        assert db.execute("SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'"
                          ).fetchall() == [(1,)]
    finally:
        db.close()
