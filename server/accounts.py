"""Accounts of the web dashboard (database logic, no Flask).

Two roles, as for API keys (:mod:`server.apikeys`):

* ``diskominfo``: every site;
* ``operator``: one site (``site_code``), every page and download limited to it.

Passwords are stored as werkzeug hashes (scrypt, salted), never in clear.
Logging in checks, in this order: the account exists and is enabled, it is not
locked, the password is right. Each wrong password adds one to
``failed_logins``; at ``max_failures`` the account is locked for ``lockout``
(``locked_until``, in the database, so a restart or another worker does not
forget it) and the count starts again. A right password resets the count.
An unknown user name costs as much time as a known one (a hash is checked
anyway), so the reply time does not tell which names exist.

``session_version`` ends open sessions: a dashboard session remembers the
version it was opened with, and a new password, disabling the account or
logging out increments it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from werkzeug.security import check_password_hash, generate_password_hash

from server.db import utcnow
from server.devices import get_site
from server.errors import AlreadyExists, NotFound
from server.schema import API_ROLES, web_users

ROLES = API_ROLES
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
PASSWORD_MIN = 10
PASSWORD_MAX = 1024


@dataclass(frozen=True)
class WebUser:
    """A dashboard account (without its password hash)."""

    id: int
    username: str
    role: str
    site_code: str | None
    disabled: bool
    failed_logins: int
    locked_until: datetime | None
    session_version: int
    last_login_at: datetime | None
    created_at: datetime
    changed_at: datetime

    @property
    def is_diskominfo(self) -> bool:
        return self.role == "diskominfo"

    def may_see(self, site_code: str | None) -> bool:
        """Whether this account may see data of ``site_code`` (None: every site at once,
        for diskominfo only)."""
        return self.is_diskominfo or (site_code is not None and site_code == self.site_code)

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "site_code": self.site_code,
                "disabled": self.disabled, "failed_logins": self.failed_logins,
                "locked_until": self.locked_until, "last_login_at": self.last_login_at,
                "created_at": self.created_at, "changed_at": self.changed_at}


def _from_row(row: Any) -> WebUser:
    return WebUser(id=row.id, username=row.username, role=row.role, site_code=row.site_code,
                   disabled=bool(row.disabled), failed_logins=row.failed_logins,
                   locked_until=row.locked_until, session_version=row.session_version,
                   last_login_at=row.last_login_at, created_at=row.created_at,
                   changed_at=row.changed_at)


def normalise_username(text: str) -> str:
    """A user name as stored: lowercase, 2-64 of letters, digits, ``.``, ``_``, ``-``."""
    name = text.strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise ValueError(f"user name {text[:70]!r}: use 2-64 letters, digits, '.', '_' or '-', "
                         f"starting with a letter or digit")
    return name


def check_new_password(password: str, username: str) -> None:
    """ValueError unless ``password`` is acceptable for ``username``."""
    if len(password) < PASSWORD_MIN:
        raise ValueError(f"the password must have at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise ValueError(f"the password must have at most {PASSWORD_MAX} characters")
    if password.strip().lower() == username.lower():
        raise ValueError("the password must not be the user name")


def hash_password(password: str) -> str:
    return generate_password_hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("not a password of anyone")


def _row(conn: Connection, username: str) -> Any:
    return conn.execute(sa.select(web_users).where(web_users.c.username == username)).first()


def get_user(conn: Connection, username: str) -> WebUser:
    row = _row(conn, normalise_username(username))
    if row is None:
        raise NotFound(f"no dashboard user {username.strip()[:64]!r} "
                       f"(attendance-server user list)")
    return _from_row(row)


def user_by_id(conn: Connection, user_id: int) -> WebUser | None:
    row = conn.execute(sa.select(web_users).where(web_users.c.id == user_id)).first()
    return _from_row(row) if row is not None else None


def list_users(conn: Connection) -> list[WebUser]:
    """Every account, by user name."""
    return [_from_row(r) for r in conn.execute(sa.select(web_users)
                                               .order_by(web_users.c.username))]


def check_new_user(conn: Connection, username: str, role: str,
                   site_code: str | None = None) -> str:
    """The normalised user name, if an account of ``role`` (and ``site_code``) can be made
    under it; ValueError, NotFound or AlreadyExists otherwise."""
    name = normalise_username(username)
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if role == "operator" and not site_code:
        raise ValueError("an operator account needs --site (the one site it may see)")
    if role == "diskominfo" and site_code:
        raise ValueError("a diskominfo account sees every site; --site is only for operators")
    if site_code:
        get_site(conn, site_code)
    if _row(conn, name) is not None:
        raise AlreadyExists(f"dashboard user {name} already exists")
    return name


def create_user(conn: Connection, username: str, password: str, role: str,
                site_code: str | None = None, *, now: datetime | None = None) -> WebUser:
    """A new account. An ``operator`` needs ``site_code`` (an existing site); a
    ``diskominfo`` account must not have one."""
    name = check_new_user(conn, username, role, site_code)
    check_new_password(password, name)
    now = now or utcnow()
    conn.execute(web_users.insert().values(
        username=name, password_hash=hash_password(password), role=role,
        site_code=site_code or None, disabled=False, failed_logins=0, session_version=0,
        created_at=now, changed_at=now))
    return get_user(conn, name)


def set_password(conn: Connection, username: str, password: str, *,
                 now: datetime | None = None) -> WebUser:
    """Give the account a new password: its sessions end and any lockout is lifted."""
    user = get_user(conn, username)
    check_new_password(password, user.username)
    conn.execute(web_users.update().where(web_users.c.id == user.id).values(
        password_hash=hash_password(password), failed_logins=0, locked_until=None,
        session_version=web_users.c.session_version + 1, changed_at=now or utcnow()))
    return get_user(conn, user.username)


def set_disabled(conn: Connection, username: str, disabled: bool, *,
                 now: datetime | None = None) -> WebUser:
    """Disable (its sessions end at their next request) or enable an account; enabling
    also lifts a lockout."""
    user = get_user(conn, username)
    values: dict[str, Any] = {"disabled": disabled, "changed_at": now or utcnow()}
    if disabled:
        values["session_version"] = web_users.c.session_version + 1
    else:
        values.update(failed_logins=0, locked_until=None)
    conn.execute(web_users.update().where(web_users.c.id == user.id).values(**values))
    return get_user(conn, user.username)


def end_sessions(conn: Connection, user_id: int) -> None:
    """End every open session of the account (logging out)."""
    conn.execute(web_users.update().where(web_users.c.id == user_id)
                 .values(session_version=web_users.c.session_version + 1))


@dataclass(frozen=True)
class LoginResult:
    """``ok`` (``user`` set), ``bad`` (unknown, disabled or wrong password: one answer for
    all three) or ``locked`` (too many failures; ``locked_until`` says until when)."""

    outcome: str
    user: WebUser | None = None
    locked_until: datetime | None = None


def authenticate(conn: Connection, username: str, password: str, *, max_failures: int,
                 lockout: timedelta, now: datetime | None = None) -> LoginResult:
    """Check a login in the caller's (write) transaction, counting failures."""
    now = now or utcnow()
    try:
        name = normalise_username(username)
    except ValueError:
        name = ""
    row = _row(conn, name) if name else None
    if row is None or row.disabled:
        check_password_hash(_dummy_hash(), password)
        return LoginResult("bad")
    user = _from_row(row)
    if user.is_locked(now):
        return LoginResult("locked", locked_until=user.locked_until)
    if not check_password_hash(row.password_hash, password):
        c = web_users.c
        failures = conn.execute(web_users.update().where(c.id == user.id)
                                .values(failed_logins=c.failed_logins + 1)
                                .returning(c.failed_logins)).scalar_one()
        if failures >= max_failures:
            until = now + lockout
            conn.execute(web_users.update().where(c.id == user.id)
                         .values(failed_logins=0, locked_until=until))
            return LoginResult("locked", locked_until=until)
        return LoginResult("bad")
    conn.execute(web_users.update().where(web_users.c.id == user.id)
                 .values(failed_logins=0, locked_until=None, last_login_at=now))
    return LoginResult("ok", user=user_by_id(conn, user.id))
