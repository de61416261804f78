"""The integrators' API (API keys, not device tokens): attendance, recaps, anomalies,
devices, fleet alerts, sites, people and the change feed. docs/DISKOMINFO_API.md describes it.

Every handler authenticates the key first, then validates the query against
the OpenAPI document, then applies the role (:func:`site_scope`): an operator
key sees its own site only.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app

from server import alerts, reports
from server.api import engine, reply, request_query
from server.api.keyauth import authenticate_key, site_scope
from server.attendance_rules import RulesConfig
from server.db import reading, utcnow
from server.devices import list_devices, list_sites
from server.errors import ApiError
from server.reports import ReportError

bp = Blueprint("diskominfo", __name__)

DEFAULT_LIMIT = 1000


def rules_config() -> RulesConfig:
    """The app's attendance rules (``ATTENDANCE_RULES``), else the defaults."""
    config = current_app.extensions.get("attendance_rules")
    if isinstance(config, RulesConfig):
        return config
    configured = current_app.config.get("ATTENDANCE_RULES")
    if isinstance(configured, RulesConfig):
        return configured
    if configured:
        return RulesConfig.from_dict(configured)
    return RulesConfig()


def alert_thresholds() -> alerts.Thresholds:
    """The app's fleet alert thresholds (``ALERT_THRESHOLDS``), else the defaults."""
    found = current_app.extensions.get("attendance_alert_thresholds")
    if isinstance(found, alerts.Thresholds):
        return found
    configured = current_app.config.get("ALERT_THRESHOLDS")
    found = (configured if isinstance(configured, alerts.Thresholds)
             else alerts.Thresholds.from_dict(configured))
    current_app.extensions["attendance_alert_thresholds"] = found
    return found


def _bad(path: str, message: str) -> ApiError:
    return ApiError(400, "validation_error", f"{path}: {message}",
                    details=[{"path": path, "message": message}])


def _limit(params: dict[str, str]) -> int:
    # The document's pattern already holds it to 1..10000.
    return int(params.get("limit", DEFAULT_LIMIT))


def _cursor(params: dict[str, str], types: list[type]) -> tuple[Any, ...] | None:
    if "cursor" not in params or params["cursor"] == "":
        return None
    try:
        return reports.decode_cursor(params["cursor"], types)
    except ReportError as exc:
        raise _bad("cursor", str(exc).removeprefix("cursor: ")) from None


def _month(params: dict[str, str]) -> date:
    try:
        return reports.parse_month(params["month"])
    except ReportError as exc:
        raise _bad("month", str(exc)) from None


def _file(content: bytes, media_type: str, filename: str) -> Response:
    response = Response(content, mimetype=media_type.split(";")[0])
    response.headers["Content-Type"] = media_type
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# -- attendance ---------------------------------------------------------------------------
@bp.get("/attendance")
def attendance() -> Any:
    """A local day's attendance rows, by site and person, a page at a time."""
    key = authenticate_key()
    params = request_query()
    site = site_scope(key, params.get("site"))
    day = date.fromisoformat(params["date"])
    limit = _limit(params)
    after = _cursor(params, [str, str])
    with reading(engine()) as conn:
        rows = reports.day_attendance(conn, day, site, after=after,  # type: ignore[arg-type]
                                      limit=limit)
    next_cursor = (reports.encode_cursor(rows[-1]["site"], rows[-1]["person_id"])
                   if len(rows) == limit else None)
    return reply({"date": day.isoformat(), "site": site, "rows": rows,
                  "next_cursor": next_cursor})


@bp.get("/changes")
def changes() -> Any:
    """Attendance rows changed since ``cursor`` (a version), oldest change first."""
    key = authenticate_key()
    params = request_query()
    after = int(params.get("cursor") or 0)
    with reading(engine()) as conn:
        rows, last = reports.attendance_changes(conn, after, _limit(params),
                                                None if key.is_diskominfo else key.site_code)
    return reply({"changes": rows, "next_cursor": str(last)})


# -- recaps -------------------------------------------------------------------------------
@bp.get("/recap")
def recap() -> Any:
    """The monthly recap per person and site, as JSON, CSV or XLSX."""
    key = authenticate_key()
    params = request_query()
    site = site_scope(key, params.get("site"))
    month = _month(params)
    kind = params.get("kind")
    config = rules_config()
    with reading(engine()) as conn:
        rows = reports.monthly_recap(conn, month, site_code=site, kind=kind, config=config)
    report = reports.RecapReport(month, rows, config, site, kind)
    fmt = params.get("format", "json")
    if fmt == "json":
        return reply(report.to_dict())
    name = f"rekap-{month:%Y-%m}" + (f"-{site}" if site else "") + (f"-{kind}" if kind else "")
    media = reports.CSV_MEDIA_TYPE if fmt == "csv" else reports.XLSX_MEDIA_TYPE
    return _file(report.render(fmt), media, f"{name}.{fmt}")


