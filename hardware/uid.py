"""Card UID parsing: pure functions over bytes and strings, no I/O.

Accepted UIDs (ISO/IEC 14443-3 single, double and triple size) are 4, 7 or 10
bytes; a FeliCa IDm is 8 bytes. UIDs are kept as uppercase hex without
separators, e.g. ``"04A1B2C3D4E5F6"``.

A 4-byte UID whose first byte is ``0x08`` is a *random* ID (ISO/IEC 14443-3,
6.4.4): phones and some privacy cards emit a new one every session, so it can
never identify a person.
"""

from __future__ import annotations

import re

from hardware.errors import InvalidUID

#: Byte lengths of UIDs the system records.
UID_LENGTHS = frozenset({4, 7, 8, 10})

_SEPARATORS = re.compile(r"[\s:\-]")
_HEX = re.compile(r"^[0-9A-F]+$")


def normalise_uid(uid: bytes | bytearray | str) -> str:
    """Return ``uid`` as uppercase hex without separators.

    Accepts raw bytes or a hex string with optional ``:``, ``-`` or space
    separators (``"04:a1:b2:c3"``). Raises :class:`InvalidUID` for anything
    that is not 4, 7, 8 or 10 bytes of hex.
    """
    if isinstance(uid, (bytes, bytearray)):
        text = bytes(uid).hex().upper()
    elif isinstance(uid, str):
        text = _SEPARATORS.sub("", uid).upper()
        if text.startswith("0X"):
            text = text[2:]
        if not text or not _HEX.match(text) or len(text) % 2:
            raise InvalidUID(f"card UID {uid!r} is not hexadecimal bytes")
    else:
        raise InvalidUID(f"card UID must be bytes or str, not {type(uid).__name__}")
    if len(text) // 2 not in UID_LENGTHS:
        raise InvalidUID(
            f"card UID {text} has {len(text) // 2} bytes; expected 4, 7, 8 or 10"
        )
    return text


def is_random_uid(uid: str) -> bool:
    """True for a random (per-session) UID: 4 bytes starting with 0x08."""
    return len(uid) == 8 and uid.startswith("08")


def parse_get_uid_response(data: list[int] | bytes, sw1: int, sw2: int) -> str:
    """Parse the reply to the PC/SC pseudo-APDU ``FF CA 00 00 00`` (Get UID).

    ``90 00`` carries the UID; anything else means the card or reader
    refused (``6A 81``: function not supported), which raises
    :class:`InvalidUID`.
    """
    if (sw1, sw2) != (0x90, 0x00):
        raise InvalidUID(f"Get UID refused with status word {sw1:02X} {sw2:02X}")
    return normalise_uid(bytes(data))
