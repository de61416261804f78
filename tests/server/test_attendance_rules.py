"""Attendance rules (pure functions): taps, excuses and plans to day outcomes, as tables."""

import copy
import pickle
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.attendance_rules import (ANOMALY_KINDS, EXCUSE_STATUS, STATUSES, AnomalyFact,
                                     DayOutcome, ExcuseFact, Recap, RulesConfig, TapFact,
                                     early_code, evaluate_day, find_anomalies, late_code,
                                     recap_days)
from server.schedule import (DEFAULT_SCHEDULES, Calendar, CalendarDay, calendar_range,
                             local_day_bounds, plan_day)

UTC = timezone.utc
WIB = ZoneInfo("Asia/Jakarta")
WITA = ZoneInfo("Asia/Makassar")
WIT = ZoneInfo("Asia/Jayapura")
SITE = "SMPN1"
OTHER = "SDN2"
ASN = DEFAULT_SCHEDULES["asn"]
MONDAY = date(2026, 11, 23)
FRIDAY = date(2026, 11, 27)
SATURDAY = date(2026, 11, 28)
CALENDAR = Calendar([CalendarDay(date(2026, 11, 24), "half_day", "rapat", time(12)),
                     *calendar_range("ramadan", date(2026, 2, 18), date(2026, 3, 19))])
PLAN = plan_day(ASN, CALENDAR, MONDAY, WIB)  # 07:30-16:00, midpoint 11:45


def at(hh, mm, ss=0, day=MONDAY, tz=WIB):
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=tz)


_serial = iter(range(10**6))


def tap(when, site=SITE, card="04A1B2C3", status="active", clock="verified", person="P1",
        event=None):
    return TapFact(at=when, site_code=site, event_id=event or f"e{next(_serial):05d}",
                   card_uid=card, clock_status=clock, card_status=status, person_id=person)


def evaluate(taps, plan=PLAN, excuses=(), pending=False, config=RulesConfig()):
    return evaluate_day(plan, taps, excuses, site_code=SITE, pending=pending, config=config)


# -- codes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("minutes, late, early", [
    (-5, None, None), (0, None, None), (1, "TL1", "PSW1"), (30, "TL1", "PSW1"),
    (31, "TL2", "PSW2"), (60, "TL2", "PSW2"), (61, "TL3", "PSW3"), (90, "TL3", "PSW3"),
    (91, "TL4", "PSW4"), (600, "TL4", "PSW4"),
])
def test_codes_follow_the_brackets(minutes, late, early):
    assert late_code(minutes, RulesConfig()) == late
    assert early_code(minutes, RulesConfig()) == early


def test_codes_follow_configured_brackets():
    config = RulesConfig(late_brackets=(15,), late_names=("T-a", "T-b"))
    assert [late_code(m, config) for m in (0, 15, 16)] == [None, "T-a", "T-b"]
    assert early_code(16, config) == "PSW1"


@given(st.integers(-100, 1000), st.integers(-100, 1000))
def test_late_codes_never_get_milder_with_more_minutes(a, b):
    names = (None,) + RulesConfig().late_names
    low, high = sorted((a, b))
    assert names.index(late_code(low)) <= names.index(late_code(high))


# -- lateness and early leaving -------------------------------------------------------------
@pytest.mark.parametrize("late_by, code", [(0, None), (1, "TL1"), (30, "TL1"), (31, "TL2"),
                                           (60, "TL2"), (61, "TL3"), (90, "TL3"),
                                           (91, "TL4")])
def test_late_by_minutes(late_by, code):
    check_in = at(7, 30) + timedelta(minutes=late_by)
    outcome = evaluate([tap(check_in), tap(at(16, 5))])
    assert outcome == DayOutcome("H", late_code=code, check_in=check_in, check_out=at(16, 5),
                                 minutes_late=late_by, minutes_early=0, tap_count=2)


@pytest.mark.parametrize("early_by, code", [(0, None), (1, "PSW1"), (30, "PSW1"),
                                            (31, "PSW2"), (60, "PSW2"), (61, "PSW3"),
                                            (90, "PSW3"), (91, "PSW4")])
