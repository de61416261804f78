"""``POST /excuses``: sakit / izin / dinas luar / cuti records (device token for now)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.api import authenticate, engine, reply, request_body
from server.db import utcnow
from server.excuses import Source, store_excuses

bp = Blueprint("excuses", __name__)


@bp.post("/excuses")
def push_excuses() -> Any:
    device = authenticate()
    body = request_body(batch_key="excuses")
    source = Source(site_code=device["site_code"], device_id=device["device_id"])
    with engine().begin() as conn:
        results = store_excuses(conn, body["excuses"], source, utcnow())
    return reply({"results": results})
