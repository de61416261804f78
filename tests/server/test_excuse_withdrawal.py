"""POST /excuses/withdraw: a wrong excuse is taken back; its days are decided again without it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server import apikeys
from server.attendance_rules import RulesConfig
from server.db import utcnow
from server.excuses import Source, store_excuses, withdraw_excuses
from server.openapi import DOCUMENT
from server.reconcile import reconcile_days, run_queue
from tests.server.attendance_data import WIB, add_person, attendance, past_workday, queue_rows
from tests.server.helpers import count, enroll_device, make_site, rows

URL = "/api/v1/excuses/withdraw"
CONFIG = RulesConfig()


def today():
    return utcnow().astimezone(WIB).date()


def excuse(excuse_id, person="P1", kind="sakit", first=None, last=None):
    day = past_workday(today())
    return {"excuse_id": excuse_id, "person_id": person, "kind": kind,
            "date_from": (first or day).isoformat(), "date_to": (last or first or day).isoformat(),
            "note": "salah orang"}


def headers(token):
    return {"Authorization": f"Bearer {token}"}


def heartbeat(client, device):
    body = {"boot_id": "boot-heartbeat", "mono_ns": 10**12, "wall_time": utcnow().isoformat(),
            "clock_synced": True, "backlog": 0, "oldest_unsent_at": None}
    assert client.post("/api/v1/heartbeat", json=body, headers=device.headers).status_code == 200


def documented(reply):
    assert str(reply.status_code) in DOCUMENT["paths"]["/excuses/withdraw"]["post"]["responses"]


@pytest.fixture
def school(client, engine, device):
    """P1 and P2 at the device's site, P3 at another site (with its own device)."""
    add_person(engine, "P1", device.site)
    add_person(engine, "P2", device.site)
    make_site(engine, "OTHER")
    add_person(engine, "P3", "OTHER")
    heartbeat(client, device)
    return {"device": device, "other": enroll_device(client, engine, "OTHER")}


def withdraw(client, auth, *items):
    return client.post(URL, json={"withdrawals": list(items)}, headers=auth)


def stored(engine):
    return {r["excuse_id"]: r for r in rows(engine, "SELECT * FROM excuses")}


def test_a_withdrawn_excuse_no_longer_decides_the_day(client, engine, school):
    device, day = school["device"], past_workday(today())
    item = excuse("ex-1")
    assert client.post("/api/v1/excuses", json={"excuses": [item]},
                       headers=device.headers).status_code == 200
    run_queue(engine, config=CONFIG, now=utcnow())
    assert attendance(engine, day=day)[("P1", day)]["status"] == "S"

    reply = withdraw(client, device.headers, item)

    assert reply.status_code == 200, reply.json
    documented(reply)
    assert reply.json["results"] == [{"excuse_id": "ex-1", "status": "withdrawn"}]
    row = stored(engine)["ex-1"]
    assert row["withdrawn_at"] is not None and row["withdrawn_by"] == device.device_id
    assert queue_rows(engine)[(device.site, day)] == "excuse"
    run_queue(engine, config=CONFIG, now=utcnow())
    decided = attendance(engine, day=day)[("P1", day)]
    assert (decided["status"], decided["excuse_id"]) == ("A", None)

    # Idempotent: again is a duplicate; the excuse pushed again does not come back.
    again = withdraw(client, device.headers, item)
    assert again.json["results"] == [{"excuse_id": "ex-1", "status": "duplicate"}]
    assert stored(engine)["ex-1"]["withdrawn_at"] == row["withdrawn_at"]
    pushed = client.post("/api/v1/excuses", json={"excuses": [item]}, headers=device.headers)
    assert pushed.json["results"] == [{"excuse_id": "ex-1", "status": "duplicate"}]
    run_queue(engine, config=CONFIG, now=utcnow())
    assert attendance(engine, day=day)[("P1", day)]["status"] == "A"


def test_an_excuse_the_server_never_had_is_stored_withdrawn(client, engine, school):
    # The edge pushed it, the reply was cut off, the operator withdrew it: the withdrawal
    # carries the excuse, and the push that may still arrive is a duplicate.
    device, day = school["device"], past_workday(today())
    reply = withdraw(client, device.headers, excuse("ex-2"), excuse("ex-2"))
    assert [r["status"] for r in reply.json["results"]] == ["withdrawn", "duplicate"]
    row = stored(engine)["ex-2"]
    assert row["withdrawn_at"] is not None and row["site_code"] == device.site
    pushed = client.post("/api/v1/excuses", json={"excuses": [excuse("ex-2")]},
                         headers=device.headers)
    assert pushed.json["results"][0]["status"] == "duplicate"
    reconcile_days(engine, [(device.site, day)], config=CONFIG, now=utcnow())
    assert attendance(engine, day=day)[("P1", day)]["status"] == "A"


