"""Fleet alerts: devices that went silent, backlogs that grow old, clocks that drift,
readers that are down.

The rule (:func:`evaluate`) is a pure function over plain rows of the ``devices``
table, the :class:`Thresholds` and the time ``now``; :func:`current_alerts` reads
the rows. The API (``GET /api/v1/alerts``), the dashboard's fleet page and
``attendance-server device alerts`` all show the same list.

Kinds (``since`` in brackets; the server keeps only each device's *last* heartbeat):

* ``silent``: no exchange for longer than ``silent_*`` (the last exchange);
* ``never_seen``: enrolled longer than ``silent_*`` ago and never heard from since (the
  enrolment);
* ``backlog``: the oldest tap not yet at the server is older than ``backlog_*`` (that tap);
* ``clock_offset``: the device clock is off by more than ``clock_offset_*``, either way
  (the heartbeat that measured it);
* ``reader_down``: the last heartbeat reported a reader down; critical when no reader
  works, a warning when another still does (the heartbeat that reported it).

A threshold is crossed when the value is *above* it (exactly at it raises
nothing); a threshold of 0 turns that level off. Revoked devices raise nothing.
A silent device keeps the backlog, clock and reader alerts of its last
heartbeat: they are what is known of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: Alert kinds, in the order a device's alerts are listed.
KINDS = ("never_seen", "silent", "backlog", "clock_offset", "reader_down")
#: Severities, the worst first.
SEVERITIES = ("critical", "warning")
UNITS = {"never_seen": "minutes", "silent": "minutes", "backlog": "minutes",
         "clock_offset": "seconds", "reader_down": "readers"}


@dataclass(frozen=True)
class Thresholds:
    """When an alert is raised (the ``[alerts]`` section of the server configuration).

    The defaults suit sites whose network is down for days: a warning after two
    hours without a heartbeat, critical only after three days (longer than a
    weekend with the power off); a backlog warns after an hour and is critical
    after two days; a clock is a warning 2 minutes off and critical 10 minutes
    off (a late bracket is 30 minutes).
    """

    silent_warning_minutes: float = 120.0
    silent_critical_minutes: float = 4320.0
    backlog_warning_minutes: float = 60.0
    backlog_critical_minutes: float = 2880.0
    clock_offset_warning_seconds: float = 120.0
    clock_offset_critical_seconds: float = 600.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name}: expected a number, got {value!r}")
            if not 0 <= value < 10**9:
                raise ValueError(f"{f.name}: must be 0 (off) or more, got {value!r}")
            object.__setattr__(self, f.name, float(value))
        for name in ("silent", "backlog", "clock_offset"):
            unit = "seconds" if name == "clock_offset" else "minutes"
            warning = getattr(self, f"{name}_warning_{unit}")
            critical = getattr(self, f"{name}_critical_{unit}")
            if warning and critical and critical < warning:
                raise ValueError(f"{name}_critical_{unit}: must not be below "
                                 f"{name}_warning_{unit} ({critical:g} < {warning:g})")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Thresholds":
        """Thresholds from a mapping of the field names (others are an error)."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (known keys: "
                             f"{', '.join(sorted(known))})")
        return cls(**data)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def levels(self, kind: str) -> list[tuple[str, float]]:
        """The (severity, threshold) pairs of ``kind`` that are on, the worst first."""
        name = "silent" if kind == "never_seen" else kind
        unit = "seconds" if name == "clock_offset" else "minutes"
        pairs = [(severity, getattr(self, f"{name}_{severity}_{unit}"))
                 for severity in SEVERITIES]
        return [(severity, limit) for severity, limit in pairs if limit > 0]


@dataclass(frozen=True)
class Alert:
    """One thing wrong with one device."""

    kind: str
    severity: str
    device_id: str
    device_name: str
    site: str
    since: datetime | None
    value: float | int
    threshold: float | None  # None: reader_down (no threshold)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    @property
    def is_critical(self) -> bool:
        return self.severity == "critical"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``since`` in UTC with milliseconds, as the API writes times)."""
        from server.clock import format_utc

        return {"kind": self.kind, "severity": self.severity, "device_id": self.device_id,
                "device_name": self.device_name, "site": self.site,
                "since": format_utc(self.since) if self.since is not None else None,
                "value": self.value, "threshold": self.threshold, "unit": self.unit,
                "detail": self.detail}


def _level(value: float, levels: list[tuple[str, float]]) -> tuple[str, float] | None:
    """The worst (severity, threshold) that ``value`` is above, or None."""
    for severity, limit in levels:
        if value > limit:
            return severity, limit
    return None


def _minutes(now: datetime, moment: datetime) -> float:
    return round((now - moment).total_seconds() / 60, 1)


def _down_readers(row: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The readers reported down and how many are reported at all."""
    readers = [r for r in (row.get("readers") or []) if isinstance(r, Mapping)]
    down = [{"name": str(r.get("name") or ""), "error": r.get("error")}
            for r in readers if r.get("connected") is False]
    return down, len(readers)


