"""Remote settings on the server: validation (4xx naming the key, never 500), levels
(device over site), roles of the API keys, the roster reply (whole and incremental),
and ``attendance-server device settings``. SQLite and PostgreSQL (conftest)."""

from __future__ import annotations

import json

import pytest

from server import apikeys
from server.device_settings import (SettingsError, change_settings, effective_settings,
                                    parse_changes, parse_text_value, roster_settings)
from server.roster import RosterLine, import_roster
from tests.server.helpers import count, enroll_device, make_site

API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(client, engine):
    """Two schools, two devices at the first and one at the second, three API keys."""
    make_site(engine, "20401234", "SDN 001")
    make_site(engine, "20405678", "SDN 002")
    a1 = enroll_device(client, engine, "20401234", "pi-a1")
    a2 = enroll_device(client, engine, "20401234", "pi-a2")
    b1 = enroll_device(client, engine, "20405678", "pi-b1")
    with engine.begin() as conn:
        keys = {"diskominfo": apikeys.create_key(conn, "kominfo", "diskominfo").token,
                "op_a": apikeys.create_key(conn, "operator A", "operator", "20401234").token,
                "op_b": apikeys.create_key(conn, "operator B", "operator", "20405678").token}
    return {"a1": a1, "a2": a2, "b1": b1, "keys": keys}


# -- pure validation -----------------------------------------------------------------------
@pytest.mark.parametrize("raw, path, words", [
    ({"debounce_seconds": -1}, "settings.debounce_seconds", "0 to 3600, got -1"),
    ({"debounce_seconds": 3601}, "settings.debounce_seconds", "got 3601"),
    ({"debounce_seconds": "30"}, "settings.debounce_seconds", 'got "30"'),
    ({"debounce_seconds": True}, "settings.debounce_seconds", "got true"),
    ({"debounce_seconds": 1.5}, "settings.debounce_seconds", "got 1.5"),
    ({"heartbeat_seconds": 9}, "settings.heartbeat_seconds", "10 to 3600"),
    ({"roster_seconds": 29}, "settings.roster_seconds", "30 to 86400"),
    ({"page_days": 0}, "settings.page_days", "1 to 7"),
    ({"page_days": 8}, "settings.page_days", "1 to 7"),
    ({"page_notice": 12}, "settings.page_notice", "text of at most 500"),
    ({"page_notice": "x" * 501}, "settings.page_notice", "501 characters"),
    ({"page_notice": "bell\x07"}, "settings.page_notice", "U+0007"),
    ({"colour": "red"}, "settings.colour", "unknown setting"),
    ({"colour": None}, "settings.colour", "unknown setting"),
    (["debounce_seconds"], "settings", "must be an object"),
])
def test_bad_changes_name_the_key(raw, path, words):
    with pytest.raises(SettingsError) as caught:
        parse_changes(raw)
    assert caught.value.path == path
    assert words in str(caught.value)


def test_good_changes_are_kept_as_given():
    assert parse_changes({"debounce_seconds": 0, "heartbeat_seconds": 3600,
                          "roster_seconds": 86400, "page_notice": "  Upacara 07:00\nHadir ",
                          "page_days": 7}) == {
        "debounce_seconds": 0, "heartbeat_seconds": 3600, "roster_seconds": 86400,
        "page_notice": "Upacara 07:00\nHadir", "page_days": 7}
    assert parse_changes({"page_days": None}) == {"page_days": None}
    assert parse_changes({"heartbeat_seconds": 30.0}) == {"heartbeat_seconds": 30}


@pytest.mark.parametrize("key, text, expected", [
    ("debounce_seconds", "45", 45), ("page_notice", "Libur besok", "Libur besok"),
    ("page_days", " 3 ", 3)])
def test_command_line_values(key, text, expected):
    assert parse_text_value(key, text) == expected


@pytest.mark.parametrize("key, text", [("debounce_seconds", "soon"), ("page_days", "9"),
                                       ("nope", "1")])
def test_bad_command_line_values(key, text):
    with pytest.raises(SettingsError, match=key):
        parse_text_value(key, text)


