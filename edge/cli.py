"""``attendance-edge``: run and inspect an edge reader point."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import click

from edge import __version__
from edge.config import EdgeConfig, load_config
from edge.errors import EdgeError

PROG = "attendance-edge"


def fail(message: str) -> NoReturn:
    click.echo(f"{PROG}: error: {message}", err=True)
    sys.exit(1)


class _Group(click.Group):
    """Turns expected errors into ``attendance-edge: error: …`` (traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (EdgeError, OSError, ValueError) as exc:
            if ctx.meta.get("debug"):
                raise
            fail(str(exc))


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["config_path"] = value


#: ``--config`` is accepted after the command too: ``attendance-edge run --config FILE``.
config_option = click.option(
    "--config", "-c", type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
    callback=_remember_config, help="Configuration file (TOML); same as before the command.")


def _config(ctx: click.Context) -> EdgeConfig:
    cfg = ctx.meta.get("config")
    if cfg is None:
        cfg = load_config(ctx.meta.get("config_path"))
        ctx.meta["config"] = cfg
    return cfg


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              envvar="ATTENDANCE_CONFIG",
              help="Configuration file (TOML). Default: $ATTENDANCE_CONFIG or "
                   "/etc/attendance/edge.toml when present.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name=PROG)
@click.pass_context
def main(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """Smart-card attendance: the edge reader point.

    Records every card tap durably on this device, tells the person at once,
    and keeps the taps until the central server has them.
    """
    ctx.meta.setdefault("config_path", config_path)
    ctx.meta["debug"] = debug


@main.command()
@config_option
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the edge service until SIGTERM (systemd Type=notify aware)."""
    from edge.service import EdgeService

    cfg = _config(ctx)
    logging.basicConfig(
        level=getattr(logging, cfg.log.level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    EdgeService(cfg).run()


@main.command("check-config")
@config_option
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the configuration and print the effective values (with the settings
    the central server sent, under "settings", each with its source)."""
    import dataclasses

    from edge import settings as remote_settings

    cfg = _config(ctx)
    values = dataclasses.asdict(cfg)
    values["settings"] = remote_settings.describe(remote_settings.effective_settings(
        cfg, remote_settings.read_server_settings(cfg.database_path)))
    click.echo(json.dumps(values, indent=2, ensure_ascii=False))


def _open_outbox(cfg: EdgeConfig) -> Any:
    from edge.outbox import Outbox

    if not cfg.database_path.exists():
        fail(f"no tap database at {cfg.database_path} yet (has the service run? "
             f"is [device] data_dir right?)")
    return Outbox(cfg.database_path)


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Reader state, taps today, backlog, last tap and clock state."""
    from edge import control
    from edge import settings as remote_settings
    from edge.clock import Clock, describe_clock
    from edge.errors import ControlError
    from edge.service import local_day_start_utc

    cfg = _config(ctx)
    try:
        reply = control.request(cfg.control_socket, {"cmd": "status"})
        if not reply.get("ok"):
            fail(reply.get("error", "the service refused the status request"))
        info = reply["status"]
    except ControlError as exc:
        with _open_outbox(cfg) as outbox:
            info = {
                "device": cfg.device.name,
                "version": __version__,
                "running": False,
                "not_running_reason": str(exc),
                "readers": [{"name": r.name, "driver": r.driver, "connected": None,
                             "error": "service not running"} for r in cfg.readers],
                "clock": describe_clock(Clock(assume_synced=cfg.clock.assume_synced)),
                "database": str(cfg.database_path),
                "settings": remote_settings.describe(remote_settings.effective_settings(
                    cfg, outbox.call(remote_settings.load_server_settings))),
                **outbox.counts(day_start_utc=local_day_start_utc()),
            }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    state = "running" if info["running"] else f"NOT RUNNING ({info.get('not_running_reason')})"
    click.echo(f"Device:   {info['device']} (version {info['version']}), service {state}")
    for r in info["readers"]:
        if r["connected"] is None:
            word = "unknown (service not running)"
        else:
            word = "connected" if r["connected"] else f"DOWN: {r.get('error')}"
        click.echo(f"Reader:   {r['name']} [{r['driver']}] {word}")
    by = info["taps_today_by_verdict"]
    click.echo(f"Today:    {info['taps_today']} taps ("
               + ", ".join(f"{k} {v}" for k, v in by.items()) + ")")
    click.echo(f"Backlog:  {info['backlog']} not yet acknowledged by the server"
               + (f", oldest {info['oldest_unsent_at']}" if info['oldest_unsent_at'] else ""))
    last = info.get("last_tap")
    click.echo("Last tap: " + (f"{last['tapped_at']} card {last['card_uid']} "
                               f"({last['verdict']}, reader {last['reader']})" if last else "none"))
    clock = info["clock"]
    click.echo(f"Clock:    {clock['now']}, " + ("synced" if clock["synced"] else
                                                  "NOT synced (times will be corrected by the server)")
               + f" [{clock['source']}]")
    if info.get("storage_error"):
        click.echo(f"Storage:  ERROR {info['storage_error']}")
    if info.get("settings"):
        click.echo("Settings: " + ", ".join(
            f"{key} {json.dumps(item['value'], ensure_ascii=False)[:60]} ({item['source']})"
            for key, item in info["settings"].items()))
    web = info.get("web")
    if web:
        click.echo("Page:     " + (f"ERROR {web['error']}" if web.get("error") else
                                   f"operator page on {web['url']}"))


def _parse_since(text: str | None) -> str | None:
    if not text:
        return None
    if text == "today":
        from edge.service import local_day_start_utc

        return local_day_start_utc()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date or time (use 2026-11-23, 2026-11-23T07:00 or 'today')"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as the operator reads the clock
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


@main.command()
@config_option
@click.option("--since", metavar="WHEN", help="Only taps at or after WHEN (ISO date/time, "
                                               "local time unless an offset is given, or 'today').")
@click.option("--unsent", is_flag=True, help="Only taps the server has not acknowledged.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def taps(ctx: click.Context, since: str | None, unsent: bool, as_json: bool) -> None:
    """List the recorded taps, oldest first."""
    cfg = _config(ctx)
    since_utc = _parse_since(since)
    with _open_outbox(cfg) as outbox:
        for tap in outbox.taps(since_utc=since_utc, unacked_only=unsent):
            if as_json:
                click.echo(json.dumps(tap.to_json()))
            else:
                sent = "sent" if tap.acked_at else "unsent"
                click.echo(f"{tap.seq:>7}  {tap.tapped_at}  {tap.card_uid:<20} "
                           f"{tap.verdict:<9} {tap.reader:<10} {sent}")


@main.command()
@config_option
@click.argument("uid")
@click.option("--reader", help="Name of the simulated reader (default: the first one).")
@click.pass_context
def tap(ctx: click.Context, uid: str, reader: str | None) -> None:
    """Present card UID to a running edge whose reader driver is "sim"."""
    from edge import control

    cfg = _config(ctx)
    payload: dict[str, Any] = {"cmd": "tap", "uid": uid}
    if reader:
        payload["reader"] = reader
    reply = control.request(cfg.control_socket, payload)
    if not reply.get("ok"):
        fail(reply.get("error", "tap refused"))
    record = reply.get("tap")
    if record:
        click.echo(f"{reply['verdict']}: card {record['card_uid']} seq {record['seq']} "
                   f"event {record['event_id']}"
                   + ("; enrolled: the card now belongs to the person chosen on the "
                      "operator's page" if reply.get("enrolled") else ""))
    else:
        click.echo(f"{reply['verdict']}: {reply.get('detail', '')}")
        if reply["verdict"] == "error":
            sys.exit(1)


@main.command()
@config_option
@click.option("--driver", type=click.Choice(["pcsc", "nfc", "sim"]),
              help="Check for this reader driver (default: the configured readers').")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor(ctx: click.Context, driver: str | None, as_json: bool) -> None:
    """Find readers and explain how to fix what is wrong (pcscd, udev, kernel modules).

    Exits 1 when any check fails.
    """
    import dataclasses

    from edge.doctor import Check, format_checks, run_checks

    problems: list[Check] = []
    feedback_kind = None
    try:
        cfg = _config(ctx)
        drivers = {r.driver for r in cfg.readers}
        if driver is None and len(drivers) == 1:
            driver = drivers.pop()
        feedback_kind = cfg.feedback.kind
    except EdgeError as exc:
        problems.append(Check("configuration", False, str(exc),
                              "fix the key named above, then run doctor again"))
    checks = problems + run_checks(driver=driver, feedback_kind=feedback_kind)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
    else:
        click.echo(format_checks(checks))
    if not all(c.ok for c in checks):
        sys.exit(1)


@main.command()
@config_option
@click.option("--server", "server_url", required=True, metavar="URL",
              help="The central server, e.g. https://absensi.example.go.id")
@click.option("--code", "claim_code", envvar="ATTENDANCE_CLAIM_CODE", metavar="CODE",
              help="The claim code from 'attendance-server device add' "
                   "(or $ATTENDANCE_CLAIM_CODE; asked for when missing).")
@click.option("--name", help="A name for this device on the server (e.g. the gate).")
@click.option("--force", is_flag=True, help="Enrol again although already enrolled.")
@click.pass_context
def enroll(ctx: click.Context, server_url: str, claim_code: str | None, name: str | None,
           force: bool) -> None:
    """Enrol this device with the central server using a single-use claim code.

    The device token is stored in the data directory with mode 0600.
    """
    from datetime import datetime

    from edge.sync import (Enrolment, SyncClient, SyncError, hardware_id, load_enrolment,
                           save_enrolment)

    cfg = _config(ctx)
    existing = load_enrolment(cfg.enrolment_path, cfg.token_path)
    if existing and not force:
        fail(f"already enrolled as {existing.device_id} with {existing.server_url} "
             f"(use --force to enrol again, e.g. with a code from "
             f"'attendance-server device replace {existing.device_id}')")
    if not server_url.startswith(("http://", "https://")):
        fail(f"--server must start with https:// (or http://), got {server_url!r}")
    if not claim_code:
        claim_code = click.prompt("Claim code", hide_input=True)
    client = SyncClient(server_url, timeout=cfg.sync.timeout_seconds,
                        ca_file=cfg.sync.ca_file or None)
    from edge import lifecycle
    from edge.outbox import Outbox

    cfg.data_path.mkdir(parents=True, exist_ok=True)
    with Outbox(cfg.database_path) as outbox:
        summary = outbox.call(lifecycle.outbox_summary,
                              existing.device_id if existing else None)
        try:
            reply = client.enroll(claim_code.strip(), hardware_id(), name or cfg.device.name,
                                  outbox=summary)
        except SyncError as exc:
            fail(f"enrolment refused: {exc}")
        finally:
            client.close()
        # Before the token is saved: the next tap must not reuse a seq the server holds.
        next_seq = outbox.call(lifecycle.raise_seq_floor, int(reply.get("highest_seq") or 0))
        foreign = outbox.call(lifecycle.foreign_unsent, reply["device_id"],
                              int(reply.get("highest_seq") or 0))
    if reply.get("replaced"):
        click.echo(f"this board now is device {reply['device_id']} (replacement); its previous "
                   f"token is refused; the next tap gets seq {next_seq}")
    if foreign:
        click.echo(f"WARNING: {foreign} unsent tap(s) here are not {reply['device_id']}'s and "
                   f"reuse its seq numbers: the server will keep them aside as conflicts "
                   f"(was the service running during enrolment?)", err=True)
    enrolment = Enrolment(device_id=reply["device_id"], site=reply.get("site", {}),
                          server_url=server_url.rstrip("/"),
                          enrolled_at=datetime.now().astimezone().isoformat(timespec="seconds"),
                          token=reply["token"])
    cfg.data_path.mkdir(parents=True, exist_ok=True)
    save_enrolment(enrolment, cfg.enrolment_path, cfg.token_path)
    site = enrolment.site
    click.echo(f"enrolled as {enrolment.device_id} at site {site.get('code')} "
               f"({site.get('name', '')}); token saved in {cfg.token_path}")
    click.echo("restart the service to start syncing (systemctl restart attendance-edge)")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the round's report as JSON.")
@click.pass_context
def sync(ctx: click.Context, as_json: bool) -> None:
    """Do one sync round now (push all unsent taps, heartbeat, roster) and print what happened."""
    import dataclasses

    from edge import control
    from edge.clock import Clock
    from edge.errors import ControlError
    from edge.outbox import Outbox
    from edge.sync import build_sync_worker, load_enrolment

    cfg = _config(ctx)
    if load_enrolment(cfg.enrolment_path, cfg.token_path) is None:
        fail("this device is not enrolled (attendance-edge enroll --server URL --code CODE)")
    try:
        reply = control.request(cfg.control_socket, {"cmd": "sync"}, timeout=600)
        if "report" not in reply:
            fail(reply.get("error", "the service refused to sync"))
        report, summary = reply["report"], reply["summary"]
    except ControlError:
        # The service is not running: do the round here.
        cfg.data_path.mkdir(parents=True, exist_ok=True)
        with Outbox(cfg.database_path) as outbox:
            worker = build_sync_worker(cfg, outbox, Clock(assume_synced=cfg.clock.assume_synced))
            if worker is None:
                fail("this device is not enrolled (attendance-edge enroll --server URL --code CODE)")
            outbox.device_id = worker.device_id
            try:
                result = worker.run_round(force=True)
            finally:
                worker.client.close()
        report, summary = dataclasses.asdict(result), result.summary()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(summary)
    if report.get("error"):
        sys.exit(1)


@main.command("rotate-token")
@config_option
@click.pass_context
def rotate_token(ctx: click.Context) -> None:
    """Give this device a new token (the old one is refused from then on).

    Crash-safe: the new token is saved as device.token.pending before the server
    is asked; if the reply is lost, the next sync finds out which token works.
    """
    from edge import tokens
    from edge.sync import SyncClient, SyncError, load_enrolment

    cfg = _config(ctx)
    enrolment = load_enrolment(cfg.enrolment_path, cfg.token_path)
    if enrolment is None:
        fail("this device is not enrolled (attendance-edge enroll --server URL --code CODE)")
    client = SyncClient(cfg.sync.server_url or enrolment.server_url, token=enrolment.token,
                        timeout=cfg.sync.timeout_seconds, ca_file=cfg.sync.ca_file or None)
    try:
        device_id = tokens.rotate(client, cfg.token_path)
    except SyncError as exc:
        left = tokens.pending_path(cfg.token_path).exists()
        fail(f"token not rotated: {exc}" + (
            "; the new token is kept aside and the next sync finds out which token the "
            "server holds (attendance-edge sync)" if left else ""))
    finally:
        client.close()
    click.echo(f"device {device_id or enrolment.device_id}: new token saved in "
               f"{cfg.token_path}; the old one is refused from now on")


@main.group()
def roster() -> None:
    """The local roster cache (which card belongs to whom)."""


@roster.command("load")
@config_option
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def roster_load(ctx: click.Context, csv_file: Path) -> None:
    """Replace the roster cache with CSV_FILE (all-or-nothing)."""
    from edge.outbox import Outbox
    from edge.roster import parse_roster_csv

    cfg = _config(ctx)
    entries = parse_roster_csv(csv_file)
    cfg.data_path.mkdir(parents=True, exist_ok=True)
    with Outbox(cfg.database_path) as outbox:
        outbox.replace_roster(entries)
    blocked = sum(e.status != "active" for e in entries)
    click.echo(f"roster loaded: {len(entries)} card(s), {blocked} refused "
               f"(blocked/lost/replaced)")


@roster.command("show")
@config_option
@click.pass_context
def roster_show(ctx: click.Context) -> None:
    """Print the roster cache as CSV."""
    cfg = _config(ctx)
    with _open_outbox(cfg) as outbox:
        rows = outbox.db.execute(
            "SELECT card_uid, person_id, name, kind, group_name, status FROM roster "
            "ORDER BY group_name, name").fetchall()
    click.echo("card_uid,person_id,name,kind,group,status")
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerows(rows)


@main.group()
def operator() -> None:
    """Operator accounts of the local web page (docs/EDGE_WEB.md)."""


def _read_new_password(from_stdin: bool) -> str:
    """A new password from standard input (one line) or typed twice; never echoed."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
        return password
    return click.prompt("New password", hide_input=True, confirmation_prompt="Repeat password")


def _operators_db(cfg: EdgeConfig) -> Any:
    from edge.outbox import Outbox

    cfg.data_path.mkdir(parents=True, exist_ok=True)
    return Outbox(cfg.database_path)


@operator.command("add")
@config_option
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (one line) instead of asking twice.")
@click.pass_context
def operator_add(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Create an operator account USERNAME (the password is asked for twice)."""
    from edge import operators

    cfg = _config(ctx)
    operators.check_username(username)
    password = _read_new_password(password_stdin)
    with _operators_db(cfg) as outbox:
        outbox.call(operators.add_operator, username, password)
    click.echo(f"operator {username} added; log in at http://<this device>:"
               f"{cfg.web.listen.rsplit(':', 1)[1]}/")


@operator.command("passwd")
@config_option
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (one line) instead of asking twice.")
@click.pass_context
def operator_passwd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME (also unlocks the account and ends its sessions)."""
    from edge import operators

    cfg = _config(ctx)
    with _operators_db(cfg) as outbox:
        if outbox.call(operators.get_operator, username) is None:
            fail(f"no operator {username!r} (see: attendance-edge operator list)")
        password = _read_new_password(password_stdin)
        outbox.call(operators.set_password, username, password)
    click.echo(f"password of {username} changed")


@operator.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def operator_list(ctx: click.Context, as_json: bool) -> None:
    """List the operator accounts (never their passwords)."""
    import dataclasses

    from edge import operators

    cfg = _config(ctx)
    with _operators_db(cfg) as outbox:
        accounts = outbox.call(operators.list_operators)
    now = datetime.now(timezone.utc)
    for account in accounts:
        if as_json:
            click.echo(json.dumps({**dataclasses.asdict(account),
                                   "locked": account.is_locked(now)}))
            continue
        state = f"LOCKED until {account.locked_until}" if account.is_locked(now) else "active"
        click.echo(f"{account.username:<20} created {account.created_at[:19]}  "
                   f"password changed {account.changed_at[:19]}  {state}")
    if not accounts and not as_json:
        click.echo("no operator accounts (add one: attendance-edge operator add USERNAME)")


@operator.command("remove")
@config_option
@click.argument("username")
@click.pass_context
def operator_remove(ctx: click.Context, username: str) -> None:
    """Remove the operator account USERNAME (its open sessions end at once)."""
    from edge import operators

    cfg = _config(ctx)
    with _operators_db(cfg) as outbox:
        outbox.call(operators.remove_operator, username)
    click.echo(f"operator {username} removed")


if __name__ == "__main__":  # pragma: no cover
    main()