def test_a_device_withdraws_only_its_own_sites_excuses(client, engine, school):
    device, other = school["device"], school["other"]
    client.post("/api/v1/excuses", json={"excuses": [excuse("ex-mine")]},
                headers=device.headers)
    client.post("/api/v1/excuses", json={"excuses": [excuse("ex-there", "P3")]},
                headers=other.headers)
    with engine.begin() as conn:
        token = apikeys.create_key(conn, "SIMPEG", "diskominfo").token
    client.post("/api/v1/excuses", json={"excuses": [excuse("ex-central", "P1")]},
                headers=headers(token))

    reply = withdraw(client, device.headers, excuse("ex-mine"), excuse("ex-there", "P3"),
                     excuse("ex-central"))

    assert reply.status_code == 403 and reply.json["error"]["code"] == "forbidden"
    documented(reply)
    assert [d["path"] for d in reply.json["error"]["details"]] == [
        "withdrawals[1].excuse_id", "withdrawals[2].excuse_id"]
    assert "nothing withdrawn" in reply.json["error"]["message"]
    assert {k: r["withdrawn_at"] for k, r in stored(engine).items()} == {
        "ex-mine": None, "ex-there": None, "ex-central": None}


def test_keys_operator_for_its_site_and_diskominfo_for_any(client, engine, school):
    device = school["device"]
    with engine.begin() as conn:
        operator = apikeys.create_key(conn, "operator", "operator", device.site).token
        central = apikeys.create_key(conn, "SIMPEG", "diskominfo").token
    client.post("/api/v1/excuses", json={"excuses": [excuse("ex-1"), excuse("ex-3", "P3")]},
                headers=device.headers)  # ex-3 for P3 recorded at the device's site
    client.post("/api/v1/excuses", json={"excuses": [excuse("ex-4", "P3")]},
                headers=school["other"].headers)

    # The operator key: its site's excuses, and new ones only for its people.
    assert withdraw(client, headers(operator), excuse("ex-4", "P3")).status_code == 403
    refused = withdraw(client, headers(operator), excuse("ex-1"), excuse("ex-new", "P3"))
    assert refused.status_code == 403
    assert [d["path"] for d in refused.json["error"]["details"]] == [
        "withdrawals[1].person_id"]
    assert stored(engine)["ex-1"]["withdrawn_at"] is None and "ex-new" not in stored(engine)
    ok = withdraw(client, headers(operator), excuse("ex-1"), excuse("ex-3", "P3"),
                  excuse("ex-new", "P2"))
    assert [r["status"] for r in ok.json["results"]] == ["withdrawn"] * 3
    assert stored(engine)["ex-1"]["withdrawn_by"].startswith("ak_")

    # Diskominfo: any site's.
    reply = withdraw(client, headers(central), excuse("ex-4", "P3"))
    assert reply.status_code == 200 and reply.json["results"][0]["status"] == "withdrawn"
    assert all(r["withdrawn_at"] is not None for r in stored(engine).values())


@pytest.mark.parametrize("change, path", [
    ({"kind": "libur"}, "withdrawals[0].kind"),
    ({"date_to": "2020-01-01"}, "withdrawals[0].date_to"),
    ({"excuse_id": ""}, "withdrawals[0].excuse_id"),
])
def test_a_bad_withdrawal_is_400_and_changes_nothing(client, engine, school, change, path):
    device = school["device"]
    client.post("/api/v1/excuses", json={"excuses": [excuse("ex-1")]}, headers=device.headers)
    reply = withdraw(client, device.headers, {**excuse("ex-1"), **change})
    assert reply.status_code == 400, reply.json
    documented(reply)
    assert reply.json["error"]["details"][0]["path"] == path
    assert stored(engine)["ex-1"]["withdrawn_at"] is None


def test_empty_unauthenticated_and_too_many(client, engine, school):
    device = school["device"]
    assert client.post(URL, json={"withdrawals": []}, headers=device.headers).status_code == 400
    assert client.post(URL, json={"withdrawals": [excuse("ex-1")]}).status_code == 401
    many = [excuse(f"ex-{i}") for i in range(1001)]
    assert withdraw(client, device.headers, *many).status_code == 413
    assert count(engine, "excuses") == 0


# PostgreSQL only: on SQLite the withdrawal's transaction holds the write lock, so no push
# can be stored between its read and its write.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_push_stored_meanwhile_is_withdrawn_all_the_same(client, engine, school):
    device, day = school["device"], past_workday(today())
    source = Source(site_code=device.site, device_id=device.device_id)

    def push_meanwhile(new):  # runs after the withdrawal read that ex-7 is not stored
        assert new == [0]
        with engine.begin() as other:
            store_excuses(other, [excuse("ex-7")], source, utcnow())

    with engine.begin() as conn:
        results = withdraw_excuses(conn, [excuse("ex-7")], source, utcnow(),
                                   check_new=push_meanwhile)
    assert results == [{"excuse_id": "ex-7", "status": "withdrawn"}]
    row = stored(engine)["ex-7"]
    assert row["withdrawn_at"] is not None and row["withdrawn_by"] == device.device_id
    run_queue(engine, config=CONFIG, now=utcnow())
    assert attendance(engine, day=day)[("P1", day)]["status"] == "A"
