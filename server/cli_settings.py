"""``attendance-server device settings …``: remote settings of a site or of one device
(added to the ``device`` group by :mod:`server.cli`). The keys and limits are in
:mod:`edge.settings`; docs/DISKOMINFO_API.md describes them."""

from __future__ import annotations

import json
from typing import Any

import click

from edge.settings import SETTINGS

KEYS_HELP = "; ".join(f"{s.key} ({s.describe_range()})" for s in SETTINGS.values())


def _target_options(fn: Any) -> Any:
    fn = click.option("--device", "device_id", help="One device (dev_…): its own settings, "
                                                    "which win over its site's.")(fn)
    fn = click.option("--site", "site_code", help="A site: the settings of all its "
                                                  "devices.")(fn)
    return fn


def _target(conn: Any, site_code: str | None, device_id: str | None) -> tuple[str, str | None]:
    from server.device_settings import resolve

    if site_code is None and device_id is None:
        raise click.UsageError("give --site CODE or --device DEVICE_ID")
    return resolve(conn, site_code, device_id)


def _print(described: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(described, indent=2, ensure_ascii=False))
        return
    level = (f"device {described['device']} (site {described['site']})"
             if described["device"] else f"site {described['site']}")
    click.echo(f"settings of {level}:")
    if not described["settings"]:
        click.echo("  (none set here)")
    for key, value in described["settings"].items():
        changed = described["changed"][key]
        click.echo(f"  {key} = {json.dumps(value, ensure_ascii=False)}  "
                   f"(set {changed['updated_at']} by {changed['updated_by'] or '-'})")
    click.echo("effective (what the device gets; other keys: the edge's own configuration):")
    if not described["effective"]:
        click.echo("  (none)")
    for key, item in described["effective"].items():
        click.echo(f"  {key} = {json.dumps(item['value'], ensure_ascii=False)}  "
                   f"[{item['level']}]")


@click.group("settings")
def settings() -> None:
    """Remote settings of a site or one device, sent with the roster and applied by
    the edges without a restart: a device's own setting wins over its site's, which wins
    over the edge's configuration file."""


@settings.command("show")
@_target_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def settings_show(ctx: click.Context, site_code: str | None, device_id: str | None,
                  as_json: bool) -> None:
    """Show the settings set for --site or --device, and the effective ones."""
    from server.cli import _engine
    from server.db import reading
    from server.device_settings import describe

    with reading(_engine(ctx)) as conn:
        site, device = _target(conn, site_code, device_id)
        described = describe(conn, site, device)
    _print(described, as_json)


@settings.command("set", help="Set KEY to VALUE for --site or --device. Keys: "
                              + KEYS_HELP + ".",
                  # so that a negative VALUE reaches the check (and its clear message)
                  context_settings={"ignore_unknown_options": True})
@_target_options
@click.argument("key")
@click.argument("value")
@click.pass_context
def settings_set(ctx: click.Context, site_code: str | None, device_id: str | None, key: str,
                 value: str) -> None:
    from server.cli import _engine
    from server.device_settings import change_settings, parse_text_value

    checked = parse_text_value(key, value)
    with _engine(ctx).begin() as conn:
        site, device = _target(conn, site_code, device_id)
        done = change_settings(conn, site, device, {key: checked}, by="attendance-server")
    level = f"device {device}" if device else f"site {site}"
    state = "set" if done["set"] else "unchanged"
    click.echo(f"{level}: {key} = {json.dumps(checked, ensure_ascii=False)} ({state}; the "
               f"devices get it with their next roster)")


@settings.command("unset")
@_target_options
@click.argument("keys", nargs=-1, required=True)
@click.pass_context
def settings_unset(ctx: click.Context, site_code: str | None, device_id: str | None,
                   keys: tuple[str, ...]) -> None:
    """Unset KEYS for --site or --device: the next level applies again (the site's for
    a device, the edge's configuration for a site)."""
    from server.cli import _engine
    from server.device_settings import change_settings, parse_changes

    changes = parse_changes({key: None for key in keys})
    with _engine(ctx).begin() as conn:
        site, device = _target(conn, site_code, device_id)
        done = change_settings(conn, site, device, changes, by="attendance-server")
    level = f"device {device}" if device else f"site {site}"
    for key in keys:
        word = "unset" if key in done["unset"] else "was not set"
        click.echo(f"{level}: {key} {word}")
