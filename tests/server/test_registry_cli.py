"""``attendance-server import …`` and ``attendance-server card …`` (CliRunner, both backends),
using the sample files of docs/samples."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.server.helpers import count, rows
from tests.server.registry_data import EMPLOYEES, write_csv

SAMPLES = Path(__file__).parent.parent.parent / "docs" / "samples"
BUDI, SITI, AGUS, DEWI = EMPLOYEES


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def imported(runner):
    ok(runner("import", "sites", str(SAMPLES / "sites.csv")))
    ok(runner("import", "employees", str(SAMPLES / "employees.csv")))
    ok(runner("import", "students", str(SAMPLES / "students-dapodik.csv")))
    ok(runner("import", "cards", str(SAMPLES / "cards.csv")))


def test_every_registry_command_has_help(runner):
    from server.cli import main

    for group in ("import", "card"):
        for name, command in main.commands[group].commands.items():
            assert (command.help or "").strip(), f"{group} {name}"
            for param in command.params:
                if param.param_type_name == "option":
                    assert (param.help or "").strip(), f"{group} {name} {param.name}"
        assert "Usage:" in ok(runner(group, "--help"))
    assert "--dry-run" in ok(runner("import", "employees", "--help"))


def test_import_the_samples(engine, runner):
    out = ok(runner("import", "sites", str(SAMPLES / "sites.csv")))
    assert "sites: 4 new, 0 changes, 0 unchanged" in out and out.rstrip().endswith("applied")
    out = ok(runner("import", "employees", "--dry-run", str(SAMPLES / "employees.csv")))
    assert "4 joiners" in out and "dry run: nothing was written" in out
    assert count(engine, "people") == 0
    ok(runner("import", "employees", str(SAMPLES / "employees.csv")))
    out = ok(runner("import", "students", str(SAMPLES / "students-dapodik.csv")))
    assert "students of 20401234: 3 joiners" in out
    out = ok(runner("import", "students", "--npsn", "20401234", "--format", "dapodik-json",
                    str(SAMPLES / "students-dapodik.json")))
    assert "nothing to change" in out
    out = ok(runner("import", "cards", "--json", str(SAMPLES / "cards.csv")))
    diff = json.loads(out)
    assert (diff["registry"], diff["applied"], diff["counts"]["new"]) == ("cards", True, 7)
    assert {c["key"] for c in diff["new"]} >= {"04A1B2C3D4E5F7", "1A2B3C4D"}
    assert count(engine, "people") == 7 and count(engine, "cards") == 7
    out = ok(runner("import", "cards", str(SAMPLES / "cards.csv")))
    assert "nothing to change" in out


def test_problems_are_listed_and_nothing_is_imported(engine, runner, tmp_path):
    ok(runner("import", "sites", str(SAMPLES / "sites.csv")))
    bad = write_csv(tmp_path / "employees.csv", ("nip", "name", "site_code"), [
        ("198513322010031002", "Budi", "OPD-DISDIK"),
        (SITI.nip, "Siti", "OPD-NOWHERE")])
    result = runner("import", "employees", str(bad))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{bad}:2: nip: NIP birth date 19851332 is not a real date" in lines
    assert any(line.startswith(f"{bad}:3: site_code: unknown site OPD-NOWHERE") for line in lines)
    assert f"attendance-server: error: {bad}: 2 problems, nothing was imported" in lines
    assert count(engine, "people") == 0
    result = runner("import", "employees", str(tmp_path / "missing.csv"))
    assert result.exit_code == 1 and "cannot read the file" in result.output


def test_effective_option(engine, runner):
    ok(runner("import", "sites", str(SAMPLES / "sites.csv")))
    ok(runner("import", "employees", "--effective", "2026-01-05",
              str(SAMPLES / "employees.csv")))
    assert {str(r["valid_from"]) for r in rows(engine, "SELECT valid_from FROM person_sites")} \
        == {"2026-01-05"}
    result = runner("import", "employees", "--effective", "2999-01-01",
                    str(SAMPLES / "employees.csv"))
    assert result.exit_code == 1 and "--effective: 2999-01-01 is after today" in result.output


def test_card_lifecycle_commands(engine, runner, imported):
    uid = "04A1B2C3D4E5F6"
    out = ok(runner("card", "show", uid))
    assert f"holder   {BUDI.nip} Budi Santoso" in out and "status   active" in out
    now = datetime.now(timezone.utc).isoformat()
    assert "lost from" in ok(runner("card", "lost", uid, "--at", now))
    assert "already lost" in ok(runner("card", "lost", uid))
    shown = json.loads(ok(runner("card", "show", "--json", uid)))
    assert (shown["status"], shown["gate_status"]) == ("lost", "lost")
    assert [h["status"] for h in shown["history"]] == ["active", "lost"]
    ok(runner("card", "unblock", uid))
    ok(runner("card", "block", uid))
    assert json.loads(ok(runner("card", "show", "--json", uid)))["status"] == "blocked"

    out = ok(runner("card", "replace", uid, "04:99:88:77:66:55:44"))
    assert f"replaced by 04998877665544 for {BUDI.nip}" in out
    result = runner("card", "unblock", uid)
    assert result.exit_code == 1 and "was replaced" in result.output

    out = ok(runner("card", "bind", "04998877665544", "--nik", SITI.nik))
    assert f"given to {SITI.nip}" in out
    out = ok(runner("card", "bind", "04998877665544", "--nip", SITI.nip))
    assert "already belongs" in out
    out = ok(runner("card", "bind", "04123456", "--nip", AGUS.nip, "--valid-to", "2030-12-31"))
    assert f"registered to {AGUS.nip}" in out
    result = runner("card", "bind", "08123456", "--nip", AGUS.nip)
    assert result.exit_code == 1 and "random" in result.output
    result = runner("card", "bind", "04123457", "--nip", "199999999999999999")
    assert result.exit_code == 1 and "attendance-server: error: no person" in result.output
    result = runner("card", "show", "04000000")
    assert result.exit_code == 1 and "no card 04000000" in result.output
    assert "site(s) checked" in ok(runner("card", "refresh"))
