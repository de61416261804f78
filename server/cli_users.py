"""``attendance-server user …``: accounts of the web dashboard (registered by
:mod:`server.cli`). docs/DASHBOARD.md describes the roles."""

from __future__ import annotations

import json
import sys

import click

from server.schema import API_ROLES

_PASSWORD_STDIN_HELP = ("Read the password from the first line of standard input instead of "
                        "asking (for scripts; never put a password on the command line).")


def _password(from_stdin: bool) -> str:
    """The new password: the first line of standard input, or asked twice."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise ValueError("no password on standard input")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt="Repeat"))


@click.group("user")
def user() -> None:
    """Dashboard accounts: diskominfo (every site) and operator (one site) users of the
    web pages under /dashboard (docs/DASHBOARD.md)."""


@user.command("add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(API_ROLES),
              help="diskominfo: every site; operator: one site (--site).")
@click.option("--site", "site_code", help="The site of an operator (required for operator, "
                                          "refused for diskominfo).")
@click.option("--password-stdin", is_flag=True, help=_PASSWORD_STDIN_HELP)
@click.pass_context
def user_add(ctx: click.Context, username: str, role: str, site_code: str | None,
             password_stdin: bool) -> None:
    """Add the dashboard account USERNAME; the password is asked twice."""
    from server.accounts import check_new_password, check_new_user, create_user
    from server.cli import _engine
    from server.db import reading

    with reading(_engine(ctx)) as conn:
        name = check_new_user(conn, username, role, site_code)  # before asking for a password
    password = _password(password_stdin)
    check_new_password(password, name)
    with _engine(ctx).begin() as conn:
        made = create_user(conn, name, password, role, site_code)
    click.echo(f"user {made.username} added: {made.role}"
               + (f" of site {made.site_code}" if made.site_code else " (every site)"))


@user.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help=_PASSWORD_STDIN_HELP)
@click.pass_context
def user_passwd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME (ends its sessions and lifts a lockout)."""
    from server.accounts import get_user, set_password
    from server.cli import _engine
    from server.db import reading

    with reading(_engine(ctx)) as conn:
        found = get_user(conn, username)  # before asking for a password
    password = _password(password_stdin)
    with _engine(ctx).begin() as conn:
        set_password(conn, found.username, password)
    click.echo(f"password of {found.username} changed; its open sessions have ended")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List the dashboard accounts with their role, site, state and last login."""
    from server.accounts import list_users
    from server.cli import _engine, _jsonable, _when
    from server.db import reading, utcnow

    with reading(_engine(ctx)) as conn:
        users = list_users(conn)
    now = utcnow()
    for item in users:
        if as_json:
            click.echo(json.dumps(_jsonable(item.to_dict())))
            continue
        state = "DISABLED" if item.disabled else (
            f"LOCKED until {_when(item.locked_until)}" if item.is_locked(now) else "active")
        click.echo(f"{item.username:<24} {item.role:<10} {item.site_code or '*':<12} "
                   f"last login {_when(item.last_login_at):<20}  {state}")


@user.command("disable")
@click.argument("username")
@click.pass_context
def user_disable(ctx: click.Context, username: str) -> None:
    """Disable USERNAME: it cannot log in and its open sessions end."""
    from server.accounts import set_disabled
    from server.cli import _engine

    with _engine(ctx).begin() as conn:
        found = set_disabled(conn, username, True)
    click.echo(f"user {found.username} disabled")


@user.command("enable")
@click.argument("username")
@click.pass_context
def user_enable(ctx: click.Context, username: str) -> None:
    """Enable USERNAME again (also lifts a lockout after failed logins)."""
    from server.accounts import set_disabled
    from server.cli import _engine

    with _engine(ctx).begin() as conn:
        found = set_disabled(conn, username, False)
    click.echo(f"user {found.username} enabled")


#: The click commands and groups this module adds to ``attendance-server``.
COMMANDS: list[click.Command] = [user]
