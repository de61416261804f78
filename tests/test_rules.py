from datetime import datetime, timedelta, timezone

import pytest

from edge.rules import (RosterEntry, SeenTap, decide_verdict, is_duplicate, roster_verdict,
                        seconds_between)

WIB = timezone(timedelta(hours=7))
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=WIB)


def seen(seconds: float, boot: str = "b1", wall_offset: float = 0.0) -> SeenTap:
    return SeenTap(boot, int(5e9 + seconds * 1e9), T0 + timedelta(seconds=seconds + wall_offset))


@pytest.mark.parametrize("previous, current, window, expected", [
    (None, seen(0), 60, False),                           # first tap of the card
    (seen(0), seen(0), 60, True),                         # same instant
    (seen(0), seen(59.999), 60, True),                    # just inside the window
    (seen(0), seen(60), 60, False),                       # window is half-open
    (seen(0), seen(3600), 60, False),
    (seen(0), seen(10), 0, False),                        # debounce switched off
    # Same boot: the monotonic clock decides even if the wall clock jumped (NTP step).
    (seen(0), seen(10, wall_offset=-7200), 60, True),
    (seen(0), seen(120, wall_offset=-7200), 60, False),
    # Across a reboot only wall clocks compare.
    (seen(0, "b1"), SeenTap("b2", 1, T0 + timedelta(seconds=30)), 60, True),
    (seen(0, "b1"), SeenTap("b2", 1, T0 + timedelta(seconds=90)), 60, False),
    # Wall clock went back across a reboot: never swallow a tap.
    (seen(0, "b1"), SeenTap("b2", 1, T0 - timedelta(days=400)), 60, False),
])
def test_is_duplicate(previous, current, window, expected):
    assert is_duplicate(previous, current, window) is expected


def test_seconds_between_uses_monotonic_within_boot():
    assert seconds_between(seen(0), seen(42, wall_offset=1e6)) == pytest.approx(42)


@pytest.mark.parametrize("status, verdict", [
    ("active", "accepted"), ("blocked", "blocked"), ("lost", "blocked"), ("replaced", "blocked"),
])
def test_roster_verdict(status, verdict):
    assert roster_verdict(RosterEntry("04A1B2C3", "p1", status=status)) == verdict


def test_unknown_card():
    assert roster_verdict(None) == "unknown"


def test_duplicate_wins_over_roster():
    entry = RosterEntry("04A1B2C3", "p1", status="blocked")
    assert decide_verdict(entry, seen(0), seen(5), 60) == "duplicate"
    assert decide_verdict(entry, seen(0), seen(65), 60) == "blocked"
    assert decide_verdict(None, None, seen(0), 60) == "unknown"