def test_early_by_minutes(early_by, code):
    check_out = at(16, 0) - timedelta(minutes=early_by)
    outcome = evaluate([tap(at(7, 0)), tap(check_out)])
    assert (outcome.status, outcome.early_code, outcome.minutes_early, outcome.late_code,
            outcome.minutes_late) == ("H", code, early_by, None, 0)


@pytest.mark.parametrize("check_in, minutes_late, code", [
    (at(7, 29, 59), 0, None),
    (at(7, 30, 0), 0, None),
    (at(7, 30, 59), 0, None),     # seconds are truncated: still 07:30
    (at(7, 31, 0), 1, "TL1"),
    (at(8, 0, 59), 30, "TL1"),
    (at(8, 1, 0), 31, "TL2"),
])
def test_seconds_are_truncated_to_the_minute(check_in, minutes_late, code):
    outcome = evaluate([tap(check_in), tap(at(16, 0))])
    assert (outcome.minutes_late, outcome.late_code) == (minutes_late, code)
    assert outcome.check_in == check_in  # the tap's real time is kept


@pytest.mark.parametrize("check_out, minutes_early, code", [
    (at(16, 0, 0), 0, None),
    (at(16, 0, 30), 0, None),
    (at(15, 59, 59), 1, "PSW1"),   # the tap counts at 15:59
    (at(15, 29, 0), 31, "PSW2"),
])
def test_check_out_minutes(check_out, minutes_early, code):
    outcome = evaluate([tap(at(7, 0)), tap(check_out)])
    assert (outcome.minutes_early, outcome.early_code) == (minutes_early, code)


@pytest.mark.parametrize("check_in, minutes_late, code", [
    (at(7, 35, 0), 0, None),
    (at(7, 35, 59), 0, None),
    (at(7, 36, 0), 6, "TL1"),      # counted from the start, not from the end of the grace
    (at(8, 1, 0), 31, "TL2"),
])
def test_grace(check_in, minutes_late, code):
    plan = replace(PLAN, grace_minutes=5)
    outcome = evaluate([tap(check_in), tap(at(16, 0))], plan=plan)
    assert (outcome.minutes_late, outcome.late_code) == (minutes_late, code)


@pytest.mark.parametrize("check_out, code", [(at(16, 0, day=FRIDAY), "PSW1"),
                                             (at(16, 29, 59, day=FRIDAY), "PSW1"),
                                             (at(16, 30, day=FRIDAY), None)])
def test_asn_friday_ends_at_16_30(check_out, code):
    plan = plan_day(ASN, CALENDAR, FRIDAY, WIB)
    outcome = evaluate([tap(at(7, 25, day=FRIDAY)), tap(check_out)], plan=plan)
    assert (outcome.status, outcome.early_code) == ("H", code)


def test_half_day_moves_the_end():
    day = date(2026, 11, 24)
    plan = plan_day(ASN, CALENDAR, day, WIB)
    outcome = evaluate([tap(at(7, 20, day=day)), tap(at(12, 0, day=day))], plan=plan)
    assert (outcome.status, outcome.early_code, outcome.minutes_early) == ("H", None, 0)
    left_early = evaluate([tap(at(7, 20, day=day)), tap(at(11, 30, day=day))], plan=plan)
    assert (left_early.early_code, left_early.minutes_early) == ("PSW1", 30)


@pytest.mark.parametrize("check_in, minutes_late, code", [
    (at(7, 45, day=date(2026, 2, 23)), 0, None),
    (at(8, 0, 59, day=date(2026, 2, 23)), 0, None),
    (at(8, 1, day=date(2026, 2, 23)), 1, "TL1"),
])
def test_ramadan_profile_starts_at_eight(check_in, minutes_late, code):
    plan = plan_day(ASN, CALENDAR, date(2026, 2, 23), WIB)
    outcome = evaluate([tap(check_in), tap(at(15, 0, day=date(2026, 2, 23)))], plan=plan)
    assert (outcome.status, outcome.minutes_late, outcome.late_code, outcome.early_code) == \
        ("H", minutes_late, code, None)


# -- non-working days -----------------------------------------------------------------------
@pytest.mark.parametrize("day, reason", [(SATURDAY, "weekend"),
                                         (date(2026, 8, 17), "holiday: Hari Kemerdekaan"),
                                         (date(2026, 12, 24), "holiday: Cuti Bersama")])
