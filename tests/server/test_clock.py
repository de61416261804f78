"""Clock correction rules (pure functions), as tables of cases."""

from datetime import datetime, timedelta, timezone

import pytest

from server.clock import (CORRECTED, TOLERANCE, UNVERIFIED, VERIFIED, Anchor, AnchorIndex,
                          TapTime, apply_anchor, correct_tap, correct_taps, format_utc,
                          nearest_anchor, parse_timestamp)

UTC = timezone.utc
WIB = timezone(timedelta(hours=7))
SERVER = datetime(2026, 11, 23, 0, 5, 0, tzinfo=UTC)  # 07:05 WIB
S = 1_000_000_000  # one second in ns


def tap(device_time, mono_s, synced, boot="b1"):
    return TapTime(boot, int(mono_s * S), device_time, synced)


CASES = [
    # (name, tap, anchors, expected corrected_at, expected status)
    ("clock years off, boot anchored: corrected from the anchor",
     tap(datetime(2019, 1, 1, 7, 0, tzinfo=WIB), 100, False),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER - timedelta(seconds=300), CORRECTED),
    ("synced clock that says it is synced but is years off: corrected",
     tap(datetime(2019, 1, 1, 7, 0, tzinfo=WIB), 100, True),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER - timedelta(seconds=300), CORRECTED),
    ("synced and agreeing within 2 minutes: verified, corrected time used",
     tap(datetime(2026, 11, 23, 7, 0, 30, tzinfo=WIB), 100, True),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER - timedelta(seconds=300), VERIFIED),
    ("agreeing but not synced: corrected",
     tap(datetime(2026, 11, 23, 7, 0, 0, tzinfo=WIB), 100, False),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER - timedelta(seconds=300), CORRECTED),
    ("synced, exactly 2 minutes off: still verified",
     tap(datetime(2026, 11, 23, 7, 2, 0, tzinfo=WIB), 100, True),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER - timedelta(seconds=300), VERIFIED),
    ("synced, 2 minutes and 1 ms off: corrected",
     tap(datetime(2026, 11, 23, 7, 2, 0, 1000, tzinfo=WIB), 100, True),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER - timedelta(seconds=300), CORRECTED),
    ("no anchor, synced: device time, verified",
     tap(datetime(2026, 11, 23, 7, 0, tzinfo=WIB), 100, True), [],
     datetime(2026, 11, 23, 0, 0, tzinfo=UTC), VERIFIED),
    ("no anchor, not synced: device time, unverified",
     tap(datetime(2019, 1, 1, 7, 0, tzinfo=WIB), 100, False), [],
     datetime(2019, 1, 1, 0, 0, tzinfo=UTC), UNVERIFIED),
    ("only anchors of another boot: as if none",
     tap(datetime(2019, 1, 1, 7, 0, tzinfo=WIB), 100, False),
     [Anchor("b0", 400 * S, SERVER)],
     datetime(2019, 1, 1, 0, 0, tzinfo=UTC), UNVERIFIED),
    ("several anchors: the nearest in mono_ns (after the tap)",
     tap(datetime(2019, 1, 1, tzinfo=WIB), 1000, False),
     [Anchor("b1", 10 * S, SERVER - timedelta(hours=5)),
      Anchor("b1", 1100 * S, SERVER),
      Anchor("b1", 5000 * S, SERVER + timedelta(hours=9))],
     SERVER - timedelta(seconds=100), CORRECTED),
    ("several anchors: the nearest in mono_ns (before the tap)",
     tap(datetime(2019, 1, 1, tzinfo=WIB), 1000, False),
     [Anchor("b1", 990 * S, SERVER), Anchor("b1", 2000 * S, SERVER + timedelta(days=1))],
     SERVER + timedelta(seconds=10), CORRECTED),
    ("a tap after the anchor (mono beyond it) is corrected forward",
     tap(datetime(2019, 1, 1, tzinfo=WIB), 500, False),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER + timedelta(seconds=100), CORRECTED),
    ("nanoseconds below a microsecond are dropped, not rounded up",
     TapTime("b1", 400 * S + 1999, datetime(2019, 1, 1, tzinfo=UTC), False),
     [Anchor("b1", 400 * S, SERVER)],
     SERVER + timedelta(microseconds=1), CORRECTED),
    ("an impossible monotonic distance (centuries): device time, unverified",
     TapTime("b1", 2**63 - 1, datetime(2026, 11, 23, tzinfo=UTC), True),
     [Anchor("b1", 0, datetime(9999, 1, 1, tzinfo=UTC))],
     datetime(2026, 11, 23, tzinfo=UTC), UNVERIFIED),
]


@pytest.mark.parametrize("name, the_tap, anchors, corrected, status", CASES,
                         ids=[c[0] for c in CASES])
def test_correction_rules(name, the_tap, anchors, corrected, status):
    result = correct_tap(the_tap, anchors)
    assert (result.corrected_at, result.clock_status) == (corrected, status)
    assert result.corrected_at.tzinfo == UTC
    # The batch path (sorted index) gives the same answers.
    assert correct_taps([the_tap], anchors) == [result]


def test_nearest_anchor_ties_go_to_the_earlier_anchor():
    a, b = Anchor("b", 90, SERVER, 1), Anchor("b", 110, SERVER, 2)
    assert nearest_anchor(100, [b, a]) == a
    assert nearest_anchor(100, []) is None
    index = AnchorIndex([b, a])
    assert index.nearest("b", 100) == a
    assert index.nearest("b", 0) == a and index.nearest("b", 10**12) == b
    assert index.nearest("other", 100) is None


def test_anchor_of_another_boot_is_refused():
    with pytest.raises(ValueError):
        apply_anchor(tap(SERVER, 1, True, boot="x"), Anchor("y", 0, SERVER))


def test_tolerance_is_two_minutes():
    assert TOLERANCE == timedelta(minutes=2)


@pytest.mark.parametrize("text, ok", [
    ("2026-11-23T07:01:02.003+07:00", True),
    ("2026-11-23T00:01:02Z", True),
    ("2026-11-23T07:01:02", False),          # no offset
    ("0001-01-01T00:00:00+01:00", False),    # before year 1 in UTC
    ("9999-12-31T23:59:59-01:00", False),    # after year 9999 in UTC
    ("2026-02-30T00:00:00Z", False),
])
def test_parse_timestamp(text, ok):
    if ok:
        assert parse_timestamp(text).utcoffset() is not None
    else:
        with pytest.raises(ValueError):
            parse_timestamp(text)


def test_format_utc_is_utc_with_milliseconds():
    when = datetime(2026, 11, 23, 7, 1, 2, 3456, tzinfo=WIB)
    assert format_utc(when) == "2026-11-23T00:01:02.003Z"
