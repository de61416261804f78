"""Alembic migrations: from an empty database to head on both backends, matching the schema."""

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from server.db import _alembic_config, create_db_engine, current_revision, head_revision, migrate
from server.schema import metadata
from tests.server.conftest import BACKENDS, PgDatabase


@pytest.fixture(params=BACKENDS)
def empty_engine(request, tmp_path):
    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path}/sub/dir/server.db")
        yield engine
        engine.dispose()
        return
    database = PgDatabase()
    engine = create_db_engine(database.url)
    try:
        yield engine
    finally:
        engine.dispose()
        database.drop()


def test_upgrade_from_empty_matches_the_schema(empty_engine):
    before, after = migrate(empty_engine)
    assert (before, after) == (None, head_revision())
    with empty_engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert tables == {t.name for t in metadata.sorted_tables} | {"alembic_version"}
        assert sorted(conn.execute(sa.text("SELECT name, value FROM counters")).all()) == [
            ("attendance", 0), ("roster", 0)]
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": False})
        diff = compare_metadata(context, metadata)
        assert diff == [], diff
    # Again: nothing to do.
    assert migrate(empty_engine) == (head_revision(), head_revision())


def test_downgrade_to_empty_and_back(empty_engine):
    migrate(empty_engine)
    cfg = _alembic_config()
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with empty_engine.connect() as conn:
        assert current_revision(conn) is None
        assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
    assert migrate(empty_engine)[1] == head_revision()


def test_migrate_on_start(tmp_path):
    from server.app import create_app

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/new.db", "MIGRATE_ON_START": True})
    assert app.test_client().get("/api/v1/health").status_code == 200
    app.extensions["attendance"].engine.dispose()
