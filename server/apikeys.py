"""API keys of people and systems (not devices), with a role.

* ``diskominfo``: the regency's office of communication and informatics, or a
  system it runs (the HR system, say): every site, every endpoint, registry
  imports included.
* ``operator``: a school or office operator: one site only. Asking for another
  site is refused (403); a list asked for without a site is limited to the
  operator's own site.

A key looks like ``ak_<key_id>.<secret>``. The ``key_id`` part is not secret,
so logs and ``attendance-server key list`` can name the key without exposing
it; the secret is 256 random bits, shown once at creation. Only the SHA-256 of
the whole key is stored: the secret is random and long, so a slow password hash
would add nothing but latency to every request.

Authentication looks the key up by its id and compares hashes in constant time
(:func:`hmac.compare_digest`), so the response time says nothing about how much
of a guessed secret was right. ``last_used_at`` is written at most once a
minute per key: a busy integrator polling every second must not turn every read
into a write.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.db import utcnow
from server.devices import get_site, sha256_hex
from server.errors import NotFound
from server.schema import API_ROLES, api_keys

KEY_PREFIX = "ak_"
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{12}")
#: ``ak_<12 hex>.<43 url-safe base64>``; anything else is not one of our keys.
TOKEN_PATTERN = re.compile(r"ak_([0-9a-f]{12})\.([A-Za-z0-9_-]{16,128})")
#: ``last_used_at`` is refreshed at most this often.
TOUCH_INTERVAL = timedelta(minutes=1)
NAME_MAX = 100


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    name: str
    role: str
    site_code: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def label(self) -> str:
        """How logs name the key: ``ak_<key_id>`` (no secret)."""
        return KEY_PREFIX + self.key_id

    @property
    def is_diskominfo(self) -> bool:
        return self.role == "diskominfo"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def may_see(self, site_code: str | None) -> bool:
        """Whether this key may read or write data of ``site_code``.

        ``None`` (no particular site: a regency-wide list) is for diskominfo only.
        """
        return self.is_diskominfo or (site_code is not None and site_code == self.site_code)

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "role": self.role,
                "site_code": self.site_code, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "last_used_at": self.last_used_at}


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``token`` is the full ``ak_<key_id>.<secret>``, shown only once."""

    key: ApiKey
    token: str


def _from_row(row: Any) -> ApiKey:
    return ApiKey(key_id=row.key_id, name=row.name, role=row.role, site_code=row.site_code,
                  created_at=row.created_at, revoked_at=row.revoked_at,
                  last_used_at=row.last_used_at)


def normalise_key_id(text: str) -> str:
    """``ak_0123456789ab``, ``0123456789ab`` or a whole key -> ``0123456789ab``.

    People copy the id from logs (with the prefix) or from ``key list`` (without).
    """
    value = text.strip()
    if value.startswith(KEY_PREFIX):
        value = value[len(KEY_PREFIX):]
    value = value.partition(".")[0].lower()
    if not KEY_ID_PATTERN.fullmatch(value):
        raise ValueError(f"{text[:40]!r} is not a key id (12 hex digits, as shown by "
                         f"'attendance-server key list')")
    return value


def is_api_key(token: str) -> bool:
    """Whether a bearer token is shaped like an API key (not a device token)."""
    return token.startswith(KEY_PREFIX)


def create_key(conn: Connection, name: str, role: str, site_code: str | None = None) -> NewKey:
    """Make a key; the returned token is the only copy of the secret.

    An ``operator`` key needs ``site_code`` (an existing site); a ``diskominfo``
    key must not have one. ValueError or NotFound otherwise.
    """
    name = name.strip()
    if not name:
        raise ValueError("the key needs a --name (who or what will use it)")
    if len(name) > NAME_MAX:
        raise ValueError(f"the name is longer than {NAME_MAX} characters")
    if role not in API_ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(API_ROLES)}")
    if role == "operator" and not site_code:
        raise ValueError("an operator key needs --site (the one site it may see)")
    if role == "diskominfo" and site_code:
        raise ValueError("a diskominfo key sees every site; --site is only for operator keys")
    if site_code:
        get_site(conn, site_code)
    key_id = secrets.token_hex(6)
    token = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    now = utcnow()
    conn.execute(api_keys.insert().values(
        key_id=key_id, name=name, role=role, site_code=site_code or None,
        key_hash=sha256_hex(token), created_at=now))
    return NewKey(ApiKey(key_id, name, role, site_code or None, now), token)


def list_keys(conn: Connection, *, include_revoked: bool = True) -> list[ApiKey]:
    """Every key (without secrets), oldest first."""
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return [_from_row(row) for row in conn.execute(query)]


def get_key(conn: Connection, key_id: str) -> ApiKey:
    key_id = normalise_key_id(key_id)
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        raise NotFound(f"no API key {KEY_PREFIX}{key_id} (attendance-server key list)")
    return _from_row(row)


def revoke_key(conn: Connection, key_id: str) -> datetime:
    """Revoke a key (its next request gets 401); returns when. Revoking twice keeps
    the first time."""
    key = get_key(conn, key_id)
    if key.revoked_at is not None:
        return key.revoked_at
    now = utcnow()
    conn.execute(api_keys.update().where(api_keys.c.key_id == key.key_id,
                                         api_keys.c.revoked_at.is_(None))
                 .values(revoked_at=now))
    return now


def key_for_token(conn: Connection, token: str) -> ApiKey | None:
    """The key whose full token is ``token`` (revoked or not), or None."""
    match = TOKEN_PATTERN.fullmatch(token)
    if match is None:
        return None
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == match.group(1))).first()
    if row is None:
        return None
    if not hmac.compare_digest(row.key_hash, sha256_hex(token)):
        return None
    return _from_row(row)


def touch(conn: Connection, key: ApiKey, now: datetime | None = None) -> bool:
    """Record that ``key`` was used, unless that was recorded less than a minute ago.

    Returns whether a row was written. The condition is in the UPDATE too, so two
    requests racing within the minute write once.
    """
    now = now or utcnow()
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_INTERVAL:
        return False
    c = api_keys.c
    result = conn.execute(api_keys.update()
                          .where(c.key_id == key.key_id,
                                 sa.or_(c.last_used_at.is_(None),
                                        c.last_used_at <= now - TOUCH_INTERVAL))
                          .values(last_used_at=now))
    return result.rowcount == 1
