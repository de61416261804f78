"""Attendance rules: a person's taps of one local day become a status; pure, no database.

Statuses: ``H`` (hadir, present), ``A`` (alpa, absent without excuse), ``S``
(sakit), ``I`` (izin), ``DL`` (dinas luar), ``C`` (cuti), ``LIBUR`` (not a
working day) and ``PENDING`` (the day is not over yet). A present day may carry
a late code (``TL1``..``TL4``, terlambat) and an early-leave code
(``PSW1``..``PSW4``, pulang sebelum waktunya).

Rules of :func:`evaluate_day` (``plan`` comes from :func:`server.schedule.plan_day`):

1. ``taps`` are every tap of the person's cards during the local day, at any
   site. A tap is *valid* when it was made at ``site_code`` with a card whose
   status at that moment was ``active``. Only valid taps make attendance and
   count in ``tap_count``; the others are reported by :func:`find_anomalies`.
   Taps are taken in time order (ties by ``event_id``).
2. Flag ``unverified_clock`` when any valid tap has clock status ``unverified``.
3. A non-working day is ``LIBUR``, whatever else happened: check-in is the
   first valid tap and check-out the last (when there are two or more); no
   late or early codes, and an excuse does not apply.
4. An excuse covering the date gives its status (``sakit`` S, ``izin`` I,
   ``dinas_luar`` DL, ``cuti`` C) and ``excuse_id``; with several, the first
   by ``excuse_id``. Valid taps on that day add flag ``tap_during_excuse`` and
   still fill check-in/check-out, but give no late or early codes.
5. No valid tap: ``PENDING`` when ``pending`` (the day is still running or
   its taps may not all have arrived), else ``A``.
6. Two or more valid taps: the first is the check-in, the last the check-out
   (even when the last is before the midpoint of the day). Status ``H``.
7. One valid tap: before the midpoint between start and end it is a check-in
   without check-out, so the early code is the last one (``PSW4``) and
   ``minutes_early`` is None; while ``pending`` the status is ``PENDING``
   instead (the person may still tap out). At or after the midpoint it is a
   check-out without check-in: the late code is the last one (``TL4``) and
   ``minutes_late`` is None.
8. Minutes: a tap counts at the start of its minute (07:30:59 is 07:30). The
   person is late when the check-in minute is after ``start + grace``;
   ``minutes_late`` is then counted from ``start``, not from the end of the
   grace (with 5 minutes of grace, 07:35 is on time and 07:36 is 6 minutes
   late). ``minutes_early`` counts from the check-out minute to ``end`` (no
   grace). Codes follow the brackets of :class:`RulesConfig`: with (30, 60,
   90), 1-30 minutes is TL1/PSW1, 31-60 TL2/PSW2, 61-90 TL3/PSW3, more TL4/PSW4.
   On time gives 0 minutes and no code.

Taps belong to the local day (in the site's zone) in which they happened; the
caller groups them with :func:`server.schedule.local_day_bounds`.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from server.schedule import DayPlan

STATUSES = ("H", "A", "S", "I", "DL", "C", "LIBUR", "PENDING")
EXCUSE_STATUS: Mapping[str, str] = MappingProxyType(
    {"sakit": "S", "izin": "I", "dinas_luar": "DL", "cuti": "C"})
#: Statuses of a day on which the person was expected to work (the recap's working days).
WORKING_STATUSES = ("H", "A", "S", "I", "DL", "C")
#: Anomaly kinds, in the order :func:`find_anomalies` reports them.
ANOMALY_KINDS = ("unknown_card", "lost_card_used", "blocked_card_used", "replaced_card_used",
                 "inactive_card_used", "other_site", "impossible_travel", "many_taps",
                 "unverified_clock")

DEFAULT_DEDUCTION_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "TL1": 0.5, "TL2": 1.0, "TL3": 1.25, "TL4": 1.5,
    "PSW1": 0.5, "PSW2": 1.0, "PSW3": 1.25, "PSW4": 1.5,
    "A": 3.0, "S": 0.0, "I": 0.0, "DL": 0.0, "C": 0.0,
})
#: Statuses that may carry a deduction weight besides the late and early codes.
_WEIGHTED_STATUSES = ("A", "S", "I", "DL", "C")
_CONFIG_KEYS = ("late_brackets", "late_names", "early_brackets", "early_names", "many_taps",
                "travel_minutes", "deduction_weights")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class RulesConfig:
    """Tunable numbers of the rules: lateness brackets, anomaly limits, deduction weights.

    ``deduction_weights`` are percent of the allowance (TPP) deducted per day
    with that code; a code without a weight weighs 0.
    """

    late_brackets: tuple[int, ...] = (30, 60, 90)
    late_names: tuple[str, ...] = ("TL1", "TL2", "TL3", "TL4")
    early_brackets: tuple[int, ...] = (30, 60, 90)
    early_names: tuple[str, ...] = ("PSW1", "PSW2", "PSW3", "PSW4")
    many_taps: int = 6
    travel_minutes: int = 30
    deduction_weights: Mapping[str, float] = field(
        default_factory=lambda: DEFAULT_DEDUCTION_WEIGHTS, hash=False)

    def __post_init__(self) -> None:
        for prefix in ("late", "early"):
            brackets = getattr(self, f"{prefix}_brackets")
            names = getattr(self, f"{prefix}_names")
            object.__setattr__(self, f"{prefix}_brackets", tuple(brackets))
            object.__setattr__(self, f"{prefix}_names", tuple(names))
            _check_brackets(f"{prefix}_brackets", tuple(brackets))
            _check_names(f"{prefix}_names", tuple(names), len(tuple(brackets)))
        overlap = sorted(set(self.late_names) & set(self.early_names))
        if overlap:
            raise ValueError(f"early_names: {overlap[0]!r} is also a late name")
        if not _is_int(self.many_taps) or self.many_taps < 1:
            raise ValueError(f"many_taps: {self.many_taps!r} must be a whole number >= 1")
        if not _is_int(self.travel_minutes) or self.travel_minutes < 0:
            raise ValueError(f"travel_minutes: {self.travel_minutes!r} must be a whole "
                             f"number >= 0")
        if not isinstance(self.deduction_weights, Mapping):
            raise ValueError("deduction_weights: must be a mapping of code to percent")
        known = self.weighted_codes
        if self.deduction_weights is DEFAULT_DEDUCTION_WEIGHTS:
            # Untouched defaults with renamed codes: keep the weights that still apply.
            object.__setattr__(self, "deduction_weights", {
                c: w for c, w in DEFAULT_DEDUCTION_WEIGHTS.items() if c in known})
        for code, weight in self.deduction_weights.items():
            if code not in known:
                raise ValueError(f"deduction_weights.{code}: unknown code (expected one of "
                                 f"{', '.join(known)})")
            if not _is_number(weight) or weight < 0:
                raise ValueError(f"deduction_weights.{code}: {weight!r} must be a number >= 0")
        object.__setattr__(self, "deduction_weights",
                           MappingProxyType(dict(self.deduction_weights)))

    @property
    def weighted_codes(self) -> tuple[str, ...]:
        """Every code a deduction weight may be given for."""
        return self.late_names + self.early_names + _WEIGHTED_STATUSES

    def weight(self, code: str) -> float:
        return float(self.deduction_weights.get(code, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"late_brackets": list(self.late_brackets), "late_names": list(self.late_names),
                "early_brackets": list(self.early_brackets),
                "early_names": list(self.early_names), "many_taps": self.many_taps,
                "travel_minutes": self.travel_minutes,
                "deduction_weights": dict(self.deduction_weights)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RulesConfig:
        """Parse a (partial) config; missing keys keep their defaults.

        ``deduction_weights`` is merged over the default weights of the codes
        that still exist (renamed codes start at 0). ValueError names the key.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"rules config: {data!r} is not an object")
        unknown = sorted(set(data) - set(_CONFIG_KEYS), key=str)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (expected {', '.join(_CONFIG_KEYS)})")
        values: dict[str, Any] = {}
        for key in ("late_brackets", "late_names", "early_brackets", "early_names"):
            if key in data:
                value = data[key]
                if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                    raise ValueError(f"{key}: {value!r} must be a list")
                values[key] = tuple(value)
        for key in ("many_taps", "travel_minutes"):
            if key in data:
                values[key] = data[key]
        weights = data.get("deduction_weights", {})
        if not isinstance(weights, Mapping):
            raise ValueError(f"deduction_weights: {weights!r} must be an object of code to "
                             f"percent")
        late = values.get("late_names", cls.late_names)
        early = values.get("early_names", cls.early_names)
        known = set(tuple(late) + tuple(early) + _WEIGHTED_STATUSES)
        merged = {code: w for code, w in DEFAULT_DEDUCTION_WEIGHTS.items() if code in known}
        merged.update(weights)
        values["deduction_weights"] = merged
        return cls(**values)


