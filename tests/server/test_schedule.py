"""Schedules, the holiday calendar and day plans (pure rules), as tables of cases."""

import json
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import schedule as schedule_module
from server.schedule import (DEFAULT_SCHEDULES, WEEKDAY_KEYS, Calendar, CalendarDay, DayHours,
                             DayPlan, Schedule, calendar_range, local_day, local_day_bounds,
                             parse_time, plan_day, site_timezone)

UTC = timezone.utc
WIB = ZoneInfo("Asia/Jakarta")
WITA = ZoneInfo("Asia/Makassar")
WIT = ZoneInfo("Asia/Jayapura")
ASN = DEFAULT_SCHEDULES["asn"]
MONDAY = date(2026, 11, 23)
FRIDAY = date(2026, 11, 27)
SATURDAY = date(2026, 11, 28)
RAMADAN_2026 = calendar_range("ramadan", date(2026, 2, 18), date(2026, 3, 19), "Ramadan 1447")


# -- time zones -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, key", [
    ("WIB", "Asia/Jakarta"),
    ("wib", "Asia/Jakarta"),
    (" Wita ", "Asia/Makassar"),
    ("WIT", "Asia/Jayapura"),
    ("wit", "Asia/Jayapura"),
    ("Asia/Pontianak", "Asia/Pontianak"),
    ("UTC", "UTC"),
])
def test_site_timezone_accepts_abbreviations_and_iana_names(text, key):
    assert site_timezone(text).key == key


@pytest.mark.parametrize("text", ["", "   ", "WITT", "GMT+7 Jakarta", "Mars/Olympus_Mons",
                                  "/etc/passwd", "../../etc/passwd"])
def test_site_timezone_refuses_anything_else_helpfully(text):
    with pytest.raises(ValueError, match="WIB"):
        site_timezone(text)


# -- schedules ------------------------------------------------------------------------------
def test_asn_weekly_hours_are_those_of_perpres_21_2023():
    assert ASN.weekly_minutes() == 37 * 60 + 30
    assert ASN.weekly_hours() == 37.5
    assert ASN.weekly_minutes(ramadan=True) == 32 * 60 + 30
    assert ASN.weekly_hours(ramadan=True) == 32.5


@pytest.mark.parametrize("name, weekday, ramadan, expected", [
    ("asn", 0, False, DayHours(time(7, 30), time(16), 60)),
    ("asn", 3, False, DayHours(time(7, 30), time(16), 60)),
    ("asn", 4, False, DayHours(time(7, 30), time(16, 30), 90)),
    ("asn", 5, False, None),
    ("asn", 6, False, None),
    ("asn", 0, True, DayHours(time(8), time(15), 30)),
    ("asn", 4, True, DayHours(time(8), time(15, 30), 60)),
    ("sekolah", 0, False, DayHours(time(7), time(14))),
    ("sekolah", 4, False, DayHours(time(7), time(14))),
    ("sekolah", 5, False, None),
    ("sekolah", 2, True, DayHours(time(8), time(12))),
    ("sekolah-6hari", 5, False, DayHours(time(7), time(12, 30))),
    ("sekolah-6hari", 6, False, None),
    ("sekolah-6hari", 5, True, DayHours(time(7), time(12, 30))),  # no Ramadan profile
    ("sekolah-0630", 0, False, DayHours(time(6, 30), time(14))),
    ("sekolah-0630", 4, True, DayHours(time(8), time(12))),
])
def test_default_schedules(name, weekday, ramadan, expected):
    assert DEFAULT_SCHEDULES[name].hours(weekday, ramadan=ramadan) == expected


def test_every_default_schedule_has_no_grace():
    assert {s.grace_minutes for s in DEFAULT_SCHEDULES.values()} == {0}
    assert all(name == s.name for name, s in DEFAULT_SCHEDULES.items())


def test_asn_dict_form():
    data = ASN.to_dict()
    assert data["grace_minutes"] == 0
    assert data["days"]["fri"] == {"start": "07:30", "end": "16:30", "break_minutes": 90}
    assert data["ramadan"]["mon"] == {"start": "08:00", "end": "15:00", "break_minutes": 30}
    assert set(data["days"]) == {"mon", "tue", "wed", "thu", "fri"}
    assert "ramadan" not in DEFAULT_SCHEDULES["sekolah-6hari"].to_dict()


