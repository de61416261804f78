"""Fleet alerts: the pure rules (tables of cases at and just over every threshold), the
``[alerts]`` configuration, ``GET /api/v1/alerts`` with its roles and filters on both
databases, ``attendance-server device alerts`` and its exit code, and the dashboard."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server import alerts, apikeys
from server.alerts import Alert, Thresholds, device_alerts, evaluate
from server.config import AlertsSettings, ConfigError, load_settings
from server.db import utcnow
from server.openapi import DOCUMENT, SCHEMA_URI
from server.schema import devices
from server.web import PREFIX
from tests.server.helpers import make_site
from tests.server.web_helpers import login, make_user

EXAMPLE = Path(__file__).parents[2] / "provisioning" / "server.example.toml"
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
READER = {"name": "ACR122U", "driver": "pcsc", "connected": True, "error": None}
DOWN = {"name": "PN532", "driver": "nfc", "connected": False, "error": "reader unplugged"}


def row(**changes: Any) -> dict[str, Any]:
    """A healthy device row (the columns server.alerts reads), with ``changes``."""
    base = {"device_id": "dev_a", "name": "gerbang", "site_code": "S1",
            "created_at": NOW - timedelta(days=30), "revoked_at": None,
            "last_seen_at": NOW - MIN, "backlog": 0, "oldest_unsent_at": None,
            "reader_ok": True, "readers": [READER], "clock_offset_ms": 250}
    return {**base, **changes}


def found(alert_list: list[Alert]) -> list[tuple[str, str, float | None]]:
    return [(a.kind, a.severity, a.threshold) for a in alert_list]


# -- the pure rules ---------------------------------------------------------------------------
RULE_CASES = [
    ("healthy", {}, []),
    ("silent exactly at the warning", {"last_seen_at": NOW - 120 * MIN}, []),
    ("silent just over the warning", {"last_seen_at": NOW - 120 * MIN - SEC},
     [("silent", "warning", 120.0)]),
    ("silent exactly at the critical", {"last_seen_at": NOW - 4320 * MIN},
     [("silent", "warning", 120.0)]),
    ("silent just over the critical", {"last_seen_at": NOW - 4320 * MIN - SEC},
     [("silent", "critical", 4320.0)]),
    ("never seen, enrolled a minute ago", {"last_seen_at": None, "created_at": NOW - MIN,
                                           "reader_ok": None, "readers": None,
                                           "clock_offset_ms": None, "backlog": None}, []),
    ("never seen, exactly at the warning", {"last_seen_at": None,
                                            "created_at": NOW - 120 * MIN}, []),
    ("never seen, just over the warning", {"last_seen_at": None,
                                           "created_at": NOW - 120 * MIN - SEC},
     [("never_seen", "warning", 120.0)]),
    ("never seen, just over the critical", {"last_seen_at": None,
                                            "created_at": NOW - 4320 * MIN - SEC},
     [("never_seen", "critical", 4320.0)]),
    ("backlog exactly at the warning", {"backlog": 5, "oldest_unsent_at": NOW - 60 * MIN}, []),
    ("backlog just over the warning", {"backlog": 5, "oldest_unsent_at": NOW - 60 * MIN - SEC},
     [("backlog", "warning", 60.0)]),
    ("backlog exactly at the critical", {"backlog": 5, "oldest_unsent_at": NOW - 2880 * MIN},
     [("backlog", "warning", 60.0)]),
    ("backlog just over the critical", {"backlog": 5,
                                        "oldest_unsent_at": NOW - 2880 * MIN - SEC},
     [("backlog", "critical", 2880.0)]),
    ("empty backlog with a stale oldest time", {"backlog": 0,
                                                "oldest_unsent_at": NOW - 3000 * MIN}, []),
    ("clock exactly at the warning", {"clock_offset_ms": 120_000}, []),
    ("clock just ahead of the warning", {"clock_offset_ms": 120_001},
     [("clock_offset", "warning", 120.0)]),
    ("clock just behind the warning", {"clock_offset_ms": -120_001},
     [("clock_offset", "warning", 120.0)]),
    ("clock exactly at the critical", {"clock_offset_ms": -600_000},
     [("clock_offset", "warning", 120.0)]),
    ("clock just over the critical", {"clock_offset_ms": 600_001},
     [("clock_offset", "critical", 600.0)]),
    ("its only reader down", {"reader_ok": False, "readers": [DOWN]},
     [("reader_down", "critical", None)]),
    ("one of two readers down", {"reader_ok": False, "readers": [READER, DOWN]},
     [("reader_down", "warning", None)]),
    ("reader_ok false without a list", {"reader_ok": False, "readers": []},
     [("reader_down", "critical", None)]),
    ("reader state unknown", {"reader_ok": None, "readers": [{**READER, "connected": None}]},
     []),
    ("revoked with everything wrong", {"revoked_at": NOW - 1000 * MIN,
                                       "last_seen_at": NOW - 9000 * MIN, "backlog": 9,
                                       "oldest_unsent_at": NOW - 9000 * MIN,
                                       "clock_offset_ms": 10**7, "reader_ok": False,
                                       "readers": [DOWN]}, []),
    ("silent for days with its last heartbeat's troubles",
     {"last_seen_at": NOW - 5000 * MIN, "backlog": 12, "oldest_unsent_at": NOW - 5100 * MIN,
      "clock_offset_ms": -200_000, "reader_ok": False, "readers": [DOWN]},
     [("silent", "critical", 4320.0), ("backlog", "critical", 2880.0),
      ("clock_offset", "warning", 120.0), ("reader_down", "critical", None)]),
]


@pytest.mark.parametrize("changes, expected", [c[1:] for c in RULE_CASES],
                         ids=[c[0] for c in RULE_CASES])
def test_rules(changes, expected):
    assert found(device_alerts(row(**changes), Thresholds(), NOW)) == expected


def test_what_an_alert_says():
    last = NOW - 150 * MIN
    result = device_alerts(row(last_seen_at=last, backlog=37, oldest_unsent_at=NOW - 200 * MIN,
                               clock_offset_ms=-185_250, reader_ok=False,
                               readers=[READER, DOWN]), Thresholds(), NOW)
    by_kind = {a.kind: a for a in result}
    assert by_kind["silent"].to_dict() == {
        "kind": "silent", "severity": "warning", "device_id": "dev_a", "device_name": "gerbang",
        "site": "S1", "since": "2026-11-22T22:30:00.000Z", "value": 150.0,
        "threshold": 120.0, "unit": "minutes", "detail": {}}
    assert (by_kind["backlog"].since, by_kind["backlog"].value,
            by_kind["backlog"].detail) == (NOW - 200 * MIN, 200.0, {"backlog": 37})
    assert (by_kind["clock_offset"].value, by_kind["clock_offset"].unit,
            by_kind["clock_offset"].since) == (-185.25, "seconds", last)
    assert by_kind["reader_down"].to_dict()["detail"] == {
        "readers": [{"name": "PN532", "error": "reader unplugged"}], "readers_reported": 2}
    assert by_kind["reader_down"].value == 1 and by_kind["reader_down"].unit == "readers"


def test_a_threshold_of_zero_turns_its_level_off():
    quiet = Thresholds(silent_warning_minutes=0, clock_offset_critical_seconds=0)
    assert found(device_alerts(row(last_seen_at=NOW - 1000 * MIN), quiet, NOW)) == []
    assert found(device_alerts(row(last_seen_at=NOW - 5000 * MIN), quiet, NOW)) == [
        ("silent", "critical", 4320.0)]
    assert found(device_alerts(row(clock_offset_ms=10**7), quiet, NOW)) == [
        ("clock_offset", "warning", 120.0)]


def test_evaluate_lists_critical_first_then_by_site_and_device():
    rows = [row(device_id="dev_b", name="b", site_code="S2", clock_offset_ms=300_000),
            row(device_id="dev_c", name="c", site_code="S1", clock_offset_ms=700_000),
            row(device_id="dev_a", name="a", site_code="S2", reader_ok=False, readers=[DOWN],
                last_seen_at=NOW - 200 * MIN),
            row(device_id="dev_d", name="d", site_code="S1", revoked_at=NOW,
                reader_ok=False, readers=[DOWN])]
    result = evaluate(rows, Thresholds(), NOW)
    assert [(a.severity, a.site, a.device_id, a.kind) for a in result] == [
        ("critical", "S1", "dev_c", "clock_offset"),
        ("critical", "S2", "dev_a", "reader_down"),
        ("warning", "S2", "dev_a", "silent"),
        ("warning", "S2", "dev_b", "clock_offset")]
    assert alerts.counts(result) == {"critical": 2, "warning": 2}
    assert alerts.counts([]) == {"critical": 0, "warning": 0}


@pytest.mark.parametrize("values, message", [
    ({"silent_warning_minutes": -1}, "silent_warning_minutes: must be 0 (off) or more"),
    ({"backlog_warning_minutes": 90, "backlog_critical_minutes": 30},
     "backlog_critical_minutes: must not be below backlog_warning_minutes"),
    ({"clock_offset_warning_seconds": "soon"}, "clock_offset_warning_seconds: expected a number"),
    ({"silent_critical_minutes": True}, "silent_critical_minutes: expected a number"),
    ({"silent_critical_minutes": float("nan")}, "silent_critical_minutes: must be 0"),
    ({"silent_minutes": 5}, "silent_minutes: unknown key"),
])
def test_bad_thresholds_name_the_key(values, message):
    with pytest.raises(ValueError) as info:
        Thresholds.from_dict(values)
    assert str(info.value).startswith(message)


# -- configuration ----------------------------------------------------------------------------
def test_example_file_documents_the_alert_defaults():
    data = tomllib.loads(EXAMPLE.read_text())["alerts"]
    defaults = dataclasses.asdict(AlertsSettings())
    assert data == defaults == Thresholds().to_dict()
    settings = load_settings(EXAMPLE, environ={})
    assert settings.flask_config()["ALERT_THRESHOLDS"] == defaults


def test_alert_thresholds_from_file_and_environment(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("[alerts]\nsilent_warning_minutes = 30\nbacklog_critical_minutes = 0\n")
    s = load_settings(config, environ={"ATTENDANCE_ALERTS_CLOCK_OFFSET_WARNING_SECONDS": "45.5"})
    assert (s.alerts.silent_warning_minutes, s.alerts.backlog_critical_minutes,
            s.alerts.clock_offset_warning_seconds) == (30.0, 0.0, 45.5)


@pytest.mark.parametrize("text, env, message", [
    ("[alerts]\nsilent_warning_minutes = 'x'\n", {},
     "[alerts] silent_warning_minutes: expected a number"),
    ("[alerts]\nsilent_minutes = 5\n", {}, "[alerts] silent_minutes: unknown key"),
    ("[alerts]\nsilent_critical_minutes = 60\n", {},
     "[alerts] silent_critical_minutes: must not be below silent_warning_minutes"),
    ("", {"ATTENDANCE_ALERTS_BACKLOG_WARNING_MINUTES": "-5"},
     "ATTENDANCE_ALERTS_BACKLOG_WARNING_MINUTES: must be 0 (off) or more"),
    ("", {"ATTENDANCE_ALERTS_CLOCK_OFFSET_CRITICAL_SECONDS": "lots"},
     "ATTENDANCE_ALERTS_CLOCK_OFFSET_CRITICAL_SECONDS: expected a number"),
])
def test_bad_alert_configuration_names_the_key(tmp_path, text, env, message):
    config = tmp_path / "server.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ=env)
    assert message in str(info.value)


def test_the_documents_kinds_are_the_rules_kinds():
    schema = DOCUMENT["components"]["schemas"]["FleetAlert"]["properties"]
    assert schema["kind"]["enum"] == list(alerts.KINDS)
    assert schema["severity"]["enum"] == list(alerts.SEVERITIES)


# -- a small fleet in the database ------------------------------------------------------------
def add_device(engine: Any, site: str, name: str, **health: Any) -> str:
    device_id = f"dev_{uuid.uuid4().hex[:12]}"
    values = {"created_at": utcnow() - timedelta(days=30), **health}
    with engine.begin() as conn:
        conn.execute(devices.insert().values(device_id=device_id, site_code=site, name=name,
                                             hardware_id="pi-test",
                                             token_hash=uuid.uuid4().hex, **values))
    return device_id


@pytest.fixture
def fleet(engine):
    """Sites S1 and S2: at S1 a silent device (critical) and a healthy one; at S2 a device
    whose reader is down and clock off, one never seen, and a revoked silent one."""
    now = utcnow()
    make_site(engine, "S1", "SDN 1")
    make_site(engine, "S2", "Dinas 2", "Asia/Makassar")
    ids = {
        "silent": add_device(engine, "S1", "gerbang", last_seen_at=now - timedelta(days=4),
                             backlog=12, oldest_unsent_at=now - timedelta(days=4, minutes=5),
                             reader_ok=True, readers=[READER], clock_offset_ms=100),
        "healthy": add_device(engine, "S1", "samping", last_seen_at=now - MIN, backlog=0,
                              reader_ok=True, readers=[READER], clock_offset_ms=-40),
        "reader": add_device(engine, "S2", "lobi", last_seen_at=now - MIN, backlog=0,
                             reader_ok=False, readers=[DOWN], clock_offset_ms=150_000),
        "never": add_device(engine, "S2", "cadangan", created_at=now - 200 * MIN),
        "revoked": add_device(engine, "S2", "lama", last_seen_at=now - timedelta(days=40),
                              revoked_at=now - timedelta(days=30)),
    }
    with engine.begin() as conn:
        keys = {"diskominfo": apikeys.create_key(conn, "NOC", "diskominfo").token,
                "S1": apikeys.create_key(conn, "operator S1", "operator", "S1").token,
                "S2": apikeys.create_key(conn, "operator S2", "operator", "S2").token}
    return {"ids": ids, "keys": keys}


def get_alerts(client, token, **params):
    return client.get("/api/v1/alerts", query_string=params,
                      headers={"Authorization": f"Bearer {token}"})


def listed(reply) -> list[tuple[str, str, str]]:
    return [(a["device_id"], a["kind"], a["severity"]) for a in reply.json["alerts"]]


def validate(reply, name):
    registry = Registry().with_resource(SCHEMA_URI, Resource(contents=DOCUMENT,
                                                             specification=DRAFT202012))
    Draft202012Validator({"$ref": f"{SCHEMA_URI}#/components/schemas/{name}"},
                         registry=registry).validate(reply.json)


# -- the API ----------------------------------------------------------------------------------
def test_api_lists_every_sites_alerts_for_diskominfo(client, fleet):
    ids, keys = fleet["ids"], fleet["keys"]
    reply = get_alerts(client, keys["diskominfo"])
    assert reply.status_code == 200, reply.json
    validate(reply, "AlertsReply")
    assert listed(reply) == [(ids["silent"], "silent", "critical"),
                             (ids["silent"], "backlog", "critical"),
                             (ids["reader"], "reader_down", "critical"),
                             (ids["never"], "never_seen", "warning"),
                             (ids["reader"], "clock_offset", "warning")]
    assert reply.json["counts"] == {"critical": 3, "warning": 2}
    assert reply.json["thresholds"] == Thresholds().to_dict()
    silent = reply.json["alerts"][0]
    assert silent["site"] == "S1" and silent["device_name"] == "gerbang"
    assert silent["threshold"] == 4320.0 and silent["value"] >= 4 * 24 * 60
    assert ids["revoked"] not in json.dumps(reply.json)


@pytest.mark.parametrize("params, expected", [
    ({"site": "S1"}, [("silent", "silent", "critical"), ("silent", "backlog", "critical")]),
    ({"kind": "reader_down"}, [("reader", "reader_down", "critical")]),
    ({"severity": "warning"}, [("never", "never_seen", "warning"),
                               ("reader", "clock_offset", "warning")]),
    ({"site": "S2", "kind": "silent"}, []),
])
def test_api_filters(client, fleet, params, expected):
    reply = get_alerts(client, fleet["keys"]["diskominfo"], **params)
    assert reply.status_code == 200, reply.json
    assert listed(reply) == [(fleet["ids"][d], k, s) for d, k, s in expected]


def test_an_operator_key_sees_its_own_site_only(client, fleet):
    ids, keys = fleet["ids"], fleet["keys"]
    own = get_alerts(client, keys["S2"])
    assert own.status_code == 200
    assert {a["site"] for a in own.json["alerts"]} == {"S2"}
    assert listed(own) == [(ids["reader"], "reader_down", "critical"),
                           (ids["never"], "never_seen", "warning"),
                           (ids["reader"], "clock_offset", "warning")]
    assert listed(get_alerts(client, keys["S2"], site="S2")) == listed(own)
    other = get_alerts(client, keys["S2"], site="S1")
    assert other.status_code == 403 and other.json["error"]["code"] == "forbidden"
    assert ids["silent"] not in other.get_data(as_text=True)
    # Another site's code or a made-up one: the same 403, so an operator cannot probe.
    assert get_alerts(client, keys["S2"], site="NOPE").status_code == 403


@pytest.mark.parametrize("params, status, path", [
    ({"kind": "offline"}, 400, "kind"),
    ({"severity": "fatal"}, 400, "severity"),
    ({"site": "bad code!"}, 400, "site"),
    ({"site": "NOPE"}, 404, None),
])
def test_bad_filters_are_json_errors(client, fleet, params, status, path):
    reply = get_alerts(client, fleet["keys"]["diskominfo"], **params)
    assert reply.status_code == status
    assert reply.is_json and "error" in reply.json
    assert str(status) in DOCUMENT["paths"]["/alerts"]["get"]["responses"]
    if path:
        assert [d["path"] for d in reply.json["error"]["details"]] == [path]


def test_api_needs_an_api_key(client, fleet, device):
    assert get_alerts(client, "").status_code == 401
    reply = client.get("/api/v1/alerts", headers=device.headers)  # a device token
    assert reply.status_code == 401 and "API key" in reply.json["error"]["message"]


def test_api_uses_the_configured_thresholds(database_url, fleet):
    from server.app import create_app

    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "ALERT_THRESHOLDS": {"silent_critical_minutes": 0,
                                           "backlog_critical_minutes": 0,
                                           "clock_offset_warning_seconds": 200}})
    try:
        reply = get_alerts(app.test_client(), fleet["keys"]["S1"])
        assert listed(reply) == [(fleet["ids"]["silent"], "silent", "warning"),
                                 (fleet["ids"]["silent"], "backlog", "warning")]
        assert reply.json["thresholds"]["silent_critical_minutes"] == 0
        assert get_alerts(app.test_client(), fleet["keys"]["S2"],
                          kind="clock_offset").json["alerts"] == []
    finally:
        app.extensions["attendance"].engine.dispose()


def test_a_heartbeat_clears_the_silence(client, engine, fleet, device):
    """A real device enrolled and heard over HTTP raises nothing; put back in time it does."""
    token = fleet["keys"]["diskominfo"]
    beat = {"boot_id": "boot-1", "mono_ns": 10**9, "wall_time": utcnow().isoformat(),
            "clock_synced": True, "backlog": 0, "reader_ok": True, "readers": [READER]}
    assert client.post("/api/v1/heartbeat", json=beat, headers=device.headers).status_code == 200
    assert device.device_id not in json.dumps(get_alerts(client, token).json)
    with engine.begin() as conn:
        conn.execute(devices.update().where(devices.c.device_id == device.device_id)
                     .values(last_seen_at=utcnow() - 121 * MIN))
    assert (device.device_id, "silent", "warning") in listed(get_alerts(client, token))
    assert client.post("/api/v1/heartbeat", json={**beat, "mono_ns": 2 * 10**9},
                       headers=device.headers).status_code == 200
    assert device.device_id not in json.dumps(get_alerts(client, token).json)


# -- the command line -------------------------------------------------------------------------
def test_cli_exit_code_is_2_when_an_alert_is_critical(runner, fleet):
    ids = fleet["ids"]
    result = runner("device", "alerts")
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0] == "CRITICAL: 3 critical, 2 warning alert(s)"
    assert ids["silent"] in lines[1] and "silent" in lines[1] and "> 4320" in lines[1]
    assert ids["revoked"] not in result.output
    as_json = runner("device", "alerts", "--json", "--site", "S2")
    assert as_json.exit_code == 2
    parsed = [json.loads(line) for line in as_json.output.splitlines()]
    assert [(a["device_id"], a["kind"]) for a in parsed] == [
        (ids["reader"], "reader_down"), (ids["never"], "never_seen"),
        (ids["reader"], "clock_offset")]


def test_cli_exit_code_is_0_with_warnings_only_or_none(runner, fleet, engine):
    with engine.begin() as conn:
        conn.execute(devices.update().where(devices.c.device_id == fleet["ids"]["silent"])
                     .values(last_seen_at=utcnow() - 130 * MIN, backlog=0))
    result = runner("device", "alerts", "--site", "S1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "WARNING: 0 critical, 1 warning alert(s) at site S1"
    quiet = runner("device", "alerts", "--site", "S1",
                   env={"ATTENDANCE_ALERTS_SILENT_WARNING_MINUTES": "600"})
    assert (quiet.exit_code, quiet.output) == (0, "OK: 0 critical, 0 warning alert(s) at site "
                                                  "S1\n")
    assert runner("device", "alerts", "--site", "S1", "--json",
                  env={"ATTENDANCE_ALERTS_SILENT_WARNING_MINUTES": "600"}).output == ""


def test_cli_errors(runner, fleet):
    unknown = runner("device", "alerts", "--site", "NOPE")
    assert unknown.exit_code == 1
    assert unknown.output.startswith("attendance-server: error: no site 'NOPE'")
    bad = runner("device", "alerts", env={"ATTENDANCE_ALERTS_SILENT_CRITICAL_MINUTES": "1"})
    assert bad.exit_code == 1
    assert ("attendance-server: error: ATTENDANCE_ALERTS_SILENT_CRITICAL_MINUTES: must not be "
            "below") in bad.output


# -- the dashboard ----------------------------------------------------------------------------
def alert_rows(page: str) -> list[tuple[str, str, str]]:
    import re

    table = page.split('id="alert-table"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-alert-device="([^"]*)" data-kind="([^"]*)" data-severity="([^"]*)"',
                      table)


def test_fleet_page_shows_the_alerts_and_the_menu_counts_them(client, engine, fleet):
    ids = fleet["ids"]
    make_user(engine, "noc")
    make_user(engine, "op.s1", "operator", "S1")
    assert login(client, "noc").status_code == 302
    page = client.get(PREFIX + "/fleet").get_data(as_text=True)
    assert alert_rows(page) == [(ids["silent"], "silent", "critical"),
                                (ids["silent"], "backlog", "critical"),
                                (ids["reader"], "reader_down", "critical"),
                                (ids["never"], "never_seen", "warning"),
                                (ids["reader"], "clock_offset", "warning")]
    assert "3 kritis, 2 peringatan" in page and "Pembaca kartu mati" in page
    assert "reader unplugged" in page and "12 tap" in page
    # The menu of every page counts them (red: one is critical).
    other = client.get(PREFIX + "/anomalies").get_data(as_text=True)
    assert 'class="badge bad" id="nav-alerts"' in other
    assert other.split('id="nav-alerts"', 1)[1].split(">", 2)[1].startswith("5<")
    english = client.get(PREFIX + "/fleet?lang=en").get_data(as_text=True)
    assert "3 critical, 2 warnings" in english and "Card reader down" in english
    only = client.get(PREFIX + "/fleet?site=S2").get_data(as_text=True)
    assert {d for d, _, _ in alert_rows(only)} == {ids["reader"], ids["never"]}

    operator = client.application.test_client()
    assert login(operator, "op.s1").status_code == 302
    own = operator.get(PREFIX + "/fleet").get_data(as_text=True)
    assert {d for d, _, _ in alert_rows(own)} == {ids["silent"]}
    assert ids["reader"] not in own and ids["never"] not in own


def test_a_healthy_fleet_has_no_alerts_and_no_badge(client, engine):
    make_site(engine, "S1", "SDN 1")
    add_device(engine, "S1", "gerbang", last_seen_at=utcnow() - MIN, backlog=0,
               reader_ok=True, readers=[READER], clock_offset_ms=5)
    make_user(engine, "noc")
    login(client, "noc")
    page = client.get(PREFIX + "/fleet").get_data(as_text=True)
    assert 'id="alert-table"' not in page and 'id="nav-alerts"' not in page
    assert "Tidak ada peringatan" in page
