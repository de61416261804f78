"""Database engines and migrations, SQLite or PostgreSQL behind one SQLAlchemy engine.

* ``postgresql://…`` (and ``postgres://…``) URLs use psycopg 3.
* SQLite connections run in WAL mode with ``synchronous=FULL`` (a taps batch
  the server acknowledged has reached the disk), foreign keys on and a busy
  timeout. Write transactions start with ``BEGIN IMMEDIATE``, so two workers
  writing at once queue for the lock instead of failing half-way; reads use
  :func:`reading` (a plain ``BEGIN``).
* :func:`migrate` runs the Alembic migrations in ``server/migrations`` from
  Python (``attendance-server init-db`` / ``migrate``, or at start when
  ``[database] migrate_on_start`` is set). On PostgreSQL an advisory lock keeps
  two workers starting together from migrating at the same time.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
#: Arbitrary key of the PostgreSQL advisory lock taken while migrating.
_MIGRATION_LOCK = 0x4154_5344  # "ATSD"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for a configured database URL (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.make_url(engine_url(url)).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparsable database URL)"


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the connection settings described above."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True,
                            connect_args={"connect_timeout": 5,
                                          "application_name": "attendance-server"})


#: Page cache of each SQLite connection of the server, in KiB.
SQLITE_CACHE_KIB = 65536


def _sqlite_on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # The sqlite3 module's own transaction handling would issue a deferred
    # BEGIN behind our back; turn it off and begin explicitly (below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # 64 MB of page cache instead of SQLite's 2 MB: a city's database is gigabytes, and
    # reconciling a day checks 160,000 foreign keys against the people table.
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                   "busy_timeout=30000", f"cache_size=-{SQLITE_CACHE_KIB}"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (SQLite: does not take the write lock)."""
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="DEFERRED")
        with conn.begin():
            yield conn


def is_postgresql(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


def insert_for(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``/``_do_update``."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if is_postgresql(conn) else sqlite.insert)(table)


# -- migrations ---------------------------------------------------------------------------
def _alembic_config():  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision``; returns (revision before, revision after)."""
    from alembic import command

    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    cfg = _alembic_config()
    with engine.begin() as conn:
        if is_postgresql(conn):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        before = current_revision(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = current_revision(conn)
    return before, after