@pytest.mark.parametrize("name", sorted(DEFAULT_SCHEDULES))
def test_default_schedules_round_trip_through_json(name):
    original = DEFAULT_SCHEDULES[name]
    again = Schedule.from_dict(name, json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert again.to_dict() == original.to_dict()


def _minute_times():
    return st.integers(0, 23 * 60 + 58).map(lambda m: time(m // 60, m % 60))


@st.composite
def day_hours(draw):
    start = draw(_minute_times())
    span = draw(st.integers(1, 24 * 60 - 1 - (start.hour * 60 + start.minute)))
    end_minute = start.hour * 60 + start.minute + span
    return DayHours(start, time(end_minute // 60, end_minute % 60),
                    draw(st.integers(0, span - 1)))


@st.composite
def schedules(draw):
    weekdays = draw(st.sets(st.integers(0, 6), min_size=1))
    days = {d: draw(day_hours()) for d in weekdays}
    ramadan = {d: draw(day_hours()) for d in weekdays} if draw(st.booleans()) else None
    return Schedule(draw(st.text(min_size=1, max_size=10)), days,
                    draw(st.integers(0, 120)), ramadan, draw(st.text(max_size=20)))


@given(schedules())
def test_any_schedule_round_trips_through_json(original):
    data = json.loads(json.dumps(original.to_dict()))
    assert Schedule.from_dict(original.name, data) == original


def _valid():
    return {"description": "kantor", "grace_minutes": 5,
            "days": {"mon": {"start": "07:30", "end": "16:00", "break_minutes": 60},
                     "fri": {"start": "07:30", "end": "16:30", "break_minutes": 90}}}


def _with(path, value):
    data = json.loads(json.dumps(_valid()))
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize("data, message", [
    (_with("days.fri.end", "25:00"), 'days.fri.end: "25:00" is not a time HH:MM'),
    (_with("days.fri.end", "16.30"), 'days.fri.end: "16.30" is not a time HH:MM'),
    (_with("days.fri.start", 730), "days.fri.start: 730 is not a time HH:MM"),
    (_with("days.mon.end", "07:00"), "days.mon: end 07:00 is not after start 07:30"),
    (_with("days.mon.end", "07:30"), "days.mon: end 07:30 is not after start 07:30"),
    (_with("days.mon.start", _DELETE), "days.mon.start: missing"),
    (_with("days.mon.lunch", 60), "days.mon.lunch: unknown key"),
    (_with("days.mon.break_minutes", -5), "days.mon.break_minutes: -5"),
    (_with("days.mon.break_minutes", True), "days.mon.break_minutes: true"),
    (_with("days.mon.break_minutes", 600), "days.mon: break_minutes 600 leaves no working"),
    (_with("days.monday", {"start": "07:00", "end": "12:00"}), "days.monday: unknown weekday"),
    (_with("days.tue", "07:00-16:00"), "days.tue: \"07:00-16:00\" is not an object"),
    (_with("days", {}), "days: no working day"),
    (_with("days", _DELETE), "days: missing"),
    (_with("days", ["mon"]), "days: [\"mon\"] is not an object"),
    (_with("grace_minutes", -1), "grace_minutes: -1 must be a whole number >= 0"),
    (_with("grace_minutes", 2.5), "grace_minutes: 2.5"),
    (_with("description", 7), "description: 7 must be a string"),
    (_with("weekend", "sat"), "weekend: unknown key"),
    (_with("ramadan", {"mon": {"start": "08:00", "end": "15:00"}}),
     "ramadan.fri: missing; the Ramadan profile must list the same weekdays"),
    (_with("ramadan", {"mon": {"start": "08:00", "end": "15:00"},
                       "fri": {"start": "08:00", "end": "15:30"},
                       "sat": {"start": "08:00", "end": "12:00"}}),
     "ramadan.sat: not a working day in days"),
    (_with("ramadan", {"mon": {"start": "08:00", "end": "15:00"},
                       "fri": {"start": "08:00", "end": "24:00"}}),
     'ramadan.fri.end: "24:00" is not a time HH:MM'),
])
def test_schedule_from_dict_errors_name_the_key(data, message):
    with pytest.raises(ValueError) as caught:
        Schedule.from_dict("kantor", data)
    assert message in str(caught.value)


def test_schedule_from_dict_accepts_the_valid_form():
    parsed = Schedule.from_dict("kantor", _valid())
    assert parsed.grace_minutes == 5 and parsed.description == "kantor"
    assert parsed.days == {0: DayHours(time(7, 30), time(16), 60),
                           4: DayHours(time(7, 30), time(16, 30), 90)}
    assert parsed.ramadan is None
    assert parsed.hours(4, ramadan=True) == DayHours(time(7, 30), time(16, 30), 90)


def test_schedule_is_read_only():
    with pytest.raises(TypeError):
        ASN.days[5] = DayHours(time(8), time(12))  # type: ignore[index]
    days = {0: DayHours(time(8), time(12))}
    built = Schedule("x", days)
    days[1] = DayHours(time(8), time(12))
    assert list(built.days) == [0]


@pytest.mark.parametrize("text, expected", [("07:30", time(7, 30)), ("7:05", time(7, 5)),
                                            ("00:00", time(0)), ("23:59", time(23, 59))])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["24:00", "7:60", "0730", "07:30:00", "", None, "7:5"])
def test_parse_time_refuses(text):
    with pytest.raises(ValueError, match="is not a time HH:MM"):
        parse_time(text)


def test_day_hours_refuses_seconds_and_zones():
    with pytest.raises(ValueError, match="whole minute"):
        DayHours(time(7, 30, 15), time(16))
    with pytest.raises(ValueError, match="without a zone"):
        DayHours(time(7, 30, tzinfo=UTC), time(16))


# -- calendar -------------------------------------------------------------------------------
@pytest.mark.parametrize("day, fragment", [
    (date(2026, 8, 17), "Kemerdekaan"),       # a public holiday
    (date(2026, 12, 24), "Cuti Bersama"),     # cuti bersama: the "government" category
    (date(2026, 12, 25), "Natal"),
    (date(2026, 1, 1), "Tahun Baru"),
])
def test_national_holidays_come_from_the_package_in_indonesian(day, fragment):
    name = Calendar().holiday_name(day)
    assert name is not None and fragment in name


@pytest.mark.parametrize("day", [date(2026, 8, 18), date(2026, 11, 23), date(2026, 12, 23)])
def test_ordinary_days_have_no_holiday(day):
    assert Calendar().holiday_name(day) is None


def test_overrides_win_over_the_package():
    calendar = Calendar([
        CalendarDay(date(2026, 12, 24), "workday", "masuk"),
        CalendarDay(date(2026, 11, 23), "holiday", "Hari Jadi Kabupaten"),
        CalendarDay(date(2026, 11, 24), "holiday"),
    ])
    assert calendar.holiday_name(date(2026, 12, 24)) is None
    assert calendar.national_holiday_name(date(2026, 12, 24)) is not None
    assert calendar.holiday_name(date(2026, 11, 23)) == "Hari Jadi Kabupaten"
    assert calendar.holiday_name(date(2026, 11, 24)) == "holiday"
    assert "Natal" in calendar.holiday_name(date(2026, 12, 25))


def test_a_later_override_replaces_an_earlier_one_for_the_same_date():
    regency = [CalendarDay(date(2026, 11, 23), "holiday", "Hari Jadi Kabupaten")]
    site = [CalendarDay(date(2026, 11, 23), "workday", "sekolah tetap masuk")]
    assert Calendar(regency + site).holiday_name(date(2026, 11, 23)) is None
    assert Calendar(site + regency).holiday_name(date(2026, 11, 23)) == "Hari Jadi Kabupaten"


def test_without_country_holidays_only_overrides_count():
    calendar = Calendar([CalendarDay(date(2026, 11, 23), "holiday", "banjir")],
                        country_holidays=False)
    assert calendar.holiday_name(date(2026, 8, 17)) is None
    assert calendar.holiday_name(date(2026, 11, 23)) == "banjir"


def test_half_day_and_ramadan_overrides():
    calendar = Calendar([CalendarDay(MONDAY, "half_day", "rapat", time(12)),
                         *RAMADAN_2026])
    assert calendar.half_day_end(MONDAY) == time(12)
    assert calendar.half_day_end(FRIDAY) is None
    assert calendar.is_ramadan(date(2026, 2, 18)) and calendar.is_ramadan(date(2026, 3, 19))
    assert not calendar.is_ramadan(date(2026, 2, 17))
    assert not calendar.is_ramadan(date(2026, 3, 20))
    assert len(RAMADAN_2026) == 30


def test_holidays_are_computed_lazily_once_per_year(monkeypatch):
    real = schedule_module.holidays.country_holidays
    years = []

    def counting(*args, **kwargs):
        if kwargs.get("years") is not None:
            years.append(kwargs["years"])
        return real(*args, **kwargs)

    monkeypatch.setattr(schedule_module.holidays, "country_holidays", counting)
    calendar = Calendar()
    assert years == []
    calendar.holiday_name(date(2026, 8, 17))
    calendar.holiday_name(date(2026, 12, 24))
    calendar.holiday_name(date(2027, 1, 1))
    calendar.holiday_name(date(2026, 1, 1))
    assert years == [2026, 2027]


def test_holidays_between():
    calendar = Calendar([CalendarDay(date(2026, 12, 24), "workday")])
    found = calendar.holidays_between(date(2026, 12, 20), date(2026, 12, 31))
    assert [day for day, _ in found] == [date(2026, 12, 25)]


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "libur"}, "kind 'libur'"),
    ({"kind": "half_day"}, "needs a local end time"),
    ({"kind": "holiday", "end": time(12)}, "only for a half_day"),
])
def test_calendar_day_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CalendarDay(date(2026, 11, 23), **kwargs)


