"""``attendance-server``: the central server's command line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from server import __version__
from server.errors import ServerError

PROG = "attendance-server"


def fail(message: str) -> NoReturn:
    click.echo(f"{PROG}: error: {message}", err=True)
    sys.exit(1)


class _Group(click.Group):
    """Turns expected errors into ``attendance-server: error: …`` (traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return super().invoke(ctx)
        except (ServerError, OSError, ValueError) as exc:
            if ctx.meta.get("debug"):
                raise
            fail(str(exc))
        except SQLAlchemyError as exc:
            if ctx.meta.get("debug"):
                raise
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            fail(f"database error: {detail} (is the database reachable and initialised? "
                 f"attendance-server init-db)")


def _settings(ctx: click.Context) -> Any:
    from server.config import load_settings

    root = ctx.find_root()
    if "settings" not in root.meta:
        root.meta["settings"] = load_settings(root.meta.get("config_path"))
    return root.meta["settings"]


def _engine(ctx: click.Context) -> Any:
    from server.db import create_db_engine

    root = ctx.find_root()
    if "engine" not in root.meta:
        engine = create_db_engine(_settings(ctx).database.url)
        root.meta["engine"] = engine
        root.call_on_close(engine.dispose)
    return root.meta["engine"]


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (_when(v) if isinstance(v, datetime) else v) for k, v in row.items()}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              envvar="ATTENDANCE_SERVER_CONFIG",
              help="Configuration file (TOML). Default: $ATTENDANCE_SERVER_CONFIG or "
                   "/etc/attendance/server.toml when present. The database URL is best "
                   "given as $DATABASE_URL.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name=PROG)
