"""``POST /devices/enroll`` and ``POST /heartbeat``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from server import devices
from server.api import authenticate, engine, reply, request_body
from server.db import utcnow

bp = Blueprint("devices", __name__)


@bp.post("/devices/enroll")
def enroll() -> Any:
    """Redeem a single-use claim code for a device id and token."""
    body = request_body()
    with engine().begin() as conn:
        enrolled = devices.enroll(conn, body["claim_code"], body["hardware_id"],
                                  body.get("name"))
    current_app.logger.info("device %s enrolled at site %s", enrolled["device_id"],
                            enrolled["site"]["code"])
    return reply(enrolled)


@bp.post("/heartbeat")
def heartbeat() -> Any:
    """Fleet health and a clock anchor."""
    device = authenticate()
    body = request_body()
    received = utcnow()
    with engine().begin() as conn:
        devices.heartbeat(conn, device["device_id"], body, received,
                          anchor_interval_s=current_app.config["ANCHOR_INTERVAL_SECONDS"])
    return reply({"heartbeat_seconds": current_app.config["HEARTBEAT_SECONDS"]})
