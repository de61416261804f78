"""The page's session signing key: made once, kept in the data directory, mode 0600."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def load_or_create_secret(path: Path) -> bytes:
    """The key in ``path``; a new random one is written first when there is none.

    The file is created with mode 0600 before any byte is written (never world
    readable, not even for a moment). A file found with wider permissions is
    narrowed to 0600 with a warning.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.info("made a new session key for the operator's page in %s", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o): set to 0600", path, mode)
        os.chmod(path, 0o600)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path}: the session key is too short; delete the file to make a new one")
    return key.encode()
