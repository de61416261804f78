"""The sync API under ``/api/v1``: one blueprint per area, and what they share.

Shared here: reading and validating a JSON body against the OpenAPI document
(:func:`request_body`, :func:`request_query`), device token authentication
(:func:`authenticate`), replies with ``server_time`` (:func:`reply`) and the
JSON error handlers (:func:`register_error_handlers`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException

from server.clock import format_utc
from server.db import reading, utcnow
from server.devices import device_for_token
from server.errors import ApiError
from server.openapi import API_PREFIX, Problem, RequestValidator

log = logging.getLogger("server.api")

RETRY_AFTER_SECONDS = 30

#: Machine codes of HTTP errors raised by Flask/Werkzeug themselves.
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "too_large", 429: "too_many_requests",
              503: "unavailable"}


@dataclass
class ApiState:
    """What the API needs from the app: the engine and the request validator."""

    engine: Engine
    validator: RequestValidator


def state() -> ApiState:
    return current_app.extensions["attendance"]


def engine() -> Engine:
    return state().engine


# -- requests -------------------------------------------------------------------------------
#: A Flask route variable (``<kind>``, ``<any(a, b):kind>``) and its OpenAPI form (``{kind}``).
_ROUTE_VARIABLE = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def _operation() -> tuple[str, str]:
    rule = request.url_rule.rule if request.url_rule else request.path
    return _ROUTE_VARIABLE.sub(r"{\1}", rule[len(API_PREFIX):]), request.method


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ApiError(400, "bad_json", "the body is not JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise ApiError(400, "bad_json", f"the body is not JSON: {str(exc)[:200]}") from None


def request_body(batch_key: str | None = None) -> dict[str, Any]:
    """The JSON body, checked against the operation's schema in the OpenAPI document.

    ``batch_key`` names the array whose length is capped by ``MAX_BATCH``
    (413 above it, before any other check, as the contract says).
    """
    raw = request.get_data(cache=False)
    value = parse_json(raw)
    if batch_key and isinstance(value, dict) and isinstance(value.get(batch_key), list):
        limit = current_app.config["MAX_BATCH"]
        if len(value[batch_key]) > limit:
            raise ApiError(413, "too_large", f"{len(value[batch_key])} {batch_key} in one "
                                             f"request; at most {limit}")
    path, method = _operation()
    try:
        state().validator.body(path, method, value, raw)
    except Problem as problem:
        raise ApiError(400, "validation_error", str(problem), details=problem.details) from None
    return value


def request_query() -> dict[str, str]:
    path, method = _operation()
    try:
        return state().validator.query(path, method, request.args.to_dict(flat=False))
    except Problem as problem:
        raise ApiError(400, "validation_error", str(problem), details=problem.details) from None


def authenticate() -> dict[str, Any]:
    """The device of the request's bearer token (also in ``g.device``), else 401."""
    challenge = {"WWW-Authenticate": 'Bearer realm="attendance"'}
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <device token>'",
                       headers=challenge)
    with reading(engine()) as conn:
        device = device_for_token(conn, token)
    if device is None:
        raise ApiError(401, "unauthorized", "unknown device token (enrol the device again)",
                       headers=challenge)
    if device["revoked_at"] is not None:
        raise ApiError(401, "unauthorized", f"device {device['device_id']} was revoked",
                       headers=challenge)
    g.device = device
    return device


def reply(body: dict[str, Any], status: int = 200) -> tuple[Response, int]:
    return jsonify({**body, "server_time": format_utc(utcnow())}), status


# -- errors ---------------------------------------------------------------------------------------
def error_response(error: ApiError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        if error.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, error.message)
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        page = _web_page(error)
        if page is not None:
            return page
        status = error.code or 500
        code = HTTP_CODES.get(status, (error.name or "error").lower().replace(" ", "_"))
        message = error.description or error.name
        headers = {h: v for h, v in error.get_response().headers.items()
                   if h in ("Allow", "Retry-After")}
        if status == 413:
            message = (f"the body is larger than the limit of "
                       f"{current_app.config['MAX_CONTENT_LENGTH']} bytes")
        elif status == 404:
            message = f"nothing at {request.path[:200]} (the API is described at " \
                      f"{API_PREFIX}/openapi.json)"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path[:200]}" + (
                f" (allowed: {headers['Allow']})" if "Allow" in headers else "")
        return error_response(ApiError(status, code, message, headers=headers))

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    def _database_down(error: sa_exc.DBAPIError) -> Response:
        log.error("database unavailable during %s %s: %s", request.method, request.path,
                  str(error.orig)[:500])
        from werkzeug.exceptions import ServiceUnavailable

        page = _web_page(ServiceUnavailable(retry_after=RETRY_AFTER_SECONDS))
        if page is not None:
            return page
        return error_response(ApiError(503, "unavailable", "the database is not available; "
                                       "try again later",
                                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))

    @app.errorhandler(sa_exc.DataError)
    def _data_error(error: sa_exc.DataError) -> Response:
        # Validation should have caught it; never answer bad input with a 500.
        log.warning("value refused by the database during %s %s: %s", request.method,
                    request.path, str(error.orig)[:500])
        return error_response(ApiError(400, "validation_error",
                                       "a value in the request cannot be stored"))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, HTTPException):  # pragma: no cover - handled above
            return _http_error(error)
        log.exception("unexpected error during %s %s", request.method, request.path)
        page = _web_page(error)
        if page is not None:
            return page
        return error_response(ApiError(500, "internal_error", "internal server error"))


def _web_page(error: BaseException) -> Response | None:
    """The dashboard's HTML page for an error on one of its paths (else None: JSON)."""
    if request.path.startswith(API_PREFIX + "/"):
        return None
    render = current_app.extensions.get("attendance_web_errors")
    return render(error) if render is not None else None