# -- day plans ------------------------------------------------------------------------------
def _at(day, hh, mm, tz=WIB):
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz)


CALENDAR = Calendar([
    CalendarDay(date(2026, 12, 24), "workday", "masuk"),
    CalendarDay(date(2026, 11, 24), "half_day", "rapat", time(12)),
    CalendarDay(date(2026, 11, 25), "half_day", "upacara", time(6)),
    CalendarDay(date(2026, 11, 26), "half_day", "tidak lebih awal", time(17)),
    *RAMADAN_2026,
])

PLANS = [
    ("asn Monday", "asn", MONDAY, Calendar(),
     DayPlan(MONDAY, True, "", _at(MONDAY, 7, 30), _at(MONDAY, 16, 0), 0, 60)),
    ("asn Friday ends 16:30", "asn", FRIDAY, Calendar(),
     DayPlan(FRIDAY, True, "", _at(FRIDAY, 7, 30), _at(FRIDAY, 16, 30), 0, 90)),
    ("asn Saturday is a weekend", "asn", SATURDAY, Calendar(),
     DayPlan(SATURDAY, False, "weekend", None, None)),
    ("six-day school works on Saturday", "sekolah-6hari", SATURDAY, Calendar(),
     DayPlan(SATURDAY, True, "", _at(SATURDAY, 7, 0), _at(SATURDAY, 12, 30))),
    ("independence day", "asn", date(2026, 8, 17), Calendar(),
     DayPlan(date(2026, 8, 17), False, "holiday: Hari Kemerdekaan Republik Indonesia",
             None, None)),
    ("cuti bersama", "sekolah", date(2026, 12, 24), Calendar(),
     DayPlan(date(2026, 12, 24), False, "holiday: Cuti Bersama Hari Raya Natal", None, None)),
    ("cuti bersama cancelled by a workday override", "sekolah", date(2026, 12, 24), CALENDAR,
     DayPlan(date(2026, 12, 24), True, "", _at(date(2026, 12, 24), 7, 0),
             _at(date(2026, 12, 24), 14, 0))),
    ("a holiday on a Saturday is a weekend for a five-day schedule", "asn",
     date(2026, 3, 21), Calendar(),
     DayPlan(date(2026, 3, 21), False, "weekend", None, None, ramadan=False)),
    ("half day ends at 12:00", "asn", date(2026, 11, 24), CALENDAR,
     DayPlan(date(2026, 11, 24), True, "", _at(date(2026, 11, 24), 7, 30),
             _at(date(2026, 11, 24), 12, 0), 0, 60, half_day=True)),
    ("half day before the start ends at the start", "asn", date(2026, 11, 25), CALENDAR,
     DayPlan(date(2026, 11, 25), True, "", _at(date(2026, 11, 25), 7, 30),
             _at(date(2026, 11, 25), 7, 30), 0, 0, half_day=True)),
    ("half day after the end changes nothing", "asn", date(2026, 11, 26), CALENDAR,
     DayPlan(date(2026, 11, 26), True, "", _at(date(2026, 11, 26), 7, 30),
             _at(date(2026, 11, 26), 16, 0), 0, 60)),
    ("Ramadan profile starts at 08:00", "asn", date(2026, 2, 23), CALENDAR,
     DayPlan(date(2026, 2, 23), True, "", _at(date(2026, 2, 23), 8, 0),
             _at(date(2026, 2, 23), 15, 0), 0, 30, ramadan=True)),
    ("Ramadan Friday", "asn", date(2026, 2, 20), CALENDAR,
     DayPlan(date(2026, 2, 20), True, "", _at(date(2026, 2, 20), 8, 0),
             _at(date(2026, 2, 20), 15, 30), 0, 60, ramadan=True)),
    ("Ramadan without a profile keeps normal hours", "sekolah-6hari", date(2026, 2, 21),
     CALENDAR, DayPlan(date(2026, 2, 21), True, "", _at(date(2026, 2, 21), 7, 0),
                       _at(date(2026, 2, 21), 12, 30))),
    ("Ramadan weekend", "asn", date(2026, 2, 22), CALENDAR,
     DayPlan(date(2026, 2, 22), False, "weekend", None, None, ramadan=True)),
    ("Nyepi during Ramadan is a holiday", "asn", date(2026, 3, 19), CALENDAR,
     DayPlan(date(2026, 3, 19), False, "holiday: Hari Suci Nyepi", None, None, ramadan=True)),
]


