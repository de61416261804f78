"""The key that signs the dashboard's session cookies and CSRF tokens.

From, in order: ``SECRET_KEY`` in the app config (``$ATTENDANCE_SECRET_KEY``),
the file ``SECRET_KEY_FILE`` (``[web] secret_key_file``), else the file
``secret_key`` next to the SQLite database, else in
:data:`server.config.DEFAULT_SECRET_DIR`. A missing file is made with 32
random bytes (hex) and mode 0600: written to a temporary file first and then
linked into place, so that two workers starting at once end up with the same
key. The key itself is never logged.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Mapping

from server.config import DEFAULT_SECRET_DIR
from server.errors import ConfigError

log = logging.getLogger(__name__)

FILE_NAME = "secret_key"
MIN_LENGTH = 32


def key_file(config: Mapping[str, Any]) -> Path:
    """Where the key is kept for this configuration."""
    if config.get("SECRET_KEY_FILE"):
        return Path(config["SECRET_KEY_FILE"])
    url = str(config.get("DATABASE_URL") or "")
    if url.startswith("sqlite:///") and ":memory:" not in url and "mode=memory" not in url:
        database = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        return database.parent / FILE_NAME
    return Path(DEFAULT_SECRET_DIR) / FILE_NAME


def read_or_create(path: Path) -> str:
    """The key in ``path``; made first when the file does not exist."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if another process was first: use its key
            log.warning("dashboard: made a new secret key in %s (keep it: a new key ends "
                        "every session)", path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("dashboard: the secret key file %s can be read by others; "
                    "chmod 600 it", path)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_LENGTH:
        raise ConfigError(f"{path}: the secret key must have at least {MIN_LENGTH} characters "
                          f"(delete the file to have a new one made)")
    return key


def resolve(config: Mapping[str, Any]) -> str:
    """The key for ``config`` (see the module text); ConfigError when it cannot be had."""
    if config.get("SECRET_KEY"):
        return str(config["SECRET_KEY"])
    path = key_file(config)
    try:
        return read_or_create(path)
    except OSError as exc:
        raise ConfigError(f"dashboard secret key file {path}: {exc.strerror or exc}; set "
                          f"[web] secret_key_file to a writable place or "
                          f"ATTENDANCE_SECRET_KEY") from None