def _check_brackets(key: str, brackets: tuple[Any, ...]) -> None:
    if not brackets:
        raise ValueError(f"{key}: give at least one bracket")
    previous = 0
    for index, bound in enumerate(brackets):
        if not _is_int(bound) or bound <= 0:
            raise ValueError(f"{key}[{index}]: {bound!r} must be a whole number of minutes > 0")
        if bound <= previous:
            raise ValueError(f"{key}[{index}]: {bound} is not above {previous}; brackets "
                             f"must be strictly increasing")
        previous = bound


def _check_names(key: str, names: tuple[Any, ...], brackets: int) -> None:
    if len(names) != brackets + 1:
        raise ValueError(f"{key}: {len(names)} names for {brackets} brackets; give "
                         f"{brackets + 1} (one per bracket and one beyond the last)")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"{key}[{index}]: {name!r} must be a non-empty string")
        if name in STATUSES:
            raise ValueError(f"{key}[{index}]: {name!r} is a day status")
        if name in names[:index]:
            raise ValueError(f"{key}[{index}]: {name!r} appears twice")


def _code(minutes: int | None, brackets: tuple[int, ...], names: tuple[str, ...]) -> str | None:
    if minutes is None or minutes <= 0:
        return None
    # bisect_left puts a minute count equal to a bound in that bound's bracket (30 -> TL1).
    return names[bisect.bisect_left(brackets, minutes)]