@click.pass_context
def main(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """Smart-card attendance: the central server.

    Receives taps, heartbeats and excuses from the edge readers (sync API
    under /api/v1) and keeps sites, devices and rosters. The database is a
    SQLite file by default, PostgreSQL when DATABASE_URL=postgresql://…
    """
    ctx.meta["config_path"] = config_path
    ctx.meta["debug"] = debug


# -- database ---------------------------------------------------------------------------------
@main.command("init-db")
@click.pass_context
def init_db(ctx: click.Context) -> None:
    """Create the database schema, or bring an existing one up to date."""
    from server.db import describe_url, migrate

    before, after = migrate(_engine(ctx))
    url = describe_url(_settings(ctx).database.url)
    if before is None:
        click.echo(f"database created: {url} (schema {after})")
    elif before == after:
        click.echo(f"database ready: {url} (schema {after}, already up to date)")
    else:
        click.echo(f"database ready: {url} (schema {before} -> {after})")


@main.command()
@click.option("--revision", default="head", show_default=True,
              help="The schema revision to upgrade to.")
@click.pass_context
def migrate(ctx: click.Context, revision: str) -> None:
    """Apply the schema migrations (Alembic) up to --revision."""
    from server.db import migrate as run_migrations

    before, after = run_migrations(_engine(ctx), revision)
    if before == after:
        click.echo(f"schema {after}: nothing to do")
    else:
        click.echo(f"schema {before or '(empty)'} -> {after}")


@main.command()
@click.option("--host", help="Address to listen on (default: [http] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port to listen on (default: [http] port, 8080).")
@click.option("--threads", type=click.IntRange(1, 256),
              help="Worker threads (default: [http] threads, 8).")
@click.pass_context
def run(ctx: click.Context, host: str | None, port: int | None, threads: int | None) -> None:
    """Serve the API with waitress (behind a TLS proxy such as nginx).

    For several processes use gunicorn instead:
    gunicorn -w 4 -b 127.0.0.1:8080 'server.app:create_app()'
    """
    import waitress

    from server.app import create_app

    settings = _settings(ctx)
    logging.basicConfig(level=getattr(logging, settings.log.level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings.flask_config())
    host = host or settings.http.host
    port = port or settings.http.port
    click.echo(f"{PROG} {__version__} serving on http://{host}:{port}/api/v1 "
               f"(dashboard: http://{host}:{port}/dashboard/)", err=True)
    waitress.serve(app, host=host, port=port, threads=threads or settings.http.threads,
                   ident=f"{PROG}/{__version__}")


# -- sites ------------------------------------------------------------------------------------
@main.group()
def site() -> None:
    """Sites: schools (by NPSN) and offices (by OPD code)."""


@site.command("add")
@click.argument("code")
@click.option("--name", required=True, help="The site's name, e.g. 'SDN 001 Pekanbaru'.")
@click.option("--timezone", "timezone_name", required=True, metavar="ZONE",
              help="IANA time zone: Asia/Jakarta (WIB), Asia/Makassar (WITA), "
                   "Asia/Jayapura (WIT).")
@click.pass_context
def site_add(ctx: click.Context, code: str, name: str, timezone_name: str) -> None:
    """Add the site CODE (NPSN of a school or OPD code of an office)."""
    from server.devices import add_site

    with _engine(ctx).begin() as conn:
        add_site(conn, code, name, timezone_name)
    click.echo(f"site {code} added: {name} ({timezone_name})")


@site.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def site_list(ctx: click.Context, as_json: bool) -> None:
    """List the sites with their number of active devices."""
    from server.db import reading
    from server.devices import list_sites

    with reading(_engine(ctx)) as conn:
        rows = list_sites(conn)
    for row in rows:
        if as_json:
            click.echo(json.dumps(_jsonable(row)))
        else:
            click.echo(f"{row['code']:<12} {row['timezone']:<16} {row['devices']:>3} device(s)  "
                       f"{row['name']}")


# -- devices ----------------------------------------------------------------------------------
@main.group()
def device() -> None:
    """Edge devices: claim codes for enrolment, listing, alerts, revocation."""


@device.command("add")
@click.option("--site", "site_code", required=True, help="The site the device will serve.")
@click.option("--expires-hours", type=float, help="Hours the claim code stays valid "
                                                  "(default: [enrolment] claim_code_hours, 72).")
@click.option("--name", default="", help="A name for the device, e.g. 'gerbang utama' "
                                         "(the device may send its own at enrolment).")
@click.option("--json", "as_json", is_flag=True, help="Print the claim code as JSON.")
@click.pass_context
def device_add(ctx: click.Context, site_code: str, expires_hours: float | None, name: str,
               as_json: bool) -> None:
    """Make a single-use claim code with which one device enrols at --site."""
    from server.devices import create_claim_code

    settings = _settings(ctx)
    hours = settings.enrolment.claim_code_hours if expires_hours is None else expires_hours
    with _engine(ctx).begin() as conn:
        claim = create_claim_code(conn, site_code, hours=hours, device_name=name)
    server = settings.http.public_url or "https://SERVER"
    if as_json:
        click.echo(json.dumps({"claim_code": claim.code, "site": site_code,
                               "expires_at": _when(claim.expires_at),
                               "enroll_command": f"attendance-edge enroll --server {server}"}))
        return
    click.echo(f"claim code: {claim.code}")
    click.echo(f"site:       {site_code}")
    click.echo(f"expires:    {_when(claim.expires_at)} (single use)")
    click.echo("on the device run (it asks for the code, or reads $ATTENDANCE_CLAIM_CODE):")
    click.echo(f"  attendance-edge enroll --server {server}")


@device.command("list")
@click.option("--site", "site_code", help="Only devices of this site.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def device_list(ctx: click.Context, site_code: str | None, as_json: bool) -> None:
    """List devices with their last heartbeat (fleet health)."""
    from server.db import reading
    from server.devices import list_devices

    with reading(_engine(ctx)) as conn:
        rows = list_devices(conn, site_code)
    for row in rows:
        if as_json:
            click.echo(json.dumps(_jsonable(row)))
            continue
        state = "REVOKED" if row["revoked_at"] else (
            "reader DOWN" if row["reader_ok"] is False else "ok")
        click.echo(f"{row['device_id']:<22} {row['site_code']:<12} {row['name'] or '-':<16} "
                   f"last seen {_when(row['last_seen_at'])}  backlog "
                   f"{row['backlog'] if row['backlog'] is not None else '-'}  "
                   f"highest seq {row['highest_seq']}  {state}")


@device.command("alerts")
@click.option("--site", "site_code", help="Only devices of this site.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert and line.")
@click.pass_context
def device_alerts(ctx: click.Context, site_code: str | None, as_json: bool) -> None:
    """Fleet alerts now: silent, backlog, clock offset, reader down ([alerts] thresholds).

    For monitoring (cron, Nagios): the first line says OK, WARNING or CRITICAL;
    the exit code is 2 when an alert is critical, else 0 (1: the check itself failed).
    """
    from server.alerts import Thresholds, counts, current_alerts
    from server.db import reading, utcnow
    from server.devices import get_site

    thresholds = Thresholds.from_dict(vars(_settings(ctx).alerts))
    with reading(_engine(ctx)) as conn:
        if site_code:
            get_site(conn, site_code)
        found = current_alerts(conn, thresholds, utcnow(),
                               sites=[site_code] if site_code else None)
    tally = counts(found)
    if as_json:
        for alert in found:
            click.echo(json.dumps(alert.to_dict()))
    else:
        state = ("CRITICAL" if tally["critical"] else "WARNING" if tally["warning"] else "OK")
        click.echo(f"{state}: {tally['critical']} critical, {tally['warning']} warning "
                   f"alert(s)" + (f" at site {site_code}" if site_code else ""))
        for a in found:
            shown = f"{a.value:g} {a.unit}" + (f" > {a.threshold:g}"
                                               if a.threshold is not None else "")
            click.echo(f"{a.severity:<8} {a.kind:<12} {a.site:<12} {a.device_id:<22} "
                       f"{a.device_name or '-':<16} {shown}  since {_when(a.since)}")
    if tally["critical"]:
        sys.exit(2)


@device.command("revoke")
@click.argument("device_id")
@click.pass_context
def device_revoke(ctx: click.Context, device_id: str) -> None:
    """Revoke DEVICE_ID's token: its next request is refused (401)."""
    from server.devices import revoke

    with _engine(ctx).begin() as conn:
        when = revoke(conn, device_id)
    click.echo(f"device {device_id} revoked at {_when(when)}")


@device.command("replace")
@click.argument("device_id")
@click.option("--expires-hours", type=float, help="Hours the code stays valid "
                                                  "(default: [enrolment] claim_code_hours, 72).")
@click.option("--invalidate-token", is_flag=True,
              help="Refuse the device's current token at once (a leaked token), not only "
                   "when the new board enrols.")
@click.option("--json", "as_json", is_flag=True, help="Print the claim code as JSON.")
@click.pass_context
def device_replace(ctx: click.Context, device_id: str, expires_hours: float | None,
                   invalidate_token: bool, as_json: bool) -> None:
    """Make a single-use code that gives DEVICE_ID (same id, site and taps) to a new board.

    Enrolling with it gives the device a new token; the old token is refused from
    then on (docs/OPERATIONS.md: replacing a broken Pi, a leaked token).
    """
    from server.devices import create_replacement_code

    settings = _settings(ctx)
    hours = settings.enrolment.claim_code_hours if expires_hours is None else expires_hours
    with _engine(ctx).begin() as conn:
        claim = create_replacement_code(conn, device_id, hours=hours,
                                        invalidate_token=invalidate_token)
    server = settings.http.public_url or "https://SERVER"
    command = f"attendance-edge enroll --force --server {server}"
    if as_json:
        click.echo(json.dumps({"claim_code": claim.code, "device_id": device_id,
                               "site": claim.site_code, "expires_at": _when(claim.expires_at),
                               "token_invalidated": invalidate_token,
                               "enroll_command": command}))
        return
    click.echo(f"replacement code: {claim.code}")
    click.echo(f"device:           {device_id} (site {claim.site_code})")
    click.echo(f"expires:          {_when(claim.expires_at)} (single use)")
    if invalidate_token:
        click.echo("the device's current token is refused from now on")
    click.echo("on the new board (service stopped; old data directory copied, or empty) run:")
    click.echo(f"  {command}")


# -- roster -----------------------------------------------------------------------------------
@main.group()
def roster() -> None:
    """Site rosters: which card belongs to whom (sent to the site's devices)."""


@roster.command("import")
@click.option("--site", "site_code", required=True, help="The site whose roster FILE is.")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def roster_import(ctx: click.Context, site_code: str, csv_file: Path) -> None:
    """Replace the roster of --site with CSV_FILE (all or nothing).

    Columns: card_uid,person_id,name,kind,group,status (card_uid and
    person_id required; kind student/employee; status active, blocked, lost
    or replaced). Errors name the file, line and field.
    """
    from server.roster import import_roster, parse_roster_file

    lines = parse_roster_file(csv_file)
    with _engine(ctx).begin() as conn:
        summary = import_roster(conn, site_code, lines)
    click.echo(summary.describe())


# -- taps -------------------------------------------------------------------------------------
@main.command()
@click.option("--device", "device_id", help="Only taps of this device.")
@click.option("--site", "site_code", help="Only taps of this site's devices.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000),
              help="Show the latest N taps received.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def taps(ctx: click.Context, device_id: str | None, site_code: str | None, limit: int,
         as_json: bool) -> None:
    """List the latest taps received, with device time and corrected time."""
    import sqlalchemy as sa

    from server.db import reading
    from server.schema import devices, taps as taps_table

    t = taps_table.c
    query = sa.select(t.event_id, t.device_id, t.seq, t.card_uid, t.tapped_at, t.corrected_at,
                      t.clock_status, t.verdict, t.reader, t.received_at)
    if device_id:
        query = query.where(t.device_id == device_id)
    if site_code:
        query = query.where(t.device_id.in_(sa.select(devices.c.device_id)
                                            .where(devices.c.site_code == site_code)))
    with reading(_engine(ctx)) as conn:
        rows = conn.execute(query.order_by(t.id.desc()).limit(limit)).mappings().all()
    for row in reversed(rows):
        if as_json:
            click.echo(json.dumps(_jsonable(dict(row))))
        else:
            click.echo(f"{row['device_id']:<22} {row['seq']:>7}  {row['card_uid']:<20} "
                       f"device {row['tapped_at']}  corrected {_when(row['corrected_at'])} "
                       f"({row['clock_status']})  {row['verdict']}")


# -- commands kept in their own modules (each defines click commands/groups) --------------------
def _register_commands() -> None:
    from server import (cli_calendar, cli_keys, cli_reconcile, cli_registry, cli_report,
                        cli_users)

    for module in (cli_registry, cli_calendar, cli_reconcile, cli_report, cli_keys, cli_users):
        for command in module.COMMANDS:
            main.add_command(command)
    from server import cli_settings

    device.add_command(cli_settings.settings)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
