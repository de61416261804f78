"""``attendance-edge operator add|passwd|list|remove``: passwords asked twice, never shown."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edge import operators
from edge.cli import main
from edge.outbox import open_database
from tests.edge_process import edge_cmd, write_config

SECRET = "Kata-Sandi-Rahasia-9"


def run(config, *args, input=None):
    return CliRunner().invoke(main, ["--config", str(config), "operator", *args], input=input)


def test_add_list_passwd_remove(tmp_path):
    config = write_config(tmp_path)
    added = run(config, "add", "guru.piket", input=f"{SECRET}\n{SECRET}\n")
    assert added.exit_code == 0, added.output
    assert SECRET not in added.output and "operator guru.piket added" in added.output
    assert added.output.count("New password") == 1 and "Repeat password" in added.output

    mismatch = run(config, "add", "tu", input=f"{SECRET}\nsomething-else\n{SECRET}\n{SECRET}\n")
    assert mismatch.exit_code == 0 and "do not match" in mismatch.output.lower()

    listed = run(config, "list")
    assert listed.exit_code == 0
    assert "guru.piket" in listed.output and "tu " in listed.output
    assert SECRET not in listed.output and "scrypt" not in listed.output
    rows = [json.loads(line) for line in run(config, "list", "--json").output.splitlines()]
    assert [r["username"] for r in rows] == ["guru.piket", "tu"]
    assert "password_hash" not in rows[0] and rows[0]["locked"] is False

    again = run(config, "add", "guru.piket", "--password-stdin", input="x" * 10 + "\n")
    assert again.exit_code == 1 and "already exists" in again.output

    changed = run(config, "passwd", "guru.piket", "--password-stdin", input="Baru-Sekali-123\n")
    assert changed.exit_code == 0 and "Baru-Sekali-123" not in changed.output
    db = open_database(tmp_path / "data" / "edge.db")
    try:
        assert operators.verify_password(db, "guru.piket", "Baru-Sekali-123")
    finally:
        db.close()

    assert run(config, "passwd", "nobody", "--password-stdin", input="x" * 10).exit_code == 1
    assert run(config, "remove", "tu").exit_code == 0
    missing = run(config, "remove", "tu")
    assert missing.exit_code == 1 and "no operator 'tu'" in missing.output


def test_bad_username_and_short_password_are_refused(tmp_path):
    config = write_config(tmp_path)
    bad = run(config, "add", "guru piket", "--password-stdin", input=SECRET + "\n")
    assert bad.exit_code == 1 and "username 'guru piket'" in bad.output
    short = run(config, "add", "guru", "--password-stdin", input="pendek\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    empty = run(config, "add", "guru", "--password-stdin", input="")
    assert empty.exit_code == 1 and "no password on standard input" in empty.output


def test_real_process_reads_the_password_from_stdin_and_never_prints_it(tmp_path):
    import subprocess

    from tests.edge_process import EDGE

    config = write_config(tmp_path)
    result = subprocess.run([*EDGE, "--config", str(config), "operator", "add", "admin",
                             "--password-stdin"], input=SECRET + "\n", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "admin" in edge_cmd(config, "operator", "list").stdout
