"""Device card requests (POST /cards/requests), the site's people (GET /roster/people) and
the plans in GET /roster, on both backends."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from server.calendar_store import add_calendar_day, scope_for
from server.card_requests import MAX_AGE, effective_time
from server.cards import card_info
from server.registry import import_cards, import_employees, import_sites, import_students
from server.roster import RosterLine, import_roster
from tests.server.helpers import count, enroll_device, make_site, rows
from tests.server.registry_data import (EMPLOYEE_CARDS, EMPLOYEES, NOW, STUDENTS, all_cards,
                                        cards_csv, dapodik_xlsx, employees_csv, sites_csv,
                                        snapshot)
from tests.server.test_openapi import check

URL = "/api/v1/cards/requests"
BUDI, SITI, AGUS, DEWI = EMPLOYEES  # OPD-DISDIK, OPD-DISDIK, OPD-BKD, school 20401234
NEW_CARD = "04C1C2C3C4C5C6"
TABLES = ("cards", "card_history", "roster_changes", "counters", "people")


@pytest.fixture
def city(engine, tmp_path):
    """The registry test city: five sites, four employees, three students, every card."""
    with engine.begin() as conn:
        import_sites(conn, sites_csv(tmp_path), now=NOW)
        import_employees(conn, employees_csv(tmp_path), effective=date(2026, 1, 5), now=NOW)
        import_students(conn, dapodik_xlsx(tmp_path / "pd.xlsx"), npsn="20401234",
                        effective=date(2026, 1, 5), now=NOW)
        import_cards(conn, cards_csv(tmp_path, all_cards()), now=NOW)


@pytest.fixture
def gate(client, engine, city):
    """A device at OPD-DISDIK (Budi and Siti work there)."""
    return enroll_device(client, engine, "OPD-DISDIK")


def request(kind, card_uid, person_id=None, at=None, request_id=None):
    at = at or datetime.now(timezone.utc) - timedelta(minutes=5)
    return {"request_id": request_id or str(uuid.uuid4()), "kind": kind, "card_uid": card_uid,
            "person_id": person_id, "requested_at": at.astimezone(ZoneInfo("Asia/Jakarta"))
            .isoformat(timespec="milliseconds")}


def send(client, device, *items, status=200):
    reply = client.post(URL, json={"requests": list(items)}, headers=device.headers)
    assert reply.status_code == status, reply.json
    if status == 200:
        check(reply, "/cards/requests", "post")
    return reply.json


def roster(client, device, since=None):
    reply = client.get("/api/v1/roster", headers=device.headers,
                       query_string={"since": since} if since else None)
    assert reply.status_code == 200, reply.json
    check(reply, "/roster", "get")
    return reply.json


def state(engine):
    return {name: value for name, value in snapshot(engine).items() if name in TABLES}


# -- bind ------------------------------------------------------------------------------------
def test_bind_a_new_card_reaches_the_site_roster(client, engine, gate):
    cursor = roster(client, gate)["cursor"]
    item = request("bind", NEW_CARD, SITI.nip)
    assert send(client, gate, item)["results"] == [
        {"request_id": item["request_id"], "status": "applied"}]
    with engine.connect() as conn:
        info = card_info(conn, NEW_CARD)
    assert (info["person_id"], info["status"], info["site_code"]) == (SITI.nip, "active",
                                                                     "OPD-DISDIK")
    # In force from the moment asked for (history kept).
    assert [h["effective_at"] for h in info["history"]] == [
        datetime.fromisoformat(item["requested_at"]).astimezone(timezone.utc)]
    delta = roster(client, gate, cursor)
    assert delta["cursor"] != cursor
    assert [(c["card_uid"], c["person_id"], c["status"]) for c in delta["cards"]] == [
        (NEW_CARD, SITI.nip, "active")]
    stored = rows(engine, "SELECT * FROM card_requests")
    assert [(r["request_id"], r["device_id"], r["site_code"], r["kind"], r["status"])
            for r in stored] == [(item["request_id"], gate.device_id, "OPD-DISDIK", "bind",
                                  "applied")]


def test_a_repeated_request_is_a_duplicate_and_changes_nothing(client, engine, gate):
    item = request("bind", NEW_CARD, SITI.nip)
    send(client, gate, item)
    before = state(engine)
    again = send(client, gate, item)["results"]
    assert again == [{"request_id": item["request_id"], "status": "duplicate",
                      "outcome": "applied"}]
    # Other content under the same id is still the first request.
    other = {**item, "person_id": BUDI.nip}
    assert send(client, gate, other)["results"][0]["status"] == "duplicate"
    assert state(engine) == before
    assert count(engine, "card_requests") == 1


def test_the_same_id_twice_in_one_batch(client, engine, gate):
    item = request("bind", NEW_CARD, SITI.nip)
    results = send(client, gate, item, item)["results"]
    assert [r["status"] for r in results] == ["applied", "duplicate"]


def test_rebind_a_card_within_the_site(client, engine, gate):
    budi_card = EMPLOYEE_CARDS[0]
    cursor = roster(client, gate)["cursor"]
    assert send(client, gate, request("bind", budi_card, SITI.nip))["results"][0]["status"] \
        == "applied"
    with engine.connect() as conn:
        info = card_info(conn, budi_card)
    # Budi keeps the taps made before; the card is Siti's from now on.
    assert [h["person_id"] for h in info["history"]] == [BUDI.nip, SITI.nip]
    delta = roster(client, gate, cursor)
    assert [(c["card_uid"], c["person_id"]) for c in delta["cards"]] == [(budi_card, SITI.nip)]


def test_bind_to_a_person_of_a_roster_file_site(client, engine, city):
    """A site whose people come from a roster file (no registry placements)."""
    make_site(engine, "RF-1", "Kantor Roster")
    with engine.begin() as conn:
        import_roster(conn, "RF-1", [RosterLine("04D1D2D3D4D5D6", "L-001", "Ani", "employee",
                                                "Umum")])
    device = enroll_device(client, engine, "RF-1")
    cursor = roster(client, device)["cursor"]
    assert send(client, device, request("bind", "04D1D2D3D4D5D7", "L-001"))["results"][0][
        "status"] == "applied"
    delta = roster(client, device, cursor)
    assert [(c["card_uid"], c["person_id"], c["name"]) for c in delta["cards"]] == [
        ("04D1D2D3D4D5D7", "L-001", "Ani")]
    full = roster(client, device)
    assert sorted(c["card_uid"] for c in full["cards"]) == ["04D1D2D3D4D5D6", "04D1D2D3D4D5D7"]


# -- lost ------------------------------------------------------------------------------------
def test_report_a_card_lost(client, engine, gate):
    budi_card = EMPLOYEE_CARDS[0]
    cursor = roster(client, gate)["cursor"]
    at = datetime.now(timezone.utc) - timedelta(hours=3)
    item = request("lost", budi_card, at=at)
    assert send(client, gate, item)["results"][0]["status"] == "applied"
    with engine.connect() as conn:
        info = card_info(conn, budi_card)
    assert info["status"] == "lost" and info["person_id"] == BUDI.nip
    assert info["history"][-1]["effective_at"] == at.replace(microsecond=at.microsecond
                                                              // 1000 * 1000)
    delta = roster(client, gate, cursor)
    assert [(c["card_uid"], c["status"]) for c in delta["cards"]] == [(budi_card, "lost")]
    # Dated three hours ago: today is queued for reconciliation again.
    assert rows(engine, "SELECT site_code FROM reconcile_queue WHERE site_code = 'OPD-DISDIK'")
    # Reporting it again with a new id changes nothing more.
    before = state(engine)
    assert send(client, gate, request("lost", budi_card))["results"][0]["status"] == "applied"
    assert state(engine) == before


# -- rejections ------------------------------------------------------------------------------
REJECTIONS = [
    ("bind to a person of another site", lambda: request("bind", NEW_CARD, AGUS.nip),
     "is not a person of site OPD-DISDIK"),
    ("bind to a student of a school", lambda: request("bind", NEW_CARD, STUDENTS[0].nisn),
     "is not a person of site OPD-DISDIK"),
    ("bind to nobody known", lambda: request("bind", NEW_CARD, "999999999999999999"),
     "no person 999999999999999999"),
    ("bind without a person", lambda: request("bind", NEW_CARD, None),
     "person_id: required for bind"),
    ("bind another site's card", lambda: request("bind", EMPLOYEE_CARDS[2], SITI.nip),
     "belongs to a person of another site"),
    ("lost: another site's card", lambda: request("lost", EMPLOYEE_CARDS[3]),
     "belongs to a person of another site"),
    ("lost: unknown card", lambda: request("lost", NEW_CARD), "is not in the register"),
    ("random UID", lambda: request("bind", "08A1B2C3", SITI.nip), "random"),
    ("five bytes", lambda: request("bind", "04A1B2C3D4", SITI.nip), "expected 4, 7, 8 or 10"),
]


@pytest.mark.parametrize("make, reason", [r[1:] for r in REJECTIONS],
                         ids=[r[0] for r in REJECTIONS])
def test_rejections_change_nothing(client, engine, gate, make, reason):
    item = make()
    before = state(engine)
    result = send(client, gate, item)["results"][0]
    assert result["status"] == "rejected" and reason in result["error"], result
    assert state(engine) == before
    stored = rows(engine, "SELECT status, error FROM card_requests")
    assert [(r["status"], r["error"]) for r in stored] == [("rejected", result["error"])]
    # A repeat is a duplicate that says what happened the first time.
    again = send(client, gate, item)["results"][0]
    assert again == {"request_id": item["request_id"], "status": "duplicate",
                     "outcome": "rejected", "error": result["error"]}


def test_a_request_dated_before_the_cards_last_change_is_rejected(client, engine, gate):
    budi_card = EMPLOYEE_CARDS[0]
    send(client, gate, request("bind", budi_card, SITI.nip))
    before = state(engine)
    late = request("lost", budi_card, at=datetime.now(timezone.utc) - timedelta(days=1))
    result = send(client, gate, late)["results"][0]
    assert result["status"] == "rejected"
    assert "a change cannot be dated before that" in result["error"]
    assert state(engine) == before


def test_a_request_older_than_max_age_counts_as_now(client, engine, gate):
    item = request("lost", EMPLOYEE_CARDS[0], at=datetime.now(timezone.utc) - 2 * MAX_AGE)
    assert send(client, gate, item)["results"][0]["status"] == "applied"
    stored = rows(engine, "SELECT requested_at, effective_at, received_at FROM card_requests")
    assert stored[0]["effective_at"] == stored[0]["received_at"]


def test_a_batch_applies_the_good_and_rejects_the_bad(client, engine, gate):
    good, bad = request("bind", NEW_CARD, SITI.nip), request("bind", "04E1E2E3E4E5E6", AGUS.nip)
    results = send(client, gate, good, bad)["results"]
    assert [r["status"] for r in results] == ["applied", "rejected"]
    with engine.connect() as conn:
        assert card_info(conn, NEW_CARD)["person_id"] == SITI.nip


def test_future_and_stale_times_count_as_now():
    now = datetime(2026, 11, 23, 3, tzinfo=timezone.utc)
    assert effective_time(now + timedelta(days=365), now) == now
    assert effective_time(now + timedelta(seconds=1), now) == now
    assert effective_time(now - MAX_AGE - timedelta(seconds=1), now) == now
    assert effective_time(now - timedelta(days=2), now) == now - timedelta(days=2)


def test_future_request_takes_effect_on_receipt(client, engine, gate):
    item = request("bind", NEW_CARD, SITI.nip,
                   at=datetime.now(timezone.utc) + timedelta(days=3650))
    send(client, gate, item)
    stored = rows(engine, "SELECT effective_at, received_at FROM card_requests")
    assert stored[0]["effective_at"] == stored[0]["received_at"]


@pytest.mark.parametrize("body", [
    {},
    {"requests": []},
    {"requests": [{"request_id": "r1", "kind": "steal", "card_uid": NEW_CARD,
                   "requested_at": "2026-11-23T07:00:00+07:00"}]},
    {"requests": [{"request_id": "r1", "kind": "lost", "card_uid": NEW_CARD,
                   "requested_at": "2026-11-23T07:00:00"}]},  # no offset
    {"requests": [{"request_id": "r1", "kind": "lost", "card_uid": "xyz",
                   "requested_at": "2026-11-23T07:00:00+07:00"}]},
    {"requests": [{"kind": "lost", "card_uid": NEW_CARD,
                   "requested_at": "2026-11-23T07:00:00+07:00"}]},
    {"requests": "all"},
])
def test_malformed_body_is_400(client, engine, gate, body):
    reply = client.post(URL, json=body, headers=gate.headers)
    assert reply.status_code == 400 and reply.json["error"]["code"] == "validation_error"
    check(reply, "/cards/requests", "post")
    assert count(engine, "card_requests") == 0


def test_not_json_no_token_too_many(client, engine, gate):
    reply = client.post(URL, data=b"{nope", headers=gate.headers,
                        content_type="application/json")
    assert reply.status_code == 400 and reply.json["error"]["code"] == "bad_json"
    assert client.post(URL, json={"requests": [request("lost", NEW_CARD)]}
                       ).status_code == 401
    many = [request("lost", NEW_CARD) for _ in range(1001)]
    assert client.post(URL, json={"requests": many}, headers=gate.headers).status_code == 413
    assert count(engine, "card_requests") == 0


# -- GET /roster/people ------------------------------------------------------------------------
def people(client, device, etag=None):
    headers = dict(device.headers)
    if etag:
        headers["If-None-Match"] = f'"{etag}"'
    return client.get("/api/v1/roster/people", headers=headers)


def test_people_of_the_site_with_or_without_a_card(client, engine, city):
    school = enroll_device(client, engine, "20401234")
    reply = people(client, school)
    assert reply.status_code == 200
    check(reply, "/roster/people", "get")
    body = reply.json
    expected = sorted([(DEWI.nip, DEWI.name, "employee", "Guru")]
                      + [(s.nisn, s.name, "student", s.rombel) for s in STUDENTS])
    assert [(p["person_id"], p["name"], p["kind"], p["group_name"]) for p in body["people"]] \
        == expected
    assert reply.headers["ETag"] == f'"{body["version"]}"'
    # Unchanged: 304 without a body.
    again = people(client, school, body["version"])
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == f'"{body["version"]}"'
    # A person without a card joins the site: a new version.
    from tests.server.attendance_data import add_person

    add_person(engine, "0099999991", "20401234", since=date(2026, 1, 1), kind="student")
    changed = people(client, school, body["version"])
    assert changed.status_code == 200 and changed.json["version"] != body["version"]
    assert "0099999991" in [p["person_id"] for p in changed.json["people"]]


def test_people_assigned_today_and_leavers(client, engine, city):
    from tests.server.attendance_data import add_person, assign

    device = enroll_device(client, engine, "OPD-BKD")
    # Registered elsewhere, assigned here from today on; and an assignment that ended.
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date()
    add_person(engine, "L-100", None)
    assign(engine, "L-100", "OPD-BKD", today)
    add_person(engine, "L-101", None)
    assign(engine, "L-101", "OPD-BKD", date(2026, 1, 1), today - timedelta(days=1))
    ids = [p["person_id"] for p in people(client, device).json["people"]]
    assert ids == sorted([AGUS.nip, "L-100"])


def test_people_needs_a_device_token(client, city):
    assert client.get("/api/v1/roster/people").status_code == 401


# -- plans in GET /roster -----------------------------------------------------------------------
def test_roster_carries_the_plans_of_seven_days(client, engine, gate):
    body = roster(client, gate)
    plans = body["plans"]
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date()
    assert [p["date"] for p in plans] == [(today + timedelta(days=n)).isoformat()
                                          for n in range(7)]
    for plan in plans:
        day = date.fromisoformat(plan["date"])
        if day.weekday() >= 5:
            assert plan == {"date": plan["date"], "workday": False, "start": None,
                            "end": None, "grace_minutes": 0, "reason": "weekend"}
        elif plan["workday"]:  # the ASN schedule of OPD-DISDIK
            assert plan["start"] == "07:30"
            assert plan["end"] == ("16:30" if day.weekday() == 4 else "16:00")
    # The delta carries them too.
    assert roster(client, gate, body["cursor"])["plans"] == plans


def test_plans_follow_the_calendar(client, engine, gate):
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date()
    weekday = next(today + timedelta(days=n) for n in range(1, 7)
                   if (today + timedelta(days=n)).weekday() < 5)
    with engine.begin() as conn:
        add_calendar_day(conn, weekday, "holiday", name="Hari Jadi Kota",
                         scope=scope_for(site="OPD-DISDIK"))
    plan = next(p for p in roster(client, gate)["plans"] if p["date"] == weekday.isoformat())
    assert plan == {"date": weekday.isoformat(), "workday": False, "start": None, "end": None,
                    "grace_minutes": 0, "reason": "holiday: Hari Jadi Kota"}
