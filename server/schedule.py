"""Work schedules, the holiday calendar and the plan of one day: pure rules, no database.

A :class:`Schedule` gives the hours of each weekday (and optionally a shorter
Ramadan profile); a :class:`Calendar` knows the national holidays (from the
``holidays`` package, including cuti bersama) plus local overrides; and
:func:`plan_day` combines both into a :class:`DayPlan` in the site's time zone,
which :mod:`server.attendance_rules` then judges taps against.

Rules of :func:`plan_day`, in order:

1. the day is in Ramadan when the calendar says so *and* the schedule has a
   Ramadan profile; the profile's hours then replace the normal ones;
2. a weekday without hours is a non-working day, reason ``"weekend"`` (it wins
   over a holiday falling on the same day);
3. a holiday (national, cuti bersama or a local ``holiday`` override, unless a
   ``workday`` override cancels it) is a non-working day, reason
   ``"holiday: <name>"``;
4. otherwise it is a working day; a ``half_day`` override moves the end
   earlier (never before the start, never later than the normal end).

The dictionary form of a schedule (stored as JSON, see :meth:`Schedule.to_dict`)::

    {"description": "...", "grace_minutes": 0,
     "days": {"mon": {"start": "07:30", "end": "16:00", "break_minutes": 60}, ...},
     "ramadan": {"mon": {"start": "08:00", "end": "15:00", "break_minutes": 30}, ...}}

``ramadan`` is optional; when present it must list the same weekdays as
``days`` so that no weekday silently changes between working and free during
Ramadan (use a calendar override for that).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

#: The Indonesian time-zone abbreviations and their IANA zones.
ZONE_ABBREVIATIONS: Mapping[str, str] = MappingProxyType({
    "WIB": "Asia/Jakarta",
    "WITA": "Asia/Makassar",
    "WIT": "Asia/Jayapura",
})

#: Weekday keys of the dictionary form, index = ``date.weekday()``.
WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

CALENDAR_KINDS = ("holiday", "workday", "half_day", "ramadan")

#: Holiday categories of the ``holidays`` package: "government" holds cuti bersama.
HOLIDAY_CATEGORIES = ("public", "government")
HOLIDAY_LANGUAGE = "id"

_HHMM = re.compile(r"(\d{1,2}):(\d{2})")


def site_timezone(text: str) -> ZoneInfo:
    """The zone of a site: ``WIB``/``WITA``/``WIT`` (any case) or an IANA name."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"time zone {text!r}: give WIB, WITA, WIT or an IANA name "
                         f"such as Asia/Jakarta")
    name = text.strip()
    abbreviation = ZONE_ABBREVIATIONS.get(name.upper())
    if abbreviation is not None:
        return ZoneInfo(abbreviation)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # ValueError covers names ZoneInfo refuses outright, such as absolute paths.
        raise ValueError(f"unknown time zone {text!r}: give WIB (Asia/Jakarta), "
                         f"WITA (Asia/Makassar), WIT (Asia/Jayapura) or an IANA name") from None


