"""Today's status of a person and the page's counts: pure rules, tables of cases."""

from datetime import date, datetime, time

import pytest

from edge.attendance import (DayPlan, count_statuses, merge_plans, month_counts, parse_plans,
                             person_status, plan_for)

DAY = date(2026, 11, 23)
PLAN = DayPlan(DAY, True, time(7, 0), time(14, 0), 5)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 23, hh, mm, ss)


@pytest.mark.parametrize("plan, first_tap, excuse, day_over, expected", [
    (PLAN, None, None, False, "not_arrived"),
    (PLAN, None, None, True, "absent"),
    (PLAN, at(6, 40), None, False, "present"),
    (PLAN, at(7, 5), None, False, "present"),          # within the 5 minutes' grace
    (PLAN, at(7, 5, 1), None, False, "late"),
    (PLAN, at(9, 0), None, True, "late"),
    (PLAN, at(6, 40), "sakit", False, "sakit"),        # an excuse wins over a tap
    (PLAN, None, "dinas_luar", True, "dinas_luar"),
    (DayPlan(DAY, False, time(7, 0)), at(9, 0), None, False, "present"),  # no lateness on a day off
    (DayPlan(DAY, True, None), at(11, 0), None, False, "present"),         # no start: nobody late
    (DayPlan(DAY, True, time(7, 0), grace_minutes=0), at(7, 0), None, False, "present"),
])
def test_person_status(plan, first_tap, excuse, day_over, expected):
    assert person_status(plan, first_tap, excuse, day_over=day_over) == expected


def test_aware_first_tap_compares_by_local_clock_reading():
    from datetime import timedelta, timezone

    wib = timezone(timedelta(hours=7))
    assert person_status(PLAN, datetime(2026, 11, 23, 7, 10, tzinfo=wib), None) == "late"
    assert person_status(PLAN, datetime(2026, 11, 23, 6, 50, tzinfo=wib), None) == "present"


@pytest.mark.parametrize("statuses, expected", [
    ([], {"present": 0, "late": 0, "excused": 0, "not_arrived": 0, "total": 0}),
    (["present", "late", "late", "sakit", "izin", "not_arrived", "absent"],
     {"present": 3, "late": 2, "excused": 2, "not_arrived": 2, "total": 7}),
    (["cuti", "dinas_luar"], {"present": 0, "late": 0, "excused": 2, "not_arrived": 0, "total": 2}),
])
def test_count_statuses(statuses, expected):
    counts = count_statuses(statuses)
    assert counts == expected
    assert counts["present"] + counts["excused"] + counts["not_arrived"] == counts["total"]


def test_month_counts():
    assert month_counts(["present", "late", "sakit", "absent", "absent", "cuti"]) == {
        "present": 2, "late": 1, "sakit": 1, "izin": 0, "dinas_luar": 0, "cuti": 1, "absent": 2}


PLANS = [
    {"date": "2026-11-23", "workday": True, "start": "06:30", "end": "13:00",
     "grace_minutes": 10, "reason": ""},
    {"date": "2026-11-24", "workday": False, "start": None, "end": None,
     "grace_minutes": 0, "reason": "cuti bersama"},
]


def test_plan_for_uses_the_servers_plan_then_the_default():
    plan = plan_for(DAY, PLANS, time(7, 0), 0)
    assert (plan.start, plan.grace_minutes, plan.from_server) == (time(6, 30), 10, True)
    assert plan.on_time_until == datetime(2026, 11, 23, 6, 40)
    off = plan_for(date(2026, 11, 24), PLANS, time(7, 0), 0)
    assert not off.workday and off.reason == "cuti bersama"
    default = plan_for(date(2026, 11, 25), PLANS, time(7, 15), 3)
    assert (default.start, default.grace_minutes, default.from_server) == (time(7, 15), 3, False)


@pytest.mark.parametrize("raw, dates", [
    (None, []),
    ("not a list", []),
    (PLANS, ["2026-11-23", "2026-11-24"]),
    ([{"date": "2026-13-01"}, {"date": "2026-11-25", "start": "7am"}, {"start": "07:00"},
      {"date": "2026-11-26", "grace_minutes": -5}, "x",
      {"date": "2026-11-27", "start": "07:00"}], ["2026-11-27"]),
    ([{"date": "2026-11-28", "start": "07:00"}, {"date": "2026-11-28", "start": "08:00"}],
     ["2026-11-28"]),
])
def test_parse_plans_keeps_only_sensible_entries(raw, dates):
    assert [p["date"] for p in parse_plans(raw)] == dates


def test_parse_plans_normalises():
    (plan,) = parse_plans([{"date": "2026-11-27", "start": "07:00:00", "grace_minutes": "5"}])
    assert plan == {"date": "2026-11-27", "workday": True, "start": "07:00", "end": None,
                    "grace_minutes": 5, "reason": ""}


def test_merge_plans_replaces_same_dates_and_forgets_old_ones():
    stored = parse_plans([{"date": "2026-08-01", "start": "07:00"},
                          {"date": "2026-11-20", "start": "07:00"},
                          {"date": "2026-11-23", "start": "07:00"}])
    new = parse_plans([{"date": "2026-11-23", "start": "06:30"},
                       {"date": "2026-11-24", "workday": False}])
    merged = merge_plans(stored, new, DAY)
    assert [(p["date"], p["start"]) for p in merged] == [
        ("2026-11-20", "07:00"), ("2026-11-23", "06:30"), ("2026-11-24", None)]