# -- storage and levels --------------------------------------------------------------------
def test_device_over_site_and_unset_returns_to_the_next_level(engine, world):
    a1, a2 = world["a1"].device_id, world["a2"].device_id
    with engine.begin() as conn:
        change_settings(conn, "20401234", None, {"debounce_seconds": 30, "page_days": 3}, "t")
        change_settings(conn, "20401234", a1, {"debounce_seconds": 5}, "t")
    with engine.connect() as conn:
        assert roster_settings(conn, "20401234", a1) == {"debounce_seconds": 5, "page_days": 3}
        assert roster_settings(conn, "20401234", a2) == {"debounce_seconds": 30,
                                                         "page_days": 3}
        assert effective_settings(conn, "20401234", a1)["debounce_seconds"] == {
            "value": 5, "level": "device"}
        assert roster_settings(conn, "20405678", world["b1"].device_id) == {}
    with engine.begin() as conn:
        done = change_settings(conn, "20401234", a1, {"debounce_seconds": None}, "t")
        assert done == {"set": [], "unset": ["debounce_seconds"]}
    with engine.connect() as conn:
        assert roster_settings(conn, "20401234", a1)["debounce_seconds"] == 30
    with engine.begin() as conn:
        change_settings(conn, "20401234", None, {"debounce_seconds": None,
                                                 "page_days": None}, "t")
    with engine.connect() as conn:
        assert roster_settings(conn, "20401234", a1) == {}
    assert count(engine, "site_settings") == 0 and count(engine, "device_settings") == 0


def test_setting_the_same_value_again_changes_nothing(engine, world):
    with engine.begin() as conn:
        assert change_settings(conn, "20401234", None, {"page_days": 2}, "t")["set"] == [
            "page_days"]
        assert change_settings(conn, "20401234", None, {"page_days": 2}, "t") == {
            "set": [], "unset": []}
        assert change_settings(conn, "20401234", None, {"page_days": 4}, "t")["set"] == [
            "page_days"]
    with engine.connect() as conn:
        assert roster_settings(conn, "20401234", world["a1"].device_id) == {"page_days": 4}


# -- the roster reply ------------------------------------------------------------------------
def roster(client, device, since=None):
    reply = client.get(f"{API}/roster", query_string={"since": since} if since else None,
                       headers=bearer(device.token))
    assert reply.status_code == 200, reply.json
    return reply.json


def test_incremental_roster_delivers_a_change_of_settings_without_card_changes(
        client, engine, world):
    a1 = world["a1"]
    with engine.begin() as conn:
        import_roster(conn, "20401234", [RosterLine("04A1B2C3D4E5F6", "0051234567", "Siti")])
    first = roster(client, a1)
    assert first["full"] is True and first["settings"] == {}
    cursor = first["cursor"]
    # Nothing changed: an empty delta, still with the (empty) settings.
    same = roster(client, a1, cursor)
    assert (same["full"], same["cards"], same["removed"], same["settings"]) == (
        False, [], [], {})
    # Settings change, no card changes: the next delta carries them.
    with engine.begin() as conn:
        change_settings(conn, "20401234", None, {"debounce_seconds": 20}, "t")
    delta = roster(client, a1, cursor)
    assert (delta["full"], delta["cards"], delta["cursor"]) == (False, [], cursor)
    assert delta["settings"] == {"debounce_seconds": 20}
    with engine.begin() as conn:
        change_settings(conn, "20401234", a1.device_id, {"debounce_seconds": 7}, "t")
    assert roster(client, a1, cursor)["settings"] == {"debounce_seconds": 7}
    assert roster(client, world["a2"], cursor)["settings"] == {"debounce_seconds": 20}
    # A device never sees another site's settings.
    assert roster(client, world["b1"])["settings"] == {}


# -- the API ---------------------------------------------------------------------------------
def patch(client, token, body, **query):
    return client.patch(f"{API}/settings", query_string=query, headers=bearer(token),
                        data=json.dumps(body), content_type="application/json")


