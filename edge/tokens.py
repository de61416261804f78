"""The device token on disk, and rotating it without ever being locked out.

The token lives in ``device.token`` (mode 0600). A rotation is crash-safe
because the new token is on disk *before* the server hears of it:

1. make a new random token and write it to ``device.token.pending``
   (0600, fsync, then fsync of the directory);
2. ``POST /devices/token`` with the current token, carrying only the new
   token's SHA-256: the server switches the hash in one statement;
3. on the reply, the pending token becomes ``device.token`` (write a
   temporary file, fsync, rename) and the pending file goes.

If the reply is lost, or the device loses power after 2, the pending file
is still there. Before its next exchange the edge *settles* (:func:`settle`):
it asks the server whether the pending token is the device's (the same call,
authenticated with the pending token and naming its own hash, changes
nothing); if so it is promoted, and if the server refuses it while the
current token still works, the rotation never happened and the pending
file is dropped. When both are refused (the device was revoked, or its
token invalidated) nothing is deleted.

A lock file serialises the service's settling and a rotation started by hand
(``attendance-edge rotate-token``), so neither drops the other's pending token.

The service also rotates by itself once the token is older than ``[sync]
token_max_age_days`` (its file's age: :class:`AutoRotation`), so a token
copied off a device stops working without anyone noticing the copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from edge.sync import SyncClient

log = logging.getLogger(__name__)

SETTLED, RELOADED, PROMOTED, DROPPED, BUSY = "settled", "reloaded", "promoted", "dropped", "busy"


def new_token() -> str:
    """256 random bits, URL-safe (the same form as the tokens the server makes)."""
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def pending_path(token_path: Path) -> Path:
    return token_path.with_name(token_path.name + ".pending")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically and durably, mode 0600 from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_secret(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        _fsync_dir(path.parent)


@contextlib.contextmanager
def token_lock(token_path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the token lock; yields False (not holding it) when busy and not ``blocking``."""
    lock_path = token_path.with_name(token_path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _works(client: "SyncClient", token: str) -> bool:
    """Whether the server takes ``token`` as this device's: a rotation to itself (a no-op).

    False on 401; a network error or a 5xx propagates (we cannot tell yet).
    """
    from edge.sync import SyncClient, Unauthorized

    probe = SyncClient(client.base.rsplit("/api/v1", 1)[0], token=token,
                       session=client.session, timeout=client.timeout)
    probe.verify = client.verify
    try:
        probe.rotate_token(token_sha256(token))
    except Unauthorized:
        return False
    return True


def _settle_locked(client: "SyncClient", token_path: Path) -> str:
    from edge.sync import Unauthorized

    pending_file = pending_path(token_path)
    pending = read_secret(pending_file)
    current = read_secret(token_path)
    if pending is None:
        _remove(pending_file)  # an empty leftover
        if current and current != client.token:
            client.token = current  # rotated by another process (attendance-edge rotate-token)
            return RELOADED
        return SETTLED
    if _works(client, pending):
        write_secret(token_path, pending)
        _remove(pending_file)
        client.token = pending
        log.warning("token rotation confirmed by the server (its reply had been lost); "
                    "using the new token")
        return PROMOTED
    if current and _works(client, current):
        _remove(pending_file)
        client.token = current
        log.warning("token rotation never reached the server; keeping the current token")
        return DROPPED
    raise Unauthorized("the server refuses both the current and the pending device token "
                       "(revoked or invalidated? attendance-server device replace, then "
                       "attendance-edge enroll --force)")


def settle(client: "SyncClient", token_path: Path, *, blocking: bool = False) -> str:
    """Make ``client.token`` the token the server holds, resolving an unfinished rotation.

    Returns what happened: ``settled`` (nothing to do), ``reloaded`` (the file
    changed), ``promoted`` (the pending token is the device's now), ``dropped``
    (the rotation never happened) or ``busy`` (a rotation is running elsewhere).
    Raises :class:`edge.sync.SyncError` when the server cannot be asked now.
    """
    with token_lock(token_path, blocking=blocking) as held:
        if not held:
            return BUSY
        return _settle_locked(client, token_path)


def rotate(client: "SyncClient", token_path: Path) -> str:
    """Give the device a new token (steps in the module docstring); returns the device id.

    A :class:`edge.sync.SyncError` other than a refusal leaves the pending token
    in place: the next sync settles it.
    """
    from edge.sync import Rejected, Unauthorized

    with token_lock(token_path):
        _settle_locked(client, token_path)
        fresh = new_token()
        pending_file = pending_path(token_path)
        write_secret(pending_file, fresh)
        try:
            reply = client.rotate_token(token_sha256(fresh))
        except (Rejected, Unauthorized):
            _remove(pending_file)  # refused: the server kept the current token
            raise
        write_secret(token_path, fresh)
        _remove(pending_file)
        client.token = fresh
    log.info("device token rotated")
    return str(reply.get("device_id", ""))


class AutoRotation:
    """Rotate the token when its file is older than ``max_age_days`` (0: never); called
    before every sync round, after :func:`settle`.

    A rotation the server refuses (an older server without ``POST /devices/token``) or
    that fails is tried again ``retry_seconds`` later, not at every round; a failure
    leaves no harm (see :func:`rotate`).
    """

    def __init__(self, client: "SyncClient", token_path: Path, max_age_days: float, *,
                 retry_seconds: float = 3600.0) -> None:
        self.client, self.token_path = client, token_path
        self.max_age = max_age_days * 86400.0
        self.retry_seconds = retry_seconds
        self._not_before = 0.0

    def due(self) -> bool:
        if self.max_age <= 0 or time.monotonic() < self._not_before:
            return False
        try:
            age = time.time() - self.token_path.stat().st_mtime
        except FileNotFoundError:
            return False
        return age >= self.max_age

    def __call__(self) -> bool:
        """Rotate if due; returns whether the token was rotated."""
        from edge.sync import SyncError

        if not self.due():
            return False
        try:
            rotate(self.client, self.token_path)
        except (SyncError, OSError) as exc:  # OSError: the token file could not be written
            self._not_before = time.monotonic() + self.retry_seconds
            log.warning("the device token is older than %.0f days but was not rotated (%s); "
                        "trying again in %.0f min", self.max_age / 86400, exc,
                        self.retry_seconds / 60)
            return False
        log.info("device token rotated: it was older than %.0f days", self.max_age / 86400)
        return True