def late_code(minutes: int, config: RulesConfig = RulesConfig()) -> str | None:
    """The late code of ``minutes`` late: 0 -> None, 1-30 -> TL1, ..., > 90 -> TL4."""
    return _code(minutes, config.late_brackets, config.late_names)


def early_code(minutes: int, config: RulesConfig = RulesConfig()) -> str | None:
    """The early-leave code of ``minutes`` early: 0 -> None, 1-30 -> PSW1, ..., > 90 -> PSW4."""
    return _code(minutes, config.early_brackets, config.early_names)


@dataclass(frozen=True)
class TapFact:
    """One tap as the rules see it.

    ``at`` is the server's corrected time (aware); ``card_status`` the card's
    status when the tap happened (``active``, ``lost``, ``blocked``,
    ``replaced``) or None for a card the server does not know; ``person_id``
    the card's owner at that moment, if known.
    """

    at: datetime
    site_code: str
    event_id: str
    card_uid: str
    clock_status: str
    card_status: str | None
    person_id: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"tap {self.event_id}: time {self.at.isoformat()} has no zone")


@dataclass(frozen=True)
class ExcuseFact:
    """An excuse (``sakit``, ``izin``, ``dinas_luar``, ``cuti``) from ``date_from`` to ``date_to``."""

    excuse_id: str
    kind: str
    date_from: date
    date_to: date

    def __post_init__(self) -> None:
        if self.kind not in EXCUSE_STATUS:
            raise ValueError(f"excuse {self.excuse_id}: kind {self.kind!r} must be one of "
                             f"{', '.join(EXCUSE_STATUS)}")
        if self.date_to < self.date_from:
            raise ValueError(f"excuse {self.excuse_id}: date_to {self.date_to} is before "
                             f"date_from {self.date_from}")

    def covers(self, day: date) -> bool:
        return self.date_from <= day <= self.date_to

    @property
    def status(self) -> str:
        return EXCUSE_STATUS[self.kind]


class DayOutcome(NamedTuple):
    """The attendance of one person on one day (see the module docstring for the rules).

    A named tuple: a city day makes 160,000 of them, three times faster than a
    frozen dataclass.
    """

    status: str
    late_code: str | None = None
    early_code: str | None = None
    check_in: datetime | None = None
    check_out: datetime | None = None
    minutes_late: int | None = None
    minutes_early: int | None = None
    tap_count: int = 0
    flags: tuple[str, ...] = ()
    excuse_id: str | None = None