def test_api_sets_reads_and_unsets(client, world):
    keys, a1 = world["keys"], world["a1"]
    reply = patch(client, keys["diskominfo"], {"settings": {"heartbeat_seconds": 120,
                                                            "page_notice": "Ujian pukul 08:00"}},
                  site="20401234")
    assert reply.status_code == 200, reply.json
    assert reply.json["set"] == ["heartbeat_seconds", "page_notice"]
    assert reply.json["settings"] == {"heartbeat_seconds": 120, "page_notice": "Ujian pukul 08:00"}
    assert reply.json["changed"]["page_notice"]["updated_by"].startswith("api key ak_")
    reply = patch(client, keys["diskominfo"], {"settings": {"heartbeat_seconds": 30}},
                  device=a1.device_id)
    assert reply.status_code == 200, reply.json
    assert (reply.json["site"], reply.json["device"]) == ("20401234", a1.device_id)
    assert reply.json["effective"] == {
        "heartbeat_seconds": {"value": 30, "level": "device"},
        "page_notice": {"value": "Ujian pukul 08:00", "level": "site"}}
    got = client.get(f"{API}/settings", query_string={"device": a1.device_id},
                     headers=bearer(keys["op_a"]))
    assert got.status_code == 200 and got.json["settings"] == {"heartbeat_seconds": 30}
    reply = patch(client, keys["op_a"], {"settings": {"heartbeat_seconds": None}},
                  device=a1.device_id)
    assert reply.status_code == 200 and reply.json["unset"] == ["heartbeat_seconds"]
    assert reply.json["effective"]["heartbeat_seconds"] == {"value": 120, "level": "site"}
    assert roster(client, a1)["settings"] == {"heartbeat_seconds": 120,
                                              "page_notice": "Ujian pukul 08:00"}


@pytest.mark.parametrize("body, path", [
    ({"settings": {"debounce_seconds": 99999}}, "settings.debounce_seconds"),
    ({"settings": {"debounce_seconds": "thirty"}}, "settings.debounce_seconds"),
    ({"settings": {"heartbeat_seconds": 1}}, "settings.heartbeat_seconds"),
    ({"settings": {"page_notice": "x" * 600}}, "settings.page_notice"),
    ({"settings": {"page_notice": "tab\tok but bell \x07"}}, "settings.page_notice"),
    ({"settings": {"volume": 3}}, "settings.volume"),
    ({"settings": {"page_days": 2, "volume": None}}, "settings.volume"),
    ({"settings": "debounce_seconds=30"}, "settings"),
    ({}, "settings"),
])
def test_api_refuses_bad_values_naming_the_key_and_changes_nothing(client, engine, world,
                                                                    body, path):
    reply = patch(client, world["keys"]["diskominfo"], body, site="20401234")
    assert reply.status_code == 400, reply.json
    error = reply.json["error"]
    assert error["code"] == "validation_error"
    assert path in error["message"]
    detail = error["details"][0]
    assert detail["path"].startswith(path) or path in detail["message"]
    assert count(engine, "site_settings") == 0


@pytest.mark.parametrize("who, query, status", [
    ("op_a", {"site": "20405678"}, 403),               # another site
    ("op_b", {"device": "A1"}, 404),                   # another site's device: not found
    ("op_a", {"site": "20401234", "device": "B1"}, 404),  # a device not of the site
    ("diskominfo", {"site": "99999999"}, 404),
    ("diskominfo", {"device": "dev_nothere"}, 404),
    ("diskominfo", {}, 400),                           # diskominfo must name a target
    ("device", {}, 401),                               # a device token is not an API key
    (None, {}, 401),
])
def test_api_scopes(client, engine, world, who, query, status):
    ids = {"A1": world["a1"].device_id, "B1": world["b1"].device_id}
    query = {k: ids.get(v, v) for k, v in query.items()}
    token = {None: "", "device": world["a1"].token}.get(who) or world["keys"].get(who, "")
    headers = bearer(token) if token else {}
    got = client.get(f"{API}/settings", query_string=query, headers=headers)
    assert got.status_code == status, got.json
    changed = client.patch(f"{API}/settings", query_string=query, headers=headers,
                           json={"settings": {"page_days": 2}})
    assert changed.status_code == status, changed.json
    assert count(engine, "site_settings") == 0 and count(engine, "device_settings") == 0


