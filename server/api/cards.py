"""``POST /cards/requests``: a device binds a card to a person of its site, or reports a
card lost (see :mod:`server.card_requests`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.api import authenticate, engine, reply, request_body
from server.card_requests import Requester, apply_requests
from server.db import utcnow

bp = Blueprint("cards", __name__)


@bp.post("/cards/requests")
def push_card_requests() -> Any:
    device = authenticate()
    body = request_body(batch_key="requests")
    received = utcnow()
    with engine().begin() as conn:
        results = apply_requests(conn, Requester(device["device_id"], device["site_code"]),
                                 body["requests"], received)
    return reply({"results": results})
