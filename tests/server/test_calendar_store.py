"""Schedules and calendar overrides in the database (server.calendar_store) and their CLI."""

from __future__ import annotations

import json
from datetime import date, time, timedelta

import pytest
import sqlalchemy as sa

from server.calendar_store import (add_calendar_day, add_ramadan, assign_schedule,
                                   calendar_for_site, get_schedule, list_calendar_days,
                                   load_schedules, parse_schedule_file, remove_calendar_day,
                                   save_schedule, schedule_name_for_site, scope_for,
                                   site_schedule)
from server.errors import NotFound
from server.schedule import DEFAULT_SCHEDULES, Schedule, plan_day, site_timezone
from server.schema import sites
from tests.server.attendance_data import add_site, at, queue_rows

#: A week with no national holiday; "now" in these tests is its Wednesday noon (WIB).
MONDAY = date(2026, 11, 16)
NOW = at(MONDAY + timedelta(days=2), "12:00")
SHORT = {"description": "Short days", "grace_minutes": 10,
         "days": {d: {"start": "08:00", "end": "12:00"} for d in ("mon", "tue", "wed")}}


@pytest.fixture
def city(engine):
    add_site(engine, "OPD-1", kind="office", regency="Kota Pekanbaru")
    add_site(engine, "20401234", kind="school", regency="Kota Pekanbaru")
    add_site(engine, "20409999", kind="school", regency="Kampar")
    add_site(engine, "MYSTERY", kind=None)
    return engine


def test_defaults_and_stored_schedules(city):
    with city.begin() as conn:
        assert load_schedules(conn) == DEFAULT_SCHEDULES
        assert get_schedule(conn, "asn") is DEFAULT_SCHEDULES["asn"]
        with pytest.raises(NotFound, match="no schedule 'kantor-pagi'"):
            get_schedule(conn, "kantor-pagi")
        save_schedule(conn, Schedule.from_dict("kantor-pagi", SHORT), now=NOW)
        save_schedule(conn, Schedule.from_dict("asn", SHORT), now=NOW)  # replaces the default
        known = load_schedules(conn)
    assert known["kantor-pagi"].grace_minutes == 10
    assert known["asn"].weekly_hours() == 12 and known["sekolah"] is DEFAULT_SCHEDULES["sekolah"]


def test_a_broken_stored_schedule_is_skipped(city, caplog):
    with city.begin() as conn:
        conn.execute(sa.text("INSERT INTO schedules (name, definition, updated_at) "
                             "VALUES ('rusak', :d, :t)"), {"d": json.dumps({"days": {}}),
                                                           "t": NOW})
        assert "rusak" not in load_schedules(conn)
    assert "rusak" in caplog.text


@pytest.mark.parametrize("site, expected", [
    ({"code": "A", "kind": "office", "schedule": None}, "asn"),
    ({"code": "B", "kind": "school", "schedule": None}, "sekolah"),
    ({"code": "C", "kind": None, "schedule": None}, "asn"),
    ({"code": "D", "kind": "school", "schedule": "sekolah-0630"}, "sekolah-0630"),
    ({"code": "E", "kind": "school", "schedule": "gone"}, "sekolah"),
])
def test_the_schedule_of_a_site(site, expected):
    assert schedule_name_for_site(site, DEFAULT_SCHEDULES) == expected


def test_assign_a_schedule_to_a_group_of_sites(city):
    with city.begin() as conn:
        queued = assign_schedule(conn, "sekolah-0630", ["20401234", "20409999"],
                                 since=MONDAY, now=NOW)
        assert site_schedule(conn, "20401234").name == "sekolah-0630"
        assert site_schedule(conn, "OPD-1").name == "asn"
    assert queued == 6  # Monday to Wednesday at two sites
    assert set(queue_rows(city)) == {(s, MONDAY + timedelta(days=n))
                                     for s in ("20401234", "20409999") for n in range(3)}
    with city.begin() as conn:
        with pytest.raises(NotFound, match="no site 'NOPE'"):
            assign_schedule(conn, "asn", ["OPD-1", "NOPE"], now=NOW)
        with pytest.raises(NotFound, match="no schedule"):
            assign_schedule(conn, "kantor-pagi", ["OPD-1"], now=NOW)


def test_changing_a_schedule_queues_the_sites_using_it(city):
    with city.begin() as conn:
        assert save_schedule(conn, Schedule.from_dict("sekolah", SHORT), now=NOW) == 2  # today
        count = save_schedule(conn, Schedule.from_dict("asn", SHORT), since=MONDAY, now=NOW)
    assert count == 6  # the office and the site without a kind, Monday to Wednesday
    assert {s for s, _ in queue_rows(city)} == {"20401234", "20409999", "OPD-1", "MYSTERY"}