@bp.get("/recap/classes")
def class_recap() -> Any:
    """Students per class of one school for a month (H, S, I, A, late), JSON, CSV or XLSX."""
    key = authenticate_key()
    params = request_query()
    site = site_scope(key, params.get("site"), required=True)
    assert site is not None
    month = _month(params)
    with reading(engine()) as conn:
        rows = reports.class_recap(conn, month, site)
    fmt = params.get("format", "json")
    if fmt == "json":
        return reply({"month": f"{month:%Y-%m}", "site": site,
                      "classes": [row.to_dict() for row in rows]})
    about = [("Laporan", "Rekap kehadiran siswa per rombel"), ("Bulan", f"{month:%Y-%m}"),
             ("Unit", site)]
    content = reports.render(fmt, reports.CLASS_COLUMNS, (r.record() for r in rows),
                             sheet="Rombel", about=about)
    media = reports.CSV_MEDIA_TYPE if fmt == "csv" else reports.XLSX_MEDIA_TYPE
    return _file(content, media, f"rekap-rombel-{month:%Y-%m}-{site}.{fmt}")


# -- anomalies, devices, sites, people ------------------------------------------------------
@bp.get("/anomalies")
def anomalies() -> Any:
    """Anomalies found by reconciliation (unknown cards, lost cards used, …), by id."""
    key = authenticate_key()
    params = request_query()
    site = site_scope(key, params.get("site"))
    first = date.fromisoformat(params["date_from"]) if "date_from" in params else None
    last = date.fromisoformat(params["date_to"]) if "date_to" in params else None
    if first and last and last < first:
        raise _bad("date_to", f"{last} is before date_from {first}")
    cursor = _cursor(params, [int])
    limit = _limit(params)
    with reading(engine()) as conn:
        rows = reports.list_anomalies(conn, date_from=first, date_to=last, site_code=site,
                                      kind=params.get("kind"),
                                      after_id=cursor[0] if cursor else 0, limit=limit)
    next_cursor = reports.encode_cursor(rows[-1]["id"]) if len(rows) == limit else None
    return reply({"anomalies": rows, "next_cursor": next_cursor})


def _device(row: dict[str, Any]) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        from server.clock import format_utc

        return format_utc(value) if value is not None else None

    return {"device_id": row["device_id"], "site": row["site_code"], "name": row["name"],
            "created_at": when(row["created_at"]), "last_seen_at": when(row["last_seen_at"]),
            "backlog": row["backlog"], "oldest_unsent_at": when(row["oldest_unsent_at"]),
            "clock_offset_ms": row["clock_offset_ms"], "reader_ok": row["reader_ok"],
            "readers": row["readers"] or [], "versions": row["versions"] or {},
            "highest_seq": row["highest_seq"], "revoked": row["revoked_at"] is not None,
            "revoked_at": when(row["revoked_at"])}


@bp.get("/devices")
def fleet() -> Any:
    """The devices (fleet health from their last heartbeat)."""
    key = authenticate_key()
    params = request_query()
    site = site_scope(key, params.get("site"))
    with reading(engine()) as conn:
        rows = list_devices(conn, site)
    return reply({"devices": [_device(row) for row in rows]})


@bp.get("/alerts")
def fleet_alerts() -> Any:
    """Fleet alerts now: silent or never seen devices, old backlogs, clock offsets, readers
    down (server.alerts); critical first."""
    key = authenticate_key()
    params = request_query()
    site = site_scope(key, params.get("site"))
    thresholds = alert_thresholds()
    with reading(engine()) as conn:
        found = alerts.current_alerts(conn, thresholds, utcnow(),
                                      sites=[site] if site else None, kind=params.get("kind"),
                                      severity=params.get("severity"))
    return reply({"alerts": [a.to_dict() for a in found], "counts": alerts.counts(found),
                  "thresholds": thresholds.to_dict()})


@bp.get("/sites")
def sites() -> Any:
    """The sites (an operator: its own)."""
    key = authenticate_key()
    with reading(engine()) as conn:
        rows = list_sites(conn)
    return reply({"sites": [
        {"code": r["code"], "name": r["name"], "timezone": r["timezone"], "kind": r["kind"],
         "regency": r["regency"], "schedule": r["schedule"],
         "reconciled_through": (r["reconciled_through"].isoformat()
                                if r["reconciled_through"] else None),
         "devices": r["devices"]}
        for r in rows if key.may_see(r["code"])]})


@bp.get("/people")
def people() -> Any:
    """The registry's people (current site), by person id, a page at a time."""
    key = authenticate_key()
    params = request_query()
    site = site_scope(key, params.get("site"))
    cursor = _cursor(params, [str])
    limit = _limit(params)
    with reading(engine()) as conn:
        rows = reports.list_people(conn, site, after=cursor[0] if cursor else None,
                                   limit=limit)
    next_cursor = reports.encode_cursor(rows[-1]["person_id"]) if len(rows) == limit else None
    return reply({"people": rows, "next_cursor": next_cursor})