def test_non_working_days_are_libur_even_with_taps(day, reason):
    plan = plan_day(ASN, Calendar(), day, WIB)
    assert not plan.workday and plan.reason.startswith(reason)
    taps = [tap(at(9, 40, day=day)), tap(at(11, 0, day=day))]
    assert evaluate(taps, plan=plan) == DayOutcome(
        "LIBUR", check_in=at(9, 40, day=day), check_out=at(11, 0, day=day), tap_count=2)
    assert evaluate([], plan=plan) == DayOutcome("LIBUR")
    assert evaluate([], plan=plan, pending=True) == DayOutcome("LIBUR")
    single = evaluate([tap(at(13, 0, day=day))], plan=plan)
    assert (single.check_in, single.check_out) == (at(13, 0, day=day), None)


def test_workday_override_cancels_the_holiday():
    day = date(2026, 12, 24)
    plan = plan_day(ASN, Calendar([CalendarDay(day, "workday")]), day, WIB)
    assert evaluate([], plan=plan).status == "A"
    assert evaluate([tap(at(7, 31, day=day)), tap(at(16, 0, day=day))], plan=plan).late_code \
        == "TL1"


def test_an_excuse_on_a_non_working_day_is_still_libur():
    plan = plan_day(ASN, CALENDAR, SATURDAY, WIB)
    excuse = ExcuseFact("ex-1", "cuti", MONDAY, FRIDAY + timedelta(days=3))
    assert evaluate([], plan=plan, excuses=[excuse]) == DayOutcome("LIBUR")


# -- excuses --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, status", sorted(EXCUSE_STATUS.items()))
def test_an_excuse_gives_its_status(kind, status):
    outcome = evaluate([], excuses=[ExcuseFact("ex-1", kind, MONDAY, MONDAY)])
    assert outcome == DayOutcome(status, excuse_id="ex-1")


def test_an_excuse_overlapping_a_tap_wins_and_is_flagged():
    excuse = ExcuseFact("ex-9", "sakit", MONDAY - timedelta(days=1), MONDAY + timedelta(days=1))
    outcome = evaluate([tap(at(9, 15)), tap(at(10, 0))], excuses=[excuse], pending=True)
    assert outcome == DayOutcome("S", check_in=at(9, 15), check_out=at(10, 0), tap_count=2,
                                 flags=("tap_during_excuse",), excuse_id="ex-9")


def test_several_excuses_take_the_first_by_id():
    excuses = [ExcuseFact("ex-b", "sakit", MONDAY, MONDAY),
               ExcuseFact("ex-a", "dinas_luar", MONDAY, FRIDAY),
               ExcuseFact("ex-0", "cuti", FRIDAY, FRIDAY)]  # does not cover Monday
    assert evaluate([], excuses=excuses) == DayOutcome("DL", excuse_id="ex-a")


def test_a_tap_elsewhere_during_dinas_luar_is_not_flagged():
    excuse = ExcuseFact("ex-1", "dinas_luar", MONDAY, MONDAY)
    outcome = evaluate([tap(at(8, 0), site=OTHER)], excuses=[excuse])
    assert outcome == DayOutcome("DL", excuse_id="ex-1")


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "mangkir"}, "kind 'mangkir'"),
    ({"date_to": MONDAY - timedelta(days=1)}, "is before date_from"),
])
def test_excuse_validation(kwargs, message):
    fields = {"excuse_id": "ex-1", "kind": "izin", "date_from": MONDAY, "date_to": MONDAY}
    with pytest.raises(ValueError, match=message):
        ExcuseFact(**{**fields, **kwargs})


