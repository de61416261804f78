"""``attendance-server``: the central server's command line."""

from __future__ import annotations

import click

from server import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="attendance-server")
def main() -> None:
    """Smart-card attendance: the central server.

    The server's commands (init-db, run, import, device, reconcile, report)
    arrive with the central server; this release ships the edge only.
    """


if __name__ == "__main__":  # pragma: no cover
    main()
