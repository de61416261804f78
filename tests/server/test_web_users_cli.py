"""``attendance-server user …``: dashboard accounts from the command line (both backends)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from werkzeug.security import check_password_hash

from server.schema import web_users
from tests.server.helpers import make_site
from tests.server.web_helpers import login


def stored(engine, username):
    with engine.connect() as conn:
        return conn.execute(sa.select(web_users).where(web_users.c.username == username)).one()


def test_add_with_the_password_asked_twice(runner, engine):
    result = runner("user", "add", "Admin.Kota", "--role", "diskominfo",
                    input="rahasia-kota-2026\nrahasia-kota-2026\n")
    assert result.exit_code == 0, result.output
    assert "user admin.kota added: diskominfo (every site)" in result.output
    assert "rahasia-kota-2026" not in result.output  # the prompt does not echo it
    row = stored(engine, "admin.kota")
    assert check_password_hash(row.password_hash, "rahasia-kota-2026")
    assert (row.role, row.site_code, row.disabled) == ("diskominfo", None, False)


def test_add_operator_from_stdin_and_log_in(runner, engine, client):
    make_site(engine, "20401234", "SDN 001")
    result = runner("user", "add", "op.sdn", "--role", "operator", "--site", "20401234",
                    "--password-stdin", input="operator-sekolah-1\n")
    assert result.exit_code == 0, result.output
    assert "of site 20401234" in result.output
    assert login(client, "op.sdn", "operator-sekolah-1").status_code == 302


@pytest.mark.parametrize("args, stdin, message", [
    (["xy", "--role", "operator"], "long-enough-pw\n", "needs --site"),
    (["xy", "--role", "diskominfo", "--site", "S1"], "long-enough-pw\n", "only for operators"),
    (["xy", "--role", "operator", "--site", "NOPE"], "long-enough-pw\n", "no site 'NOPE'"),
    (["xy", "--role", "diskominfo"], "short\n", "at least 10 characters"),
    (["xy", "--role", "diskominfo"], "xy\n", "at least 10 characters"),
    (["xy", "--role", "diskominfo"], "\n", "no password on standard input"),
    (["bad name!", "--role", "diskominfo"], "long-enough-pw\n", "user name"),
    (["x", "--role", "diskominfo"], "long-enough-pw\n", "user name 'x'"),
    (["xy", "--role", "root"], "long-enough-pw\n", "Invalid value for '--role'"),
])
def test_add_refusals(runner, engine, args, stdin, message):
    make_site(engine, "S1", "Site")
    result = runner("user", "add", *args, "--password-stdin", input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_users)).scalar() == 0


def test_prompt_needs_the_same_password_twice(runner, engine):
    result = runner("user", "add", "a.b", "--role", "diskominfo",
                    input="first-password-1\nsecond-password\nfirst-password-1\n"
                          "first-password-1\n")
    assert result.exit_code == 0 and "do not match" in result.output


def test_duplicate_user(runner):
    runner("user", "add", "a.b", "--role", "diskominfo", "--password-stdin",
           input="long-enough-pw\n")
    result = runner("user", "add", "A.B", "--role", "diskominfo", "--password-stdin",
                    input="long-enough-pw\n")
    assert result.exit_code == 1
    assert result.output.strip() == "attendance-server: error: dashboard user a.b already exists"


def test_passwd_disable_enable_list(runner, engine, client):
    make_site(engine, "S1", "Site")
    runner("user", "add", "op1", "--role", "operator", "--site", "S1", "--password-stdin",
           input="first-password-1\n")
    version = stored(engine, "op1").session_version
    result = runner("user", "passwd", "op1", "--password-stdin", input="second-password-2\n")
    assert result.exit_code == 0 and "sessions have ended" in result.output
    assert stored(engine, "op1").session_version == version + 1
    assert login(client, "op1", "first-password-1").status_code == 200
    assert login(client, "op1", "second-password-2").status_code == 302

    assert runner("user", "disable", "op1").output.strip() == "user op1 disabled"
    assert stored(engine, "op1").disabled
    assert login(client.application.test_client(), "op1", "second-password-2").status_code == 200
    lines = runner("user", "list").output.splitlines()
    assert lines[0].split()[:3] == ["op1", "operator", "S1"] and "DISABLED" in lines[0]

    with engine.begin() as conn:  # a lockout is lifted by enable
        conn.execute(web_users.update().values(failed_logins=3))
    assert runner("user", "enable", "op1").exit_code == 0
    row = stored(engine, "op1")
    assert (row.disabled, row.failed_logins, row.locked_until) == (False, 0, None)
    listed = [json.loads(line) for line in runner("user", "list", "--json").output.splitlines()]
    assert listed[0]["username"] == "op1" and listed[0]["disabled"] is False
    assert "password_hash" not in listed[0] and "last_login_at" in listed[0]


def test_unknown_user(runner):
    for command in (["passwd", "nobody", "--password-stdin"], ["disable", "nobody"],
                    ["enable", "nobody"]):
        result = runner("user", *command, input="long-enough-pw\n")
        assert result.exit_code == 1
        assert "no dashboard user 'nobody'" in result.output