# -- single taps, pending days, absence -----------------------------------------------------
SINGLE = [
    # (label, tap time, pending, expected outcome)
    ("before the midpoint: check-in, no check-out", at(7, 40), False,
     DayOutcome("H", late_code="TL1", early_code="PSW4", check_in=at(7, 40),
                minutes_late=10, tap_count=1)),
    ("on time, before the midpoint", at(7, 0), False,
     DayOutcome("H", early_code="PSW4", check_in=at(7, 0), minutes_late=0, tap_count=1)),
    ("just before the midpoint", at(11, 44, 59), False,
     DayOutcome("H", late_code="TL4", early_code="PSW4", check_in=at(11, 44, 59),
                minutes_late=254, tap_count=1)),
    ("at the midpoint: check-out, no check-in", at(11, 45), False,
     DayOutcome("H", late_code="TL4", early_code="PSW4", check_out=at(11, 45),
                minutes_early=255, tap_count=1)),
    ("after the midpoint, on time out", at(16, 10), False,
     DayOutcome("H", late_code="TL4", check_out=at(16, 10), minutes_early=0, tap_count=1)),
    ("after the midpoint, a little early", at(15, 40), False,
     DayOutcome("H", late_code="TL4", early_code="PSW1", check_out=at(15, 40),
                minutes_early=20, tap_count=1)),
    ("pending, before the midpoint: still pending", at(7, 40), True,
     DayOutcome("PENDING", late_code="TL1", check_in=at(7, 40), minutes_late=10, tap_count=1)),
    ("pending, after the midpoint: the day's verdict stands", at(16, 10), True,
     DayOutcome("H", late_code="TL4", check_out=at(16, 10), minutes_early=0, tap_count=1)),
]


@pytest.mark.parametrize("label, when, pending, expected", SINGLE,
                         ids=[case[0] for case in SINGLE])
def test_single_tap(label, when, pending, expected):
    assert evaluate([tap(when)], pending=pending) == expected


def test_two_morning_taps_are_check_in_and_check_out():
    outcome = evaluate([tap(at(7, 25)), tap(at(7, 26))])
    assert outcome == DayOutcome("H", early_code="PSW4", check_in=at(7, 25),
                                 check_out=at(7, 26), minutes_late=0, minutes_early=514,
                                 tap_count=2)


def test_pending_does_not_matter_with_two_taps():
    taps = [tap(at(7, 25)), tap(at(16, 1))]
    assert evaluate(taps, pending=True) == evaluate(taps, pending=False)
    assert evaluate(taps, pending=True).status == "H"


@pytest.mark.parametrize("pending, status", [(True, "PENDING"), (False, "A")])
def test_no_taps(pending, status):
    assert evaluate([], pending=pending) == DayOutcome(status)


def test_first_and_last_taps_whatever_the_input_order():
    taps = [tap(at(12, 0)), tap(at(16, 2)), tap(at(7, 10)), tap(at(9, 0))]
    outcome = evaluate(taps)
    assert (outcome.check_in, outcome.check_out, outcome.tap_count) == \
        (at(7, 10), at(16, 2), 4)


@given(st.lists(st.integers(0, 24 * 3600 - 1), max_size=8), st.randoms())
def test_the_outcome_does_not_depend_on_tap_order(seconds, rng):
    taps = [tap(at(0, 0) + timedelta(seconds=s), event=f"e{i:02d}")
            for i, s in enumerate(seconds)]
    shuffled = list(taps)
    rng.shuffle(shuffled)
    for pending in (False, True):
        assert evaluate(shuffled, pending=pending) == evaluate(taps, pending=pending)


@given(st.lists(st.integers(0, 24 * 3600 - 1), min_size=2, max_size=8))
def test_two_or_more_taps_give_a_present_day_with_consistent_codes(seconds):
    outcome = evaluate([tap(at(0, 0) + timedelta(seconds=s)) for s in seconds], pending=True)
    assert outcome.status == "H"
    assert outcome.check_in <= outcome.check_out
    assert outcome.late_code == late_code(outcome.minutes_late)
    assert outcome.early_code == early_code(outcome.minutes_early)


# -- which taps count -----------------------------------------------------------------------
@pytest.mark.parametrize("card_status", ["lost", "blocked", "replaced", None])
def test_taps_of_inactive_or_unknown_cards_do_not_count(card_status):
    outcome = evaluate([tap(at(7, 20), status=card_status), tap(at(16, 5), status=card_status)])
    assert outcome == DayOutcome("A")


def test_taps_at_another_site_do_not_count():
    outcome = evaluate([tap(at(7, 20), site=OTHER), tap(at(8, 0)), tap(at(16, 5), site=OTHER)])
    assert outcome == DayOutcome("H", late_code="TL1", early_code="PSW4", check_in=at(8, 0),
                                 minutes_late=30, tap_count=1)


