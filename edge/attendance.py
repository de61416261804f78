"""Today's status of a person on the operator's page: pure functions over plain data.

This is the device's own quick view, not the official outcome (the server
reconciles taps into daily attendance, ``docs/ATTENDANCE.md``). The rules:

* an excuse (sakit, izin, dinas luar, cuti) covering the day wins, as on the server;
* otherwise a person with an accepted tap is present, and *late* when the first
  accepted tap is after the day's start plus its grace minutes;
* otherwise the person has not arrived (yet: a past day says absent).

The day's start comes from the server's day plan (``plans`` in the roster
reply) when there is one for the day, else from ``[web] start_time`` and
``grace_minutes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable

PRESENT = "present"
LATE = "late"
NOT_ARRIVED = "not_arrived"
ABSENT = "absent"
EXCUSE_KINDS = ("sakit", "izin", "dinas_luar", "cuti")
STATUSES = (PRESENT, LATE, *EXCUSE_KINDS, NOT_ARRIVED, ABSENT)

#: How many days of plans to keep (the month export looks back at most a month).
KEEP_PLAN_DAYS = 62


@dataclass(frozen=True)
class DayPlan:
    day: date
    workday: bool = True
    start: time | None = None
    end: time | None = None
    grace_minutes: int = 0
    reason: str = ""
    from_server: bool = False

    @property
    def on_time_until(self) -> datetime | None:
        """The last moment that still counts as on time (local, naive)."""
        if self.start is None:
            return None
        return datetime.combine(self.day, self.start) + timedelta(minutes=self.grace_minutes)


def _hhmm(text: Any) -> time | None:
    if text in (None, ""):
        return None
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a time HH:MM")
    return time.fromisoformat(text)


def parse_plans(raw: Any) -> list[dict[str, Any]]:
    """Check the ``plans`` of a roster reply; entries that do not make sense are dropped.

    Returns plain dicts (what is stored as JSON) in date order, one per date.
    """
    if not isinstance(raw, list):
        return []
    found: dict[str, dict[str, Any]] = {}
    for item in raw:
        if not isinstance(item, dict):
            continue
        try:
            day = date.fromisoformat(str(item["date"]))
            start, end = _hhmm(item.get("start")), _hhmm(item.get("end"))
            grace = int(item.get("grace_minutes") or 0)
            if grace < 0:
                raise ValueError("negative grace")
        except (KeyError, TypeError, ValueError):
            continue
        found[day.isoformat()] = {
            "date": day.isoformat(), "workday": bool(item.get("workday", True)),
            "start": start.strftime("%H:%M") if start else None,
            "end": end.strftime("%H:%M") if end else None,
            "grace_minutes": grace, "reason": str(item.get("reason") or "")}
    return [found[k] for k in sorted(found)]


def merge_plans(stored: list[dict[str, Any]], new: list[dict[str, Any]],
                today: date) -> list[dict[str, Any]]:
    """New plans replace stored ones of the same date; old dates are kept a while."""
    keep_from = (today - timedelta(days=KEEP_PLAN_DAYS)).isoformat()
    merged = {p["date"]: p for p in stored if p.get("date", "") >= keep_from}
    merged.update({p["date"]: p for p in new})
    return [merged[k] for k in sorted(merged)]


def plan_for(day: date, plans: Iterable[dict[str, Any]], default_start: time,
             default_grace: int) -> DayPlan:
    """The plan of ``day``: the server's when it sent one, else the configured default."""
    for plan in plans:
        if plan.get("date") == day.isoformat():
            return DayPlan(day, bool(plan.get("workday", True)), _hhmm(plan.get("start")),
                           _hhmm(plan.get("end")), int(plan.get("grace_minutes") or 0),
                           str(plan.get("reason") or ""), from_server=True)
    return DayPlan(day, True, default_start, None, default_grace)


def person_status(plan: DayPlan, first_tap: datetime | None, excuse_kind: str | None,
                  *, day_over: bool = False) -> str:
    """The status of one person on ``plan.day``.

    ``first_tap`` is the first accepted tap of the day, in local time (naive or
    aware: only the local clock reading is compared); ``day_over`` turns
    "not arrived" into "absent" for a past day.
    """
    if excuse_kind is not None:
        return excuse_kind
    if first_tap is None:
        return ABSENT if day_over else NOT_ARRIVED
    deadline = plan.on_time_until
    if plan.workday and deadline is not None and first_tap.replace(tzinfo=None) > deadline:
        return LATE
    return PRESENT


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    """The figures of the "today" page.

    ``present`` counts everyone who came (late people too), ``late`` those of
    them who came late; ``excused`` counts every excuse kind; ``not_arrived``
    includes ``absent``. present + excused + not_arrived = number of people.
    """
    counts = {"present": 0, "late": 0, "excused": 0, "not_arrived": 0, "total": 0}
    for status in statuses:
        counts["total"] += 1
        if status in (PRESENT, LATE):
            counts["present"] += 1
            counts["late"] += status == LATE
        elif status in EXCUSE_KINDS:
            counts["excused"] += 1
        else:
            counts["not_arrived"] += 1
    return counts


def month_counts(statuses: Iterable[str]) -> dict[str, int]:
    """Days per status of one person in a month (present includes late days)."""
    counts = {key: 0 for key in ("present", "late", *EXCUSE_KINDS, "absent")}
    for status in statuses:
        if status in (PRESENT, LATE):
            counts["present"] += 1
            counts["late"] += status == LATE
        elif status in counts:
            counts[status] += 1
    return counts
