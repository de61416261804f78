"""Downloads: one day or one month per person, as CSV (UTF-8 with BOM, for Excel) or XLSX."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

from flask import Blueprint, Response, render_template, request

from edge import attendance, daily
from edge.web import edge_context
from edge.web.db import get_db
from edge.web.i18n import status_label, t
from edge.web.pages import local_today

bp = Blueprint("exports", __name__)

FORMATS = ("csv", "xlsx")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def to_csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: list[list[Any]], title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    for row in rows:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for column in sheet.columns:
        width = max(len(str(c.value or "")) for c in column)
        sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 8), 40)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _download(rows: list[list[Any]], fmt: str, stem: str, title: str) -> Response:
    device = re.sub(r"[^A-Za-z0-9._-]+", "-", edge_context().config.device.name).strip("-")
    name = f"absensi-{device}-{stem}.{fmt}"
    if fmt == "xlsx":
        body, mimetype = to_xlsx(rows, title), XLSX_TYPE
    else:
        body, mimetype = to_csv(rows), "text/csv; charset=utf-8"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _time(value: Any) -> str:
    return value.strftime("%H:%M:%S") if value else ""


def day_rows(day: date) -> list[list[Any]]:
    db = get_db()
    plan = daily.day_plan(db, day, edge_context().config.web)
    rows: list[list[Any]] = [[t("col.name"), t("col.id"), t("col.group"), t("col.status"),
                              t("col.first_tap"), t("col.last_tap")]]
    for entry in daily.day_sheet(db, day, plan, local_today()):
        person = entry.person
        rows.append([person.name, person.person_id, person.group_name,
                     status_label(entry.status), _time(entry.first_tap), _time(entry.last_tap)])
    return rows


MONTH_COLUMNS = ("present", "late", *attendance.EXCUSE_KINDS, "absent")


def month_rows(year: int, month: int) -> list[list[Any]]:
    db = get_db()
    days, sheet = daily.month_sheet(db, year, month, edge_context().config.web, local_today())
    rows: list[list[Any]] = [[t("col.name"), t("col.id"), t("col.group"), t("col.days"),
                              *(status_label(c) for c in MONTH_COLUMNS)]]
    for entry in sheet:
        person = entry.person
        rows.append([person.name, person.person_id, person.group_name, len(days),
                     *(entry.counts[c] for c in MONTH_COLUMNS)])
    return rows


def _format() -> str:
    fmt = request.args.get("format", "csv")
    return fmt if fmt in FORMATS else "csv"


@bp.get("/export")
def export_page() -> Any:
    today = local_today()
    return render_template("export.html", today=today.isoformat(),
                           month=today.strftime("%Y-%m"))


@bp.get("/export/day")
def export_day() -> Any:
    try:
        day = date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        day = local_today()
    return _download(day_rows(day), _format(), day.isoformat(), day.isoformat())


@bp.get("/export/month")
def export_month() -> Any:
    found = MONTH.match(request.args.get("month", ""))
    year, month = (int(found[1]), int(found[2])) if found else (local_today().year,
                                                                 local_today().month)
    stem = f"{year:04d}-{month:02d}"
    return _download(month_rows(year, month), _format(), stem, stem)