def test_a_lost_card_tap_is_neither_counted_nor_ignored_as_an_anomaly():
    taps = [tap(at(7, 20)), tap(at(12, 0), status="lost", event="lost-1"), tap(at(16, 5))]
    outcome = evaluate(taps)
    assert (outcome.tap_count, outcome.check_out) == (2, at(16, 5))
    anomalies = find_anomalies(SITE, taps, {"P1": SITE})
    assert [(a.kind, a.event_id, a.detail["count"]) for a in anomalies] == \
        [("lost_card_used", "lost-1", 1)]


@pytest.mark.parametrize("clocks, flags", [
    (("verified", "corrected"), ()),
    (("verified", "unverified"), ("unverified_clock",)),
])
def test_unverified_clock_flag(clocks, flags):
    taps = [tap(at(7, 20), clock=clocks[0]), tap(at(16, 5), clock=clocks[1])]
    assert evaluate(taps).flags == flags


def test_an_unverified_invalid_tap_does_not_flag():
    taps = [tap(at(7, 20)), tap(at(16, 5)), tap(at(9, 0), site=OTHER, clock="unverified")]
    assert evaluate(taps).flags == ()


def test_flags_are_combined_in_a_fixed_order():
    excuse = ExcuseFact("ex-1", "izin", MONDAY, MONDAY)
    outcome = evaluate([tap(at(8, 0), clock="unverified")], excuses=[excuse])
    assert outcome.flags == ("unverified_clock", "tap_during_excuse")


def test_tap_time_must_be_aware():
    with pytest.raises(ValueError, match="has no zone"):
        tap(datetime(2026, 11, 23, 7, 30))


# -- midnight in each zone ------------------------------------------------------------------
@pytest.mark.parametrize("tz, utc_hour", [(WIB, 17), (WITA, 16), (WIT, 15)])
def test_a_tap_after_local_midnight_belongs_to_the_next_day(tz, utc_hour):
    """00:30 local on the 24th is still the 23rd in UTC; it counts on the 24th."""
    late_night = tap(datetime(2026, 11, 23, utc_hour, 30, tzinfo=UTC))  # 00:30 local, 24th
    taps = [tap(at(7, 25, tz=tz)), tap(at(16, 5, tz=tz)), late_night,
            tap(at(7, 29, day=date(2026, 11, 24), tz=tz))]

    def day_taps(day):
        start, end = local_day_bounds(day, tz)
        return [t for t in taps if start <= t.at < end]

    assert late_night.at.date() == date(2026, 11, 23)  # the UTC date
    monday = evaluate_day(plan_day(ASN, CALENDAR, MONDAY, tz), day_taps(MONDAY), [],
                          site_code=SITE)
    assert (monday.check_out, monday.early_code, monday.tap_count) == (at(16, 5, tz=tz), None, 2)
    tuesday_taps = day_taps(date(2026, 11, 24))
    assert late_night in tuesday_taps and len(tuesday_taps) == 2
    tuesday = evaluate_day(plan_day(ASN, Calendar(), date(2026, 11, 24), tz), tuesday_taps, [],
                           site_code=SITE, pending=True)
    assert tuesday.check_in == late_night.at and tuesday.minutes_late == 0


# -- anomalies ------------------------------------------------------------------------------
def kinds(anomalies):
    return [a.kind for a in anomalies]


def test_unknown_card_once_per_card_with_the_count():
    taps = [tap(at(7, 0), card="FFFF0001", status=None, person=None, event="u1"),
            tap(at(7, 1), card="FFFF0001", status=None, person=None, event="u2"),
            tap(at(7, 2), card="FFFF0002", status=None, person=None, event="u3")]
    anomalies = find_anomalies(SITE, taps, {})
    assert anomalies == [
        AnomalyFact("unknown_card", "FFFF0001", None, "u1",
                    {"count": 2, "event_ids": ["u1", "u2"], "first_at": "2026-11-23T00:00:00.000Z",
                     "last_at": "2026-11-23T00:01:00.000Z"}),
        AnomalyFact("unknown_card", "FFFF0002", None, "u3",
                    {"count": 1, "event_ids": ["u3"], "first_at": "2026-11-23T00:02:00.000Z",
                     "last_at": "2026-11-23T00:02:00.000Z"}),
    ]


