"""``POST /devices/enroll``, ``POST /devices/token`` and ``POST /heartbeat``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from server import devices
from server.api import authenticate, engine, reply, request_body
from server.db import utcnow
from server.errors import ApiError

bp = Blueprint("devices", __name__)


@bp.post("/devices/enroll")
def enroll() -> Any:
    """Redeem a single-use claim code for a device id and token."""
    body = request_body()
    with engine().begin() as conn:
        enrolled = devices.enroll(conn, body["claim_code"], body["hardware_id"],
                                  body.get("name"), body.get("outbox"))
    current_app.logger.info("device %s %s at site %s", enrolled["device_id"],
                            "re-enrolled on new hardware" if enrolled["replaced"] else "enrolled",
                            enrolled["site"]["code"])
    return reply(enrolled)


@bp.post("/devices/token")
def rotate_token() -> Any:
    """The device replaces its own token (it sends the new token's SHA-256 only)."""
    device = authenticate()
    body = request_body()
    named = body.get("device_id")
    if named is not None and named != device["device_id"]:
        raise ApiError(403, "forbidden", f"device_id {named!r} is not this device "
                                         f"({device['device_id']}): a device rotates only "
                                         f"its own token")
    with engine().begin() as conn:
        rotated = devices.rotate_token(conn, device["device_id"], body["token_sha256"])
    return reply({"device_id": device["device_id"], "rotated": rotated})


@bp.post("/heartbeat")
def heartbeat() -> Any:
    """Fleet health and a clock anchor."""
    device = authenticate()
    body = request_body()
    received = utcnow()
    with engine().begin() as conn:
        devices.heartbeat(conn, device["device_id"], body, received,
                          anchor_interval_s=current_app.config["ANCHOR_INTERVAL_SECONDS"])
        highest, missing = devices.received_seqs(conn, device["device_id"])
    # What the server holds of the device's taps: an edge whose acknowledged taps are not
    # all there (the server's database was restored from a backup) sends them again.
    return reply({"heartbeat_seconds": _heartbeat_seconds(device), "highest_seq": highest,
                  "missing_seq": missing})


def _heartbeat_seconds(device: dict[str, Any]) -> int:
    """The device's ``heartbeat_seconds`` remote setting, else the server's default."""
    from server.db import reading
    from server.device_settings import roster_settings

    try:
        with reading(engine()) as conn:
            found = roster_settings(conn, device["site_code"], device["device_id"])
    except Exception:  # a hint only: never cost the heartbeat its reply
        current_app.logger.exception("settings of device %s unreadable", device["device_id"])
        found = {}
    return int(found.get("heartbeat_seconds") or current_app.config["HEARTBEAT_SECONDS"])
