"""Sites, devices, claim codes, tokens and heartbeats (database logic, no Flask).

Secrets are stored only as SHA-256 hex digests: device tokens are
``secrets.token_urlsafe(32)`` (256 bits); claim codes are 12 characters from
an alphabet without look-alikes (0/O, 1/I/L), shown as ``ABCD-EFGH-JKMN``,
single use and expiring. A claim code is short because a technician types it;
it is only good once and for a few days.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.clock import parse_timestamp
from server.db import utcnow
from server.errors import AlreadyExists, ApiError, NotFound
from server.schema import claim_codes, clock_anchors, devices, sites

log = logging.getLogger(__name__)

SITE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
TOKEN_SHA256 = re.compile(r"[0-9a-f]{64}")
CLAIM_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CLAIM_LENGTH = 12
#: Zones of Indonesia (WIB, WITA, WIT); others are accepted too.
INDONESIAN_ZONES = ("Asia/Jakarta", "Asia/Pontianak", "Asia/Makassar", "Asia/Jayapura")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_device_id() -> str:
    return "dev_" + secrets.token_hex(8)


def new_claim_code() -> str:
    raw = "".join(secrets.choice(CLAIM_ALPHABET) for _ in range(CLAIM_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, CLAIM_LENGTH, 4))


def normalise_claim_code(code: str) -> str:
    """Case, spaces and dashes do not matter when a person types a code."""
    return re.sub(r"[\s-]", "", code).upper()


# -- sites ----------------------------------------------------------------------------------
def check_site(code: str, name: str, timezone: str) -> None:
    if not SITE_CODE.fullmatch(code):
        raise ValueError(f"site code {code!r}: use 1-32 letters, digits, '.', '_' or '-' "
                         f"(the NPSN of a school or the OPD code)")
    if not name.strip():
        raise ValueError("the site name must not be empty")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {timezone!r} is not an IANA zone name "
                         f"(Indonesia: {', '.join(INDONESIAN_ZONES)})") from None


def add_site(conn: Connection, code: str, name: str, timezone: str) -> None:
    check_site(code, name, timezone)
    if conn.execute(sa.select(sites.c.code).where(sites.c.code == code)).first():
        raise AlreadyExists(f"site {code} already exists")
    conn.execute(sites.insert().values(code=code, name=name.strip(), timezone=timezone,
                                       created_at=utcnow()))


def get_site(conn: Connection, code: str) -> dict[str, Any]:
    row = conn.execute(sa.select(sites).where(sites.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"no site {code!r} (attendance-server site list)")
    return dict(row)


def list_sites(conn: Connection) -> list[dict[str, Any]]:
    count = (sa.select(sa.func.count()).where(devices.c.site_code == sites.c.code,
                                             devices.c.revoked_at.is_(None))
             .scalar_subquery())
    rows = conn.execute(sa.select(sites, count.label("devices")).order_by(sites.c.code))
    return [dict(r) for r in rows.mappings()]


def site_reply(site: dict[str, Any]) -> dict[str, str]:
    return {"code": site["code"], "name": site["name"], "timezone": site["timezone"]}


# -- claim codes and enrolment -------------------------------------------------------------
@dataclass(frozen=True)
class ClaimCode:
    code: str = ""  # shown once, never stored
    site_code: str = ""
    expires_at: datetime | None = None


def create_claim_code(conn: Connection, site_code: str, *, hours: float,
                      device_name: str = "", device_id: str | None = None) -> ClaimCode:
    """A new single-use claim code for a device at ``site_code``, valid ``hours``; with
    ``device_id``, for that existing device (see :func:`create_replacement_code`)."""
    get_site(conn, site_code)
    if hours <= 0:
        raise ValueError("--expires-hours must be more than 0")
    code = new_claim_code()
    now = utcnow()
    expires = now + timedelta(hours=hours)
    conn.execute(claim_codes.insert().values(
        code_hash=sha256_hex(normalise_claim_code(code)), site_code=site_code,
        device_name=device_name, created_at=now, expires_at=expires, device_id=device_id))
    return ClaimCode(code, site_code, expires)


def enroll(conn: Connection, claim_code: str, hardware_id: str,
           name: str | None, outbox: dict[str, Any] | None = None) -> dict[str, Any]:
    """Redeem a claim code: create the device and return its id, token and site.

    A replacement code (:func:`create_replacement_code`) gives its existing
    device a new token instead (:func:`_take_over`). ``outbox`` is what the
    edge says of its tap database (``device_id``, ``last_seq``), checked only
    then. The reply's ``highest_seq`` is the highest ``seq`` the server holds
    for the device: the edge numbers its next taps above it.
    """
    code_hash = sha256_hex(normalise_claim_code(claim_code))
    claim = conn.execute(sa.select(claim_codes).where(claim_codes.c.code_hash == code_hash)
                         .with_for_update()).mappings().first()
    now = utcnow()
    if claim is None:
        raise ApiError(403, "claim_code_invalid", "claim code is not known")
    if claim["used_at"] is not None:
        raise ApiError(403, "claim_code_invalid", "claim code was already used")
    if claim["expires_at"] <= now:
        raise ApiError(403, "claim_code_invalid", "claim code has expired "
                                                  "(make a new one: attendance-server device add)")
    if claim["device_id"] is not None:
        return _take_over(conn, claim, hardware_id, name, outbox or {}, now)
    device_id, token = new_device_id(), new_token()
    conn.execute(devices.insert().values(
        device_id=device_id, site_code=claim["site_code"],
        name=(name or "").strip() or claim["device_name"], hardware_id=hardware_id,
        token_hash=sha256_hex(token), created_at=now, highest_seq=0))
    # The WHERE makes the code single-use even when two enrolments race.
    used = conn.execute(claim_codes.update()
                        .where(claim_codes.c.code_hash == code_hash,
                               claim_codes.c.used_at.is_(None))
                        .values(used_at=now, device_id=device_id))
    if used.rowcount != 1:
        raise ApiError(403, "claim_code_invalid", "claim code was already used")
    site = get_site(conn, claim["site_code"])
    return {"device_id": device_id, "token": token, "site": site_reply(site),
            "highest_seq": 0, "replaced": False}


def create_replacement_code(conn: Connection, device_id: str, *, hours: float,
                            invalidate_token: bool = False) -> ClaimCode:
    """A single-use claim code that gives the existing ``device_id`` to a new board.

    The device keeps its id, site and taps; enrolling with the code gives it a
    new token, and its current token stops working at that moment, or at once
    with ``invalidate_token`` (a leaked token). No new column: the code's
    ``claim_codes.device_id`` is set from the start.
    """
    device = conn.execute(sa.select(devices.c.site_code, devices.c.name, devices.c.revoked_at)
                          .where(devices.c.device_id == device_id)
                          .with_for_update()).mappings().first()
    if device is None:
        raise NotFound(f"no device {device_id!r} (attendance-server device list)")
    if device["revoked_at"] is not None:
        raise ValueError(f"device {device_id} was revoked at "
                         f"{device['revoked_at'].isoformat(timespec='seconds')}: a revoked "
                         f"device is retired for good; enrol the new board as a new device "
                         f"(attendance-server device add --site {device['site_code']})")
    claim = create_claim_code(conn, device["site_code"], hours=hours,
                              device_name=device["name"], device_id=device_id)
    if invalidate_token:
        # A hash of a token nobody holds: the column stays NOT NULL and unique.
        conn.execute(devices.update().where(devices.c.device_id == device_id)
                     .values(token_hash=sha256_hex(new_token())))
        log.warning("device %s: token invalidated; the device is refused until it enrols "
                    "with its replacement code", device_id)
    log.info("device %s: replacement code made (expires %s)", device_id,
             claim.expires_at.isoformat(timespec="seconds"))
    return claim


def _take_over(conn: Connection, claim: Any, hardware_id: str, name: str | None,
               outbox: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Redeem a replacement code: the same device id, a new token, the new board's id."""
    device_id = claim["device_id"]
    device = conn.execute(sa.select(devices).where(devices.c.device_id == device_id)
                          .with_for_update()).mappings().one()
    if device["revoked_at"] is not None:
        raise ApiError(403, "claim_code_invalid",
                       f"device {device_id} was revoked after this replacement code was made")
    held_by = outbox.get("device_id")
    last_seq = int(outbox.get("last_seq") or 0)
    if last_seq > 0 and held_by != device_id:
        # Its taps would reuse seq numbers the server already holds for this device
        # (or name another device): they could never be counted. The code stays unused.
        whose = f"of {held_by}" if held_by else "recorded before enrolment"
        raise ApiError(409, "outbox_mismatch",
                       f"this board's tap database holds taps up to seq {last_seq} that are "
                       f"not {device_id}'s ({whose}); "
                       f"stop the service and move its data directory aside before using a "
                       f"replacement code, or enrol it as a new device "
                       f"(attendance-server device add)")
    token = new_token()
    changes: dict[str, Any] = {"token_hash": sha256_hex(token), "hardware_id": hardware_id}
    if name and name.strip():
        changes["name"] = name.strip()
    conn.execute(devices.update().where(devices.c.device_id == device_id).values(**changes))
    used = conn.execute(claim_codes.update()
                        .where(claim_codes.c.code_hash == claim["code_hash"],
                               claim_codes.c.used_at.is_(None))
                        .values(used_at=now))
    if used.rowcount != 1:
        raise ApiError(403, "claim_code_invalid", "claim code was already used")
    log.warning("device %s replaced: hardware_id %s -> %s; its previous token no longer works "
                "(highest seq %d)", device_id, device["hardware_id"], hardware_id,
                device["highest_seq"])
    site = get_site(conn, device["site_code"])
    return {"device_id": device_id, "token": token, "site": site_reply(site),
            "highest_seq": int(device["highest_seq"]), "replaced": True}


