"""The pure parts of reconciliation: pending rules, card states, the anomaly pre-filter."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.attendance_rules import RulesConfig, TapFact, find_anomalies
from server.cards import CardStateChange, build_timeline, state_at
from server.reconcile import (CardStates, DeviceState, anomaly_key, device_caught_up,
                              devices_holding_day, is_pending, suspect_taps)

UTC = timezone.utc
DAY_END = datetime(2026, 11, 16, 17, 0, tzinfo=UTC)  # midnight WIB
BEFORE, AFTER = DAY_END - timedelta(hours=3), DAY_END + timedelta(hours=3)
ENROLLED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("last_seen, backlog, oldest, caught_up", [
    (None, None, None, False),
    (BEFORE, 0, None, False),
    (AFTER, 0, None, True),
    (DAY_END, 0, None, True),
    (AFTER, 3, BEFORE, False),
    (AFTER, 3, AFTER, True),
    (AFTER, 3, None, False),
    (AFTER, None, None, False),
    (AFTER, None, AFTER, True),
])
def test_device_caught_up(last_seen, backlog, oldest, caught_up):
    device = DeviceState("dev", ENROLLED, last_seen, backlog, oldest)
    assert device_caught_up(device, DAY_END) is caught_up


def test_devices_holding_a_day():
    behind = DeviceState("dev_behind", ENROLLED, BEFORE, 0, None)
    revoked = DeviceState("dev_revoked", ENROLLED, None, None, None, revoked_at=BEFORE)
    newer = DeviceState("dev_new", DAY_END, None, None, None)
    synced = DeviceState("dev_synced", ENROLLED, AFTER, 0, None)
    assert devices_holding_day([synced, revoked, newer, behind], DAY_END) == ("dev_behind",)
    assert is_pending(DAY_END, AFTER, [synced, behind])
    assert not is_pending(DAY_END, AFTER, [synced, revoked, newer])
    assert is_pending(DAY_END, DAY_END - timedelta(seconds=1), [])
    assert not is_pending(DAY_END, DAY_END, [])


def test_anomaly_keys_name_what_the_anomaly_is_about():
    day = date(2026, 11, 16)
    assert anomaly_key("S1", day, "many_taps", "C1", "P1", "e1") == \
        "S1|2026-11-16|many_taps|card:C1"
    assert anomaly_key("S1", day, "other_site", "C1", "P1", "e1") == \
        "S1|2026-11-16|other_site|person:P1"
    assert anomaly_key("S1", day, "impossible_travel", "C1", "P1", "e1") == \
        "S1|2026-11-16|impossible_travel|card:C1:event:e1"
    assert len(anomaly_key("S" * 32, day, "x" * 32, "C" * 20, None, "e" * 64)) <= 300


# -- card states agree with the card register's timelines ----------------------------------------
moments = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 3, 1),
                       timezones=st.just(UTC))
dates = st.one_of(st.none(), st.dates(min_value=date(2025, 12, 1), max_value=date(2026, 3, 1)))
statuses = st.sampled_from(["active", "lost", "blocked", "replaced"])
zones = st.sampled_from(["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"])


@settings(max_examples=300, deadline=None)
@given(since=moments, status=statuses, valid_from=dates, valid_to=dates, zone=zones,
       probes=st.lists(moments, min_size=1, max_size=8))
def test_single_state_cards_match_build_timeline(since, status, valid_from, valid_to, zone,
                                                 probes):
    timeline = build_timeline([(since, "P1", status)], valid_from=valid_from,
                              valid_to=valid_to, zone=zone)
    states = CardStates(single={"C1": (since, "P1", status, valid_from, valid_to, zone)})
    for probe in probes + [since, since - timedelta(microseconds=1)]:
        expected = state_at(timeline, probe)
        assert states.at("C1", probe) == ((expected.person_id, expected.status)
                                          if expected else (None, None))


def test_timelines_are_judged_at_each_moment():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    states = CardStates({"C1": [CardStateChange(start, "P1", "active"),
                                CardStateChange(start + timedelta(days=10), "P1", "lost"),
                                CardStateChange(start + timedelta(days=20), "P2", "active")]})
    assert states.at("C1", start - timedelta(seconds=1)) == (None, None)
    assert states.at("C1", start) == ("P1", "active")
    assert states.at("C1", start + timedelta(days=15)) == ("P1", "lost")
    assert states.at("C1", start + timedelta(days=25)) == ("P2", "active")
    assert states.at("UNKNOWN", start) == (None, None)


# -- the pre-filter never hides an anomaly ---------------------------------------------------------
BASE = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
tap_strategy = st.builds(
    lambda minute, site, card, clock, status: (minute, site, card, clock, status),
    st.integers(0, 600), st.sampled_from(["HERE", "HERE", "HERE", "THERE"]),
    st.sampled_from(["C1", "C2", "C3", "C4"]),
    st.sampled_from(["verified", "verified", "corrected", "unverified"]),
    st.sampled_from(["active", "active", "active", "lost", "blocked", None]))
OWNERS = {"C1": "P1", "C2": "P2", "C3": "P3", "C4": "P1"}


@settings(max_examples=300, deadline=None)
@given(taps=st.lists(tap_strategy, max_size=25),
       homes=st.fixed_dictionaries({"P1": st.sampled_from(["HERE", "THERE"]),
                                    "P2": st.sampled_from(["HERE", "THERE"])}),
       many=st.integers(1, 6))
def test_suspect_taps_keep_every_anomaly(taps, homes, many):
    config = RulesConfig(many_taps=many)
    facts = [TapFact(BASE + timedelta(minutes=m), site, f"e{i}", card, clock, status,
                     OWNERS[card] if status is not None else None)
             for i, (m, site, card, clock, status) in enumerate(taps)]
    here = [f for f in facts if f.site_code == "HERE"]
    cards_here = {f.card_uid for f in here}
    elsewhere = [f for f in facts if f.site_code != "HERE" and f.card_uid in cards_here]
    full = find_anomalies("HERE", here + elsewhere, homes, config)
    filtered = find_anomalies("HERE", suspect_taps("HERE", here, elsewhere, homes, config),
                              homes, config)
    assert filtered == full


def test_tap_facts_made_in_bulk_equal_constructed_ones():
    from dataclasses import FrozenInstanceError

    from server.reconcile import _make_tap

    args = (BASE, "HERE", "e1", "C1", "verified", "active", "P1")
    made = _make_tap(*args)
    assert made == TapFact(*args) and hash(made) == hash(TapFact(*args))
    assert isinstance(made, TapFact)
    with pytest.raises(FrozenInstanceError):
        made.card_uid = "C2"  # type: ignore[misc]
