"""API key authentication and role checks for the integrator endpoints.

:func:`authenticate_key` reads ``Authorization: Bearer ak_<key_id>.<secret>``
(see :mod:`server.apikeys`); :func:`site_scope` applies the role to a ``site``
query parameter. Every refusal is a JSON error: 401 for a missing, unknown or
revoked key, 403 for a role that may not do it, 404 for a site that does not
exist (only diskominfo keys learn that; an operator asking for any site but
its own gets 403, so an operator cannot probe for site codes).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import g, request

from server import apikeys
from server.api import engine
from server.apikeys import ApiKey
from server.db import reading, utcnow
from server.errors import ApiError
from server.schema import sites

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="attendance"'}


def bearer_token() -> str | None:
    """The bearer token of the request, or None when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def authenticate_key(token: str | None = None) -> ApiKey:
    """The API key of the request (also in ``g.api_key``), else 401."""
    token = bearer_token() if token is None else token
    if token is None:
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <API key>'",
                       headers=CHALLENGE)
    if not apikeys.is_api_key(token):
        raise ApiError(401, "unauthorized", "this endpoint needs an API key (ak_…), not a "
                                            "device token", headers=CHALLENGE)
    with reading(engine()) as conn:
        key = apikeys.key_for_token(conn, token)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown API key", headers=CHALLENGE)
    if key.is_revoked:
        raise ApiError(401, "unauthorized", f"API key {key.label} was revoked",
                       headers=CHALLENGE)
    if key.last_used_at is None or utcnow() - key.last_used_at >= apikeys.TOUCH_INTERVAL:
        with engine().begin() as conn:
            apikeys.touch(conn, key)
    g.api_key = key
    return key


def require_diskominfo(key: ApiKey) -> None:
    if not key.is_diskominfo:
        raise ApiError(403, "forbidden", f"this needs a diskominfo key; {key.label} is an "
                                         f"operator key of site {key.site_code}")


def forbid_site(key: ApiKey, site_code: str) -> ApiError:
    return ApiError(403, "forbidden", f"API key {key.label} may only see site "
                                      f"{key.site_code}, not {site_code[:40]}")


def site_exists(site_code: str) -> bool:
    with reading(engine()) as conn:
        return conn.execute(sa.select(sites.c.code).where(sites.c.code == site_code)
                            ).first() is not None


def site_scope(key: ApiKey, site_code: str | None, *, required: bool = False) -> str | None:
    """The site a request may read: the one asked for, if the key may see it.

    No site asked for: None (every site) for diskominfo, the operator's own site
    for an operator. ``required``: a diskominfo key must name one (400).
    """
    if site_code is None:
        if not key.is_diskominfo:
            return key.site_code
        if required:
            raise ApiError(400, "validation_error", "site: required",
                           details=[{"path": "site", "message": "required"}])
        return None
    if not key.may_see(site_code):
        raise forbid_site(key, site_code)
    if key.is_diskominfo and not site_exists(site_code):
        raise ApiError(404, "not_found", f"no site {site_code[:40]!r} (GET /api/v1/sites)")
    return site_code

