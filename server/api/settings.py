"""``GET`` and ``PATCH /settings``: the remote settings of a site or of one device
(API keys; docs/DISKOMINFO_API.md). A diskominfo key may read and change any site and
device, an operator key its own site and that site's devices only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server import device_settings
from server.api import engine, reply, request_body, request_query
from server.api.keyauth import authenticate_key, forbid_site
from server.apikeys import ApiKey
from server.db import reading
from server.errors import ApiError, NotFound

bp = Blueprint("settings", __name__)


def _target(conn: Any, key: ApiKey, params: dict[str, str]) -> tuple[str, str | None]:
    """The (site, device) of the request, if the key may see it."""
    site, device = params.get("site"), params.get("device")
    if site is not None and not key.may_see(site):
        raise forbid_site(key, site)
    if site is None and not key.is_diskominfo:
        site = key.site_code
    try:
        site, device = device_settings.resolve(conn, site, device)
    except device_settings.SettingsError as exc:
        raise ApiError(400, "validation_error", str(exc),
                       details=[{"path": exc.path, "message": exc.message}]) from None
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    if not key.may_see(site):  # a diskominfo-only path, kept as a guard
        raise forbid_site(key, site)
    return site, device


@bp.get("/settings")
def get_settings() -> Any:
    """The settings set at one level, and the effective ones."""
    key = authenticate_key()
    params = request_query()
    with reading(engine()) as conn:
        site, device = _target(conn, key, params)
        return reply(device_settings.describe(conn, site, device))


@bp.patch("/settings")
def change_settings() -> Any:
    """Set or unset settings at one level, all or nothing."""
    key = authenticate_key()
    params = request_query()
    body = request_body()
    try:
        changes = device_settings.parse_changes(body["settings"])
    except device_settings.SettingsError as exc:
        raise ApiError(400, "validation_error", str(exc),
                       details=[{"path": exc.path, "message": exc.message}]) from None
    with engine().begin() as conn:
        site, device = _target(conn, key, params)
        done = device_settings.change_settings(conn, site, device, changes,
                                               by=f"api key {key.label}")
        body = device_settings.describe(conn, site, device)
    return reply({**body, **done})
