"""``GET /health`` and ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from server import openapi
from server.api import RETRY_AFTER_SECONDS, engine, reply
from server.db import current_revision, head_revision, reading

bp = Blueprint("meta", __name__)


@bp.get("/health")
def health() -> Any:
    """200 when the database answers and has the schema this server needs, else 503."""
    try:
        with reading(engine()) as conn:
            conn.execute(sa.text("SELECT 1"))
            revision = current_revision(conn)
    except sa.exc.SQLAlchemyError as exc:
        current_app.logger.error("health: database unavailable: %s",
                                 str(getattr(exc, "orig", exc))[:300])
        return _unavailable("unavailable", "the database does not answer")
    head = head_revision()
    if revision != head:
        return _unavailable(f"schema {revision or 'missing'}, needs {head}",
                            "the database schema is not up to date "
                            "(attendance-server migrate)")
    return reply({"status": "ok", "database": "ok"})


def _unavailable(database: str, message: str) -> Any:
    response = jsonify({"status": "unavailable", "database": database,
                        "error": {"code": "unavailable", "message": message}})
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@bp.get("/openapi.json")
def openapi_document() -> Any:
    return jsonify(openapi.document())
