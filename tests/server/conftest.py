"""Fixtures of the server tests: one database per backend (SQLite file, PostgreSQL).

``backend`` is module-scoped and parametrized: a migrated SQLite template file
(copied for each test) and a fresh PostgreSQL database with a unique name
(emptied between tests, dropped at the end of the module). PostgreSQL is
``$ATTENDANCE_TEST_PG`` or ``postgresql://postgres@127.0.0.1:5432/test``;
when it does not answer its tests skip, or fail under ``REQUIRE_ALL=1``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from server.app import create_app
from server.db import create_db_engine, migrate
from server.schema import metadata
from tests.server.helpers import Device, enroll_device, make_site
from tests.syspart import need

PG_ADMIN_URL = os.environ.get("ATTENDANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.system)]


def _pg_admin() -> Any:
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


_pg_state: dict[str, Any] = {}


def pg_reachable() -> tuple[bool, str]:
    if "ok" not in _pg_state:
        try:
            with _pg_admin():
                _pg_state["ok"], _pg_state["why"] = True, ""
        except Exception as exc:  # any failure means: not usable here
            _pg_state["ok"], _pg_state["why"] = False, f"{type(exc).__name__}: {exc}"
    return _pg_state["ok"], _pg_state["why"]


def need_postgresql() -> None:
    ok, why = pg_reachable()
    need(ok, f"PostgreSQL at {PG_ADMIN_URL} ({why.strip()})")


class PgDatabase:
    """A uniquely named, empty PostgreSQL database; dropped by :meth:`drop`."""

    def __init__(self) -> None:
        need_postgresql()
        self.name = f"attendance_test_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        base = sa.make_url(PG_ADMIN_URL)
        self.url = base.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class Backend:
    name: str
    url: str  # sqlite: the template's URL
    engine: Any = None  # PostgreSQL: for emptying the tables between tests


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("template") / "server.db"
        engine = create_db_engine(f"sqlite:///{path}")
        migrate(engine)
        engine.dispose()
        yield Backend("sqlite", f"sqlite:///{path}")
        return
    database = PgDatabase()
    engine = create_db_engine(database.url)
    try:
        migrate(engine)
        yield Backend("postgresql", database.url, engine)
    finally:
        engine.dispose()
        database.drop()


def empty_tables(engine: Any) -> None:
    """Remove every row (PostgreSQL test databases are shared by a module's tests).

    DELETE, not TRUNCATE: on tables this small it is several times faster.
    """
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "counters":
                conn.execute(table.delete())
        conn.execute(sa.text("UPDATE counters SET value = 0"))


@pytest.fixture
def database_url(backend: Backend, tmp_path: Any) -> str:
    if backend.name == "sqlite":
        target = tmp_path / "server.db"
        shutil.copyfile(backend.url.removeprefix("sqlite:///"), target)
        return f"sqlite:///{target}"
    empty_tables(backend.engine)
    return backend.url


@pytest.fixture
def app(database_url: str) -> Iterator[Any]:
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SECRET_KEY": "test-secret-key-" + "x" * 32})
    yield app
    app.extensions["attendance"].engine.dispose()


@pytest.fixture
def engine(app: Any) -> Any:
    return app.extensions["attendance"].engine


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(database_url: str, tmp_path: Any) -> Any:
    """Runs ``attendance-server ARGS…`` against the test database; returns the click result."""
    from server.cli import main

    cli = CliRunner()
    config = tmp_path / "server.toml"
    config.write_text("# the defaults\n")

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Any:
        return cli.invoke(main, list(args), catch_exceptions=False, input=input,
                          env={"DATABASE_URL": database_url,
                               "ATTENDANCE_SERVER_CONFIG": str(config), **(env or {})})

    return run


@pytest.fixture
def site(engine: Any) -> str:
    return make_site(engine, "20401234", "SDN 001 Pekanbaru", "Asia/Jakarta")


@pytest.fixture
def device(client: Any, engine: Any, site: str) -> Device:
    return enroll_device(client, engine, site)
