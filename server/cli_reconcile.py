"""``attendance-server`` commands: reconcile (registered by :mod:`server.cli`)."""

from __future__ import annotations

import click

#: The click commands and groups this module adds to ``attendance-server``.
COMMANDS: list[click.Command] = []