def parse_time(text: Any) -> time:
    """``"07:30"`` (or ``"7:30"``) as a :class:`~datetime.time`; ValueError otherwise."""
    match = _HHMM.fullmatch(text) if isinstance(text, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{_show(text)} is not a time HH:MM")
    return time(int(match[1]), int(match[2]))


def format_time(value: time) -> str:
    """``time(7, 30)`` as ``"07:30"``."""
    return value.strftime("%H:%M")


def _show(value: Any) -> str:
    """A value as it would appear in the JSON the user wrote."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but true/false in a config is a mistake, not a number.
    return isinstance(value, int) and not isinstance(value, bool)


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


@dataclass(frozen=True)
class DayHours:
    """The hours of one weekday: ``start`` and ``end`` (local, whole minutes), break length."""

    start: time
    end: time
    break_minutes: int = 0

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(problem)

    def _problem(self) -> str | None:
        for label, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, time) or value.tzinfo is not None:
                return f"{label} {value!r} must be a local time without a zone"
            if value.second or value.microsecond:
                return f"{label} {value.isoformat()} must be a whole minute"
        if self.end <= self.start:
            return f"end {format_time(self.end)} is not after start {format_time(self.start)}"
        if not _is_int(self.break_minutes) or self.break_minutes < 0:
            return f"break_minutes {_show(self.break_minutes)} must be a whole number >= 0"
        if self.break_minutes >= self.span_minutes:
            return (f"break_minutes {self.break_minutes} leaves no working time between "
                    f"{format_time(self.start)} and {format_time(self.end)}")
        return None

    @property
    def span_minutes(self) -> int:
        """Minutes from start to end, break included."""
        return _minutes(self.end) - _minutes(self.start)

    @property
    def working_minutes(self) -> int:
        """Minutes from start to end less the break."""
        return self.span_minutes - self.break_minutes

    def to_dict(self) -> dict[str, Any]:
        return {"start": format_time(self.start), "end": format_time(self.end),
                "break_minutes": self.break_minutes}

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> DayHours:
        """Parse ``{"start": "07:30", "end": "16:00", "break_minutes": 60}``.

        Errors name ``path`` (e.g. ``days.fri``) and the key.
        """
        prefix = f"{path}." if path else ""
        where = path or "day"
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: {_show(data)} is not an object with start and end")
        unknown = sorted(set(data) - {"start", "end", "break_minutes"}, key=str)
        if unknown:
            raise ValueError(f"{prefix}{unknown[0]}: unknown key (expected start, end, "
                             f"break_minutes)")
        values: dict[str, Any] = {}
        for key in ("start", "end"):
            if key not in data:
                raise ValueError(f"{prefix}{key}: missing")
            try:
                values[key] = parse_time(data[key])
            except ValueError as exc:
                raise ValueError(f"{prefix}{key}: {exc}") from None
        breaks = data.get("break_minutes", 0)
        if not _is_int(breaks) or breaks < 0:
            raise ValueError(f"{prefix}break_minutes: {_show(breaks)} must be a whole "
                             f"number >= 0")
        try:
            return cls(values["start"], values["end"], breaks)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


def _frozen_days(days: Any, label: str) -> Mapping[int, DayHours]:
    if not isinstance(days, Mapping):
        raise ValueError(f"{label}: must be a mapping of weekday (0=Monday) to DayHours")
    for weekday, hours in days.items():
        if not _is_int(weekday) or not 0 <= weekday <= 6:
            raise ValueError(f"{label}: weekday {weekday!r} must be 0 (Monday) .. 6 (Sunday)")
        if not isinstance(hours, DayHours):
            raise ValueError(f"{label}.{WEEKDAY_KEYS[weekday]}: {hours!r} is not DayHours")
    return MappingProxyType(dict(sorted(days.items())))


@dataclass(frozen=True)
class Schedule:
    """A named weekly schedule; a weekday missing from ``days`` is not a working day.

    ``grace_minutes`` is how late a check-in may be before it counts as late
    (lateness is then still counted from the start). ``ramadan`` optionally
    replaces ``days`` on days the calendar marks as Ramadan.
    """

    name: str
    days: Mapping[int, DayHours] = field(hash=False)
    grace_minutes: int = 0
    ramadan: Mapping[int, DayHours] | None = field(default=None, hash=False)
    description: str = ""

    def __post_init__(self) -> None:
        # Stored read-only so that a shared default schedule cannot be changed in place.
        object.__setattr__(self, "days", _frozen_days(self.days, "days"))
        if self.ramadan is not None:
            object.__setattr__(self, "ramadan", _frozen_days(self.ramadan, "ramadan"))
            missing = sorted(set(self.days) - set(self.ramadan))
            extra = sorted(set(self.ramadan) - set(self.days))
            if missing:
                raise ValueError(f"ramadan.{WEEKDAY_KEYS[missing[0]]}: missing; the Ramadan "
                                 f"profile must list the same weekdays as days")
            if extra:
                raise ValueError(f"ramadan.{WEEKDAY_KEYS[extra[0]]}: not a working day in "
                                 f"days; the Ramadan profile must list the same weekdays")
        if not _is_int(self.grace_minutes) or self.grace_minutes < 0:
            raise ValueError(f"grace_minutes: {_show(self.grace_minutes)} must be a whole "
                             f"number >= 0")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"schedule name {self.name!r} must be a non-empty string")
        if not isinstance(self.description, str):
            raise ValueError(f"description: {_show(self.description)} must be a string")

    def hours(self, weekday: int, ramadan: bool = False) -> DayHours | None:
        """The hours of ``weekday`` (0=Monday), from the Ramadan profile when asked and defined."""
        profile = self.ramadan if ramadan and self.ramadan is not None else self.days
        return profile.get(weekday)

    def weekly_minutes(self, ramadan: bool = False) -> int:
        """Working minutes in a week (breaks excluded)."""
        profile = self.ramadan if ramadan and self.ramadan is not None else self.days
        return sum(hours.working_minutes for hours in profile.values())

    def weekly_hours(self, ramadan: bool = False) -> float:
        return self.weekly_minutes(ramadan) / 60

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form read back by :meth:`from_dict`."""
        data: dict[str, Any] = {
            "description": self.description,
            "grace_minutes": self.grace_minutes,
            "days": {WEEKDAY_KEYS[d]: h.to_dict() for d, h in self.days.items()},
        }
        if self.ramadan is not None:
            data["ramadan"] = {WEEKDAY_KEYS[d]: h.to_dict() for d, h in self.ramadan.items()}
        return data

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> Schedule:
        """Parse the dictionary form; ValueError names the key path of the first problem."""
        if not isinstance(data, Mapping):
            raise ValueError(f"schedule {name!r}: {_show(data)} is not an object")
        unknown = sorted(set(data) - {"description", "grace_minutes", "days", "ramadan"},
                         key=str)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (expected description, "
                             f"grace_minutes, days, ramadan)")
        if "days" not in data:
            raise ValueError("days: missing")
        days = _parse_week(data["days"], "days")
        if not days:
            raise ValueError("days: no working day given")
        ramadan = _parse_week(data["ramadan"], "ramadan") if data.get("ramadan") is not None \
            else None
        grace = data.get("grace_minutes", 0)
        if not _is_int(grace) or grace < 0:
            raise ValueError(f"grace_minutes: {_show(grace)} must be a whole number >= 0")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"description: {_show(description)} must be a string")
        return cls(name=name, days=days, grace_minutes=grace, ramadan=ramadan,
                   description=description)