@pytest.mark.parametrize("status, kind", [("lost", "lost_card_used"),
                                          ("blocked", "blocked_card_used"),
                                          ("replaced", "replaced_card_used")])
def test_inactive_card_used_once_per_card(status, kind):
    taps = [tap(at(7, 0), status=status, event="x1"), tap(at(15, 0), status=status, event="x2")]
    anomalies = find_anomalies(SITE, taps, {"P1": SITE})
    assert len(anomalies) == 1
    assert (anomalies[0].kind, anomalies[0].card_uid, anomalies[0].person_id,
            anomalies[0].event_id) == (kind, "04A1B2C3", "P1", "x1")
    assert anomalies[0].detail["event_ids"] == ["x1", "x2"]
    assert anomalies[0].detail["card_status"] == status


def test_other_site_once_per_person():
    taps = [tap(at(7, 0), person="P1", card="C1", event="o1"),
            tap(at(16, 0), person="P1", card="C1", event="o2"),
            tap(at(7, 5), person="P2", card="C2", event="h1"),
            tap(at(7, 6), person="P3", card="C3", event="n1")]  # no known site: not judged
    anomalies = find_anomalies(SITE, taps, {"P1": OTHER, "P2": SITE})
    assert len(anomalies) == 1
    other = anomalies[0]
    assert (other.kind, other.person_id, other.card_uid, other.event_id) == \
        ("other_site", "P1", "C1", "o1")
    assert other.detail["home_site"] == OTHER and other.detail["event_ids"] == ["o1", "o2"]


def test_other_site_is_reported_by_the_site_of_the_tap_only():
    taps = [tap(at(7, 0), site=OTHER, person="P1", event="t1")]
    assert find_anomalies(SITE, taps, {"P1": "SMAN3"}) == []
    assert kinds(find_anomalies(OTHER, taps, {"P1": "SMAN3"})) == ["other_site"]


@pytest.mark.parametrize("minutes_apart, reported", [(10, True), (29, True), (30, False),
                                                     (45, False)])
def test_impossible_travel(minutes_apart, reported):
    first = tap(at(7, 0), site=OTHER, event="a1")
    second = tap(at(7, 0) + timedelta(minutes=minutes_apart), site=SITE, event="b1")
    anomalies = [a for a in find_anomalies(SITE, [first, second], {"P1": SITE})
                 if a.kind == "impossible_travel"]
    assert len(anomalies) == int(reported)
    if reported:
        detail = anomalies[0].detail
        assert (anomalies[0].event_id, detail["from_site"], detail["to_site"],
                detail["from_event_id"], detail["seconds_apart"]) == \
            ("b1", OTHER, SITE, "a1", minutes_apart * 60)
    # The earlier site never reports it, so each pair is reported once over all sites.
    assert [a for a in find_anomalies(OTHER, [first, second], {"P1": SITE})
            if a.kind == "impossible_travel"] == []


def test_impossible_travel_needs_consecutive_taps():
    taps = [tap(at(7, 0), site=OTHER, event="a1"), tap(at(7, 5), site=SITE, event="b1"),
            tap(at(7, 10), site=SITE, event="b2"), tap(at(7, 15), site=OTHER, event="a2"),
            tap(at(7, 20), site=SITE, event="b3")]
    travel = [a for a in find_anomalies(SITE, taps, {}) if a.kind == "impossible_travel"]
    assert [(a.detail["from_event_id"], a.event_id) for a in travel] == [("a1", "b1"),
                                                                          ("a2", "b3")]


@pytest.mark.parametrize("count, reported", [(6, False), (7, True)])
def test_many_taps(count, reported):
    taps = [tap(at(7, n)) for n in range(count)]
    many = [a for a in find_anomalies(SITE, taps, {"P1": SITE}) if a.kind == "many_taps"]
    assert len(many) == int(reported)
    if reported:
        assert many[0].detail["count"] == 7 and many[0].detail["limit"] == 6


def test_many_taps_counts_only_this_site():
    taps = [tap(at(7, n)) for n in range(4)] + [tap(at(9, n), site=OTHER) for n in range(4)]
    assert "many_taps" not in kinds(find_anomalies(SITE, taps, {"P1": SITE}))


