"""``attendance-server`` commands: reconcile (registered by :mod:`server.cli`)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import click

#: Most days one ``reconcile --date … --to …`` may cover.
MAX_DAYS = 366
_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


@click.command("reconcile")
@click.option("--date", "first", type=_DATE, metavar="YYYY-MM-DD",
              help="The (first) local date to reconcile.")
@click.option("--to", "last", type=_DATE, metavar="YYYY-MM-DD",
              help="Reconcile every date from --date to this one (inclusive).")
@click.option("--site", "site_codes", multiple=True, metavar="CODE",
              help="Only this site (repeatable). Default: every site.")
@click.option("--queued", is_flag=True,
              help="Also reconcile the site days waiting in the queue (new taps, excuses, "
                   "calendar changes, pending days).")
@click.option("--catch-up", "catch_up_", is_flag=True,
              help="Queue every ended day not yet reconciled (per site, from "
                   "reconciled_through), then reconcile the queue.")
@click.option("--workers", type=click.IntRange(1, 64), metavar="N",
              help="Processes sharing the sites of a date (default: the CPUs, at most 4).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per site day.")
@click.pass_context
def reconcile(ctx: click.Context, first: datetime | None, last: datetime | None,
              site_codes: tuple[str, ...], queued: bool, catch_up_: bool, workers: int | None,
              as_json: bool) -> None:
    """Decide daily attendance for site days: one row per expected person with status
    (H, A, S, I, DL, C, LIBUR, PENDING), late/early codes and check-in/out, plus the
    day's anomalies.

    Idempotent: running it again changes nothing unless taps, excuses, the
    registry, schedules or the calendar changed. The server does this by
    itself every [attendance] reconcile_interval_seconds; this command is for
    re-running chosen days or when the background reconciler is off.
    """
    import sqlalchemy as sa

    from server.attendance_rules import RulesConfig
    from server.cli import _engine, _settings
    from server.db import utcnow
    from server.errors import NotFound
    from server.reconcile import catch_up, default_workers, reconcile_days, run_queue
    from server.schema import sites

    start, end = _day(first), _day(last)
    if end is not None and start is None:
        raise click.UsageError("--to needs --date")
    if site_codes and start is None:
        raise click.UsageError("--site needs --date")
    if start is None and not (queued or catch_up_):
        raise click.UsageError("give --date (and optionally --to), --queued or --catch-up")
    end = end or start
    if start is not None and end is not None:
        if end < start:
            raise ValueError(f"--to {end} is before --date {start}")
        if (end - start).days >= MAX_DAYS:
            raise ValueError(f"--date {start} --to {end} covers more than {MAX_DAYS} days")

    config = RulesConfig.from_dict(_settings(ctx).attendance.rules())
    engine = _engine(ctx)
    workers = workers or default_workers()
    now = utcnow()
    summaries = []
    if catch_up_:
        added = catch_up(engine, now=now)
        click.echo(f"catch-up: {added} site day(s) queued", err=True)
    if start is not None and end is not None:
        with engine.connect() as conn:
            known = list(conn.execute(sa.select(sites.c.code).order_by(sites.c.code)).scalars())
        codes = list(dict.fromkeys(site_codes)) or known
        unknown = [code for code in codes if code not in known]
        if unknown:
            raise NotFound(f"no site {unknown[0]!r} (attendance-server site list)")
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        summaries += reconcile_days(engine, [(code, day) for day in days for code in codes],
                                    config=config, now=now, workers=workers)
    if queued or catch_up_:
        summaries += run_queue(engine, config=config, now=now, workers=workers)

    for summary in summaries:
        click.echo(json.dumps(summary.to_dict()) if as_json else summary.describe())
    if not as_json:
        changed = sum(s.changed + s.removed for s in summaries)
        pending = sum(1 for s in summaries if s.pending)
        click.echo(f"{len(summaries)} site day(s) reconciled; {changed} attendance row(s) "
                   f"changed; {pending} pending", err=True)


#: The click commands and groups this module adds to ``attendance-server``.
COMMANDS: list[click.Command] = [reconcile]
