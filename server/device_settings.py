"""Remote settings of the edges: validation, storage and the effective values.

A setting (the keys and their limits are in :data:`edge.settings.SETTINGS`,
shared with the edge, which checks again what it receives) is set for a whole
site (``site_settings``) or for one device (``device_settings``). A device's
effective settings are its own, then its site's; a key set at neither level is
left out, and the edge uses its own configuration for it. Unsetting a key goes
back to the next level.

The roster reply carries the effective settings whole every time (a few bytes),
so a change reaches the device at its next roster pull, with or without a
roster cursor and whether or not any card changed.
"""

from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge.settings import SETTINGS, SettingError, check_value
from server.db import insert_for, utcnow
from server.errors import NotFound, ServerError
from server.schema import device_settings, devices, site_settings, sites

SITE = "site"
DEVICE = "device"


class SettingsError(ServerError, ValueError):
    """A bad change of settings; ``path`` names the key (``settings.<key>``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def parse_changes(raw: Any) -> dict[str, Any]:
    """Check a change: ``{key: value}``, where a null value unsets the key.

    Every key is checked; the first problem raises :class:`SettingsError`
    naming the key, and then nothing may be changed.
    """
    if not isinstance(raw, Mapping):
        raise SettingsError("settings", "must be an object of setting: value (null unsets)")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise SettingsError("settings", f"key {key!r} is not text")
        try:
            changes[key] = None if value is None else check_value(key, value)
        except SettingError as exc:
            raise SettingsError(f"settings.{key}"[:80], exc.message) from None
        if value is None and key not in SETTINGS:
            raise SettingsError(f"settings.{key}"[:80], "unknown setting (known: "
                                f"{', '.join(SETTINGS)})")
    return changes


def parse_text_value(key: str, text: str) -> Any:
    """A value typed on the command line: whole numbers for number settings, else text."""
    setting = SETTINGS.get(key)
    if setting is None:
        raise SettingsError(key, f"unknown setting (known: {', '.join(SETTINGS)})")
    value: Any = text
    if setting.kind is int:
        try:
            value = int(text.strip())
        except ValueError:
            raise SettingsError(key, f"must be {setting.describe_range()}, got {text!r}") \
                from None
    try:
        return check_value(key, value)
    except SettingError as exc:
        raise SettingsError(key, exc.message) from None


# -- the target of a change ---------------------------------------------------------------------
def resolve(conn: Connection, site_code: str | None, device_id: str | None) -> tuple[str, str | None]:
    """(site, device) a change or a read is about; NotFound when either does not exist or
    the device is not of the site. A device alone names its own site."""
    if device_id is not None:
        row = conn.execute(sa.select(devices.c.site_code)
                           .where(devices.c.device_id == device_id)).first()
        if row is None or (site_code is not None and row.site_code != site_code):
            where = f" at site {site_code}" if site_code is not None else ""
            raise NotFound(f"no device {device_id[:40]!r}{where} (attendance-server device list)")
        return row.site_code, device_id
    if site_code is None:
        raise SettingsError("site", "name a site or a device")
    if conn.execute(sa.select(sites.c.code).where(sites.c.code == site_code)).first() is None:
        raise NotFound(f"no site {site_code[:40]!r} (attendance-server site list)")
    return site_code, None


# -- reading -----------------------------------------------------------------------------------
def level_settings(conn: Connection, site_code: str,
                   device_id: str | None = None) -> dict[str, dict[str, Any]]:
    """The settings set at one level: ``{key: {value, updated_at, updated_by}}``."""
    table, where = _level(site_code, device_id)
    rows = conn.execute(sa.select(table.c.key, table.c.value, table.c.updated_at,
                                  table.c.updated_by).where(where).order_by(table.c.key))
    return {r.key: {"value": r.value, "updated_at": r.updated_at, "updated_by": r.updated_by}
            for r in rows}


def effective_settings(conn: Connection, site_code: str,
                       device_id: str | None = None) -> dict[str, dict[str, Any]]:
    """``{key: {value, level}}`` for the keys set for the device or its site (device
    wins). Keys the edge does not know any more are left out."""
    found = {key: {"value": item["value"], "level": SITE}
             for key, item in level_settings(conn, site_code).items()}
    if device_id is not None:
        found.update({key: {"value": item["value"], "level": DEVICE}
                      for key, item in level_settings(conn, site_code, device_id).items()})
    return {key: found[key] for key in SETTINGS if key in found}


def roster_settings(conn: Connection, site_code: str, device_id: str) -> dict[str, Any]:
    """The ``settings`` of a device's roster reply: ``{key: value}``."""
    return {key: item["value"]
            for key, item in effective_settings(conn, site_code, device_id).items()}


# -- writing -----------------------------------------------------------------------------------
def _level(site_code: str, device_id: str | None) -> tuple[sa.Table, Any]:
    if device_id is None:
        return site_settings, site_settings.c.site_code == site_code
    return device_settings, device_settings.c.device_id == device_id


def change_settings(conn: Connection, site_code: str, device_id: str | None,
                    changes: Mapping[str, Any], by: str) -> dict[str, list[str]]:
    """Apply checked ``changes`` (from :func:`parse_changes`) at one level, in the
    caller's transaction. Returns ``{"set": [...], "unset": [...]}``: the keys whose
    value changed, and the keys that were set and are no more."""
    table, where = _level(site_code, device_id)
    current = level_settings(conn, site_code, device_id)
    now = utcnow()
    done: dict[str, list[str]] = {"set": [], "unset": []}
    unset = [key for key, value in changes.items() if value is None and key in current]
    if unset:
        conn.execute(table.delete().where(where, table.c.key.in_(unset)))
        done["unset"] = sorted(unset)
    rows = []
    for key, value in changes.items():
        if value is None or (key in current and current[key]["value"] == value):
            continue
        row = {"key": key, "value": value, "updated_at": now, "updated_by": by[:100]}
        row["site_code" if device_id is None else "device_id"] = device_id or site_code
        rows.append(row)
    if rows:
        stmt = insert_for(conn, table)
        keys = [table.c.site_code if device_id is None else table.c.device_id, table.c.key]
        conn.execute(stmt.on_conflict_do_update(
            index_elements=keys,
            set_={k: stmt.excluded[k] for k in ("value", "updated_at", "updated_by")}), rows)
        done["set"] = sorted(r["key"] for r in rows)
    return done


def describe(conn: Connection, site_code: str, device_id: str | None) -> dict[str, Any]:
    """What the API and the CLI show about one level: its own settings, and the
    effective ones (for a device: with the site's; for a site: what its devices get
    unless a device sets its own)."""
    from server.clock import format_utc

    own = level_settings(conn, site_code, device_id)
    return {
        "site": site_code,
        "device": device_id,
        "settings": {key: item["value"] for key, item in own.items()},
        "changed": {key: {"updated_at": format_utc(item["updated_at"]),
                          "updated_by": item["updated_by"]} for key, item in own.items()},
        "effective": effective_settings(conn, site_code, device_id),
    }