def test_unverified_clock_once_per_card():
    taps = [tap(at(7, 0), clock="unverified", event="v1"), tap(at(8, 0), event="v2"),
            tap(at(16, 0), clock="unverified", event="v3")]
    anomalies = find_anomalies(SITE, taps, {"P1": SITE})
    assert kinds(anomalies) == ["unverified_clock"]
    assert anomalies[0].detail["event_ids"] == ["v1", "v3"]


def test_a_clean_day_has_no_anomalies():
    taps = [tap(at(7, 20)), tap(at(16, 5))]
    assert find_anomalies(SITE, taps, {"P1": SITE}) == []


def test_anomalies_are_deterministic_and_ordered_by_kind():
    taps = [
        tap(at(7, 0), card="Z9", status=None, person=None, event="z1"),
        tap(at(6, 50), card="A1", status="blocked", event="b1"),
        tap(at(6, 40), card="A1", site=OTHER, event="t0"),
        *[tap(at(8, n), card="M1", person="P7", clock="unverified", event=f"m{n}")
          for n in range(7)],
    ]
    expected = find_anomalies(SITE, taps, {"P1": SITE, "P7": OTHER})
    assert kinds(expected) == ["unknown_card", "blocked_card_used", "other_site",
                               "impossible_travel", "many_taps", "unverified_clock"]
    assert all(kind in ANOMALY_KINDS for kind in kinds(expected))
    for order in (list(reversed(taps)), taps[3:] + taps[:3]):
        assert find_anomalies(SITE, order, {"P1": SITE, "P7": OTHER}) == expected


# -- configuration --------------------------------------------------------------------------
def test_default_config_and_weights():
    config = RulesConfig()
    assert config.weight("TL3") == 1.25 and config.weight("PSW4") == 1.5
    assert config.weight("A") == 3.0 and config.weight("S") == 0.0
    assert config.weight("H") == 0.0
    assert RulesConfig.from_dict({}) == config
    assert RulesConfig.from_dict(config.to_dict()) == config


def test_config_from_dict_merges_weights_and_renames():
    config = RulesConfig.from_dict({"deduction_weights": {"A": 5}, "many_taps": 10})
    assert config.weight("A") == 5 and config.weight("TL1") == 0.5 and config.many_taps == 10
    renamed = RulesConfig.from_dict({"late_brackets": [15, 45], "late_names": ["T1", "T2", "T3"],
                                     "deduction_weights": {"T3": 2}})
    assert renamed.late_names == ("T1", "T2", "T3") and renamed.weight("T3") == 2
    assert "TL1" not in renamed.deduction_weights and renamed.weight("PSW1") == 0.5


@pytest.mark.parametrize("data, message", [
    ({"late_names": ["TL1", "TL2", "TL3"]}, "late_names: 3 names for 3 brackets"),
    ({"early_brackets": [30, 60]}, "early_names: 4 names for 2 brackets"),
    ({"late_brackets": [30, 30, 90]}, "late_brackets[1]: 30 is not above 30"),
    ({"late_brackets": [60, 30, 90]}, "late_brackets[1]: 30 is not above 60"),
    ({"early_brackets": [0, 60, 90]}, "early_brackets[0]: 0 must be a whole number"),
    ({"early_brackets": [-30, 60, 90]}, "early_brackets[0]: -30"),
    ({"late_brackets": ["30", 60, 90]}, "late_brackets[0]: '30'"),
    ({"late_brackets": []}, "late_brackets: give at least one bracket"),
    ({"late_brackets": "30,60,90"}, "late_brackets: '30,60,90' must be a list"),
    ({"late_names": ["TL1", "TL1", "TL3", "TL4"]}, "late_names[1]: 'TL1' appears twice"),
    ({"late_names": ["TL1", "TL2", "A", "TL4"]}, "late_names[2]: 'A' is a day status"),
    ({"early_names": ["TL1", "P2", "P3", "P4"]}, "early_names: 'TL1' is also a late name"),
    ({"deduction_weights": {"TL1": -0.5}}, "deduction_weights.TL1: -0.5 must be a number"),
    ({"deduction_weights": {"A": "3"}}, "deduction_weights.A: '3' must be a number"),
    ({"deduction_weights": {"X": 1}}, "deduction_weights.X: unknown code"),
    ({"deduction_weights": [1, 2]}, "deduction_weights: [1, 2] must be an object"),
    ({"many_taps": 0}, "many_taps: 0 must be a whole number >= 1"),
    ({"travel_minutes": -1}, "travel_minutes: -1"),
    ({"late_bracket": [30]}, "late_bracket: unknown key"),
])
def test_config_errors_name_the_key(data, message):
    with pytest.raises(ValueError) as caught:
        RulesConfig.from_dict(data)
    assert message in str(caught.value)