def _parse_week(data: Any, path: str) -> dict[int, DayHours]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: {_show(data)} is not an object keyed by mon..sun")
    week: dict[int, DayHours] = {}
    for key, hours in data.items():
        if key not in WEEKDAY_KEYS:
            raise ValueError(f"{path}.{key}: unknown weekday (expected one of "
                             f"{', '.join(WEEKDAY_KEYS)})")
        week[WEEKDAY_KEYS.index(key)] = DayHours.from_dict(hours, f"{path}.{key}")
    return week


def _week(spec: Mapping[str, tuple[str, str, int]]) -> dict[int, DayHours]:
    return {WEEKDAY_KEYS.index(key): DayHours(parse_time(start), parse_time(end), breaks)
            for key, (start, end, breaks) in spec.items()}


_MON_THU = ("mon", "tue", "wed", "thu")
_MON_FRI = _MON_THU + ("fri",)

#: Built-in schedules; a deployment may add its own (``Schedule.from_dict``).
DEFAULT_SCHEDULES: dict[str, Schedule] = {
    schedule.name: schedule for schedule in (
        Schedule(
            name="asn",
            description="ASN (Perpres 21/2023): 37.5 hours a week; Ramadan 32.5 hours",
            days=_week({**{d: ("07:30", "16:00", 60) for d in _MON_THU},
                        "fri": ("07:30", "16:30", 90)}),
            ramadan=_week({**{d: ("08:00", "15:00", 30) for d in _MON_THU},
                           "fri": ("08:00", "15:30", 60)}),
        ),
        Schedule(
            name="sekolah",
            description="School, five days: Monday-Friday 07:00-14:00; Ramadan 08:00-12:00",
            days=_week({d: ("07:00", "14:00", 0) for d in _MON_FRI}),
            ramadan=_week({d: ("08:00", "12:00", 0) for d in _MON_FRI}),
        ),
        Schedule(
            name="sekolah-6hari",
            description="School, six days: Monday-Saturday 07:00-12:30",
            days=_week({d: ("07:00", "12:30", 0) for d in _MON_FRI + ("sat",)}),
        ),
        Schedule(
            name="sekolah-0630",
            description="School, five days from 06:30: Monday-Friday 06:30-14:00; "
                        "Ramadan 08:00-12:00",
            days=_week({d: ("06:30", "14:00", 0) for d in _MON_FRI}),
            ramadan=_week({d: ("08:00", "12:00", 0) for d in _MON_FRI}),
        ),
    )
}


