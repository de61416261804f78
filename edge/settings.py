"""Remote settings: values the central server sets for a site or one device.

The server's Diskominfo (or the site's operator) can change a few settings of
an edge without touching its configuration file (``attendance-server device
settings set``, ``PATCH /api/v1/settings``). Every roster reply carries the
device's effective server-side settings (device level over site level); the
edge keeps them in its database, so they hold across a restart while the server
is unreachable, and applies them at once, without a restart.

| key | type | range | without a server value | effect |
| --- | --- | --- | --- | --- |
| ``debounce_seconds`` | integer | 0 to 3600 | ``[recorder] debounce_seconds`` | the duplicate window of a card |
| ``heartbeat_seconds`` | integer | 10 to 3600 | ``[sync] heartbeat_seconds`` | seconds between heartbeats |
| ``roster_seconds`` | integer | 30 to 86400 | ``[sync] roster_seconds`` | seconds between roster pulls (and so settings) |
| ``page_notice`` | text | up to 500 characters | none | a notice shown on the operator's page |
| ``page_days`` | integer | 1 to 7 | 1 | days of the schedule the page shows (today and the next) |

This module is pure (no Flask, no SQLAlchemy): the server validates requests
with the same rules (:func:`check_value`), and the edge checks again what it
receives (:func:`parse_settings`), so a bad value is logged and ignored rather
than trusted.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

#: Where the edge keeps the server's settings (the ``meta`` table of its database).
META_KEY = "server_settings"


@dataclass(frozen=True)
class Setting:
    """One remote setting: its type and limits, and where the edge's own value lives."""

    key: str
    kind: type  # int or str
    minimum: int = 0
    maximum: int = 0
    """For int: the range (inclusive). For str: the longest text."""
    config: tuple[str, str] | None = None
    """(section, key) of the edge configuration that the setting overrides."""
    default: Any = None
    """The value without a server setting, for settings with no configuration key."""
    description: str = ""

    def describe_range(self) -> str:
        if self.kind is int:
            return f"a whole number from {self.minimum} to {self.maximum}"
        return f"text of at most {self.maximum} characters"


SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("debounce_seconds", int, 0, 3600, config=("recorder", "debounce_seconds"),
            description="A second tap of the same card within this many seconds is "
                        "recorded as a duplicate."),
    Setting("heartbeat_seconds", int, 10, 3600, config=("sync", "heartbeat_seconds"),
            description="Seconds between the device's heartbeats (fleet health)."),
    Setting("roster_seconds", int, 30, 86400, config=("sync", "roster_seconds"),
            description="Seconds between roster pulls; settings arrive with the roster."),
    Setting("page_notice", str, 0, 500, default="",
            description="A notice shown at the top of the school operator's page "
                        "(e.g. a change of hours); an empty text shows none."),
    Setting("page_days", int, 1, 7, default=1,
            description="How many days of the schedule the operator's page shows: 1 is "
                        "today only, 7 is today and the next six days."),
)}


class SettingError(ValueError):
    """A setting that is unknown or whose value is wrong; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _bad_text(text: str) -> str | None:
    for ch in text:
        if ch in "\n\t":
            continue
        if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") or ch in "\u2028\u2029":
            return f"must not contain the character U+{ord(ch):04X}"
    return None


def check_value(key: str, value: Any) -> Any:
    """``value`` as the setting ``key`` keeps it; SettingError when unknown or wrong."""
    setting = SETTINGS.get(key)
    if setting is None:
        raise SettingError(key, f"unknown setting (known: {', '.join(SETTINGS)})")
    if setting.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise SettingError(key, f"must be {setting.describe_range()}, got "
                                        f"{_short(value)}")
        if not setting.minimum <= value <= setting.maximum:
            raise SettingError(key, f"must be {setting.describe_range()}, got {value}")
        return value
    if not isinstance(value, str):
        raise SettingError(key, f"must be {setting.describe_range()}, got {_short(value)}")
    value = value.strip()
    if len(value) > setting.maximum:
        raise SettingError(key, f"must be {setting.describe_range()}, got {len(value)} "
                                    f"characters")
    problem = _bad_text(value)
    if problem:
        raise SettingError(key, problem)
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_settings(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The valid settings of a roster reply's ``settings`` and the problems with the rest.

    Never raises: an unknown key or a bad value is a problem (the caller logs
    it) and that key is left out, so the edge uses its own value for it.
    """
    if not isinstance(raw, Mapping):
        return {}, [f"settings must be an object, got {_short(raw)}"]
    values: dict[str, Any] = {}
    problems = []
    for key, value in raw.items():
        try:
            values[str(key)] = check_value(str(key), value)
        except SettingError as exc:
            problems.append(str(exc))
    return values, problems