def test_config_weights_cannot_be_changed_in_place():
    with pytest.raises(TypeError):
        RulesConfig().deduction_weights["A"] = 0  # type: ignore[index]


# -- recap ----------------------------------------------------------------------------------
def test_recap_counts_and_percentages():
    days = ([("H", None, None)] * 14 + [("H", "TL1", None)] * 2 + [("H", "TL4", "PSW2")]
            + [("A", None, None)] * 2 + [("S", None, None), ("I", None, None),
                                         ("DL", None, None), ("C", None, None)]
            + [("LIBUR", None, None)] * 7 + [("PENDING", None, None)])
    recap = recap_days(days, RulesConfig())
    assert recap.counts == {"H": 17, "TL1": 2, "TL2": 0, "TL3": 0, "TL4": 1, "PSW1": 0,
                            "PSW2": 1, "PSW3": 0, "PSW4": 0, "S": 1, "I": 1, "A": 2, "DL": 1,
                            "C": 1, "LIBUR": 7, "PENDING": 1}
    assert recap.days == 31 and recap.working_days == 23
    assert recap.percent_present == 73.91  # 17 / 23
    # 2 x 0.5 (TL1) + 1.5 (TL4) + 1.0 (PSW2) + 2 x 3.0 (A)
    assert recap.deduction_percent == 9.5
    assert recap["TL1"] == 2 and recap.TL4 == 1 and recap.PENDING == 1
    assert recap.to_dict()["working_days"] == 23


def test_recap_deduction_is_capped_at_100():
    recap = recap_days([("A", None, None)] * 34)  # 34 x 3.0 = 102
    assert recap.deduction_percent == 100.0
    assert recap.percent_present == 0.0
    assert recap_days([("A", None, None)] * 33).deduction_percent == 99.0


def test_recap_of_no_working_days():
    recap = recap_days([("LIBUR", None, None)] * 2 + [("PENDING", None, None)])
    assert (recap.working_days, recap.percent_present, recap.deduction_percent) == (0, 0.0, 0.0)
    empty = recap_days([])
    assert empty.days == 0 and set(empty.counts) >= set(STATUSES)


def test_recap_codes_count_only_on_present_days():
    recap = recap_days([("PENDING", "TL2", None), ("H", None, "PSW4")])
    assert (recap.TL2, recap.PSW4, recap.deduction_percent) == (0, 1, 1.5)


def test_recap_uses_configured_weights():
    config = RulesConfig.from_dict({"deduction_weights": {"S": 0.25, "TL1": 1}})
    recap = recap_days([("S", None, None), ("H", "TL1", None)], config)
    assert recap.deduction_percent == 1.25
    assert recap.percent_present == 50.0


@pytest.mark.parametrize("day, message", [(("X", None, None), "unknown day status"),
                                          (("H", "TL9", None), "unknown late code"),
                                          (("H", None, "TL1"), "unknown early code")])
def test_recap_refuses_unknown_codes(day, message):
    with pytest.raises(ValueError, match=message):
        recap_days([day])


def test_recap_copies_and_pickles():
    recap = recap_days([("H", "TL1", None)])
    assert copy.deepcopy(recap) == recap
    assert pickle.loads(pickle.dumps(recap)) == recap
    with pytest.raises(AttributeError):
        recap.nonsense  # noqa: B018
    assert isinstance(recap, Recap)


@pytest.mark.parametrize("status", STATUSES)
def test_every_evaluated_status_can_be_recapped(status):
    assert recap_days([(status, None, None)]).counts[status] == 1