def test_operator_sets_its_own_site_by_default(client, world):
    reply = patch(client, world["keys"]["op_b"], {"settings": {"page_days": 5}})
    assert reply.status_code == 200 and reply.json["site"] == "20405678"
    assert roster(client, world["b1"])["settings"] == {"page_days": 5}
    assert roster(client, world["a1"])["settings"] == {}


# -- the command line --------------------------------------------------------------------------
def test_cli_show_set_unset(runner, world):
    a1 = world["a1"].device_id
    result = runner("device", "settings", "set", "--site", "20401234", "debounce_seconds", "25")
    assert result.exit_code == 0, result.output
    assert "site 20401234: debounce_seconds = 25 (set;" in result.output
    result = runner("device", "settings", "set", "--device", a1, "page_notice",
                    "Rapat guru 13:00")
    assert result.exit_code == 0, result.output
    result = runner("device", "settings", "show", "--device", a1, "--json")
    shown = json.loads(result.output)
    assert shown["settings"] == {"page_notice": "Rapat guru 13:00"}
    assert shown["effective"] == {"debounce_seconds": {"value": 25, "level": "site"},
                                  "page_notice": {"value": "Rapat guru 13:00",
                                                  "level": "device"}}
    text = runner("device", "settings", "show", "--device", a1).output
    assert "debounce_seconds = 25  [site]" in text and "by attendance-server" in text
    result = runner("device", "settings", "unset", "--site", "20401234", "debounce_seconds",
                    "page_days")
    assert result.exit_code == 0
    assert "debounce_seconds unset" in result.output and "page_days was not set" in result.output
    shown = json.loads(runner("device", "settings", "show", "--device", a1, "--json").output)
    assert list(shown["effective"]) == ["page_notice"]


@pytest.mark.parametrize("args, message", [
    (["set", "--site", "20401234", "debounce_seconds", "-5"],
     "debounce_seconds: must be a whole number from 0 to 3600, got -5"),
    (["set", "--site", "20401234", "speed", "5"], "speed: unknown setting"),
    (["set", "--site", "99999999", "page_days", "2"], "no site '99999999'"),
    (["set", "--device", "dev_nothere", "page_days", "2"], "no device 'dev_nothere'"),
    (["unset", "--site", "20401234", "speed"], "settings.speed: unknown setting"),
])
def test_cli_errors(runner, engine, world, args, message):
    result = runner("device", "settings", *args)
    assert result.exit_code == 1
    assert result.output.startswith("attendance-server: error: ") and message in result.output
    assert count(engine, "site_settings") == 0 and count(engine, "device_settings") == 0


def test_cli_needs_a_target(runner, world):
    result = runner("device", "settings", "show")
    assert result.exit_code == 2 and "give --site CODE or --device DEVICE_ID" in result.output


def test_heartbeat_reply_names_the_devices_interval(client, engine, world):
    a1, a2 = world["a1"], world["a2"]
    beat = {"boot_id": "b", "mono_ns": 1, "wall_time": "2026-11-24T07:00:00.000+07:00",
            "clock_synced": True, "backlog": 0, "oldest_unsent_at": None, "reader_ok": True,
            "readers": [], "versions": {}}

    def interval(device):
        reply = client.post(f"{API}/heartbeat", json=beat, headers=bearer(device.token))
        assert reply.status_code == 200, reply.json
        return reply.json["heartbeat_seconds"]

    assert interval(a1) == 60  # the server's [api] heartbeat_seconds
    with engine.begin() as conn:
        change_settings(conn, "20401234", None, {"heartbeat_seconds": 300}, "t")
        change_settings(conn, "20401234", a2.device_id, {"heartbeat_seconds": 20}, "t")
    assert (interval(a1), interval(a2)) == (300, 20)