def rotate_token(conn: Connection, device_id: str, token_sha256: str) -> bool:
    """Make ``token_sha256`` the device's token hash; False when it already is.

    The device chose the new token and sends only its hash, so the new secret
    never travels. Sent again after a lost reply (authenticated then with the
    new token), it changes nothing.
    """
    if not TOKEN_SHA256.fullmatch(token_sha256):
        raise ApiError(400, "validation_error", "token_sha256: 64 lowercase hex digits expected")
    current = conn.execute(sa.select(devices.c.token_hash).where(devices.c.device_id == device_id)
                           .with_for_update()).scalar_one()
    if current == token_sha256:
        return False
    taken = conn.execute(sa.select(devices.c.device_id)
                         .where(devices.c.token_hash == token_sha256)).first()
    if taken is not None:
        raise ApiError(409, "token_in_use", "that token is not available; make a new random one")
    conn.execute(devices.update().where(devices.c.device_id == device_id)
                 .values(token_hash=token_sha256))
    log.info("device %s rotated its token", device_id)
    return True


# -- devices -------------------------------------------------------------------------------
def device_for_token(conn: Connection, token: str) -> dict[str, Any] | None:
    """The device holding ``token`` (device_id, site_code, revoked_at), or None."""
    row = conn.execute(sa.select(devices.c.device_id, devices.c.site_code,
                                 devices.c.revoked_at)
                       .where(devices.c.token_hash == sha256_hex(token))).mappings().first()
    return dict(row) if row is not None else None


