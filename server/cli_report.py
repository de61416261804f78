"""``attendance-server report …``: monthly recaps, class recaps and a day's attendance
as CSV, XLSX or JSON lines (registered by :mod:`server.cli`). docs/REPORTS.md
describes the columns."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

import click

from server.reports import FORMATS, PERSON_KINDS

_FORMAT = click.Choice(FORMATS)
_FORMAT_HELP = ("csv (UTF-8 with BOM, for Excel), xlsx or json (one object per line). "
                "Default: from the --output file's extension, else csv.")
_OUTPUT_HELP = "Write to FILE instead of standard output (needed for xlsx on a terminal)."


def _month(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    from server.reports import ReportError, parse_month

    if value is None:
        return None
    try:
        return parse_month(value)
    except ReportError as exc:
        raise click.BadParameter(str(exc)) from None


def _format(fmt: str | None, output: Path | None) -> str:
    if fmt:
        return fmt
    suffix = output.suffix.lower().lstrip(".") if output else ""
    return suffix if suffix in FORMATS else "csv"


def _rules(ctx: click.Context) -> Any:
    """The attendance rules of the configuration ([attendance]), else the defaults."""
    from server.attendance_rules import RulesConfig
    from server.cli import _settings

    section = getattr(_settings(ctx), "attendance", None)
    return RulesConfig.from_dict(section.rules()) if section is not None else RulesConfig()


def _check_site(conn: Any, site_code: str | None) -> None:
    from server.devices import get_site

    if site_code is not None:
        get_site(conn, site_code)  # NotFound names the command that lists sites


def _emit(fmt: str, output: Path | None, *, columns: Sequence[Any],
          records: Callable[[], Iterable[Mapping[str, Any]]],
          objects: Callable[[], Iterable[dict[str, Any]]], sheet: str,
          about: Sequence[tuple[str, Any]], what: str) -> None:
    """Write the report in ``fmt`` to ``output`` (or standard output)."""
    from server.cli import fail
    from server.reports import write_csv, write_xlsx

    sys.stdout.flush()
    stdout = sys.stdout.buffer
    if fmt == "xlsx" and output is None and stdout.isatty():
        fail("xlsx is a binary file: give --output FILE.xlsx (or redirect the output)")
    handle: IO[bytes] = output.open("wb") if output is not None else stdout
    try:
        if fmt == "csv":
            count = write_csv(handle, columns, records())
        elif fmt == "xlsx":
            count = write_xlsx(handle, columns, records(), sheet=sheet, about=about)
        else:
            count = 0
            for item in objects():
                handle.write(json.dumps(item, ensure_ascii=False).encode("utf-8") + b"\n")
                count += 1
        handle.flush()
    finally:
        if output is not None:
            handle.close()
    if output is not None:
        click.echo(f"{what}: {count} row(s) written to {output}", err=True)


@click.group("report")
def report() -> None:
    """Reports: monthly recap per person, students per class, a day's attendance."""


@report.command("recap")
@click.option("--month", required=True, callback=_month, metavar="YYYY-MM",
              help="The month, e.g. 2026-11.")
@click.option("--site", "site_code", help="Only this site (default: every site).")
@click.option("--kind", type=click.Choice(PERSON_KINDS), help="Only employees or students.")
@click.option("--format", "fmt", type=_FORMAT, help=_FORMAT_HELP)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help=_OUTPUT_HELP)
@click.pass_context
def report_recap(ctx: click.Context, month: date, site_code: str | None, kind: str | None,
                 fmt: str | None, output: Path | None) -> None:
    """Monthly recap per person and site: days H, TL1-4, PSW1-4, S, I, A, DL, C,
    percent present and, for employees, the allowance (TPP) deduction percent."""
    from server.cli import _engine
    from server.db import reading
    from server.reports import RecapReport, monthly_recap, recap_columns

    config = _rules(ctx)
    with reading(_engine(ctx)) as conn:
        _check_site(conn, site_code)
        rows = monthly_recap(conn, month, site_code=site_code, kind=kind, config=config)
    report_ = RecapReport(month, rows, config, site_code, kind)
    _emit(_format(fmt, output), output, columns=recap_columns(config),
          records=lambda: (r.record() for r in rows), objects=lambda: (r.to_dict() for r in rows),
          sheet="Rekap", about=report_.about(), what=f"recap {month:%Y-%m}")


@report.command("classes")
@click.option("--month", required=True, callback=_month, metavar="YYYY-MM",
              help="The month, e.g. 2026-11.")
@click.option("--site", "site_code", required=True, help="The school (NPSN).")
@click.option("--format", "fmt", type=_FORMAT, help=_FORMAT_HELP)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help=_OUTPUT_HELP)
@click.pass_context
def report_classes(ctx: click.Context, month: date, site_code: str, fmt: str | None,
                   output: Path | None) -> None:
    """Students of one school per class for a month: H, S, I, A, late days, percent present."""
    from server.cli import _engine
    from server.db import reading
    from server.reports import CLASS_COLUMNS, class_recap

    with reading(_engine(ctx)) as conn:
        _check_site(conn, site_code)
        rows = class_recap(conn, month, site_code)
    about = [("Laporan", "Rekap kehadiran siswa per rombel"), ("Bulan", f"{month:%Y-%m}"),
             ("Unit", site_code)]
    _emit(_format(fmt, output), output, columns=CLASS_COLUMNS,
          records=lambda: (r.record() for r in rows), objects=lambda: (r.to_dict() for r in rows),
          sheet="Rombel", about=about, what=f"classes {month:%Y-%m}")


@report.command("day")
@click.option("--date", "day", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              metavar="YYYY-MM-DD", help="The local date.")
@click.option("--site", "site_code", required=True, help="The site.")
@click.option("--format", "fmt", type=_FORMAT, help=_FORMAT_HELP)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help=_OUTPUT_HELP)
@click.pass_context
def report_day(ctx: click.Context, day: Any, site_code: str, fmt: str | None,
               output: Path | None) -> None:
    """One day's attendance at a site: status, late and early codes, check-in and
    check-out in local time and UTC."""
    from server.cli import _engine
    from server.db import reading
    from server.reports import DAY_COLUMNS, day_attendance, day_record

    with reading(_engine(ctx)) as conn:
        _check_site(conn, site_code)
        rows = day_attendance(conn, day.date(), site_code)
    about = [("Laporan", "Kehadiran harian"), ("Tanggal", day.date().isoformat()),
             ("Unit", site_code)]
    _emit(_format(fmt, output), output, columns=DAY_COLUMNS,
          records=lambda: (day_record(r) for r in rows), objects=lambda: iter(rows),
          sheet="Harian", about=about, what=f"day {day.date()}")


#: The click commands and groups this module adds to ``attendance-server``.
COMMANDS: list[click.Command] = [report]
