"""JSON for the page's own scripts: today's live figures, the card enrolment.

Every endpoint needs a logged-in session (401 JSON otherwise) and every POST
the CSRF token in the ``X-CSRFToken`` header.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from edge.web import edge_context
from edge.web.db import get_db
from edge.web.i18n import t
from edge.web.pages import arm_enrolment, local_today, today_summary

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/today")
def today() -> Any:
    return jsonify(today_summary(get_db(), local_today()))


def _state() -> dict[str, Any]:
    ctx = edge_context()
    if ctx.enrolment is None:
        return {"available": False, "outcome": None}
    return {"available": True, **ctx.enrolment.state()}


@bp.get("/enrolment")
def enrolment_state() -> Any:
    return jsonify(_state())


@bp.post("/enrolment")
def arm() -> Any:
    body = request.get_json(silent=True)
    person_id = body.get("person_id") if isinstance(body, dict) else None
    state, error = arm_enrolment(person_id if isinstance(person_id, str) else "")
    if error:
        return jsonify({"error": {"code": 400, "message": error}}), 400
    return jsonify({"available": True, **(state or {})})


@bp.post("/enrolment/cancel")
def cancel() -> Any:
    ctx = edge_context()
    if ctx.enrolment is None:
        return jsonify({"error": {"code": 400, "message": t("enrol.unavailable")}}), 400
    body = request.get_json(silent=True)
    ticket = body.get("ticket") if isinstance(body, dict) else None
    ctx.enrolment.cancel(ticket if isinstance(ticket, str) else None)
    return jsonify(_state())
