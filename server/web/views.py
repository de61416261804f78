"""The dashboard's pages: attendance per day and site (and its people), the monthly recap
with its downloads, charts, anomalies, and the fleet of devices.

Every view reads only the sites the user may see: an operator's own site, every site for
Diskominfo (:func:`server.web.auth.visible_sites`); a site named in the URL that the user
may not see is a 404 (:func:`server.web.auth.require_site`). The recap and the day's
attendance come from :mod:`server.reports`, the same functions as the command line and
the integrators' API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from flask import Response, current_app, g, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import BadRequest

from server import alerts, reports
from server.api import engine
from server.api.diskominfo import alert_thresholds, rules_config
from server.db import reading, utcnow
from server.schema import people
from server.web import _, bp, charts
from server.web.auth import current_user, require_site, visible_sites
from server.web.i18n import translate
from server.web.queries import (ANOMALY_KINDS, anomaly_page, daily_counts, day_counts, fleet,
                                late_check_in_minutes, month_counts, site_list)

#: The zone of "today" when the user sees sites of several zones.
HOME_ZONE = "Asia/Jakarta"
ANOMALIES_PER_PAGE = 50
LATE_BIN_MINUTES = 15
STATUS_ORDER = ("H", "S", "I", "DL", "C", "A", "LIBUR", "PENDING")


def bad_request(message: str) -> BadRequest:
    error = BadRequest(message)
    error.dashboard_message = message  # type: ignore[attr-defined]
    return error


def _zone_of_user() -> ZoneInfo:
    user = current_user()
    if user.site_code:
        with reading(engine()) as conn:
            found = site_list(conn, [user.site_code])
        if found:
            return ZoneInfo(found[0]["timezone"])
    return ZoneInfo(HOME_ZONE)


def _today() -> date:
    return utcnow().astimezone(_zone_of_user()).date()


def _date_arg(name: str, default: date | None) -> date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request(_("error.bad_date", value=text[:20])) from None


def _month_arg(default: date) -> date:
    text = request.args.get("month", "").strip()
    if not text:
        return default.replace(day=1)
    try:
        return reports.parse_month(text)
    except reports.ReportError:
        raise bad_request(_("error.bad_month", value=text[:20])) from None


def _kind_arg() -> str | None:
    kind = request.args.get("kind") or None
    if kind is not None and kind not in reports.PERSON_KINDS:
        raise bad_request(_("error.400"))
    return kind


def _page_arg() -> int:
    """``?page=`` of a paged list, from 1."""
    try:
        return max(1, min(int(request.args.get("page", "1")), 10**6))
    except ValueError:
        raise bad_request(_("error.400")) from None


def _site_arg() -> str | None:
    return require_site(request.args.get("site") or None)


def _scope(site: str | None) -> list[str] | None:
    """The sites a query may read: the chosen one, else every site the user sees."""
    return [site] if site else visible_sites()


def _sites(codes: list[str] | None) -> list[dict[str, Any]]:
    with reading(engine()) as conn:
        return site_list(conn, codes)


def _month_days(month: date) -> list[date]:
    first, following = reports.month_bounds(month)
    return [first + timedelta(days=n) for n in range((following - first).days)]


@dataclass(frozen=True)
class Formats:
    """Numbers, times and ages for the templates, in the page's language."""

    lang: str

    def _t(self, key: str, **values: object) -> str:
        return translate(self.lang, key, **values)

    def number(self, value: float | None, decimals: int = 1) -> str:
        if value is None:
            return "–"
        text = f"{value:,.{decimals}f}"
        if self.lang == "id":  # 1.234,5 in Indonesian
            text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
        return text

    def percent(self, value: float | None) -> str:
        return "–" if value is None else self.number(value, 1) + " %"

    def duration(self, span: timedelta | None) -> str:
        if span is None:
            return self._t("common.never")
        seconds = abs(span.total_seconds())
        if seconds < 120:
            return self._t("common.seconds", n=int(seconds))
        if seconds < 2 * 3600:
            return self._t("common.minutes", n=int(seconds // 60))
        if seconds < 2 * 86400:
            return self._t("common.hours", n=int(seconds // 3600))
        return self._t("common.days", n=int(seconds // 86400))

    def minutes(self, value: float | None) -> str:
        return "–" if value is None else self.duration(timedelta(minutes=value))

    def seconds(self, value: float | None) -> str:
        return "–" if value is None else self.duration(timedelta(seconds=value))

    def ago(self, moment: datetime | None, now: datetime) -> str:
        if moment is None:
            return self._t("common.never")
        return self._t("common.ago", age=self.duration(now - moment))

    def local(self, moment: datetime | None, zone: str, pattern: str = "%Y-%m-%d %H:%M") -> str:
        if moment is None:
            return "–"
        return moment.astimezone(ZoneInfo(zone)).strftime(pattern)

    def clock(self, text: str | None) -> str:
        """``2026-11-03T07:50:00+07:00`` -> ``07:50``."""
        return text[11:16] if text else "–"

    def offset(self, milliseconds: int | None) -> str:
        if milliseconds is None:
            return "–"
        shown = self.duration(timedelta(milliseconds=abs(milliseconds)))
        if abs(milliseconds) < 1000:
            return shown  # no "−0 s" for a clock a few milliseconds behind
        return ("+" if milliseconds > 0 else "−") + shown


# -- home -------------------------------------------------------------------------------------
@bp.get("/")
def home() -> Any:
    return redirect(url_for("web.attendance"))


# -- attendance ---------------------------------------------------------------------------
def _present(counts: dict[str, int]) -> float | None:
    return charts.percent_present(counts)


@bp.get("/attendance")
def attendance() -> Any:
    """Every visible site's day: counts per status, late and early, percent present."""
    day = _date_arg("date", None) or _today()
    codes = visible_sites()
    with reading(engine()) as conn:
        site_rows = site_list(conn, codes)
        counts = day_counts(conn, day, codes)
    rows = [{"site": s, "counts": counts.get(s["code"], {}),
             "present": _present(counts.get(s["code"], {}))} for s in site_rows]
    total: dict[str, int] = {}
    for item in counts.values():
        for key, n in item.items():
            total[key] = total.get(key, 0) + n
    return render_template("attendance.html", day=day, rows=rows, total=total,
                           total_present=_present(total), statuses=STATUS_ORDER,
                           previous=day - timedelta(days=1), following=day + timedelta(days=1))


def _day_in_path(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request(_("error.bad_date", value=text[:20])) from None


@bp.get("/attendance/<site>/<day>")
def site_day(site: str, day: str) -> Any:
    """One site's day, person by person."""
    code = require_site(site)
    when = _day_in_path(day)
    with reading(engine()) as conn:
        info = site_list(conn, [code])[0]
        rows = reports.day_attendance(conn, when, code)
    rows.sort(key=lambda r: (r["group"] or "", r["name"] or "", r["person_id"]))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if row["status"] == "H" and row["late_code"]:
            counts["late"] = counts.get("late", 0) + 1
        if row["status"] == "H" and row["early_code"]:
            counts["early"] = counts.get("early", 0) + 1
    return render_template("site_day.html", site=info, day=when, rows=rows, counts=counts,
                           present=_present(counts), statuses=STATUS_ORDER,
                           previous=when - timedelta(days=1), following=when + timedelta(days=1))


def _format_arg() -> str:
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise bad_request(_("error.400"))
    return fmt


def _file(content: bytes, fmt: str, filename: str) -> Response:
    media = reports.CSV_MEDIA_TYPE if fmt == "csv" else reports.XLSX_MEDIA_TYPE
    response = Response(content, mimetype=media.split(";")[0])
    response.headers["Content-Type"] = media
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/attendance/<site>/<day>/download")
def site_day_download(site: str, day: str) -> Any:
    """One site's day as CSV or XLSX (the columns of ``attendance-server report day``)."""
    code = require_site(site)
    when = _day_in_path(day)
    fmt = _format_arg()
    with reading(engine()) as conn:
        rows = reports.day_attendance(conn, when, code)
    about = [("Laporan", "Kehadiran harian"), ("Tanggal", when.isoformat()), ("Unit", code)]
    content = reports.render(fmt, reports.DAY_COLUMNS, (reports.day_record(r) for r in rows),
                             sheet="Harian", about=about)
    return _file(content, fmt, f"kehadiran-{when.isoformat()}-{code}.{fmt}")


# -- the monthly recap ---------------------------------------------------------------------
@bp.get("/recap")
def recap() -> Any:
    """The month: per person for one site, or a summary per site (Diskominfo, all sites)."""
    month = _month_arg(_today())
    site = _site_arg()
    kind = _kind_arg()
    config = rules_config()
    people_rows: list[reports.RecapRow] = []
    summary: list[dict[str, Any]] = []
    with reading(engine()) as conn:
        sites = site_list(conn, visible_sites())
        if site is not None:
            people_rows = reports.monthly_recap(conn, month, site_code=site, kind=kind,
                                                config=config)
        else:
            counts = month_counts(conn, month, None, kind=kind)
            for s in sites:
                found = counts.get(s["code"])
                if found:
                    summary.append({"site": s, "counts": found, "present": _present(found)})
    return render_template("recap.html", month=month, site=site, kind=kind, sites=sites,
                           people_rows=people_rows, summary=summary, config=config,
                           late_names=config.late_names, early_names=config.early_names)


@bp.get("/recap/download")
def recap_download() -> Any:
    """The recap as CSV or XLSX: the file of ``GET /api/v1/recap`` and
    ``attendance-server report recap`` for the same month, site and kind."""
    month = _month_arg(_today())
    site = _site_arg()
    kind = _kind_arg()
    fmt = _format_arg()
    config = rules_config()
    with reading(engine()) as conn:
        rows = reports.monthly_recap(conn, month, site_code=site, kind=kind, config=config)
    report = reports.RecapReport(month, rows, config, site, kind)
    name = f"rekap-{month:%Y-%m}" + (f"-{site}" if site else "") + (f"-{kind}" if kind else "")
    current_app.logger.info("dashboard: %s downloaded %s.%s", current_user().username, name,
                            fmt)
    return _file(report.render(fmt), fmt, f"{name}.{fmt}")


# -- charts ------------------------------------------------------------------------------------
@bp.get("/charts")
def chart_page() -> Any:
    """Percent present per day (and per site), and late arrivals by time of day."""
    month = _month_arg(_today())
    site = _site_arg()
    user = current_user()
    scope = _scope(site)
    days = _month_days(month)
    with reading(engine()) as conn:
        sites = site_list(conn, visible_sites())
        names = {s["code"]: s["name"] for s in sites}
        daily = daily_counts(conn, month, scope)
        series = [charts.Series(f"{site} {names.get(site, '')}" if site
                                else _("charts.all_visible"),
                                [_present(daily.get(d, {})) for d in days])]
        if site is not None and user.is_diskominfo:
            everywhere = daily_counts(conn, month, None)
            series.append(charts.Series(_("charts.all_visible"),
                                        [_present(everywhere.get(d, {})) for d in days]))
        bars: list[charts.Bar] = []
        if site is None and user.is_diskominfo:
            for code, counts in month_counts(conn, month, None).items():
                value = _present(counts)
                if value is not None:
                    bars.append(charts.Bar(f"{code} {names.get(code, '')}".strip(), value))
            bars.sort(key=lambda b: (b.value, b.label))
        minutes = late_check_in_minutes(conn, month, scope)
    empty = _("charts.empty")
    rate = charts.line_chart(series, [str(d.day) for d in days], title=_("charts.rate_title"),
                             description=_("charts.rate_desc"), empty_text=empty)
    per_site = charts.bar_chart(bars, title=_("charts.sites_title"),
                                description=_("charts.sites_desc"),
                                empty_text=empty) if bars else ""
    late = charts.histogram(charts.late_histogram(minutes, LATE_BIN_MINUTES),
                            bin_minutes=LATE_BIN_MINUTES, title=_("charts.late_title"),
                            description=_("charts.late_desc", n=LATE_BIN_MINUTES),
                            empty_text=empty)
    return render_template("charts.html", month=month, site=site, sites=sites,
                           rate_chart=Markup(rate), sites_chart=Markup(per_site),
                           late_chart=Markup(late), late_count=len(minutes))


# -- anomalies -----------------------------------------------------------------------------------
@bp.get("/anomalies")
def anomaly_list() -> Any:
    """Anomalies found by reconciliation, newest day first, filtered and a page at a time."""
    site = _site_arg()
    first = _date_arg("date_from", None)
    last = _date_arg("date_to", None)
    kind = request.args.get("kind") or None
    if kind is not None and kind not in ANOMALY_KINDS:
        raise bad_request(_("error.400"))
    page = _page_arg()
    with reading(engine()) as conn:
        sites = site_list(conn, visible_sites())
        rows, total = anomaly_page(conn, visible_sites(), site=site, date_from=first,
                                   date_to=last, kind=kind, page=page,
                                   per_page=ANOMALIES_PER_PAGE)
        names = _person_names(conn, {r["person_id"] for r in rows if r["person_id"]})
    pages = max(1, math.ceil(total / ANOMALIES_PER_PAGE))
    filters = {k: v for k, v in {"site": site if current_user().is_diskominfo else None,
                                 "date_from": first.isoformat() if first else None,
                                 "date_to": last.isoformat() if last else None,
                                 "kind": kind}.items() if v}
    return render_template("anomalies.html", rows=rows, total=total, page=page, pages=pages,
                           sites=sites, site=site, date_from=first, date_to=last, kind=kind,
                           kinds=ANOMALY_KINDS, names=names, filters=filters)


def _person_names(conn: Any, ids: Iterable[str]) -> dict[str, str]:
    import sqlalchemy as sa

    wanted = sorted(ids)
    if not wanted:
        return {}
    return {r.person_id: r.name for r in conn.execute(
        sa.select(people.c.person_id, people.c.name).where(people.c.person_id.in_(wanted)))}


# -- the fleet -----------------------------------------------------------------------------------
@bp.get("/fleet")
def fleet_page() -> Any:
    """Every device with its health, offline ones first and flagged; the fleet's alerts
    above them."""
    site = _site_arg()
    now = utcnow()
    limit = float(current_app.config.get("OFFLINE_AFTER_MINUTES") or 15)
    with reading(engine()) as conn:
        sites = site_list(conn, visible_sites())
        found = fleet(conn, _scope(site), now=now, offline_after=timedelta(minutes=limit))
        found_alerts = alerts.current_alerts(conn, alert_thresholds(), now, sites=_scope(site))
    summary = {"total": len(found), "offline": sum(d.offline for d in found),
               "readers": sum(d.reader_trouble for d in found)}
    names = {s["code"]: s["name"] for s in sites}
    return render_template("fleet.html", devices=found, summary=summary, now=now, site=site,
                           sites=sites, offline_minutes=int(limit), alerts=found_alerts,
                           alert_counts=alerts.counts(found_alerts), site_names=names)


@bp.app_context_processor
def _alert_badge() -> dict[str, Any]:
    return {"nav_alert_counts": nav_alert_counts}


def nav_alert_counts() -> dict[str, int] | None:
    """Alerts per severity over the sites the user sees (for the menu), once per request;
    None without a user or when the database cannot say (an error page must still show)."""
    from sqlalchemy.exc import SQLAlchemyError

    if getattr(g, "user", None) is None:
        return None
    if "alert_counts" not in g:
        try:
            with reading(engine()) as conn:
                found = alerts.current_alerts(conn, alert_thresholds(), utcnow(),
                                              sites=visible_sites())
            g.alert_counts = alerts.counts(found)
        except SQLAlchemyError:
            g.alert_counts = None
    return g.alert_counts
