"""The integrators' API: roles, every endpoint's replies against the document, the
change feed, recap files, and excuses sent with API keys."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone

import openpyxl
import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server import apikeys
from server.openapi import DOCUMENT, SCHEMA_URI
from server.schema import anomalies, attendance_days, people, person_sites
from tests.server.helpers import count, enroll_device, make_site, rows
from tests.server.report_data import (add_person, month_days, put_rows, set_site_kind,
                                      weekday_plan)

API = "/api/v1"
NIP_1 = "198503302010011002"
NIP_2 = "199001012015032001"


class Keys:
    def __init__(self, engine):
        with engine.begin() as conn:
            self.diskominfo = apikeys.create_key(conn, "SIMPEG", "diskominfo").token
            self.opd1 = apikeys.create_key(conn, "operator OPD1", "operator", "OPD1").token
            self.opd2 = apikeys.create_key(conn, "operator OPD2", "operator", "OPD2").token

    @staticmethod
    def headers(token):
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(client, engine):
    """Two offices and a school; November 2026 rows; two anomalies; a device at OPD1."""
    make_site(engine, "OPD1", "Dinas Kominfo")
    make_site(engine, "OPD2", "Dinas Pendidikan", "Asia/Makassar")
    make_site(engine, "10401001", "SMPN 1")
    set_site_kind(engine, "10401001", "school")
    add_person(engine, NIP_1, "Siti", "employee", "OPD1", "Umum", nip=NIP_1)
    add_person(engine, NIP_2, "Budi", "employee", "OPD2", "Umum", nip=NIP_2)
    add_person(engine, "0051234561", "Ani", "student", "10401001", "7A", nisn="0051234561")
    days = month_days()[:7]
    put_rows(engine, weekday_plan(NIP_1, "OPD1", days, {3: ("H", "TL2", None)}, group="Umum")
             + weekday_plan(NIP_2, "OPD2", days, {4: ("A", None, None)}, group="Umum")
             + weekday_plan("0051234561", "10401001", days, {5: ("S", None, None)},
                            group="7A"))
    now = datetime(2026, 11, 3, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for n, (site, day, kind) in enumerate([("OPD1", 2, "unknown_card"),
                                               ("OPD2", 3, "lost_card_used"),
                                               ("OPD1", 4, "many_taps")]):
            conn.execute(anomalies.insert().values(
                key=f"k{n}", site_code=site, day=date(2026, 11, day), kind=kind,
                card_uid="04A1B2C3", detail={"count": n + 1}, first_seen_at=now))
    device = enroll_device(client, engine, "OPD1")
    return {"keys": Keys(engine), "device": device}


def get(client, token, path, **params):
    return client.get(API + path, query_string=params, headers=Keys.headers(token))


def validate(reply, name):
    registry = Registry().with_resource(SCHEMA_URI, Resource(contents=DOCUMENT,
                                                             specification=DRAFT202012))
    Draft202012Validator({"$ref": f"{SCHEMA_URI}#/components/schemas/{name}"},
                         registry=registry).validate(reply.json)


def documented(reply, path, method="get"):
    assert str(reply.status_code) in DOCUMENT["paths"][path][method]["responses"], (
        path, reply.status_code)
    if reply.status_code >= 400:
        validate(reply, "Error")


# -- roles and errors for every endpoint -----------------------------------------------------
SITE_ENDPOINTS = [
    ("/attendance", {"date": "2026-11-03"}),
    ("/recap", {"month": "2026-11"}),
    ("/recap/classes", {"month": "2026-11"}),
    ("/anomalies", {}),
    ("/devices", {}),
    ("/people", {}),
]
ALL_ENDPOINTS = SITE_ENDPOINTS + [("/changes", {}), ("/sites", {})]


@pytest.mark.parametrize("path, params", ALL_ENDPOINTS)
def test_no_key_is_401(client, world, path, params):
    reply = client.get(API + path, query_string=params)
    assert reply.status_code == 401 and reply.json["error"]["code"] == "unauthorized"
    documented(reply, path)
    reply = client.get(API + path, query_string=params, headers=world["device"].headers)
    assert reply.status_code == 401


@pytest.mark.parametrize("path, params", SITE_ENDPOINTS)
def test_operator_asking_for_another_site_is_403(client, world, path, params):
    keys = world["keys"]
    for site in ("OPD2", "NOPE"):
        reply = get(client, keys.opd1, path, site=site, **params)
        assert reply.status_code == 403, reply.json
        assert reply.json["error"]["code"] == "forbidden"
        assert "may only see site OPD1" in reply.json["error"]["message"]
        documented(reply, path)
    assert get(client, keys.opd1, path, site="OPD1", **params).status_code == 200


@pytest.mark.parametrize("path, params", SITE_ENDPOINTS)
def test_unknown_site_is_404_for_diskominfo(client, world, path, params):
    reply = get(client, world["keys"].diskominfo, path, site="NOPE", **params)
    assert reply.status_code == 404 and reply.json["error"]["code"] == "not_found"
    documented(reply, path)


@pytest.mark.parametrize("path, params, where", [
    ("/attendance", {}, "date"),
    ("/attendance", {"date": "2026-02-30"}, "date"),
    ("/attendance", {"date": "2026-11-03", "limit": "0"}, "limit"),
    ("/attendance", {"date": "2026-11-03", "limit": "10001"}, "limit"),
    ("/attendance", {"date": "2026-11-03", "cursor": "bm9wZQ"}, "cursor"),
    ("/attendance", {"date": "2026-11-03", "site": "a b"}, "site"),
    ("/recap", {"month": "2026-13"}, "month"),
    ("/recap", {"month": "0000-01"}, "month"),
    ("/recap", {"month": "2026-11", "format": "pdf"}, "format"),
    ("/recap", {"month": "2026-11", "kind": "guest"}, "kind"),
    ("/recap/classes", {"month": "2026-11"}, "site"),
    ("/anomalies", {"date_from": "2026-11-05", "date_to": "2026-11-01"}, "date_to"),
    ("/anomalies", {"kind": "Bad-Kind"}, "kind"),
    ("/anomalies", {"cursor": "!!"}, "cursor"),
    ("/changes", {"cursor": "-1"}, "cursor"),
    ("/changes", {"cursor": "abc"}, "cursor"),
    ("/people", {"limit": "x"}, "limit"),
])
def test_bad_query_is_400(client, world, path, params, where):
    reply = get(client, world["keys"].diskominfo, path, **params)
    assert reply.status_code == 400, reply.json
    assert reply.json["error"]["code"] == "validation_error"
    assert reply.json["error"]["details"][0]["path"] == where
    documented(reply, path)


# -- replies -----------------------------------------------------------------------------------
def test_attendance_by_day_and_site(client, world):
    keys = world["keys"]
    reply = get(client, keys.diskominfo, "/attendance", date="2026-11-03")
    validate(reply, "AttendanceReply")
    assert [(r["site"], r["person_id"]) for r in reply.json["rows"]] == [
        ("10401001", "0051234561"), ("OPD1", NIP_1), ("OPD2", NIP_2)]
    siti = reply.json["rows"][1]
    assert (siti["status"], siti["late_code"], siti["check_in"], siti["check_in_local"]) == (
        "H", "TL2", "2026-11-03T00:20:00.000Z", "2026-11-03T07:20:00+07:00")
    assert reply.json["site"] is None and reply.json["next_cursor"] is None
    # An operator without a site gets its own.
    mine = get(client, keys.opd2, "/attendance", date="2026-11-03")
    assert mine.json["site"] == "OPD2" and [r["person_id"] for r in mine.json["rows"]] == [NIP_2]
    assert mine.json["rows"][0]["check_in_local"] == "2026-11-03T08:20:00+08:00"


def test_attendance_pages(client, world):
    token, seen, cursor = world["keys"].diskominfo, [], None
    while True:
        params = {"date": "2026-11-02", "limit": "2", **({"cursor": cursor} if cursor else {})}
        reply = get(client, token, "/attendance", **params)
        seen += [r["person_id"] for r in reply.json["rows"]]
        cursor = reply.json["next_cursor"]
        if cursor is None:
            break
    assert seen == ["0051234561", NIP_1, NIP_2]


def test_recap_json_csv_xlsx(client, world):
    keys = world["keys"]
    reply = get(client, keys.diskominfo, "/recap", month="2026-11", kind="employee")
    validate(reply, "RecapReply")
    by_person = {r["person_id"]: r for r in reply.json["rows"]}
    assert set(by_person) == {NIP_1, NIP_2}
    assert by_person[NIP_2]["counts"]["A"] == 1 and by_person[NIP_2]["deduction_percent"] == 3.0
    assert by_person[NIP_1]["counts"]["TL2"] == 1 and by_person[NIP_1]["working_days"] == 5
    assert reply.json["weights"]["A"] == 3.0

    reply = get(client, keys.opd1, "/recap", month="2026-11", format="csv")
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/csv")
    assert 'filename="rekap-2026-11-OPD1.csv"' in reply.headers["Content-Disposition"]
    assert reply.data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.DictReader(io.StringIO(reply.data.decode("utf-8-sig"))))
    assert [(line["ID"], line["TL2"], line["Hari Kerja"]) for line in lines] == [(NIP_1, "1", "5")]

    reply = get(client, keys.diskominfo, "/recap", month="2026-11", format="xlsx")
    assert reply.headers["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    sheet = openpyxl.load_workbook(io.BytesIO(reply.data))["Rekap"]
    assert sheet.max_row == 4 and sheet["A1"].value == "ID"


def test_recap_uses_the_apps_weights(engine, world, database_url):
    from server.app import create_app

    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "ATTENDANCE_RULES": {"deduction_weights": {"A": 12.5}}})
    try:
        reply = get(app.test_client(), world["keys"].opd2, "/recap", month="2026-11")
        assert reply.json["rows"][0]["deduction_percent"] == 12.5
    finally:
        app.extensions["attendance"].engine.dispose()


def test_class_recap(client, world):
    keys = world["keys"]
    reply = get(client, keys.diskominfo, "/recap/classes", month="2026-11", site="10401001")
    validate(reply, "ClassRecapReply")
    (seven_a,) = reply.json["classes"]
    assert (seven_a["group"], seven_a["students"], seven_a["counts"]["H"],
            seven_a["counts"]["S"], seven_a["percent_present"]) == ("7A", 1, 4, 1, 80.0)
    reply = get(client, keys.diskominfo, "/recap/classes", month="2026-11", site="10401001",
                format="csv")
    assert reply.data.decode("utf-8-sig").splitlines()[0].startswith("Kode Unit,Rombel")


def test_anomalies(client, world):
    keys = world["keys"]
    reply = get(client, keys.diskominfo, "/anomalies")
    validate(reply, "AnomaliesReply")
    assert [a["kind"] for a in reply.json["anomalies"]] == ["unknown_card", "lost_card_used",
                                                           "many_taps"]
    assert reply.json["anomalies"][0]["detail"] == {"count": 1}
    mine = get(client, keys.opd1, "/anomalies", date_from="2026-11-03", date_to="2026-11-30")
    assert [a["kind"] for a in mine.json["anomalies"]] == ["many_taps"]
    assert [a["site"] for a in get(client, keys.diskominfo, "/anomalies",
                                   kind="lost_card_used").json["anomalies"]] == ["OPD2"]
    first = get(client, keys.diskominfo, "/anomalies", limit="2")
    rest = get(client, keys.diskominfo, "/anomalies", limit="2",
               cursor=first.json["next_cursor"])
    assert [a["kind"] for a in rest.json["anomalies"]] == ["many_taps"]
    assert rest.json["next_cursor"] is None


def test_devices_sites_people(client, engine, world):
    keys, device = world["keys"], world["device"]
    client.post(API + "/heartbeat", headers=device.headers, json={
        "boot_id": "b", "mono_ns": 1, "wall_time": "2026-11-03T07:00:00+07:00", "backlog": 4,
        "oldest_unsent_at": "2026-11-03T06:00:00+07:00", "reader_ok": False})
    reply = get(client, keys.diskominfo, "/devices")
    validate(reply, "DevicesReply")
    (fleet,) = reply.json["devices"]
    assert (fleet["device_id"], fleet["site"], fleet["backlog"], fleet["reader_ok"],
            fleet["revoked"]) == (device.device_id, "OPD1", 4, False, False)
    assert fleet["oldest_unsent_at"] == "2026-11-02T23:00:00.000Z"
    assert isinstance(fleet["clock_offset_ms"], int) and fleet["last_seen_at"]
    assert get(client, keys.opd2, "/devices").json["devices"] == []

    reply = get(client, keys.diskominfo, "/sites")
    validate(reply, "SitesReply")
    assert [s["code"] for s in reply.json["sites"]] == ["10401001", "OPD1", "OPD2"]
    assert [s["code"] for s in get(client, keys.opd1, "/sites").json["sites"]] == ["OPD1"]
    assert get(client, keys.opd1, "/sites").json["sites"][0]["devices"] == 1

    reply = get(client, keys.diskominfo, "/people", limit="2")
    validate(reply, "PeopleReply")
    assert [p["person_id"] for p in reply.json["people"]] == ["0051234561", NIP_1]
    rest = get(client, keys.diskominfo, "/people", limit="2", cursor=reply.json["next_cursor"])
    assert [p["person_id"] for p in rest.json["people"]] == [NIP_2]
    assert "nik" not in rest.json["people"][0]
    assert [p["person_id"] for p in get(client, keys.opd1, "/people").json["people"]] == [NIP_1]


# -- the change feed ---------------------------------------------------------------------------
def follow(client, token, cursor="0", limit="3"):
    """Follow the feed until it is empty; returns the rows and the final cursor."""
    seen = []
    while True:
        reply = get(client, token, "/changes", cursor=cursor, limit=limit)
        assert reply.status_code == 200
        validate(reply, "ChangesReply")
        if not reply.json["changes"]:
            assert reply.json["next_cursor"] == cursor
            return seen, cursor
        seen += reply.json["changes"]
        cursor = reply.json["next_cursor"]


def test_change_feed_follows_updates(client, engine, world):
    keys = world["keys"]
    with engine.begin() as conn:  # give every row its own version, as the reconciler does
        keys_ = conn.execute(sa.select(attendance_days.c.person_id, attendance_days.c.day)
                             .order_by(attendance_days.c.day, attendance_days.c.person_id)).all()
        for version, (person, day) in enumerate(keys_, start=1):
            conn.execute(attendance_days.update().where(
                attendance_days.c.person_id == person, attendance_days.c.day == day)
                .values(version=version))
    seen, cursor = follow(client, keys.diskominfo)
    assert [r["version"] for r in seen] == list(range(1, 22)) and cursor == "21"
    assert follow(client, keys.diskominfo, cursor) == ([], "21")
    assert follow(client, keys.diskominfo, "999999") == ([], "999999")  # beyond the end

    # A row that changes gets a new version and comes again.
    with engine.begin() as conn:
        conn.execute(attendance_days.update().where(
            attendance_days.c.person_id == NIP_1, attendance_days.c.day == date(2026, 11, 2))
            .values(status="S", version=22, excuse_id="ex-9"))
    again, cursor = follow(client, keys.diskominfo, cursor)
    assert [(r["person_id"], r["date"], r["status"], r["version"]) for r in again] == [
        (NIP_1, "2026-11-02", "S", 22)]
    assert cursor == "22"

    mine, _ = follow(client, keys.opd1)
    assert {r["site"] for r in mine} == {"OPD1"} and len(mine) == 7
    assert mine[-1]["version"] == 22


# -- excuses with API keys ------------------------------------------------------------------------
def excuse(excuse_id, person, start="2026-11-10", end="2026-11-11"):
    return {"excuse_id": excuse_id, "person_id": person, "kind": "sakit", "date_from": start,
            "date_to": end}


def post_excuses(client, token, *items):
    return client.post(API + "/excuses", json={"excuses": list(items)},
                       headers=Keys.headers(token))


def test_operator_excuse_for_own_site(client, engine, world):
    reply = post_excuses(client, world["keys"].opd1, excuse("ex-1", NIP_1))
    assert reply.status_code == 200 and reply.json["results"][0]["status"] == "accepted"
    (stored,) = rows(engine, "SELECT site_code, source_operator, source_device_id FROM excuses")
    assert stored["site_code"] == "OPD1" and stored["source_operator"].startswith("ak_")
    assert stored["source_device_id"] is None


def test_operator_excuse_for_another_sites_person_is_403(client, engine, world):
    keys = world["keys"]
    reply = post_excuses(client, keys.opd1, excuse("ex-1", NIP_1), excuse("ex-2", NIP_2),
                         excuse("ex-3", "unknown-person"))
    assert reply.status_code == 403 and reply.json["error"]["code"] == "forbidden"
    assert [d["path"] for d in reply.json["error"]["details"]] == [
        "excuses[1].person_id", "excuses[2].person_id"]
    documented(reply, "/excuses", "post")
    assert count(engine, "excuses") == 0


def test_operator_excuse_follows_assignments(client, engine, world):
    """A person who moved from OPD1 to OPD2 on the 16th: OPD1 may excuse the days before."""
    with engine.begin() as conn:
        conn.execute(person_sites.update().where(person_sites.c.person_id == NIP_2)
                     .values(valid_from=date(2026, 11, 16)))
        conn.execute(person_sites.insert().values(
            person_id=NIP_2, site_code="OPD1", valid_from=date(2026, 1, 1),
            valid_to=date(2026, 11, 15)))
        conn.execute(people.update().where(people.c.person_id == NIP_2)
                     .values(site_code="OPD2"))
    token = world["keys"].opd1
    assert post_excuses(client, token, excuse("ex-1", NIP_2, "2026-11-14",
                                              "2026-11-17")).status_code == 200
    assert post_excuses(client, token, excuse("ex-2", NIP_2, "2026-11-16",
                                              "2026-11-17")).status_code == 403
    assert post_excuses(client, world["keys"].opd2,
                        excuse("ex-3", NIP_2, "2026-11-16", "2026-11-17")).status_code == 200


def test_diskominfo_excuse_for_anyone(client, engine, world):
    reply = post_excuses(client, world["keys"].diskominfo, excuse("ex-1", NIP_2),
                         excuse("ex-2", "0051234561"))
    assert reply.status_code == 200
    assert [r["site_code"] for r in rows(engine, "SELECT site_code FROM excuses")] == [None, None]


def test_excuse_with_a_revoked_or_wrong_key_is_401(client, engine, world):
    keys = world["keys"]
    with engine.begin() as conn:
        apikeys.revoke_key(conn, keys.opd1[3:15])
    assert post_excuses(client, keys.opd1, excuse("ex-1", NIP_1)).status_code == 401
    assert post_excuses(client, keys.opd2[:-3] + "abc", excuse("ex-1", NIP_2)).status_code == 401
    assert count(engine, "excuses") == 0
    # Devices keep sending as before.
    reply = client.post(API + "/excuses", json={"excuses": [excuse("ex-9", NIP_1)]},
                        headers=world["device"].headers)
    assert reply.status_code == 200


# -- registry imports -------------------------------------------------------------------------
SITES_CSV = ("code,name,kind,timezone,regency\n"
             "OPD3,Dinas Kesehatan,kantor,WIB,Kota Pekanbaru\n"
             "10401002,SMPN 2 Pekanbaru,sekolah,WIB,Kota Pekanbaru\n")


def upload(client, token, kind, body, media="text/csv", **params):
    return client.post(f"{API}/registry/{kind}", data=body, content_type=media,
                       query_string=params, headers=Keys.headers(token))


def test_registry_import_dry_run_then_apply(client, engine, world):
    token = world["keys"].diskominfo
    reply = upload(client, token, "sites", SITES_CSV, dry_run="true", filename="sites.csv")
    assert reply.status_code == 200, reply.json
    validate(reply, "RegistryDiffReply")
    assert reply.json["dry_run"] is True and reply.json["applied"] is False
    assert reply.json["counts"]["new"] == 2 and reply.json["source"] == "sites.csv"
    assert [e["key"] for e in reply.json["new"]] == ["OPD3", "10401002"]
    assert count(engine, "sites") == 3
    reply = upload(client, token, "sites", SITES_CSV)
    assert reply.json["applied"] is True and count(engine, "sites") == 5
    again = upload(client, token, "sites", SITES_CSV)
    assert again.json["counts"] == {"new": 0, "changes": 0, "unchanged": 2}


def test_registry_import_json_rows(client, engine, world):
    body = {"rows": [{"code": "OPD4", "name": "Dinas Sosial", "kind": "office",
                      "timezone": "Asia/Jakarta"}]}
    reply = client.post(f"{API}/registry/sites", json=body,
                        headers=Keys.headers(world["keys"].diskominfo))
    assert reply.status_code == 200 and reply.json["counts"]["new"] == 1
    bad = client.post(f"{API}/registry/sites", data="{not json",
                      content_type="application/json",
                      headers=Keys.headers(world["keys"].diskominfo))
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_json"


def test_registry_bad_file_lists_every_problem(client, engine, world):
    body = ("code,name,kind,timezone\n"
            "OPD5,,kantor,WIB\n"
            "12,Sekolah,sekolah,Mars/Olympus\n")
    reply = upload(client, world["keys"].diskominfo, "sites", body, filename="sites.csv")
    assert reply.status_code == 422 and reply.json["error"]["code"] == "invalid_file"
    documented(reply, "/registry/{kind}", "post")
    details = reply.json["error"]["details"]
    assert {(d["file"], d["line"], d["field"]) for d in details} == {
        ("sites.csv", 2, "name"), ("sites.csv", 3, "code"), ("sites.csv", 3, "timezone")}
    assert all(d["reason"] and d["message"] == d["reason"] for d in details)
    assert details[0]["path"].startswith("sites.csv:")
    assert count(engine, "sites") == 3  # nothing written


def test_registry_students_without_school_names_the_parameter(client, world):
    body = "Nama,NISN,JK,Tanggal Lahir,NIK,Rombel Saat Ini\nAni,0051234599,P,2013-01-02,,7A\n"
    reply = upload(client, world["keys"].diskominfo, "students", body)
    assert reply.status_code == 422
    assert reply.json["error"]["details"][0]["field"] == "npsn"


def test_registry_needs_a_diskominfo_key(client, engine, world):
    reply = upload(client, world["keys"].opd1, "sites", SITES_CSV)
    assert reply.status_code == 403 and reply.json["error"]["code"] == "forbidden"
    assert client.post(f"{API}/registry/sites", data=SITES_CSV).status_code == 401
    reply = upload(client, world["keys"].diskominfo, "buildings", SITES_CSV)
    assert reply.status_code == 404 and reply.json["error"]["code"] == "not_found"
    reply = upload(client, world["keys"].diskominfo, "sites", "")
    assert reply.status_code == 400
    reply = upload(client, world["keys"].diskominfo, "sites", SITES_CSV, dry_run="yes")
    assert reply.status_code == 400 and reply.json["error"]["details"][0]["path"] == "dry_run"
    assert count(engine, "sites") == 3


def test_registry_uploads_may_exceed_the_sync_limit(client, world):
    # Bigger than MAX_CONTENT_LENGTH (4 MiB), below the upload limit: the importer judges it.
    lines = "".join(f"OPD{n},Dinas {'x' * 300},kantor,WIB\n" for n in range(14000))
    body = "code,name,kind,timezone\n" + lines
    assert len(body) > 4 * 1024 * 1024
    reply = upload(client, world["keys"].diskominfo, "sites", body, dry_run="true")
    assert reply.status_code == 422, reply.json
    assert reply.json["error"]["details"][0]["reason"] == "is longer than 200 characters"
    too_big = client.post(API + "/excuses", data=body, content_type="application/json",
                          headers=Keys.headers(world["keys"].diskominfo))
    assert too_big.status_code == 413


def test_operator_excuse_with_dates_reversed_is_400(client, engine, world):
    reply = post_excuses(client, world["keys"].opd1,
                         excuse("ex-1", NIP_2, "2026-11-12", "2026-11-10"))
    assert reply.status_code == 400 and reply.json["error"]["code"] == "validation_error"
    assert count(engine, "excuses") == 0