def known_settings() -> dict[str, dict[str, Any]]:
    """The keys with their JSON type, limits and meaning (the API document, the docs)."""
    out = {}
    for key, s in SETTINGS.items():
        item: dict[str, Any] = {"type": "integer" if s.kind is int else "string",
                                "description": s.description}
        if s.kind is int:
            item.update(minimum=s.minimum, maximum=s.maximum)
        else:
            item.update(maxLength=s.maximum)
        out[key] = item
    return out


def change_schema() -> dict[str, Any]:
    """The JSON schema of a change (``PATCH /settings``): each key with its type and
    range, or null to unset it."""
    properties = {key: {**item, "type": [item["type"], "null"]}
                  for key, item in known_settings().items()}
    return {"type": "object", "properties": properties,
            "description": "Setting: value; null unsets the setting at this level. "
                           "Unknown keys are refused (400)."}


# -- the edge's copy ------------------------------------------------------------------------
def load_server_settings(db: Any) -> dict[str, Any]:
    """The server's settings the edge last received (checked again: the file may be old)."""
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
    return _decode(row[0]) if row else {}


def _decode(text: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    return parse_settings(raw)[0]


def store_server_settings(db: Any, raw: Any) -> tuple[dict[str, Any], list[str], bool]:
    """Keep the valid part of a roster reply's ``settings`` in place of the last ones.

    Returns (the settings kept, the problems, whether anything changed). A reply
    whose ``settings`` is not an object changes nothing.
    """
    from edge.outbox import immediate

    values, problems = parse_settings(raw)
    if not isinstance(raw, Mapping):
        return load_server_settings(db), problems, False
    before = load_server_settings(db)
    if values == before:
        return values, problems, False
    with immediate(db) as conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     [META_KEY, json.dumps(values, ensure_ascii=False, sort_keys=True)])
    return values, problems, True


def read_server_settings(database: Path) -> dict[str, Any]:
    """The stored settings, read-only (for ``check-config`` and a stopped service):
    nothing is created or migrated; no database yet is no settings."""
    if not database.exists():
        return {}
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return {}
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return _decode(row[0]) if row else {}


# -- effective values --------------------------------------------------------------------------
@dataclass(frozen=True)
class Effective:
    value: Any
    source: str
    """``server`` (set centrally), ``config`` (the edge's own configuration) or
    ``default`` (a setting without a configuration key, not set on the server)."""


def effective_settings(config: Any, server: Mapping[str, Any]) -> dict[str, Effective]:
    """Every setting's value on this edge: the server's when it sent one, else the
    edge configuration's (file, environment or its default)."""
    found = {}
    for key, setting in SETTINGS.items():
        if key in server:
            found[key] = Effective(server[key], "server")
        elif setting.config is not None:
            section, name = setting.config
            found[key] = Effective(getattr(getattr(config, section), name), "config")
        else:
            found[key] = Effective(setting.default, "default")
    return found


def describe(effective: Mapping[str, Effective]) -> dict[str, dict[str, Any]]:
    """JSON form for ``attendance-edge status --json`` and ``check-config``."""
    return {key: {"value": e.value, "source": e.source} for key, e in effective.items()}


def page_settings(db: Any) -> tuple[str, int]:
    """The operator page's notice and number of schedule days (from the server, else
    the defaults)."""
    stored = load_server_settings(db)
    notice = stored.get("page_notice", SETTINGS["page_notice"].default)
    days = stored.get("page_days", SETTINGS["page_days"].default)
    return notice, days