def _ordered(taps: Iterable[TapFact]) -> list[TapFact]:
    return sorted(taps, key=lambda t: (t.at, t.event_id))


# Minutes are counted on POSIX timestamps (seconds since the epoch, UTC): every zone in
# use has a whole-minute offset, so the start of a tap's minute is the same in any zone,
# and this is several times faster than subtracting datetimes in different zones.
def _minute_start(at: datetime) -> float:
    return at.timestamp() // 60 * 60


def _minutes_late(check_in: datetime, plan: DayPlan) -> int:
    assert plan.start is not None
    late = int((_minute_start(check_in) - plan.start_timestamp) // 60)
    return late if late > plan.grace_minutes else 0


def _minutes_early(check_out: datetime, plan: DayPlan) -> int:
    assert plan.end is not None
    return max(0, int((plan.end_timestamp - _minute_start(check_out)) // 60))


class TapSummary(NamedTuple):
    """What the rules need of a person's valid taps of a day (rules 1, 2, 6 and 7).

    Summaries merge (:meth:`merge`), so the taps of several cards, or counts
    aggregated by the database per card, give the same outcome as the taps
    themselves: see :func:`summarize` and :func:`decide_day`.
    """

    first: datetime | None = None
    last: datetime | None = None
    count: int = 0
    unverified: bool = False

    def merge(self, other: TapSummary) -> TapSummary:
        if not other.count:
            return self
        if not self.count:
            return other
        assert self.first is not None and self.last is not None
        assert other.first is not None and other.last is not None
        return TapSummary(min(self.first, other.first), max(self.last, other.last),
                          self.count + other.count, self.unverified or other.unverified)


NO_TAPS = TapSummary()


def summarize(taps: Iterable[TapFact], site_code: str) -> TapSummary:
    """The summary of the taps of ``taps`` that are valid at ``site_code`` (rule 1)."""
    first = last = None
    count = 0
    unverified = False
    for tap in taps:
        if tap.site_code != site_code or tap.card_status != "active":
            continue
        count += 1
        if first is None or tap.at < first:
            first = tap.at
        if last is None or tap.at > last:
            last = tap.at
        if tap.clock_status == "unverified":
            unverified = True
    return TapSummary(first, last, count, unverified) if count else NO_TAPS


def _in_and_out(taps: TapSummary, plan: DayPlan) -> tuple[datetime | None, datetime | None]:
    """Check-in and check-out of the valid taps (rules 6 and 7)."""
    if not taps.count:
        return None, None
    if taps.count >= 2:
        return taps.first, taps.last
    only = taps.first
    assert only is not None
    if plan.start is None or plan.end is None:
        return only, None
    midpoint = plan.start + (plan.end - plan.start) / 2
    return (only, None) if only < midpoint else (None, only)


def evaluate_day(plan: DayPlan, taps: Sequence[TapFact], excuses: Sequence[ExcuseFact], *,
                 site_code: str, pending: bool = False,
                 config: RulesConfig = RulesConfig()) -> DayOutcome:
    """The outcome of one person's day at ``site_code`` (rules: module docstring)."""
    return decide_day(plan, summarize(taps, site_code), excuses, pending=pending,
                      config=config)


def decide_day(plan: DayPlan, taps: TapSummary, excuses: Sequence[ExcuseFact], *,
               pending: bool = False, config: RulesConfig = RulesConfig()) -> DayOutcome:
    """The outcome of one person's day from the summary of the valid taps (see
    :func:`evaluate_day`, which summarizes the taps and calls this)."""
    if plan.workday and (plan.start is None or plan.end is None):
        raise ValueError(f"plan of {plan.date}: a working day needs start and end")
    flags = ["unverified_clock"] if taps.unverified else []
    check_in, check_out = _in_and_out(taps, plan)
    count = taps.count

    if not plan.workday:
        return DayOutcome("LIBUR", check_in=check_in, check_out=check_out, tap_count=count,
                          flags=tuple(flags))

    covering = [e for e in excuses if e.covers(plan.date)]
    if covering:
        chosen = min(covering, key=lambda e: e.excuse_id)
        if count:
            flags.append("tap_during_excuse")
        return DayOutcome(chosen.status, check_in=check_in, check_out=check_out,
                          tap_count=count, flags=tuple(flags), excuse_id=chosen.excuse_id)

    if not count:
        return DayOutcome("PENDING" if pending else "A", flags=tuple(flags))

    minutes_late = _minutes_late(check_in, plan) if check_in is not None else None
    minutes_early = _minutes_early(check_out, plan) if check_out is not None else None
    late = (late_code(minutes_late, config) if minutes_late is not None
            else config.late_names[-1])
    if check_out is None and pending:
        # The person may still tap out today: no verdict on leaving early yet.
        return DayOutcome("PENDING", late_code=late, check_in=check_in,
                          minutes_late=minutes_late, tap_count=count, flags=tuple(flags))
    early = (early_code(minutes_early, config) if minutes_early is not None
             else config.early_names[-1])
    return DayOutcome("H", late_code=late, early_code=early, check_in=check_in,
                      check_out=check_out, minutes_late=minutes_late,
                      minutes_early=minutes_early, tap_count=count, flags=tuple(flags))


# -- anomalies ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnomalyFact:
    """Something in a day's taps a person should look at; ``detail`` is JSON-able."""

    kind: str
    card_uid: str | None
    person_id: str | None
    event_id: str | None
    detail: Mapping[str, Any]


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


_CARD_STATUS_KIND = {"lost": "lost_card_used", "blocked": "blocked_card_used",
                     "replaced": "replaced_card_used"}


def find_anomalies(site_code: str, taps: Sequence[TapFact], person_site: Mapping[str, str],
                   config: RulesConfig = RulesConfig()) -> list[AnomalyFact]:
    """Anomalies among one local day's taps at ``site_code``.

    ``taps`` holds the day's taps at ``site_code`` plus the same cards' taps at
    other sites that day (needed for impossible travel); only taps at
    ``site_code`` produce anomalies, so running this for every site reports
    each anomaly once:

    * ``unknown_card``: card not in the registry; one per card, with the count;
    * ``lost_card_used`` / ``blocked_card_used`` / ``replaced_card_used``: a card
      in that status was tapped (``inactive_card_used`` for any other status);
      one per card;
    * ``other_site``: an active card's owner belongs to another site
      (``person_site``); one per person;
    * ``impossible_travel``: consecutive taps of one card at two different
      sites less than ``travel_minutes`` apart; one per such pair whose later
      tap is at ``site_code``;
    * ``many_taps``: more than ``many_taps`` taps of one card here; one per card;
    * ``unverified_clock``: taps whose time could not be verified; one per card.

    The list is ordered by kind (as in :data:`ANOMALY_KINDS`), then card,
    person and event; the details list event ids in time order.
    """
    ordered = _ordered(taps)
    here = [t for t in ordered if t.site_code == site_code]
    by_card: dict[str, list[TapFact]] = defaultdict(list)
    for tap in here:
        by_card[tap.card_uid].append(tap)
    found: list[AnomalyFact] = []

    def per_card(kind: str, card: str, card_taps: list[TapFact], **extra: Any) -> None:
        owners = sorted({t.person_id for t in card_taps if t.person_id is not None})
        found.append(AnomalyFact(
            kind, card, owners[0] if len(owners) == 1 else None, card_taps[0].event_id,
            {"count": len(card_taps), "event_ids": [t.event_id for t in card_taps],
             "first_at": _iso(card_taps[0].at), "last_at": _iso(card_taps[-1].at), **extra}))

    for card, card_taps in by_card.items():
        unknown = [t for t in card_taps if t.card_status is None]
        if unknown:
            per_card("unknown_card", card, unknown)
        inactive: dict[str, list[TapFact]] = defaultdict(list)
        for tap in card_taps:
            if tap.card_status is not None and tap.card_status != "active":
                inactive[tap.card_status].append(tap)
        for status, status_taps in inactive.items():
            per_card(_CARD_STATUS_KIND.get(status, "inactive_card_used"), card, status_taps,
                     card_status=status)
        if len(card_taps) > config.many_taps:
            per_card("many_taps", card, card_taps, limit=config.many_taps)
        unverified = [t for t in card_taps if t.clock_status == "unverified"]
        if unverified:
            per_card("unverified_clock", card, unverified)

    by_person: dict[str, list[TapFact]] = defaultdict(list)
    for tap in here:
        if tap.card_status == "active" and tap.person_id is not None:
            home = person_site.get(tap.person_id)
            if home is not None and home != site_code:
                by_person[tap.person_id].append(tap)
    for person, person_taps in by_person.items():
        found.append(AnomalyFact(
            "other_site", person_taps[0].card_uid, person, person_taps[0].event_id,
            {"home_site": person_site[person], "site": site_code, "count": len(person_taps),
             "event_ids": [t.event_id for t in person_taps],
             "cards": sorted({t.card_uid for t in person_taps}),
             "first_at": _iso(person_taps[0].at)}))

    limit = timedelta(minutes=config.travel_minutes)
    travelling: dict[str, list[TapFact]] = defaultdict(list)
    for tap in ordered:
        if tap.card_uid in by_card:
            travelling[tap.card_uid].append(tap)
    for card, card_taps in travelling.items():
        for before, after in zip(card_taps, card_taps[1:]):
            gap = after.at - before.at
            if after.site_code == site_code and before.site_code != site_code and gap < limit:
                found.append(AnomalyFact(
                    "impossible_travel", card, after.person_id or before.person_id,
                    after.event_id,
                    {"from_site": before.site_code, "to_site": after.site_code,
                     "from_event_id": before.event_id, "to_event_id": after.event_id,
                     "from_at": _iso(before.at), "to_at": _iso(after.at),
                     "seconds_apart": int(gap.total_seconds()), "limit_minutes":
                         config.travel_minutes}))

    rank = {kind: index for index, kind in enumerate(ANOMALY_KINDS)}
    found.sort(key=lambda a: (rank[a.kind], a.card_uid or "", a.person_id or "",
                              a.event_id or ""))
    return found


# -- recap ----------------------------------------------------------------------------------
RECAP_CODES = ("H", "TL1", "TL2", "TL3", "TL4", "PSW1", "PSW2", "PSW3", "PSW4",
               "S", "I", "A", "DL", "C", "LIBUR", "PENDING")


@dataclass
class Recap:
    """Counts of a run of days (one person's month, say) and what they amount to.

    ``counts`` has every status and every late and early code (a late day is
    counted under ``H`` and under its late code). ``working_days`` are days
    with status H, A, S, I, DL or C; ``percent_present`` is H / working days
    x 100; ``deduction_percent`` the weighted sum of codes, capped at 100.
    Counts are also readable as ``recap["TL1"]`` or ``recap.TL1``.
    """

    counts: dict[str, int]
    days: int = 0
    working_days: int = 0
    percent_present: float = 0.0
    deduction_percent: float = 0.0

    def __getitem__(self, code: str) -> int:
        return self.counts[code]

    def __getattr__(self, name: str) -> int:
        # Only reached when normal lookup fails; guarded so copy/pickle never recurse.
        counts = self.__dict__.get("counts")
        if counts is not None and not name.startswith("_") and name in counts:
            return counts[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return {**self.counts, "days": self.days, "working_days": self.working_days,
                "percent_present": self.percent_present,
                "deduction_percent": self.deduction_percent}


def recap_days(outcomes: Iterable[tuple[str, str | None, str | None]],
               config: RulesConfig = RulesConfig()) -> Recap:
    """Recap of days given as ``(status, late_code, early_code)``.

    Late and early codes count only on ``H`` days (a pending day's provisional
    late code waits for the day to end). Unknown statuses or codes raise
    ValueError.
    """
    codes = STATUSES[:1] + config.late_names + config.early_names + STATUSES[1:]
    counts = dict.fromkeys(RECAP_CODES, 0)
    counts.update(dict.fromkeys(codes, 0))
    days = 0
    for status, late, early in outcomes:
        if status not in STATUSES:
            raise ValueError(f"unknown day status {status!r}")
        if late is not None and late not in config.late_names:
            raise ValueError(f"unknown late code {late!r}")
        if early is not None and early not in config.early_names:
            raise ValueError(f"unknown early code {early!r}")
        days += 1
        counts[status] += 1
        if status == "H":
            for code in (late, early):
                if code is not None:
                    counts[code] += 1
    working = sum(counts[s] for s in WORKING_STATUSES)
    present = round(counts["H"] / working * 100, 2) if working else 0.0
    deduction = math.fsum(config.weight(code) * counts[code] for code in config.weighted_codes)
    return Recap(counts=counts, days=days, working_days=working, percent_present=present,
                 deduction_percent=round(min(100.0, deduction), 2))
