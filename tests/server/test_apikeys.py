"""API keys: creation (secret shown once, hash stored), lookup, revocation, last use,
HTTP authentication and the ``attendance-server key`` commands."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest

from server import apikeys
from server.db import reading, utcnow
from server.errors import NotFound
from tests.server.helpers import make_site, rows

TOKEN = re.compile(r"ak_([0-9a-f]{12})\.[A-Za-z0-9_-]{43}")


def new_key(engine, role="diskominfo", site=None, name="SIMPEG"):
    with engine.begin() as conn:
        return apikeys.create_key(conn, name, role, site)


def test_create_shows_the_secret_once_and_stores_its_hash(engine, site):
    made = new_key(engine, "operator", site, "operator SDN 001")
    match = TOKEN.fullmatch(made.token)
    assert match and match.group(1) == made.key.key_id
    assert made.key.label == f"ak_{made.key.key_id}" and made.key.site_code == site
    (stored,) = rows(engine, "SELECT * FROM api_keys")
    assert stored["key_hash"] == hashlib.sha256(made.token.encode()).hexdigest()
    assert made.token.split(".")[1] not in json.dumps({k: str(v) for k, v in stored.items()})
    assert stored["role"] == "operator" and stored["last_used_at"] is None
    assert new_key(engine).token != made.token


@pytest.mark.parametrize("role, site_code, error", [
    ("operator", None, "needs --site"),
    ("diskominfo", "20401234", "only for operator keys"),
    ("admin", None, "expected one of"),
])
def test_create_checks_role_and_site(engine, site, role, site_code, error):
    with pytest.raises(ValueError, match=error):
        new_key(engine, role, site_code)


def test_create_refuses_unknown_site_and_empty_name(engine):
    with pytest.raises(NotFound):
        new_key(engine, "operator", "NOPE")
    with pytest.raises(ValueError, match="--name"):
        new_key(engine, name="  ")


def test_lookup_by_token(engine):
    made = new_key(engine)
    key_id = made.key.key_id
    with reading(engine) as conn:
        assert apikeys.key_for_token(conn, made.token) == made.key
        wrong_secret = made.token[:-1] + ("A" if made.token[-1] != "A" else "B")
        assert apikeys.key_for_token(conn, wrong_secret) is None
        assert apikeys.key_for_token(conn, f"ak_{'0' * 12}.{made.token.split('.')[1]}") is None
        for bad in ("", "ak_", f"ak_{key_id}", f"ak_{key_id}.", "device-token",
                    made.token + "\n", made.token.upper()):
            assert apikeys.key_for_token(conn, bad) is None, bad


def test_revoke(engine):
    made = new_key(engine)
    with engine.begin() as conn:
        when = apikeys.revoke_key(conn, made.key.label)
        assert apikeys.revoke_key(conn, made.key.key_id) == when  # the first time stays
        assert apikeys.key_for_token(conn, made.token).is_revoked
        with pytest.raises(NotFound):
            apikeys.revoke_key(conn, "0" * 12)
        with pytest.raises(ValueError, match="not a key id"):
            apikeys.revoke_key(conn, "xyz")
    with reading(engine) as conn:
        assert [k.key_id for k in apikeys.list_keys(conn)] == [made.key.key_id]
        assert apikeys.list_keys(conn, include_revoked=False) == []


def test_touch_writes_at_most_once_a_minute(engine):
    made = new_key(engine)
    now = utcnow()
    with engine.begin() as conn:
        assert apikeys.touch(conn, made.key, now)
        # A stale copy of the key (another worker) is held back by the UPDATE's condition.
        assert not apikeys.touch(conn, made.key, now + timedelta(seconds=30))
        fresh = apikeys.get_key(conn, made.key.key_id)
        assert fresh.last_used_at == now
        assert not apikeys.touch(conn, fresh, now + timedelta(seconds=59))
        assert apikeys.touch(conn, fresh, now + timedelta(seconds=61))


@pytest.mark.parametrize("text, key_id", [("ak_0123456789ab", "0123456789ab"),
                                          ("0123456789AB", "0123456789ab"),
                                          ("ak_0123456789ab.secret", "0123456789ab")])
def test_normalise_key_id(text, key_id):
    assert apikeys.normalise_key_id(text) == key_id


# -- over HTTP ------------------------------------------------------------------------------
URL = "/api/v1/sites"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def refused(reply, text):
    assert reply.status_code == 401, reply.json
    assert reply.json["error"]["code"] == "unauthorized" and text in reply.json["error"]["message"]
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_http_missing_wrong_and_revoked_keys(client, engine, device):
    made = new_key(engine)
    refused(client.get(URL), "missing")
    refused(client.get(URL, headers={"Authorization": f"Basic {made.token}"}), "missing")
    refused(client.get(URL, headers=device.headers), "not a device token")
    refused(client.get(URL, headers=bearer(made.token[:-2] + "xx")), "unknown API key")
    assert client.get(URL, headers=bearer(made.token)).status_code == 200
    with engine.begin() as conn:
        apikeys.revoke_key(conn, made.key.key_id)
    refused(client.get(URL, headers=bearer(made.token)), "was revoked")


def test_http_records_last_use(client, engine, site):
    made = new_key(engine)
    assert rows(engine, "SELECT last_used_at FROM api_keys")[0]["last_used_at"] is None
    client.get(URL, headers=bearer(made.token))
    first = rows(engine, "SELECT last_used_at FROM api_keys")[0]["last_used_at"]
    assert first is not None
    client.get(URL, headers=bearer(made.token))
    assert rows(engine, "SELECT last_used_at FROM api_keys")[0]["last_used_at"] == first


# -- the command line ----------------------------------------------------------------------
def test_cli_key_add_list_revoke(runner, engine):
    make_site(engine, "20401234")
    result = runner("key", "add", "--name", "operator SDN 001", "--role", "operator",
                    "--site", "20401234")
    assert result.exit_code == 0, result.output
    token = TOKEN.search(result.output).group(0)
    assert "not shown again" in result.output
    key_id = token[3:15]
    listed = runner("key", "list")
    assert key_id in listed.output and "operator" in listed.output
    assert token.split(".")[1] not in listed.output
    made = json.loads(runner("key", "add", "--name", "BKPSDM", "--role", "diskominfo",
                             "--json").output)
    assert made["role"] == "diskominfo" and TOKEN.fullmatch(made["key"])
    revoked = runner("key", "revoke", f"ak_{key_id}")
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    objects = [json.loads(line) for line in runner("key", "list", "--json").output.splitlines()]
    assert [bool(o["revoked_at"]) for o in objects] == [True, False]
    assert all("key_hash" not in o for o in objects)


@pytest.mark.parametrize("args, message", [
    (["add", "--name", "x", "--role", "operator"], "needs --site"),
    (["add", "--name", "x", "--role", "operator", "--site", "NOPE"], "no site 'NOPE'"),
    (["add", "--name", "x", "--role", "root"], "'root' is not one of"),
    (["revoke", "0123456789ab"], "no API key ak_0123456789ab"),
    (["revoke", "nonsense"], "not a key id"),
])
def test_cli_key_errors(runner, args, message):
    result = runner("key", *args)
    assert result.exit_code != 0 and message in result.output
