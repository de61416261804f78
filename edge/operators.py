"""Operator accounts of the edge's local page, kept in the edge's SQLite file.

A password is stored only as a werkzeug hash (scrypt). Wrong passwords are
counted per account; after ``max_failures`` in a row the account is locked
for a while. The count and the lock are rows in the database, so restarting
the service does not unlock an account someone is guessing at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import sqlite_utils
from werkzeug.security import check_password_hash, generate_password_hash

from edge.errors import EdgeError
from edge.outbox import immediate

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


class OperatorError(EdgeError, ValueError):
    """A bad username or password, or an account that does (not) exist."""


@dataclass(frozen=True)
class Operator:
    username: str
    created_at: str
    changed_at: str
    failed_attempts: int
    locked_until: str | None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and _parse(self.locked_until) > now


@dataclass(frozen=True)
class LoginResult:
    """The answer to one login attempt."""

    ok: bool
    locked_until: datetime | None = None
    """Set when the account is locked (now, or by this very attempt)."""
    changed_at: str | None = None
    """The password's change time, kept in the session to end it when the password changes."""


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(
        timespec="microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise OperatorError(
            f"username {username!r}: use 1 to 32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise OperatorError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _row(db: sqlite_utils.Database, username: str) -> Operator | None:
    row = db.conn.execute(
        "SELECT username, created_at, changed_at, failed_attempts, locked_until "
        "FROM operators WHERE username = ?", [username]).fetchone()
    return Operator(*row) if row else None


def get_operator(db: sqlite_utils.Database, username: str) -> Operator | None:
    return _row(db, username)


def list_operators(db: sqlite_utils.Database) -> list[Operator]:
    rows = db.conn.execute(
        "SELECT username, created_at, changed_at, failed_attempts, locked_until "
        "FROM operators ORDER BY username").fetchall()
    return [Operator(*r) for r in rows]


def add_operator(db: sqlite_utils.Database, username: str, password: str, *,
                 now: datetime | None = None) -> Operator:
    check_username(username)
    hashed = generate_password_hash(check_password(password))
    stamp = _stamp(now)
    with immediate(db) as conn:
        if conn.execute("SELECT 1 FROM operators WHERE username = ?", [username]).fetchone():
            raise OperatorError(f"operator {username!r} already exists "
                                f"(change the password with: operator passwd {username})")
        conn.execute(
            "INSERT INTO operators (username, password_hash, created_at, changed_at) "
            "VALUES (?, ?, ?, ?)", [username, hashed, stamp, stamp])
    return Operator(username, stamp, stamp, 0, None)


def set_password(db: sqlite_utils.Database, username: str, password: str, *,
                 now: datetime | None = None) -> None:
    """Set a new password; this also unlocks the account and ends its open sessions."""
    hashed = generate_password_hash(check_password(password))
    with immediate(db) as conn:
        cur = conn.execute(
            "UPDATE operators SET password_hash = ?, changed_at = ?, failed_attempts = 0, "
            "locked_until = NULL WHERE username = ?", [hashed, _stamp(now), username])
        if cur.rowcount == 0:
            raise OperatorError(f"no operator {username!r}")


def remove_operator(db: sqlite_utils.Database, username: str) -> None:
    with immediate(db) as conn:
        if conn.execute("DELETE FROM operators WHERE username = ?", [username]).rowcount == 0:
            raise OperatorError(f"no operator {username!r}")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("not a password of anyone")


def check_login(db: sqlite_utils.Database, username: str, password: str, *, now: datetime,
                max_failures: int, lockout: timedelta) -> LoginResult:
    """Check a login attempt and count it.

    A locked account is refused without looking at the password. An unknown
    username costs the same hash computation as a known one. The hash is
    checked outside any transaction (it takes tens of milliseconds, and taps
    must not wait for it); the counting is one short write.
    """
    row = db.conn.execute(
        "SELECT password_hash, locked_until FROM operators WHERE username = ?",
        [username]).fetchone()
    if row is None:
        check_password_hash(_dummy_hash(), password)
        return LoginResult(False)
    hashed, locked_until = row
    if locked_until and _parse(locked_until) > now:
        return LoginResult(False, locked_until=_parse(locked_until))
    good = check_password_hash(hashed, password)
    with immediate(db) as conn:
        current = conn.execute(
            "SELECT failed_attempts, locked_until, changed_at FROM operators "
            "WHERE username = ?", [username]).fetchone()
        if current is None:  # removed meanwhile
            return LoginResult(False)
        failures, locked, changed_at = current
        if good:
            conn.execute("UPDATE operators SET failed_attempts = 0, locked_until = NULL "
                         "WHERE username = ?", [username])
            return LoginResult(True, changed_at=changed_at)
        if locked and _parse(locked) <= now:
            failures = 0  # the last lock has run out: count afresh
        failures += 1
        until = now + lockout if failures >= max_failures else None
        conn.execute("UPDATE operators SET failed_attempts = ?, locked_until = ? "
                     "WHERE username = ?",
                     [failures, _stamp(until) if until else None, username])
    return LoginResult(False, locked_until=until)


def verify_password(db: sqlite_utils.Database, username: str, password: str) -> bool:
    """Check the password only (changing one's own password asks for the old one)."""
    row = db.conn.execute("SELECT password_hash FROM operators WHERE username = ?",
                          [username]).fetchone()
    if row is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(row[0], password)