def test_calendar_scopes_narrower_wins(city):
    day = MONDAY + timedelta(days=1)
    with city.begin() as conn:
        add_calendar_day(conn, day, "holiday", name="Libur daerah", now=NOW)
        add_calendar_day(conn, day, "workday", scope=scope_for(regency="Kota Pekanbaru"),
                         now=NOW)
        add_calendar_day(conn, day, "holiday", name="HUT sekolah",
                         scope=scope_for(site="20401234"), now=NOW)
        names = {code: calendar_for_site(conn, code).holiday_name(day)
                 for code in ("OPD-1", "20401234", "20409999")}
    assert names == {"OPD-1": None, "20401234": "HUT sekolah", "20409999": "Libur daerah"}


def test_national_holidays_and_cuti_bersama_apply_until_overridden(city):
    with city.begin() as conn:
        calendar = calendar_for_site(conn, "OPD-1")
        assert calendar.holiday_name(date(2026, 8, 17)) is not None
        assert calendar.holiday_name(date(2026, 12, 24)) is not None  # cuti bersama
        add_calendar_day(conn, date(2026, 12, 24), "workday", scope=scope_for(site="OPD-1"),
                         now=NOW)
        assert calendar_for_site(conn, "OPD-1").holiday_name(date(2026, 12, 24)) is None
        assert calendar_for_site(conn, "20401234").holiday_name(date(2026, 12, 24)) is not None


def test_holiday_and_workday_replace_each_other(city):
    day = MONDAY
    with city.begin() as conn:
        add_calendar_day(conn, day, "holiday", name="x", now=NOW)
        add_calendar_day(conn, day, "workday", now=NOW)
        assert [(e.kind, e.scope) for e in list_calendar_days(conn)] == [("workday", "")]


def test_half_days_and_ramadan_change_the_plan(city):
    zone = site_timezone("Asia/Jakarta")
    with city.begin() as conn:
        add_calendar_day(conn, MONDAY, "half_day", name="Rapat", end=time(11, 0), now=NOW)
        add_ramadan(conn, MONDAY + timedelta(days=1), MONDAY + timedelta(days=2),
                    scope=scope_for(regency="Kampar"), now=NOW)
        office = calendar_for_site(conn, "OPD-1")
        school = calendar_for_site(conn, "20409999")
        entries = list_calendar_days(conn, scopes=["regency:Kampar"])
    half = plan_day(DEFAULT_SCHEDULES["asn"], office, MONDAY, zone)
    assert half.half_day and half.end.time() == time(11, 0)
    fasting = plan_day(DEFAULT_SCHEDULES["sekolah"], school, MONDAY + timedelta(days=1), zone)
    assert fasting.ramadan and fasting.start.time() == time(8, 0)
    assert not office.is_ramadan(MONDAY + timedelta(days=1))
    assert [e.kind for e in entries] == ["ramadan", "ramadan"]
    with city.begin() as conn, pytest.raises(ValueError, match="it lasts 29 or 30"):
        add_ramadan(conn, MONDAY, MONDAY + timedelta(days=60), now=NOW)


def test_calendar_changes_queue_past_days_only(city):
    with city.begin() as conn:
        past = add_calendar_day(conn, MONDAY, "holiday", scope=scope_for(regency="Kampar"),
                                now=NOW)
        future = add_calendar_day(conn, MONDAY + timedelta(days=7), "holiday", now=NOW)
        everywhere = add_calendar_day(conn, MONDAY + timedelta(days=1), "holiday", now=NOW)
    assert (past, future, everywhere) == (1, 0, 4)
    assert queue_rows(city) == {("20409999", MONDAY): "calendar",
                                **{(s, MONDAY + timedelta(days=1)): "calendar"
                                   for s in ("OPD-1", "20401234", "20409999", "MYSTERY")}}
    with city.begin() as conn:
        assert remove_calendar_day(conn, MONDAY, "holiday",
                                   scope=scope_for(regency="Kampar"), now=NOW) == 1
        with pytest.raises(NotFound, match="no holiday override"):
            remove_calendar_day(conn, MONDAY, "holiday", now=NOW)


@pytest.mark.parametrize("scope, message", [
    ("site:NOPE", "no site 'NOPE'"),
    ("regency:", "calendar scope"),
    ("planet:Mars", "calendar scope"),
])
def test_bad_scopes(city, scope, message):
    with city.begin() as conn, pytest.raises((NotFound, ValueError), match=message):
        add_calendar_day(conn, MONDAY, "holiday", scope=scope, now=NOW)


