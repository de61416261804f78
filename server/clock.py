"""Clock correction of taps: pure functions over plain values (no Flask, no database).

A Raspberry Pi has no battery clock, so the wall time a tap carries may be
days or years wrong. Its monotonic clock, on the other hand, is right within
one boot. Every exchange with the server gives an :class:`Anchor`: the
server's time at a known ``(boot_id, mono_ns)`` of the device. The rules
(docs/SYNC_API.md, "Clock correction"):

* a tap whose boot has an anchor: corrected time = anchor server time +
  (tap ``mono_ns`` - anchor ``mono_ns``), using the anchor nearest in
  ``mono_ns``; the status is ``verified`` when the device said its clock was
  synced and the device time is within :data:`TOLERANCE` of the corrected
  time, else ``corrected``;
* a tap whose boot has no anchor keeps its device time: ``verified`` if the
  device said its clock was synced (NTP/RTC), else ``unverified``; the caller
  re-evaluates it when an anchor for that boot arrives.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, NamedTuple, Sequence

VERIFIED = "verified"
CORRECTED = "corrected"
UNVERIFIED = "unverified"
#: How far a synced device clock may be from the corrected time and still count as right.
TOLERANCE = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Anchor:
    """The server's time at one moment of a device boot's monotonic clock."""

    boot_id: str
    mono_ns: int
    server_time: datetime  # aware
    id: int | None = None


@dataclass(frozen=True, slots=True)
class TapTime:
    """What correction needs to know about a tap."""

    boot_id: str
    mono_ns: int
    device_time: datetime  # aware: the device's wall clock at the tap
    clock_synced: bool


class Correction(NamedTuple):
    corrected_at: datetime  # aware, UTC
    clock_status: str
    anchor: Anchor | None = None  # the anchor used, None when there was none


def nearest_anchor(mono_ns: int, anchors: Iterable[Anchor]) -> Anchor | None:
    """The anchor closest to ``mono_ns`` (on a tie the earlier one), or None."""
    best: Anchor | None = None
    for anchor in anchors:
        if best is None:
            best = anchor
            continue
        d_new, d_best = abs(anchor.mono_ns - mono_ns), abs(best.mono_ns - mono_ns)
        if d_new < d_best or (d_new == d_best and anchor.mono_ns < best.mono_ns):
            best = anchor
    return best


def apply_anchor(tap: TapTime, anchor: Anchor | None) -> Correction:
    """The corrected time and status of ``tap`` given the anchor of its boot (or None)."""
    device_utc = tap.device_time.astimezone(timezone.utc)
    if anchor is None:
        return Correction(device_utc, VERIFIED if tap.clock_synced else UNVERIFIED, None)
    if anchor.boot_id != tap.boot_id:
        raise ValueError("an anchor only corrects taps of its own boot")
    whole_us, _ = divmod(tap.mono_ns - anchor.mono_ns, 1000)
    try:
        corrected = anchor.server_time.astimezone(timezone.utc) + timedelta(microseconds=whole_us)
    except OverflowError:
        # A monotonic distance of centuries: one of the two values is nonsense.
        return Correction(device_utc, UNVERIFIED, None)
    if tap.clock_synced and abs(device_utc - corrected) <= TOLERANCE:
        return Correction(corrected, VERIFIED, anchor)
    return Correction(corrected, CORRECTED, anchor)


def correct_tap(tap: TapTime, anchors: Iterable[Anchor]) -> Correction:
    """Correct one tap from any anchors (only those of its boot are considered)."""
    return apply_anchor(tap, nearest_anchor(tap.mono_ns,
                                            (a for a in anchors if a.boot_id == tap.boot_id)))


class AnchorIndex:
    """Anchors grouped by boot and sorted, for correcting many taps at once."""

    def __init__(self, anchors: Iterable[Anchor]) -> None:
        by_boot: dict[str, list[Anchor]] = {}
        for anchor in anchors:
            by_boot.setdefault(anchor.boot_id, []).append(anchor)
        self._boots = {boot: sorted(items, key=lambda a: a.mono_ns)
                       for boot, items in by_boot.items()}
        self._monos = {boot: [a.mono_ns for a in items] for boot, items in self._boots.items()}

    def nearest(self, boot_id: str, mono_ns: int) -> Anchor | None:
        items = self._boots.get(boot_id)
        if not items:
            return None
        i = bisect.bisect_left(self._monos[boot_id], mono_ns)
        return nearest_anchor(mono_ns, items[max(0, i - 1):i + 1])

    def correct(self, tap: TapTime) -> Correction:
        return apply_anchor(tap, self.nearest(tap.boot_id, tap.mono_ns))


def correct_taps(taps: Sequence[TapTime], anchors: Iterable[Anchor]) -> list[Correction]:
    """:func:`correct_tap` for many taps, in their order."""
    index = AnchorIndex(anchors)
    return [index.correct(tap) for tap in taps]


# -- time text ------------------------------------------------------------------------------
def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset (``Z`` allowed) as an aware datetime.

    Raises ValueError for anything else, including a time that cannot be
    expressed in UTC (year 1 with a positive offset).
    """
    when = datetime.fromisoformat(text)
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset")
    try:
        when.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the calendar once converted to UTC") from None
    return when


def format_utc(when: datetime) -> str:
    """``2026-11-23T00:01:02.003Z``: UTC with milliseconds, as every reply carries."""
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