@pytest.mark.parametrize("label, name, day, calendar, expected", PLANS,
                         ids=[case[0] for case in PLANS])
def test_plan_day(label, name, day, calendar, expected):
    assert plan_day(DEFAULT_SCHEDULES[name], calendar, day, WIB) == expected


def test_plan_day_carries_grace():
    graced = Schedule.from_dict("graced", {"grace_minutes": 10, "days": {
        "mon": {"start": "07:30", "end": "16:00"}}})
    assert plan_day(graced, Calendar(), MONDAY, WIB).grace_minutes == 10


@pytest.mark.parametrize("tz, offset", [(WIB, 7), (WITA, 8), (WIT, 9)])
def test_plan_times_are_in_the_site_zone(tz, offset):
    plan = plan_day(ASN, Calendar(), MONDAY, tz)
    assert plan.start.utcoffset() == timedelta(hours=offset)
    assert plan.start.astimezone(UTC) == datetime(2026, 11, 23, 7, 30, tzinfo=UTC) - \
        timedelta(hours=offset)


# -- local days -----------------------------------------------------------------------------
@pytest.mark.parametrize("tz, utc_hour", [(WIB, 17), (WITA, 16), (WIT, 15)])
def test_half_past_midnight_local_belongs_to_the_next_day(tz, utc_hour):
    tap = datetime(2026, 11, 23, utc_hour, 30, tzinfo=UTC)  # 00:30 local on the 24th
    start_23, end_23 = local_day_bounds(date(2026, 11, 23), tz)
    start_24, end_24 = local_day_bounds(date(2026, 11, 24), tz)
    assert not start_23 <= tap < end_23
    assert start_24 <= tap < end_24
    assert local_day(tap, tz) == date(2026, 11, 24)
    assert tap.astimezone(tz).time() == time(0, 30)
    assert end_23 == start_24 and end_24 - start_24 == timedelta(days=1)


@pytest.mark.parametrize("tz", [WIB, WITA, WIT])
def test_local_day_bounds_are_local_midnights(tz):
    start, end = local_day_bounds(date(2026, 11, 24), tz)
    assert start == datetime(2026, 11, 24, tzinfo=tz)
    assert end == datetime(2026, 11, 25, tzinfo=tz)
    assert start.tzinfo is tz


@given(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30),
                    timezones=st.just(UTC)),
       st.sampled_from([WIB, WITA, WIT]))
def test_every_instant_is_inside_the_bounds_of_its_local_day(at, tz):
    start, end = local_day_bounds(local_day(at, tz), tz)
    assert start <= at < end


def test_local_day_refuses_naive_times():
    with pytest.raises(ValueError, match="no time zone"):
        local_day(datetime(2026, 11, 23, 7, 30), WIB)


def test_weekday_keys_match_date_weekday():
    assert WEEKDAY_KEYS[MONDAY.weekday()] == "mon"
    assert WEEKDAY_KEYS[SATURDAY.weekday()] == "sat"
