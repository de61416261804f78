"""Alembic environment: runs on the connection :func:`server.db.migrate` hands over.

Run from the ``alembic`` command line (developers writing a migration) it
connects to the configured database instead (``DATABASE_URL`` or the server
configuration file).
"""

from __future__ import annotations

from alembic import context

from server.schema import metadata

config = context.config


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: Alembic copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # pragma: no cover - developer use
    from server.config import load_settings
    from server.db import create_db_engine

    engine = create_db_engine(load_settings().database.url)
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
