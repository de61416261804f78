"""One SQLite connection per request to the edge's database (WAL: readers never block taps)."""

from __future__ import annotations

import sqlite_utils
from flask import Flask, current_app, g

from edge.outbox import connect


def get_db() -> sqlite_utils.Database:
    """The request's connection, in autocommit mode: writes use ``edge.outbox.immediate``."""
    if "db" not in g:
        db = connect(current_app.extensions["edge"].database)
        db.conn.isolation_level = None
        g.db = db
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
