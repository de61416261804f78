"""Roster import and GET /roster (full, delta with cursor, removed, site scoping)."""

import pytest

from server.roster import RosterLine, import_roster, parse_cursor, parse_roster_file
from tests.server.helpers import enroll_device, make_site, rows

URL = "/api/v1/roster"
SITI = RosterLine("04A1B2C3D4E5F6", "0051234567", "Siti Aminah", "student", "VII-A")
BUDI = RosterLine("8C3F2A11", "198703152010012003", "Budi Santoso", "employee", "Tata Usaha",
                  "blocked")
ANI = RosterLine("04000001", "0051234568", "Ani", "student", "VII-B")


def load(engine, site, *lines):
    with engine.begin() as conn:
        return import_roster(conn, site, lines)


def get(client, device, since=None):
    reply = client.get(URL, query_string={"since": since} if since else None,
                       headers=device.headers)
    assert reply.status_code == 200, reply.json
    return reply.json


def test_full_roster(client, engine, device):
    load(engine, device.site, SITI, BUDI)
    body = get(client, device)
    assert body["full"] is True and body["removed"] == []
    assert body["cards"] == [
        {"card_uid": "04A1B2C3D4E5F6", "person_id": "0051234567", "name": "Siti Aminah",
         "kind": "student", "group": "VII-A", "status": "active"},
        {"card_uid": "8C3F2A11", "person_id": "198703152010012003", "name": "Budi Santoso",
         "kind": "employee", "group": "Tata Usaha", "status": "blocked"},
    ]
    assert body["cursor"] == "v1"


def test_delta_with_cursor_and_removed(client, engine, device):
    load(engine, device.site, SITI, BUDI)
    cursor = get(client, device)["cursor"]
    unchanged = get(client, device, cursor)
    assert (unchanged["full"], unchanged["cards"], unchanged["removed"]) == (False, [], [])
    assert unchanged["cursor"] == cursor
    # Budi's card is unblocked, Siti leaves, Ani arrives.
    unblocked = RosterLine(**{**BUDI.__dict__, "status": "active"})
    summary = load(engine, device.site, unblocked, ANI)
    assert (summary.added, summary.changed, summary.removed) == (1, 1, 1)
    body = get(client, device, cursor)
    assert body["full"] is False
    assert [(c["card_uid"], c["status"]) for c in body["cards"]] == [
        ("04000001", "active"), ("8C3F2A11", "active")]
    assert body["removed"] == ["04A1B2C3D4E5F6"]
    assert body["cursor"] == "v2"
    # Nothing new since the newest cursor.
    assert get(client, device, body["cursor"])["cards"] == []


def test_person_change_is_sent_as_card_upsert(client, engine, device):
    load(engine, device.site, SITI)
    cursor = get(client, device)["cursor"]
    load(engine, device.site, RosterLine(**{**SITI.__dict__, "group_name": "VIII-A"}))
    body = get(client, device, cursor)
    assert [(c["card_uid"], c["group"]) for c in body["cards"]] == [("04A1B2C3D4E5F6", "VIII-A")]


def test_unchanged_import_takes_no_version(engine, site):
    assert load(engine, site, SITI).version == 1
    assert load(engine, site, SITI).version is None


@pytest.mark.parametrize("since", ["", "garbage", "v", "v-1", "v99999", "v" + "9" * 40, "１"])
def test_unusable_cursor_gives_the_full_roster(client, engine, device, since):
    load(engine, device.site, SITI)
    body = get(client, device, since or None)
    assert body["full"] is True and len(body["cards"]) == 1


def test_cursor_too_long_is_400(client, device):
    reply = client.get(URL, query_string={"since": "v" * 65}, headers=device.headers)
    assert reply.status_code == 400 and reply.json["error"]["details"][0]["path"] == "since"
    reply = client.get(URL + "?since=v1&since=v2", headers=device.headers)
    assert reply.status_code == 400


def test_roster_of_another_site_is_unreachable(client, engine, device):
    other_site = make_site(engine, "OPD-DISKOMINFO", "Diskominfo", "Asia/Jakarta")
    load(engine, device.site, SITI)
    load(engine, other_site, BUDI)
    other = enroll_device(client, engine, other_site, hardware="pi-2")
    assert [c["card_uid"] for c in get(client, device)["cards"]] == [SITI.card_uid]
    assert [c["card_uid"] for c in get(client, other)["cards"]] == [BUDI.card_uid]
    # There is no way to name a site: a query parameter for it is ignored.
    reply = client.get(URL, query_string={"site": other_site}, headers=device.headers)
    assert [c["card_uid"] for c in reply.json["cards"]] == [SITI.card_uid]
    # A delta of the other site's changes never reaches this device.
    cursor = get(client, device)["cursor"]
    load(engine, other_site, BUDI, ANI)
    assert get(client, device, cursor)["cards"] == []


def test_card_moving_to_another_site(client, engine, device):
    other_site = make_site(engine, "20409999", "SMPN 9", "Asia/Jakarta")
    load(engine, device.site, SITI)
    cursor = get(client, device)["cursor"]
    summary = load(engine, other_site, SITI)
    assert summary.moved_from == {device.site: 1}
    body = get(client, device, cursor)
    assert body["cards"] == [] and body["removed"] == [SITI.card_uid]
    kept = rows(engine, "SELECT person_id, site_code FROM cards")
    assert kept == [{"person_id": SITI.person_id, "site_code": other_site}]


def test_parse_cursor():
    assert parse_cursor("v12") == 12
    assert parse_cursor(None) is None and parse_cursor("12") is None


def test_parse_roster_file_person_consistency(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("card_uid,person_id,name,kind,group,status\n"
                    "04A1B2C3,0051234567,Siti,student,VII-A,active\n"
                    "\n"
                    "04A1B2C4,0051234567,Siti A.,student,VII-A,active\n")
    with pytest.raises(ValueError) as info:
        parse_roster_file(path)
    assert f"{path}:4: person_id:" in str(info.value)
    path.write_text("card_uid,person_id,name\n04:a1:b2:c3,1,A\n04A1B2C4,1,A\n")
    assert [line.card_uid for line in parse_roster_file(path)] == ["04A1B2C3", "04A1B2C4"]