def revoke(conn: Connection, device_id: str) -> datetime:
    row = conn.execute(sa.select(devices.c.revoked_at).where(devices.c.device_id == device_id)
                       ).first()
    if row is None:
        raise NotFound(f"no device {device_id!r} (attendance-server device list)")
    if row.revoked_at is not None:
        return row.revoked_at
    now = utcnow()
    conn.execute(devices.update().where(devices.c.device_id == device_id)
                 .values(revoked_at=now))
    return now


def list_devices(conn: Connection, site_code: str | None = None) -> list[dict[str, Any]]:
    cols = [c for c in devices.c if c.name not in ("token_hash", "missing_seq")]
    query = sa.select(*cols).order_by(devices.c.site_code, devices.c.created_at)
    if site_code:
        query = query.where(devices.c.site_code == site_code)
    return [dict(r) for r in conn.execute(query).mappings()]


# -- clock anchors and heartbeats ---------------------------------------------------------
def record_anchor(conn: Connection, device_id: str, sample: dict[str, Any], server_time: datetime,
                  *, source: str, min_interval_s: float) -> int | None:
    """Store a clock anchor unless one of the same boot is closer than ``min_interval_s``.

    Anchors are thinned because the monotonic clock drifts slowly: one every few
    minutes is as good as one a minute and keeps the table small. Returns the
    new anchor's id, or None when it was skipped. The boot's first anchor is
    always stored.
    """
    boot_id, mono_ns = sample["boot_id"], int(sample["mono_ns"])
    last = conn.execute(sa.select(sa.func.max(clock_anchors.c.mono_ns))
                        .where(clock_anchors.c.device_id == device_id,
                               clock_anchors.c.boot_id == boot_id)).scalar()
    if last is not None and 0 <= mono_ns - last < min_interval_s * 1e9:
        return None
    wall = parse_timestamp(sample["wall_time"])
    result = conn.execute(clock_anchors.insert().values(
        device_id=device_id, boot_id=boot_id, mono_ns=mono_ns, device_wall=wall,
        device_synced=bool(sample.get("clock_synced", False)), server_time=server_time,
        source=source).returning(clock_anchors.c.id))
    return result.scalar_one()


