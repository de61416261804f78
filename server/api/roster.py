"""``GET /roster``: the device's site roster, whole or as a delta since a cursor, with the
plans of the coming days and the device's remote settings; ``GET /roster/people``: the
site's people, with or without a card."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

from server.api import authenticate, engine, reply, request_query
from server.card_requests import site_today
from server.db import reading, utcnow
from server.device_settings import roster_settings
from server.roster import people_for_site, people_version, plans_for_site, roster_for_site

bp = Blueprint("roster", __name__)
log = logging.getLogger(__name__)


@bp.get("/roster")
def get_roster() -> Any:
    device = authenticate()
    params = request_query()
    with reading(engine()) as conn:
        body = roster_for_site(conn, device["site_code"], params.get("since"))
        try:
            body["plans"] = plans_for_site(conn, device["site_code"], utcnow())
        except Exception:  # the plans are optional: never let them cost a device its roster
            log.exception("plans of site %s could not be made; roster sent without them",
                          device["site_code"])
        # Whole every time, whatever the cursor: a change of settings reaches the device
        # at its next pull even when no card changed. Without them the edge keeps its own.
        try:
            body["settings"] = roster_settings(conn, device["site_code"], device["device_id"])
        except Exception:
            log.exception("settings of device %s could not be read; roster sent without them",
                          device["device_id"])
    return reply(body)


@bp.get("/roster/people")
def get_people() -> Any:
    """The site's people; ``If-None-Match`` with the current version answers 304."""
    device = authenticate()
    request_query()
    with reading(engine()) as conn:
        items = people_for_site(conn, device["site_code"],
                                site_today(conn, device["site_code"], utcnow()))
    version = people_version(items)
    if request.if_none_match.contains(version):
        response = Response(status=304)
    else:
        response, _ = reply({"version": version, "people": items})
    response.set_etag(version)
    response.headers["Cache-Control"] = "no-cache"
    return response