def device_alerts(row: Mapping[str, Any], thresholds: Thresholds, now: datetime
                  ) -> list[Alert]:
    """The alerts of one device row (keys of the ``devices`` table), in :data:`KINDS` order."""
    if row.get("revoked_at") is not None:
        return []
    found: list[Alert] = []

    def add(kind: str, level: tuple[str, float] | None, since: datetime | None,
            value: float | int, detail: dict[str, Any] | None = None) -> None:
        if level is not None:
            found.append(Alert(kind, level[0], row["device_id"], row.get("name") or "",
                               row["site_code"], since, value, level[1], detail or {}))

    last_seen = row.get("last_seen_at")
    if last_seen is None:
        created = row.get("created_at")
        if created is not None:
            age = _minutes(now, created)
            add("never_seen", _level((now - created).total_seconds() / 60,
                                     thresholds.levels("silent")), created, age)
    else:
        add("silent", _level((now - last_seen).total_seconds() / 60,
                             thresholds.levels("silent")), last_seen, _minutes(now, last_seen))

    oldest, backlog = row.get("oldest_unsent_at"), row.get("backlog")
    if oldest is not None and (backlog is None or backlog > 0):
        add("backlog", _level((now - oldest).total_seconds() / 60,
                              thresholds.levels("backlog")), oldest, _minutes(now, oldest),
            {"backlog": backlog})

    offset_ms = row.get("clock_offset_ms")
    if offset_ms is not None:
        add("clock_offset", _level(abs(offset_ms) / 1000, thresholds.levels("clock_offset")),
            last_seen, round(offset_ms / 1000, 3), {"offset_ms": offset_ms})

    down, reported = _down_readers(row)
    if down or row.get("reader_ok") is False:
        # reader_ok false without a list (an older edge): assume its only reader is down.
        severity = "critical" if not reported or len(down) >= reported else "warning"
        found.append(Alert("reader_down", severity, row["device_id"], row.get("name") or "",
                           row["site_code"], last_seen, max(len(down), 1), None,
                           {"readers": down, "readers_reported": reported}))
    return found


def evaluate(rows: Iterable[Mapping[str, Any]], thresholds: Thresholds, now: datetime
             ) -> list[Alert]:
    """Every alert of the device rows: critical first, then by site, device and kind."""
    alerts = [alert for row in rows for alert in device_alerts(row, thresholds, now)]
    return sorted(alerts, key=lambda a: (SEVERITIES.index(a.severity), a.site,
                                         a.device_name, a.device_id, KINDS.index(a.kind)))


def counts(alerts: Iterable[Alert]) -> dict[str, int]:
    """Alerts per severity (every severity present, 0 when none)."""
    out = {severity: 0 for severity in SEVERITIES}
    for alert in alerts:
        out[alert.severity] += 1
    return out


# -- reading the rows ------------------------------------------------------------------------
def device_rows(conn: Connection, sites: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows :func:`evaluate` reads: devices not revoked, of ``sites`` (None: all)."""
    from server.schema import devices

    d = devices.c
    query = (sa.select(d.device_id, d.name, d.site_code, d.created_at, d.revoked_at,
                       d.last_seen_at, d.backlog, d.oldest_unsent_at, d.reader_ok, d.readers,
                       d.clock_offset_ms)
             .where(d.revoked_at.is_(None)))
    if sites is not None:
        query = query.where(d.site_code.in_(list(sites)))
    return [dict(r) for r in conn.execute(query).mappings()]


def current_alerts(conn: Connection, thresholds: Thresholds, now: datetime, *,
                   sites: Sequence[str] | None = None, kind: str | None = None,
                   severity: str | None = None) -> list[Alert]:
    """The alerts of the devices of ``sites`` (None: every site) at ``now``, filtered."""
    alerts = evaluate(device_rows(conn, sites), thresholds, now)
    return [a for a in alerts if (kind is None or a.kind == kind)
            and (severity is None or a.severity == severity)]
