"""``attendance-server`` commands: schedule and calendar (registered by :mod:`server.cli`)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import click

_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _scope(regency: str | None, site: str | None) -> str:
    from server.calendar_store import scope_for

    return scope_for(regency=regency, site=site)


def _queued(count: int) -> str:
    return f"{count} site day(s) queued for reconciliation"


# -- schedules --------------------------------------------------------------------------------
@click.group()
def schedule() -> None:
    """Work schedules: hours per weekday, grace minutes, breaks, Ramadan profile.

    Built in: asn (Perpres 21/2023), sekolah (07:00), sekolah-6hari,
    sekolah-0630. A site without a schedule of its own follows its kind
    (office: asn, school: sekolah).
    """


@schedule.command("list")
@click.pass_context
def schedule_list(ctx: click.Context) -> None:
    """List every schedule with its weekly hours and the number of sites using it."""
    from server.calendar_store import (all_site_rows, load_schedules, schedule_name_for_site,
                                       stored_schedule_names)
    from server.cli import _engine
    from server.db import reading
    from server.schedule import DEFAULT_SCHEDULES

    with reading(_engine(ctx)) as conn:
        known = load_schedules(conn)
        stored = stored_schedule_names(conn)
        site_rows = all_site_rows(conn)
    users: dict[str, int] = {}
    for site in site_rows:
        name = schedule_name_for_site(site, known)
        users[name] = users.get(name, 0) + 1
    for name, item in sorted(known.items()):
        origin = ("changed default" if name in DEFAULT_SCHEDULES else "stored") \
            if name in stored else "default"
        ramadan = f", Ramadan {item.weekly_hours(True):g} h" if item.ramadan else ""
        click.echo(f"{name:<16} {item.weekly_hours():g} h/week{ramadan}; grace "
                   f"{item.grace_minutes} min; {users.get(name, 0)} site(s); {origin}"
                   + (f" - {item.description}" if item.description else ""))


@schedule.command("show")
@click.argument("name")
@click.pass_context
def schedule_show(ctx: click.Context, name: str) -> None:
    """Print schedule NAME as JSON (the form 'schedule set' reads)."""
    from server.calendar_store import get_schedule
    from server.cli import _engine
    from server.db import reading

    with reading(_engine(ctx)) as conn:
        found = get_schedule(conn, name)
    click.echo(json.dumps(found.to_dict(), indent=2, ensure_ascii=False))


@schedule.command("set")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--since", type=_DATE, metavar="YYYY-MM-DD",
              help="Re-reconcile the days of the sites using it from this date "
                   "(default: from today).")
@click.pass_context
def schedule_set(ctx: click.Context, name: str, file: Path, since: datetime | None) -> None:
    """Create or replace schedule NAME from FILE (.json or .toml).

    FILE holds description, grace_minutes, days (mon..sun: start, end,
    break_minutes) and optionally ramadan with the same weekdays; see
    'schedule show asn' for an example. A stored schedule named like a
    built-in one replaces it.
    """
    from server.calendar_store import parse_schedule_file, save_schedule
    from server.cli import _engine

    parsed = parse_schedule_file(file, name)
    with _engine(ctx).begin() as conn:
        count = save_schedule(conn, parsed, since=since.date() if since else None)
    click.echo(f"schedule {name} saved ({parsed.weekly_hours():g} h/week); {_queued(count)}")


@schedule.command("assign")
@click.argument("name")
@click.option("--site", "site_codes", multiple=True, required=True, metavar="CODE",
              help="A site to give the schedule (repeat for a group of sites).")
@click.option("--since", type=_DATE, metavar="YYYY-MM-DD",
              help="Re-reconcile the sites' days from this date (default: from today).")
@click.pass_context
def schedule_assign(ctx: click.Context, name: str, site_codes: tuple[str, ...],
                    since: datetime | None) -> None:
    """Make NAME the schedule of every --site."""
    from server.calendar_store import assign_schedule
    from server.cli import _engine

    with _engine(ctx).begin() as conn:
        count = assign_schedule(conn, name, site_codes, since=since.date() if since else None)
    click.echo(f"schedule {name} assigned to {len(set(site_codes))} site(s); {_queued(count)}")


# -- calendar ---------------------------------------------------------------------------------
@click.group()
def calendar() -> None:
    """Holidays and special days on top of the national holidays and cuti bersama.

    An override applies everywhere, to one regency (--regency) or to one site
    (--site); for a site, its own overrides beat its regency's, which beat
    those for everywhere.
    """


def _scope_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--site", "site_code", metavar="CODE",
                        help="Only this site.")(func)
    return click.option("--regency", metavar="NAME",
                        help="Only the sites of this regency (sites.regency).")(func)


@calendar.command("list")
@click.option("--year", type=click.IntRange(1970, 2100),
              help="The year to show (default: this year).")
@click.option("--site", "site_code", metavar="CODE",
              help="Show the calendar in force at this site (overrides merged).")
@click.pass_context
def calendar_list(ctx: click.Context, year: int | None, site_code: str | None) -> None:
    """List the holidays of a year: national ones and the stored overrides."""
    from server.calendar_store import (site_row, calendar_for_site, list_calendar_days,
                                       site_scopes)
    from server.cli import _engine
    from server.db import reading
    from server.schedule import Calendar, format_time

    year = year or date.today().year
    first, last = date(year, 1, 1), date(year, 12, 31)
    with reading(_engine(ctx)) as conn:
        if site_code:
            site = site_row(conn, site_code)
            merged = calendar_for_site(conn, site)
            entries = list_calendar_days(conn, first=first, last=last, scopes=site_scopes(site))
        else:
            merged = Calendar()
            entries = list_calendar_days(conn, first=first, last=last)
    lines = []
    for day, name in merged.holidays_between(first, last):
        lines.append((day, "holiday", "national" if not site_code else "in force", name))
    for entry in entries:
        what = entry.name + (f" (until {format_time(entry.end)})" if entry.end else "")
        lines.append((entry.day, entry.kind, entry.scope_label, what))
    for day, kind, scope, name in sorted(lines, key=lambda line: (line[0], line[2])):
        click.echo(f"{day.isoformat()} {day.strftime('%a')}  {kind:<9} {scope:<24} {name}")


@calendar.command("add")
@click.argument("day", type=_DATE, metavar="DATE")
@click.option("--kind", required=True, type=click.Choice(["holiday", "workday", "half_day"]),
              help="holiday: a day off; workday: cancels a national holiday; half_day: "
                   "work ends at --end.")
@click.option("--name", default="", help="What the day is, e.g. 'HUT Kota Pekanbaru'.")
@click.option("--end", "end_time", metavar="HH:MM", help="End of work on a half_day.")
@_scope_options
@click.pass_context
def calendar_add(ctx: click.Context, day: datetime, kind: str, name: str, end_time: str | None,
                 regency: str | None, site_code: str | None) -> None:
    """Add or replace the override of --kind on DATE (YYYY-MM-DD)."""
    from server.calendar_store import add_calendar_day
    from server.cli import _engine
    from server.schedule import parse_time

    if kind == "half_day" and not end_time:
        raise click.UsageError("a half_day needs --end HH:MM")
    if kind != "half_day" and end_time:
        raise click.UsageError("--end is only for --kind half_day")
    scope = _scope(regency, site_code)
    with _engine(ctx).begin() as conn:
        count = add_calendar_day(conn, day.date(), kind, name=name,
                                 end=parse_time(end_time) if end_time else None, scope=scope)
    click.echo(f"{kind} on {day.date()} for {scope or 'everywhere'}; {_queued(count)}")


@calendar.command("ramadan")
@click.argument("first", type=_DATE, metavar="FROM")
@click.argument("last", type=_DATE, metavar="TO")
@click.option("--name", default="Ramadan", show_default=True, help="Name of the days.")
@_scope_options
@click.pass_context
def calendar_ramadan(ctx: click.Context, first: datetime, last: datetime, name: str,
                     regency: str | None, site_code: str | None) -> None:
    """Mark FROM..TO (inclusive) as Ramadan: schedules use their Ramadan hours."""
    from server.calendar_store import add_ramadan
    from server.cli import _engine

    scope = _scope(regency, site_code)
    with _engine(ctx).begin() as conn:
        count = add_ramadan(conn, first.date(), last.date(), name=name, scope=scope)
    days = (last.date() - first.date()).days + 1
    click.echo(f"Ramadan {first.date()}..{last.date()} ({days} days) for "
               f"{scope or 'everywhere'}; {_queued(count)}")


@calendar.command("remove")
@click.argument("day", type=_DATE, metavar="DATE")
@click.option("--kind", required=True,
              type=click.Choice(["holiday", "workday", "half_day", "ramadan"]),
              help="The kind of override to remove.")
@_scope_options
@click.pass_context
def calendar_remove(ctx: click.Context, day: datetime, kind: str, regency: str | None,
                    site_code: str | None) -> None:
    """Remove the override of --kind on DATE (national holidays cannot be removed: add
    a workday instead)."""
    from server.calendar_store import remove_calendar_day
    from server.cli import _engine

    scope = _scope(regency, site_code)
    with _engine(ctx).begin() as conn:
        count = remove_calendar_day(conn, day.date(), kind, scope=scope)
    click.echo(f"{kind} on {day.date()} removed for {scope or 'everywhere'}; {_queued(count)}")


#: The click commands and groups this module adds to ``attendance-server``.
COMMANDS: list[click.Command] = [schedule, calendar]
