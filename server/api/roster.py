"""``GET /roster``: the device's site roster, whole or as a delta since a cursor."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.api import authenticate, engine, reply, request_query
from server.db import reading
from server.roster import roster_for_site

bp = Blueprint("roster", __name__)


@bp.get("/roster")
def get_roster() -> Any:
    device = authenticate()
    params = request_query()
    with reading(engine()) as conn:
        body = roster_for_site(conn, device["site_code"], params.get("since"))
    return reply(body)