@dataclass(frozen=True)
class CalendarDay:
    """A local override of the calendar for one date.

    ``kind``: ``holiday`` (adds a day off), ``workday`` (cancels a national
    holiday), ``half_day`` (work ends at ``end``) or ``ramadan`` (the day is in
    Ramadan, so a schedule's Ramadan profile applies).
    """

    date: date
    kind: str
    name: str = ""
    end: time | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.date, date) or isinstance(self.date, datetime):
            raise ValueError(f"calendar day {self.date!r}: date must be a date")
        if self.kind not in CALENDAR_KINDS:
            raise ValueError(f"calendar day {self.date}: kind {self.kind!r} must be one of "
                             f"{', '.join(CALENDAR_KINDS)}")
        if self.kind == "half_day":
            if not isinstance(self.end, time) or self.end.tzinfo is not None:
                raise ValueError(f"calendar day {self.date}: a half_day needs a local end time")
        elif self.end is not None:
            raise ValueError(f"calendar day {self.date}: end is only for a half_day")


def calendar_range(kind: str, first: date, last: date, name: str = "",
                   end: time | None = None) -> list[CalendarDay]:
    """One override of ``kind`` for every date from ``first`` to ``last`` inclusive.

    Handy for Ramadan, whose dates the government fixes each year (sidang
    isbat) and which therefore comes from configuration, not from a formula.
    """
    if last < first:
        raise ValueError(f"calendar range: {last} is before {first}")
    return [CalendarDay(first + timedelta(days=n), kind, name, end)
            for n in range((last - first).days + 1)]


class Calendar:
    """National holidays and cuti bersama of Indonesia plus local overrides.

    Overrides win over the package. For one date, a later ``holiday`` or
    ``workday`` override replaces an earlier one, and a later ``half_day``
    replaces an earlier ``half_day``; so pass regency overrides before site
    ones. The package's holidays are computed per year on first use.
    """

    def __init__(self, overrides: Iterable[CalendarDay] = (), *,
                 country_holidays: bool = True) -> None:
        self._country = country_holidays
        self._day_off: dict[date, CalendarDay] = {}  # kind holiday or workday
        self._half_days: dict[date, CalendarDay] = {}
        self._ramadan: dict[date, CalendarDay] = {}
        for override in overrides:
            if not isinstance(override, CalendarDay):
                raise ValueError(f"calendar override {override!r} is not a CalendarDay")
            if override.kind in ("holiday", "workday"):
                self._day_off[override.date] = override
            elif override.kind == "half_day":
                self._half_days[override.date] = override
            else:
                self._ramadan[override.date] = override
        self._years: dict[int, Mapping[date, str]] = {}
        self._lock = threading.Lock()

    def _national(self, year: int) -> Mapping[date, str]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        with self._lock:
            if year not in self._years:
                self._years[year] = _country_holidays(year)
            return self._years[year]

    def national_holiday_name(self, day: date) -> str | None:
        """The package's holiday (public or cuti bersama) on ``day``, ignoring overrides."""
        if not self._country:
            return None
        return self._national(day.year).get(day)

    def holiday_name(self, day: date) -> str | None:
        """The name of the holiday on ``day``, or None for an ordinary day."""
        override = self._day_off.get(day)
        if override is not None:
            return None if override.kind == "workday" else (override.name or "holiday")
        return self.national_holiday_name(day)

    def is_ramadan(self, day: date) -> bool:
        return day in self._ramadan

    def half_day_end(self, day: date) -> time | None:
        override = self._half_days.get(day)
        return override.end if override is not None else None

    def holidays_between(self, first: date, last: date) -> list[tuple[date, str]]:
        """Every holiday from ``first`` to ``last`` inclusive, in date order, overrides applied."""
        found = []
        day = first
        while day <= last:
            name = self.holiday_name(day)
            if name is not None:
                found.append((day, name))
            day += timedelta(days=1)
        return found


