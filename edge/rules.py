"""Business rules of the edge, as pure functions over plain data.

No database, no clock, no hardware here: everything a rule needs is passed
in, so the rules can be checked with tables of cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

ACCEPTED = "accepted"
UNKNOWN = "unknown"
BLOCKED = "blocked"
DUPLICATE = "duplicate"
VERDICTS = (ACCEPTED, UNKNOWN, BLOCKED, DUPLICATE)

#: Roster card statuses that refuse the card at the gate.
REFUSED_STATUSES = frozenset({"blocked", "lost", "replaced"})
CARD_STATUSES = ("active", "blocked", "lost", "replaced")


class SeenTap(NamedTuple):
    """When a card was seen: enough to compare two taps across reboots."""

    boot_id: str
    mono_ns: int
    wall: datetime


@dataclass(frozen=True)
class RosterEntry:
    card_uid: str
    person_id: str
    name: str = ""
    kind: str = ""
    group_name: str = ""
    status: str = "active"


def seconds_between(earlier: SeenTap, later: SeenTap) -> float:
    """Elapsed seconds from ``earlier`` to ``later``.

    Within one boot the monotonic clock is used, because the wall clock may be
    stepped (NTP arriving, a technician setting the date); across boots only
    the wall clocks can be compared.
    """
    if earlier.boot_id == later.boot_id:
        return (later.mono_ns - earlier.mono_ns) / 1e9
    return (later.wall - earlier.wall).total_seconds()


def is_duplicate(previous: SeenTap | None, current: SeenTap, window_seconds: float) -> bool:
    """True when ``current`` repeats the card's last counted tap within the window.

    ``previous`` is the last tap of the same card on this device that was not
    itself a duplicate, so holding or re-tapping a card for a long time counts
    again once per window. A negative interval (the wall clock went back
    across a reboot) is not a duplicate: better one tap too many, which the
    server's reconciliation absorbs, than an arrival silently dropped.
    """
    if previous is None or window_seconds <= 0:
        return False
    elapsed = seconds_between(previous, current)
    return 0 <= elapsed < window_seconds


def roster_verdict(entry: RosterEntry | None) -> str:
    """What the roster says about a card: accepted, unknown or blocked."""
    if entry is None:
        return UNKNOWN
    if entry.status in REFUSED_STATUSES:
        return BLOCKED
    return ACCEPTED


def decide_verdict(entry: RosterEntry | None, previous: SeenTap | None,
                   current: SeenTap, window_seconds: float) -> str:
    """The verdict for one tap: a repeat within the window first, then the roster."""
    if is_duplicate(previous, current, window_seconds):
        return DUPLICATE
    return roster_verdict(entry)