def test_scope_for():
    assert scope_for() == ""
    assert scope_for(regency="Kampar") == "regency:Kampar"
    assert scope_for(site="OPD-1") == "site:OPD-1"
    with pytest.raises(ValueError, match="not both"):
        scope_for(regency="Kampar", site="OPD-1")


def test_schedule_files(tmp_path):
    as_json = tmp_path / "pagi.json"
    as_json.write_text(json.dumps(SHORT))
    assert parse_schedule_file(as_json, "pagi").days[0].start == time(8, 0)
    as_toml = tmp_path / "pagi.toml"
    as_toml.write_text('grace_minutes = 5\n[days.fri]\nstart = "07:00"\nend = "11:00"\n')
    assert parse_schedule_file(as_toml, "pagi").grace_minutes == 5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"days": {"mon": {"start": "9:00", "end": "08:00"}}}))
    with pytest.raises(ValueError, match=r"bad.json: days.mon: end 08:00 is not after"):
        parse_schedule_file(bad, "x")
    with pytest.raises(ValueError, match="give a .json or .toml file"):
        (tmp_path / "x.yaml").write_text("days: {}")
        parse_schedule_file(tmp_path / "x.yaml", "x")


# -- the command line ------------------------------------------------------------------------------
def test_schedule_commands(runner, city, tmp_path):
    listed = runner("schedule", "list").output
    assert "asn" in listed and "37.5 h/week" in listed and "2 site(s)" in listed
    shown = json.loads(runner("schedule", "show", "sekolah").output)
    assert shown["days"]["mon"] == {"start": "07:00", "end": "14:00", "break_minutes": 0}
    path = tmp_path / "pagi.json"
    path.write_text(json.dumps(SHORT))
    out = runner("schedule", "set", "kantor-pagi", str(path)).output
    assert "schedule kantor-pagi saved (12 h/week)" in out
    out = runner("schedule", "assign", "kantor-pagi", "--site", "OPD-1", "--site", "MYSTERY",
                 "--since", "2026-11-16").output
    assert "assigned to 2 site(s)" in out
    with city.connect() as conn:
        assert conn.execute(sa.select(sites.c.schedule).where(sites.c.code == "OPD-1")
                            ).scalar() == "kantor-pagi"
    assert "stored" in runner("schedule", "list").output


def test_calendar_commands(runner, city):
    out = runner("calendar", "add", "2026-11-17", "--kind", "holiday", "--name", "HUT Kota",
                 "--regency", "Kota Pekanbaru").output
    assert "holiday on 2026-11-17 for regency:Kota Pekanbaru" in out
    runner("calendar", "add", "2026-11-18", "--kind", "half_day", "--end", "11:30",
           "--site", "OPD-1")
    runner("calendar", "ramadan", "2026-02-18", "2026-03-19")
    listed = runner("calendar", "list", "--year", "2026").output
    assert "2026-11-17 Tue  holiday   regency:Kota Pekanbaru   HUT Kota" in listed
    assert "half_day  site:OPD-1" in listed and "(until 11:30)" in listed
    assert "national" in listed and listed.count("ramadan") == 30
    in_force = runner("calendar", "list", "--year", "2026", "--site", "20409999").output
    assert "HUT Kota" not in in_force and "2026-03-01 Sun  ramadan" in in_force
    out = runner("calendar", "remove", "2026-11-17", "--kind", "holiday",
                 "--regency", "Kota Pekanbaru").output
    assert "removed" in out


@pytest.mark.parametrize("args, message", [
    (["calendar", "add", "2026-11-17", "--kind", "holiday", "--site", "NOPE"], "no site 'NOPE'"),
    (["calendar", "add", "2026-11-17", "--kind", "holiday", "--site", "OPD-1",
      "--regency", "Kampar"], "not both"),
    (["calendar", "remove", "2026-11-17", "--kind", "holiday"], "no holiday override"),
    (["schedule", "show", "kantor-malam"], "no schedule 'kantor-malam'"),
    (["schedule", "set", "x", "/nonexistent.json"], "No such file"),
])
def test_calendar_and_schedule_errors(runner, city, args, message):
    result = runner(*args)
    assert result.exit_code == 1
    assert result.output.startswith("attendance-server: error: ") and message in result.output


def test_half_day_needs_an_end(runner, city):
    result = runner("calendar", "add", "2026-11-17", "--kind", "half_day")
    assert result.exit_code == 2 and "--end HH:MM" in result.output
