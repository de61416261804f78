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
    """Edge devices: claim codes for enrolment, listing, revocation."""


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


@device.command("revoke")
@click.argument("device_id")
@click.pass_context
def device_revoke(ctx: click.Context, device_id: str) -> None:
    """Revoke DEVICE_ID's token: its next request is refused (401)."""
    from server.devices import revoke

    with _engine(ctx).begin() as conn:
        when = revoke(conn, device_id)
    click.echo(f"device {device_id} revoked at {_when(when)}")


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


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
