"""The attendance-server command line (click's CliRunner against the test database)."""

import json

import pytest

from server.cli import main
from tests.server.helpers import make_tap, rows


def test_every_command_has_help():
    def walk(cmd, prefix):
        yield prefix, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{prefix} {name}")

    names = []
    for name, cmd in walk(main, "attendance-server"):
        assert (cmd.help or "").strip(), name
        names.append(name)
    assert {"attendance-server init-db", "attendance-server migrate", "attendance-server run",
            "attendance-server site add", "attendance-server site list",
            "attendance-server device add", "attendance-server device list",
            "attendance-server device revoke", "attendance-server roster import",
            "attendance-server taps"} <= set(names)


def test_init_db_and_migrate(runner, tmp_path):
    url = f"sqlite:///{tmp_path}/fresh/server.db"
    first = runner("init-db", env={"DATABASE_URL": url})
    assert first.exit_code == 0 and "database created" in first.output
    again = runner("init-db", env={"DATABASE_URL": url})
    assert "already up to date" in again.output
    assert "nothing to do" in runner("migrate", env={"DATABASE_URL": url}).output


def test_site_add_and_list(runner):
    assert runner("site", "add", "20401234", "--name", "SDN 001 Pekanbaru",
                  "--timezone", "Asia/Jakarta").exit_code == 0
    runner("site", "add", "OPD-1.2", "--name", "Dinas Pendidikan", "--timezone", "Asia/Jayapura")
    out = runner("site", "list").output
    assert "20401234" in out and "Asia/Jayapura" in out
    listed = [json.loads(line) for line in runner("site", "list", "--json").output.splitlines()]
    assert listed[0]["code"] == "20401234" and listed[0]["devices"] == 0


@pytest.mark.parametrize("args, message", [
    (["site", "add", "X", "--name", "y", "--timezone", "Mars/Base"], "is not an IANA zone"),
    (["site", "add", "bad code!", "--name", "y", "--timezone", "Asia/Jakarta"], "site code"),
    (["site", "add", "X", "--name", " ", "--timezone", "Asia/Jakarta"], "must not be empty"),
    (["device", "add", "--site", "nope"], "no site 'nope'"),
    (["device", "revoke", "dev_nope"], "no device 'dev_nope'"),
    (["roster", "import", "--site", "nope", "/nonexistent.csv"], "cannot read file"),
])
def test_errors_are_one_line_and_exit_1(runner, args, message):
    result = runner(*args)
    assert result.exit_code == 1
    assert result.output.startswith("attendance-server: error: ")
    assert message in result.output


def test_duplicate_site(runner):
    runner("site", "add", "A1", "--name", "a", "--timezone", "Asia/Makassar")
    result = runner("site", "add", "A1", "--name", "a", "--timezone", "Asia/Makassar")
    assert result.exit_code == 1 and "already exists" in result.output


def test_device_add_enrol_list_revoke(runner, client, engine):
    runner("site", "add", "20401234", "--name", "SDN 1", "--timezone", "Asia/Jakarta")
    out = runner("device", "add", "--site", "20401234", "--expires-hours", "1",
                 env={"ATTENDANCE_HTTP_PUBLIC_URL": "https://absensi.example.go.id"}).output
    code = out.split("claim code: ", 1)[1].split()[0]
    assert "attendance-edge enroll --server https://absensi.example.go.id" in out
    data = json.loads(runner("device", "add", "--site", "20401234", "--json").output)
    assert data["claim_code"] != code and data["expires_at"].endswith("Z")

    reply = client.post("/api/v1/devices/enroll", json={"claim_code": code, "hardware_id": "pi"})
    device_id, token = reply.json["device_id"], reply.json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    client.post("/api/v1/taps", json={"taps": [make_tap(1, device_id)]}, headers=headers)

    listed = [json.loads(line) for line in runner("device", "list", "--json").output.splitlines()]
    assert [d["device_id"] for d in listed] == [device_id]
    assert "token_hash" not in listed[0] and listed[0]["highest_seq"] == 1
    assert device_id in runner("device", "list", "--site", "20401234").output

    taps_out = runner("taps", "--device", device_id, "--json").output.splitlines()
    assert json.loads(taps_out[0])["seq"] == 1
    assert "04A1B2C3D4E5F6" in runner("taps", "--site", "20401234").output

    assert "revoked" in runner("device", "revoke", device_id).output
    assert client.get("/api/v1/roster", headers=headers).status_code == 401
    assert "REVOKED" in runner("device", "list").output


def test_roster_import(runner, engine, tmp_path):
    runner("site", "add", "20401234", "--name", "SDN 1", "--timezone", "Asia/Jakarta")
    good = tmp_path / "roster.csv"
    good.write_text("card_uid,person_id,name,kind,group,status\n"
                    "04A1B2C3D4E5F6,0051234567,Siti Aminah,student,VII-A,active\n"
                    "8C3F2A11,198703152010012003,Budi Santoso,employee,Tata Usaha,blocked\n")
    result = runner("roster", "import", "--site", "20401234", str(good))
    assert result.exit_code == 0 and "2 added" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("card_uid,person_id,name,kind,group,status\n"
                   "04A1B2C3D4E5F6,0051234567,Siti,student,VII-A,active\n"
                   "xyz,1,A,student,,active\n"
                   "04000001,,B,teacher,,gone\n")
    result = runner("roster", "import", "--site", "20401234", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:3: card_uid:" in result.output
    assert f"{bad}:4: person_id: is empty" in result.output
    assert f"{bad}:4: kind:" in result.output and f"{bad}:4: status:" in result.output
    # All or nothing: the good roster is still there, unchanged.
    assert rows(engine, "SELECT count(*) AS n FROM cards WHERE site_code = '20401234'") == [{"n": 2}]
    assert rows(engine, "SELECT name FROM people ORDER BY name")[1]["name"] == "Siti Aminah"


def test_database_errors_are_explained(runner, tmp_path):
    result = runner("site", "list", env={"DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"})
    assert result.exit_code == 1
    assert "attendance-server: error: database error: no such table" in result.output
    assert "init-db" in result.output


def test_config_errors_name_the_key(runner, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[http]\nport = 'eighty'\n")
    result = runner("--config", str(config), "site", "list")
    assert result.exit_code == 1 and f"{config}: [http] port: expected a whole number" in result.output


def test_debug_shows_the_traceback(runner):
    with pytest.raises(Exception):
        runner("--debug", "device", "revoke", "dev_nope")