def received_seqs(conn: Connection, device_id: str) -> tuple[int, list[list[int]]]:
    """The highest ``seq`` received from the device and the ranges below it never received."""
    row = conn.execute(sa.select(devices.c.highest_seq, devices.c.missing_seq)
                       .where(devices.c.device_id == device_id)).one()
    return int(row.highest_seq), [list(r) for r in row.missing_seq or []]


def clock_offset_ms(sample: dict[str, Any], server_time: datetime) -> int:
    """Device wall clock minus server time, in milliseconds (positive: device ahead)."""
    wall = parse_timestamp(sample["wall_time"])
    return round((wall - server_time).total_seconds() * 1000)


def heartbeat(conn: Connection, device_id: str, beat: dict[str, Any], server_time: datetime,
              *, anchor_interval_s: float) -> None:
    """Record fleet health and the heartbeat's clock anchor, in the caller's transaction."""
    from server.ingest import reevaluate_boot

    conn.execute(sa.select(devices.c.device_id).where(devices.c.device_id == device_id)
                 .with_for_update())
    oldest = beat.get("oldest_unsent_at")
    backlog = beat.get("backlog")
    conn.execute(devices.update().where(devices.c.device_id == device_id).values(
        last_seen_at=server_time, boot_id=beat["boot_id"],
        backlog=int(backlog) if backlog is not None else None,
        oldest_unsent_at=parse_timestamp(oldest) if oldest else None,
        reader_ok=beat.get("reader_ok"), readers=beat.get("readers"),
        versions=beat.get("versions"), clock_offset_ms=clock_offset_ms(beat, server_time)))
    anchor_id = record_anchor(conn, device_id, beat, server_time, source="heartbeat",
                              min_interval_s=anchor_interval_s)
    if anchor_id is not None:
        reevaluate_boot(conn, device_id, beat["boot_id"])
