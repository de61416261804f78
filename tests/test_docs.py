"""Every CLI command has help text and appears in the README."""

from pathlib import Path

import click
import pytest

from edge.cli import main as edge_main
from provisioning.demo import main as demo_main
from server.cli import main as server_main

README = (Path(__file__).parent.parent / "README.md").read_text()


def walk(cmd: click.Command, prefix: str):
    yield prefix, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from walk(sub, f"{prefix} {name}")


COMMANDS = [*walk(edge_main, "attendance-edge"), *walk(server_main, "attendance-server"),
            ("attendance-demo", demo_main)]


@pytest.mark.parametrize("name, cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_documented(name, cmd):
    assert (cmd.help or "").strip(), f"{name} has no help text"
    assert f"`{name}" in README, f"{name} is not in README.md"


def test_readme_names_the_two_commands():
    assert "scripts/demo" in README and "scripts/test" in README
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "REQUIRE_ALL=1" in ci and "exec scripts/test" in ci