def _country_holidays(year: int) -> Mapping[date, str]:
    probe = holidays.country_holidays("ID")
    # The package silently falls back to English for an unknown language; ask first so the
    # Indonesian names are used whenever this version has them.
    language = HOLIDAY_LANGUAGE if HOLIDAY_LANGUAGE in probe.supported_languages else None
    categories = tuple(c for c in HOLIDAY_CATEGORIES if c in probe.supported_categories)
    found = holidays.country_holidays("ID", years=year, categories=categories,
                                      language=language)
    return MappingProxyType({day: name for day, name in found.items() if day.year == year})


@dataclass(frozen=True)
class DayPlan:
    """What a person is expected to do on one date at one site.

    ``start``/``end`` are aware datetimes in the site's zone (None on a
    non-working day); ``reason`` is ``""`` on a working day, ``"weekend"`` or
    ``"holiday: <name>"`` otherwise. ``ramadan`` is True when the schedule's
    Ramadan profile applies; ``half_day`` when a half-day override moved the end.
    """

    date: date
    workday: bool
    reason: str
    start: datetime | None
    end: datetime | None
    grace_minutes: int = 0
    break_minutes: int = 0
    ramadan: bool = False
    half_day: bool = False

    @cached_property
    def start_timestamp(self) -> float:
        """``start`` in seconds since the epoch (the rules count minutes on these)."""
        assert self.start is not None
        return self.start.timestamp()

    @cached_property
    def end_timestamp(self) -> float:
        assert self.end is not None
        return self.end.timestamp()


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[00:00, next 00:00)`` of ``day`` in ``tz``, as aware datetimes."""
    return (datetime.combine(day, time(0), tzinfo=tz),
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz))


def local_day(at: datetime, tz: ZoneInfo) -> date:
    """The local date in ``tz`` of an aware instant (how taps are grouped into days)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone")
    return at.astimezone(tz).date()


def plan_day(schedule: Schedule, calendar: Calendar, day: date, tz: ZoneInfo) -> DayPlan:
    """The plan of ``day`` for a site on ``schedule`` in zone ``tz`` (rules: module docstring)."""
    ramadan = schedule.ramadan is not None and calendar.is_ramadan(day)
    hours = schedule.hours(day.weekday(), ramadan=ramadan)
    if hours is None:
        return DayPlan(day, False, "weekend", None, None, ramadan=ramadan)
    holiday = calendar.holiday_name(day)
    if holiday is not None:
        return DayPlan(day, False, f"holiday: {holiday}", None, None, ramadan=ramadan)
    start = datetime.combine(day, hours.start, tzinfo=tz)
    end = datetime.combine(day, hours.end, tzinfo=tz)
    breaks = hours.break_minutes
    half_day = False
    half_end = calendar.half_day_end(day)
    if half_end is not None:
        shortened = max(start, datetime.combine(day, half_end, tzinfo=tz))
        if shortened < end:
            end, half_day = shortened, True
            # A break longer than the shortened day cannot have been taken in full.
            breaks = min(breaks, int((end - start).total_seconds() // 60))
    return DayPlan(day, True, "", start, end, grace_minutes=schedule.grace_minutes,
                   break_minutes=breaks, ramadan=ramadan, half_day=half_day)
