"""``POST /taps``: a batch of taps, stored all or nothing (see :mod:`server.ingest`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from server.api import authenticate, engine, reply, request_body
from server.db import utcnow
from server.ingest import ingest_taps

bp = Blueprint("taps", __name__)


@bp.post("/taps")
def push_taps() -> Any:
    device = authenticate()
    body = request_body(batch_key="taps")
    received = utcnow()
    with engine().begin() as conn:
        result = ingest_taps(conn, device["device_id"], body, received,
                             anchor_interval_s=current_app.config["ANCHOR_INTERVAL_SECONDS"])
    if result.counts.get("conflict"):
        current_app.logger.warning("device %s: %d tap(s) quarantined as conflicts",
                                   device["device_id"], result.counts["conflict"])
    return reply({"results": result.results, "missing_seq": result.missing_seq,
                  "highest_seq": result.highest_seq})
