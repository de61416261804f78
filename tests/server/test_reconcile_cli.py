"""``attendance-server reconcile`` and the ``[attendance]`` configuration."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from server.attendance_rules import RulesConfig
from server.config import ConfigError, load_settings
from tests.server.attendance_data import (MONDAY, UTC, WIB, add_device, add_person, add_site,
                                          at, attendance, insert_taps, queue_rows)

EXAMPLE = Path(__file__).parents[2] / "provisioning" / "server.example.toml"


@pytest.fixture
def city(engine):
    for code in ("S1", "S2"):
        add_site(engine, code)
        device = add_device(engine, code, last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
        add_person(engine, f"P-{code}", code, card=f"C-{code}")
    insert_taps(engine, device, [("C-S2", at(MONDAY, "07:45")), ("C-S2", at(MONDAY, "16:00"))])
    return engine


def test_reconcile_a_date_range(runner, city):
    result = runner("reconcile", "--date", "2026-11-16", "--to", "2026-11-17")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("S1 2026-11-16: 1 expected [A 1]")
    assert lines[1].startswith("S2 2026-11-16: 1 expected [H 1] codes [TL1 1]")
    assert len(lines) == 4 and "4 site day(s) reconciled; 4 attendance row(s) changed" in \
        result.stderr
    again = runner("reconcile", "--date", "2026-11-16", "--site", "S2", "--json")
    [summary] = [json.loads(line) for line in again.stdout.splitlines()]
    assert summary["site_code"] == "S2" and summary["changed"] == 0
    assert summary["statuses"] == {"H": 1} and summary["pending"] is False


def test_reconcile_queued_and_catch_up(runner, city):
    out = runner("reconcile", "--catch-up")
    assert out.exit_code == 0 and "catch-up:" in out.stderr
    assert attendance(city)[("P-S2", MONDAY)]["status"] == "H"
    # Only today (not over yet) may stay queued, as pending.
    assert {reason for reason in queue_rows(city).values()} <= {"pending"}
    assert runner("reconcile", "--queued").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["reconcile"], "give --date"),
    (["reconcile", "--to", "2026-11-16"], "--to needs --date"),
    (["reconcile", "--site", "S1"], "--site needs --date"),
])
def test_reconcile_usage_errors(runner, city, args, message):
    result = runner(*args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("args, message", [
    (["reconcile", "--date", "2026-11-16", "--to", "2026-11-01"], "is before --date"),
    (["reconcile", "--date", "2025-01-01", "--to", "2026-11-01"], "more than 366 days"),
    (["reconcile", "--date", "2026-11-16", "--site", "NOPE"], "no site 'NOPE'"),
])
def test_reconcile_errors(runner, city, args, message):
    result = runner(*args)
    assert result.exit_code == 1
    assert result.output.startswith("attendance-server: error: ") and message in result.output


def test_reconcile_uses_the_configured_rules(runner, city, tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("[attendance]\nlate_brackets = [10, 20, 90]\n"
                      "late_names = ['T1', 'T2', 'T3', 'T4']\n")
    result = runner("reconcile", "--date", "2026-11-16", "--site", "S2",
                    env={"ATTENDANCE_SERVER_CONFIG": str(config)})
    assert "codes [T2 1]" in result.stdout  # 15 minutes late


# -- configuration -------------------------------------------------------------------------------
def test_example_file_documents_the_attendance_section():
    data = tomllib.loads(EXAMPLE.read_text())["attendance"]
    defaults = load_settings(environ={}).attendance
    assert set(data) == {f.name for f in dataclasses.fields(defaults)}
    for key in data:
        assert data[key] == getattr(defaults, key), key
    assert load_settings(EXAMPLE, environ={}).flask_config()["RECONCILE_INTERVAL_SECONDS"] == 60


def test_attendance_settings_reach_the_app_config(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("[attendance]\nreconcile_interval_seconds = 0\nmany_taps = 10\n"
                      "[attendance.deduction_weights]\nA = 5\n")
    flask = load_settings(config, environ={"ATTENDANCE_ATTENDANCE_TRAVEL_MINUTES": "45",
                                           "ATTENDANCE_ATTENDANCE_EARLY_BRACKETS": "15,30,45"}
                          ).flask_config()
    assert flask["RECONCILE_INTERVAL_SECONDS"] == 0
    rules = RulesConfig.from_dict(flask["ATTENDANCE_RULES"])
    assert (rules.many_taps, rules.travel_minutes, rules.early_brackets) == (10, 45, (15, 30, 45))
    assert rules.weight("A") == 5 and rules.weight("TL1") == 0.5


def test_renamed_codes_keep_the_weights_that_still_apply(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("[attendance]\nlate_names = ['T1', 'T2', 'T3', 'T4']\n")
    rules = RulesConfig.from_dict(load_settings(config, environ={}).attendance.rules())
    assert rules.weight("T1") == 0 and rules.weight("PSW1") == 0.5


@pytest.mark.parametrize("text, env, message", [
    ("[attendance]\nlate_brackets = [30, 20, 90]\n", {},
     "[attendance] late_brackets: late_brackets[1]: 20 is not above 30"),
    ("[attendance]\nlate_names = ['A1']\n", {}, "[attendance] late_names: 1 names for 3"),
    ("[attendance]\nmany_taps = 0\n", {}, "[attendance] many_taps: 0 must be"),
    ("[attendance]\nlate_brackets = 30\n", {}, "[attendance] late_brackets: expected a list"),
    ("[attendance]\nreconcile_interval_seconds = -1\n", {}, "must be 0 (off) or more"),
    ("[attendance.deduction_weights]\nXX = 1\n", {}, "deduction_weights.XX: unknown code"),
    ("", {"ATTENDANCE_ATTENDANCE_DEDUCTION_WEIGHTS": "A"},
     "ATTENDANCE_ATTENDANCE_DEDUCTION_WEIGHTS: expected CODE=NUMBER pairs"),
    ("", {"ATTENDANCE_ATTENDANCE_LATE_NAMES": "[oops"}, "not valid JSON"),
])
def test_bad_attendance_settings_name_the_key(tmp_path, text, env, message):
    config = tmp_path / "server.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ=env)
    assert message in str(info.value)


def test_bad_rules_given_to_the_app_fail_at_start(database_url):
    from server.app import create_app

    with pytest.raises(ValueError, match="many_taps"):
        create_app({"DATABASE_URL": database_url, "ATTENDANCE_RULES": {"many_taps": 0}})


def test_today_is_never_taken_for_over(runner, city):
    today = datetime.now(UTC).astimezone(WIB).date()
    result = runner("reconcile", "--date", today.isoformat(), "--site", "S1", "--json")
    summary = json.loads(result.stdout)
    assert summary["pending"] is True and summary["expected"] == 1  # PENDING, or LIBUR
