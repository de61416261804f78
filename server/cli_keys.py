"""``attendance-server key …``: API keys for integrators and operators
(registered by :mod:`server.cli`)."""

from __future__ import annotations

import json

import click

from server.schema import API_ROLES


@click.group("key")
def key() -> None:
    """API keys: diskominfo (every site) and operator (one site) keys for the
    integrators' API (docs/DISKOMINFO_API.md)."""


@key.command("add")
@click.option("--name", required=True,
              help="Who or what uses the key, e.g. 'SIMPEG BKPSDM' or 'operator SDN 001'.")
@click.option("--role", required=True, type=click.Choice(API_ROLES),
              help="diskominfo: every site and registry imports; operator: one site.")
@click.option("--site", "site_code", help="The site of an operator key (required for "
                                          "operator, refused for diskominfo).")
@click.option("--json", "as_json", is_flag=True, help="Print the key as JSON.")
@click.pass_context
def key_add(ctx: click.Context, name: str, role: str, site_code: str | None,
            as_json: bool) -> None:
    """Make an API key and print it once: it is stored only as a hash."""
    from server.apikeys import create_key
    from server.cli import _engine, _when

    with _engine(ctx).begin() as conn:
        made = create_key(conn, name, role, site_code)
    if as_json:
        click.echo(json.dumps({"key": made.token, "key_id": made.key.key_id, "name": name,
                               "role": role, "site": made.key.site_code}))
        return
    click.echo(f"API key:  {made.token}")
    click.echo(f"key id:   {made.key.label}")
    click.echo(f"role:     {role}" + (f" (site {made.key.site_code})" if made.key.site_code
                                      else " (every site)"))
    click.echo(f"created:  {_when(made.key.created_at)}")
    click.echo("Store the key now (a password manager or a secret file): it is not shown "
               "again. Send it as 'Authorization: Bearer <key>'.")


@key.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def key_list(ctx: click.Context, as_json: bool) -> None:
    """List the API keys (ids, never secrets) with their last use."""
    from server.apikeys import list_keys
    from server.cli import _engine, _jsonable, _when
    from server.db import reading

    with reading(_engine(ctx)) as conn:
        keys = list_keys(conn)
    for item in keys:
        if as_json:
            click.echo(json.dumps(_jsonable(item.to_dict())))
            continue
        state = f"REVOKED {_when(item.revoked_at)}" if item.revoked_at else "active"
        click.echo(f"{item.key_id:<13} {item.role:<10} {item.site_code or '*':<12} "
                   f"last used {_when(item.last_used_at):<20}  {state:<8}  {item.name}")


@key.command("revoke")
@click.argument("key_id")
@click.pass_context
def key_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke KEY_ID (with or without its ak_ prefix): its next request gets 401."""
    from server.apikeys import normalise_key_id, revoke_key
    from server.cli import _engine, _when

    with _engine(ctx).begin() as conn:
        when = revoke_key(conn, key_id)
    click.echo(f"API key ak_{normalise_key_id(key_id)} revoked at {_when(when)}")


#: The click commands and groups this module adds to ``attendance-server``.
COMMANDS: list[click.Command] = [key]
