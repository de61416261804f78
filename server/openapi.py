"""The sync API contract as data (OpenAPI 3.1), and request validation against it.

The server serves :data:`DOCUMENT` at ``/api/v1/openapi.json`` and validates
every request body and query string against the schemas *of this document*
(:class:`RequestValidator`), so the published contract is what the server
enforces. docs/SYNC_API.md explains it in prose.

Validation details that JSON Schema leaves open are fixed here:

* ``format`` is checked: ``date-time`` needs a UTC offset (RFC 3339) and a
  time that exists; ``date`` is a real ``YYYY-MM-DD`` day;
* ``pattern`` follows ECMA-262 (``$`` only at the very end: ``"abc\\n"`` does
  not match ``^abc$`` as it would with Python's ``re.search``);
* before the schema, :func:`check_json_values` refuses strings with NUL or
  unpaired surrogates (neither PostgreSQL nor UTF-8 can store them) and values
  nested deeper than :data:`MAX_DEPTH`;
* unknown properties are ignored, so that a newer edge keeps working with an
  older server.

Speed: a batch of 1000 taps takes jsonschema about 100 ms, several times the
cost of storing it. So each request schema is also compiled
(:func:`compile_schema`) into plain Python checks for the keywords this
document uses. A body the compiled check accepts is accepted; anything else
goes to jsonschema, which decides and explains (paths, messages). A test
holds the two to the same verdict on generated bodies.
"""

from __future__ import annotations

import copy
import itertools
import re
from datetime import date
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping

from server import __version__
from server.alerts import KINDS as ALERT_KINDS, SEVERITIES as ALERT_SEVERITIES
from edge.settings import change_schema, known_settings
from server.clock import parse_timestamp

API_PREFIX = "/api/v1"
SCHEMA_URI = "urn:attendance:sync-api:v1"
MAX_DEPTH = 32
MAX_INT64 = 2**63 - 1
MAX_DETAILS = 20

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
CARD_UID_PATTERN = r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{16}|[0-9A-F]{20})$"
DATE_TIME_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
                     r"(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$")
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema)}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _excuse_results(statuses: list[str], note: str = "") -> dict[str, Any]:
    """The reply of POST /excuses and of POST /excuses/withdraw: a status per excuse."""
    status: dict[str, Any] = {"type": "string", "enum": statuses}
    if note:
        status["description"] = note
    return {
        "type": "object",
        "required": ["results", "server_time"],
        "properties": {
            "results": {"type": "array", "items": {
                "type": "object", "required": ["excuse_id", "status"],
                "properties": {"excuse_id": {"type": "string"}, "status": status}}},
            "server_time": _SERVER_TIME,
        },
    }


_ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": ID_PATTERN}
_DATE_TIME = {"type": "string", "format": "date-time", "maxLength": 40}
_INT64_POS = {"type": "integer", "minimum": 1, "maximum": MAX_INT64}
_INT64_NONNEG = {"type": "integer", "minimum": 0, "maximum": MAX_INT64}
_SERVER_TIME = {"type": "string", "format": "date-time",
                "description": "The server's time (UTC, milliseconds) when it replied."}
#: ``missing_seq`` in the replies to pushes and heartbeats.
_SEQ_RANGES = {
    "type": "array",
    "description": "Ranges [first, last] of seq below highest_seq never received from this "
                   "device (at most 100 ranges, lowest first).",
    "items": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "integer"}],
              "minItems": 2, "maxItems": 2},
}

_COMMON_ERRORS = {
    "400": _error("`bad_json` (not JSON) or `validation_error` (does not match the schema; "
                  "`details` gives the path of each problem)."),
    "413": _error("`too_large`: the body is over the limit."),
    "503": _error("`unavailable`: the database is down; retry after `Retry-After` seconds."),
}
_AUTH_ERRORS = {"401": _error("`unauthorized`: token missing, unknown or revoked.")}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": [
                        "bad_json", "validation_error", "unauthorized", "forbidden",
                        "claim_code_invalid", "not_found", "method_not_allowed", "too_large",
                        "too_many_requests", "unavailable", "internal_error", "bad_request",
                        "invalid_file"]},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {
                        "type": "object", "required": ["path", "message"],
                        "properties": {"path": {"type": "string"},
                                       "message": {"type": "string"}}}},
                },
            },
        },
    },
    "Site": {
        "type": "object",
        "required": ["code", "name", "timezone"],
        "properties": {
            "code": {"type": "string", "description": "NPSN of a school or OPD code."},
            "name": {"type": "string"},
            "timezone": {"type": "string", "description": "IANA zone, e.g. Asia/Jakarta."},
        },
    },
    "EnrollRequest": {
        "type": "object",
        "required": ["claim_code", "hardware_id"],
        "properties": {
            "claim_code": {"type": "string", "minLength": 1, "maxLength": 64,
                           "description": "From `attendance-server device add`; "
                                          "case, spaces and dashes do not matter."},
            "hardware_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "name": {"type": ["string", "null"], "maxLength": 100},
            "outbox": {
                "type": ["object", "null"],
                "description": "The edge's tap database, checked with a replacement code "
                               "(`attendance-server device replace`): the device it was "
                               "enrolled as and the highest seq it ever issued.",
                "properties": {
                    "device_id": {"type": ["string", "null"], "maxLength": 40},
                    "last_seq": _INT64_NONNEG,
                },
            },
        },
    },
    "EnrollReply": {
        "type": "object",
        "required": ["device_id", "token", "site", "server_time"],
        "properties": {
            "device_id": {"type": "string"},
            "token": {"type": "string", "description": "The device's bearer token; "
                                                       "shown once, stored hashed."},
            "site": _ref("Site"),
            "highest_seq": {**_INT64_NONNEG,
                            "description": "The highest seq the server holds for the "
                                           "device (0 for a new one): the edge numbers its "
                                           "next taps above it."},
            "replaced": {"type": "boolean",
                         "description": "True for a replacement code: an existing device "
                                        "on new hardware (its previous token is refused)."},
            "server_time": _SERVER_TIME,
        },
    },
    "TokenRotation": {
        "type": "object",
        "required": ["token_sha256"],
        "properties": {
            "token_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                             "description": "SHA-256 (lowercase hex) of the new token the "
                                            "device made (256 random bits); the token itself "
                                            "is never sent."},
            "device_id": {"type": ["string", "null"], "maxLength": 40,
                          "description": "Optional; if present, must be the token's device."},
        },
    },
    "TokenRotationReply": {
        "type": "object",
        "required": ["device_id", "rotated", "server_time"],
        "properties": {
            "device_id": {"type": "string"},
            "rotated": {"type": "boolean",
                        "description": "False when the hash already was the device's token "
                                       "(a repeat after a lost reply)."},
            "server_time": _SERVER_TIME,
        },
    },
    "ClockSample": {
        "type": "object",
        "description": "The device's clocks at one moment: with the server's receive "
                       "time it makes a clock anchor.",
        "required": ["boot_id", "mono_ns", "wall_time"],
        "properties": {
            "boot_id": _ID,
            "mono_ns": _INT64_NONNEG,
            "wall_time": _DATE_TIME,
            "clock_synced": {"type": "boolean", "default": False},
        },
    },
    "Tap": {
        "type": "object",
        "required": ["event_id", "seq", "card_uid", "tapped_at", "boot_id", "mono_ns",
                     "clock_synced", "verdict"],
        "properties": {
            "event_id": {**_ID, "description": "UUID made on the edge; the idempotency key."},
            "device_id": {"type": ["string", "null"], "maxLength": 40,
                          "description": "Omitted or null for taps recorded before "
                                         "enrolment; else must be the token's device."},
            "seq": {**_INT64_POS, "description": "Gapless per-device sequence number."},
            "card_uid": {"type": "string", "pattern": CARD_UID_PATTERN,
                         "description": "Uppercase hex, 4, 7, 8 or 10 bytes."},
            "tapped_at": {**_DATE_TIME, "description": "Device wall clock with UTC offset."},
            "boot_id": _ID,
            "mono_ns": _INT64_NONNEG,
            "clock_synced": {"type": "boolean"},
            "reader": {"type": "string", "maxLength": 64, "default": ""},
            "verdict": {"type": "string",
                        "enum": ["accepted", "unknown", "blocked", "duplicate"]},
        },
    },
    "TapBatch": {
        "type": "object",
        "required": ["taps"],
        "properties": {
            "clock": _ref("ClockSample"),
            "taps": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ref("Tap"),
                     "description": "More than 1000 taps is refused with 413."},
        },
    },
    "TapResult": {
        "type": "object",
        "required": ["event_id", "seq", "status"],
        "properties": {
            "event_id": {"type": "string"},
            "seq": {"type": "integer"},
            "status": {"type": "string", "enum": ["accepted", "duplicate", "conflict"]},
        },
    },
    "TapBatchReply": {
        "type": "object",
        "required": ["results", "missing_seq", "highest_seq", "server_time"],
        "properties": {
            "results": {"type": "array", "items": _ref("TapResult")},
            "missing_seq": _SEQ_RANGES,
            "highest_seq": {"type": "integer"},
            "server_time": _SERVER_TIME,
        },
    },
    "ReaderHealth": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 64},
            "driver": {"type": ["string", "null"], "maxLength": 32},
            "connected": {"type": ["boolean", "null"]},
            "error": {"type": ["string", "null"], "maxLength": 500},
        },
    },
    "Heartbeat": {
        "type": "object",
        "required": ["boot_id", "mono_ns", "wall_time"],
        "properties": {
            "boot_id": _ID,
            "mono_ns": _INT64_NONNEG,
            "wall_time": _DATE_TIME,
            "clock_synced": {"type": "boolean", "default": False},
            "backlog": {**_INT64_NONNEG, "description": "Taps not yet acknowledged."},
            "oldest_unsent_at": {"type": ["string", "null"], "format": "date-time",
                                 "maxLength": 40},
            "reader_ok": {"type": ["boolean", "null"]},
            "readers": {"type": "array", "maxItems": 16, "items": _ref("ReaderHealth")},
            "versions": {"type": "object", "maxProperties": 32,
                         "propertyNames": {"maxLength": 64},
                         "additionalProperties": {"type": "string", "maxLength": 100}},
        },
    },
    "HeartbeatReply": {
        "type": "object",
        "required": ["server_time", "heartbeat_seconds", "highest_seq", "missing_seq"],
        "properties": {
            "server_time": _SERVER_TIME, "heartbeat_seconds": {"type": "integer"},
            "highest_seq": {"type": "integer",
                            "description": "The highest seq received from this device. An "
                                           "edge holding acknowledged taps above it (the "
                                           "server's database was restored) sends them again."},
            "missing_seq": _SEQ_RANGES,
        },
    },
    "RosterCard": {
        "type": "object",
        "required": ["card_uid", "person_id", "name", "kind", "group", "status"],
        "properties": {
            "card_uid": {"type": "string"},
            "person_id": {"type": "string", "description": "NISN, NIP or a local id."},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["student", "employee", ""]},
            "group": {"type": "string", "description": "Rombel (class) or unit."},
            "status": {"type": "string", "enum": ["active", "blocked", "lost", "replaced"]},
        },
    },
    "RosterReply": {
        "type": "object",
        "required": ["cursor", "full", "cards", "removed", "server_time"],
        "properties": {
            "cursor": {"type": "string", "description": "Pass as `since` next time."},
            "full": {"type": "boolean",
                     "description": "True: `cards` is the whole roster (replace the cache)."},
            "cards": {"type": "array", "items": _ref("RosterCard")},
            "removed": {"type": "array", "items": {"type": "string"},
                        "description": "Card UIDs that left the site's roster."},
            "plans": {"type": "array", "items": _ref("DayPlan"),
                      "description": "Today and the next six days in the site's local time, "
                                     "from its schedule and calendar (left out when they "
                                     "cannot be made)."},
            "settings": {"type": "object",
                         "description": "The device's remote settings (`PATCH /settings`): "
                                        "its own over its site's; a key left out means the "
                                        "edge's own configuration. Sent whole in every reply, "
                                        "whatever `since`.",
                         "properties": {key: {k: v for k, v in item.items()}
                                        for key, item in known_settings().items()}},
            "server_time": _SERVER_TIME,
        },
    },
    "DayPlan": {
        "type": "object",
        "required": ["date", "workday", "start", "end", "grace_minutes", "reason"],
        "properties": {
            "date": {"type": "string", "format": "date", "description": "Local date."},
            "workday": {"type": "boolean"},
            "start": {"type": ["string", "null"], "pattern": r"^[0-9]{2}:[0-9]{2}$",
                      "description": "Local start of the working day, `HH:MM`; null on a "
                                     "day off."},
            "end": {"type": ["string", "null"], "pattern": r"^[0-9]{2}:[0-9]{2}$",
                    "description": "Local end (earlier on a half day); null on a day off."},
            "grace_minutes": {"type": "integer",
                              "description": "Minutes after `start` before a person is late."},
            "reason": {"type": "string",
                       "description": "`\"\"` on a working day, `weekend` or "
                                      "`holiday: <name>` on a day off."},
        },
    },
    "SitePerson": {
        "type": "object",
        "required": ["person_id", "name", "kind", "group_name"],
        "properties": {
            "person_id": {"type": "string", "description": "NISN, NIP or a local id."},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["student", "employee", ""]},
            "group_name": {"type": "string", "description": "Rombel (class) or unit."},
        },
    },
    "SitePeopleReply": {
        "type": "object",
        "required": ["version", "people", "server_time"],
        "properties": {
            "version": {"type": "string", "description": "Also the reply's `ETag`; send it "
                                                         "as `If-None-Match` next time."},
            "people": {"type": "array", "items": _ref("SitePerson")},
            "server_time": _SERVER_TIME,
        },
    },
    "CardRequest": {
        "type": "object",
        "required": ["request_id", "kind", "card_uid", "requested_at"],
        "properties": {
            "request_id": {**_ID, "description": "UUID made on the edge; the idempotency key."},
            "kind": {"type": "string", "enum": ["bind", "lost"],
                     "description": "`bind`: give the card to `person_id`; `lost`: the card "
                                    "was lost (its later taps become anomalies)."},
            "card_uid": {"type": "string", "pattern": r"^[0-9A-Fa-f]{8,20}$",
                         "description": "Hex, 4, 7, 8 or 10 bytes (another length, or a "
                                        "random UID, is rejected)."},
            "person_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 32,
                          "pattern": ID_PATTERN,
                          "description": "Required for `bind`; null (ignored) for `lost`."},
            "requested_at": {**_DATE_TIME,
                             "description": "When the operator asked, with UTC offset: the "
                                            "change takes effect then (a time in the future "
                                            "or more than 30 days ago counts as now)."},
        },
    },
    "CardRequestBatch": {
        "type": "object",
        "required": ["requests"],
        "properties": {
            "requests": {"type": "array", "minItems": 1, "maxItems": 1000,
                         "items": _ref("CardRequest")},
        },
    },
    "CardRequestReply": {
        "type": "object",
        "required": ["results", "server_time"],
        "properties": {
            "results": {"type": "array", "items": {
                "type": "object", "required": ["request_id", "status"],
                "properties": {
                    "request_id": {"type": "string"},
                    "status": {"type": "string", "enum": ["applied", "duplicate", "rejected"]},
                    "error": {"type": "string", "description": "Why, when rejected (also on a "
                                                               "duplicate of a rejected one)."},
                    "outcome": {"type": "string", "enum": ["applied", "rejected"],
                                "description": "On a duplicate: what the first delivery did."},
                }}},
            "server_time": _SERVER_TIME,
        },
    },
    "Excuse": {
        "type": "object",
        "required": ["excuse_id", "person_id", "kind", "date_from", "date_to"],
        "properties": {
            "excuse_id": _ID,
            "person_id": {"type": "string", "minLength": 1, "maxLength": 32,
                          "pattern": ID_PATTERN},
            "kind": {"type": "string", "enum": ["sakit", "izin", "dinas_luar", "cuti"]},
            "date_from": {"type": "string", "format": "date"},
            "date_to": {"type": "string", "format": "date",
                        "description": "On or after date_from."},
            "note": {"type": ["string", "null"], "maxLength": 1000},
        },
    },
    "ExcuseBatch": {
        "type": "object",
        "required": ["excuses"],
        "properties": {
            "excuses": {"type": "array", "minItems": 1, "maxItems": 1000,
                        "items": _ref("Excuse")},
        },
    },
    "ExcuseReply": _excuse_results(["accepted", "duplicate"]),
    "WithdrawalBatch": {
        "type": "object",
        "required": ["withdrawals"],
        "properties": {
            "withdrawals": {"type": "array", "minItems": 1, "maxItems": 1000,
                            "items": _ref("Excuse"),
                            "description": "The excuses to withdraw, as they were pushed."},
        },
    },
    "WithdrawalReply": _excuse_results(["withdrawn", "duplicate"],
                                       "duplicate: it was withdrawn already."),
    "Health": {
        "type": "object",
        "required": ["status", "database"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": {"type": "string"},
            "server_time": _SERVER_TIME,
        },
    },
}

# -- the integrators' API (API keys: diskominfo, operator) ------------------------------------
SITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MONTH_PATTERN = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$"
LIMIT_PATTERN = r"^(?:[1-9][0-9]{0,3}|10000)$"
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_KEY_ERRORS = {
    "400": _error("`validation_error`: a query value does not match the document "
                  "(`details` names the parameter)."),
    "401": _error("`unauthorized`: API key missing, unknown or revoked (a device token "
                  "is not an API key)."),
    "403": _error("`forbidden`: an operator key asked for another site, or the operation "
                  "needs a diskominfo key."),
    "503": _error("`unavailable`: the database is down; retry after `Retry-After` seconds."),
}
_SITE_NOT_FOUND = {"404": _error("`not_found`: no site with that code (diskominfo keys).")}


def _query(name: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


_SITE_PARAM = _query("site", {"type": "string", "minLength": 1, "maxLength": 32,
                              "pattern": SITE_PATTERN},
                     "A site code. Operator keys: only their own site (the default); "
                     "diskominfo keys: any site, or every site when left out.")
_LIMIT_PARAM = _query("limit", {"type": "string", "pattern": LIMIT_PATTERN},
                      "Items per page, 1 to 10000 (default 1000).")
_PAGE_PARAM = _query("cursor", {"type": "string", "maxLength": 200,
                                "pattern": r"^[A-Za-z0-9_-]*$"},
                     "The `next_cursor` of the previous page; left out: the first page.")
_DEVICE_PARAM = _query("device", {"type": "string", "minLength": 1, "maxLength": 40,
                                  "pattern": SITE_PATTERN},
                       "A device id (`dev_…`): its own settings instead of its site's.")
_MONTH_PARAM = _query("month", {"type": "string", "pattern": MONTH_PATTERN},
                      "The month, `YYYY-MM`.", required=True)
_FORMAT_PARAM = _query("format", {"type": "string", "enum": ["json", "csv", "xlsx"]},
                       "`json` (default), `csv` (UTF-8 with BOM) or `xlsx`.")


def _report_ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {
        "application/json": {"schema": _ref(schema)},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
            "schema": {"type": "string", "format": "binary"}},
    }}


def _page(items: str, item_schema: str, cursor: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [items, "next_cursor", "server_time"],
            "properties": {items: {"type": "array", "items": _ref(item_schema)},
                           "next_cursor": cursor, "server_time": _SERVER_TIME}}


_PAGE_CURSOR = {"type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null: no more pages."}

KEY_SCHEMAS: dict[str, Any] = {
    "AttendanceRow": {
        "type": "object",
        "required": ["person_id", "name", "kind", "site", "group", "date", "status",
                     "late_code", "early_code", "check_in", "check_out", "check_in_local",
                     "check_out_local", "timezone", "tap_count", "flags", "version"],
        "properties": {
            "person_id": {"type": "string"}, "name": {"type": "string"},
            "kind": {"type": ["string", "null"], "enum": ["employee", "student", None]},
            "nip": _NULLABLE_STR, "nisn": _NULLABLE_STR,
            "site": {"type": "string"}, "group": {"type": "string"},
            "date": {"type": "string", "format": "date", "description": "Local date."},
            "status": {"type": "string",
                       "enum": ["H", "A", "S", "I", "DL", "C", "LIBUR", "PENDING"]},
            "late_code": {**_NULLABLE_STR, "description": "TL1..TL4 (terlambat)."},
            "early_code": {**_NULLABLE_STR,
                           "description": "PSW1..PSW4 (pulang sebelum waktunya)."},
            "check_in": {**_NULLABLE_TIME, "description": "UTC."},
            "check_out": {**_NULLABLE_TIME, "description": "UTC."},
            "check_in_local": {**_NULLABLE_TIME, "description": "In the site's zone."},
            "check_out_local": {**_NULLABLE_TIME, "description": "In the site's zone."},
            "timezone": {"type": "string"},
            "minutes_late": {"type": ["integer", "null"]},
            "minutes_early": {"type": ["integer", "null"]},
            "tap_count": {"type": "integer"},
            "flags": {"type": "array", "items": {"type": "string"}},
            "excuse_id": _NULLABLE_STR,
            "version": {"type": "integer",
                        "description": "Changes whenever the row's content changes."},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "AttendanceReply": {
        "type": "object", "required": ["date", "site", "rows", "next_cursor", "server_time"],
        "properties": {"date": {"type": "string", "format": "date"}, "site": _NULLABLE_STR,
                       "rows": {"type": "array", "items": _ref("AttendanceRow")},
                       "next_cursor": _PAGE_CURSOR, "server_time": _SERVER_TIME},
    },
    "ChangesReply": _page("changes", "AttendanceRow", {
        "type": "string", "description": "Pass as `cursor` next time; equal to the cursor "
                                         "given when `changes` is empty."}),
    "RecapRow": {
        "type": "object",
        "required": ["person_id", "name", "kind", "site", "group", "first_day", "last_day",
                     "counts", "days", "working_days", "percent_present",
                     "deduction_percent"],
        "properties": {
            "person_id": {"type": "string"}, "name": {"type": "string"},
            "kind": _NULLABLE_STR, "nip": _NULLABLE_STR, "nisn": _NULLABLE_STR,
            "site": {"type": "string"}, "site_name": {"type": "string"},
            "group": {"type": "string"},
            "first_day": {"type": "string", "format": "date"},
            "last_day": {"type": "string", "format": "date"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "Days per status (H, A, S, I, DL, C, LIBUR, PENDING) "
                                      "and, among H days, per late and early code."},
            "days": {"type": "integer"},
            "working_days": {"type": "integer", "description": "H + A + S + I + DL + C."},
            "percent_present": {"type": "number"},
            "deduction_percent": {"type": ["number", "null"],
                                  "description": "Allowance (TPP) deduction; employees "
                                                 "only, capped at 100."},
        },
    },
    "RecapReply": {
        "type": "object", "required": ["month", "site", "kind", "weights", "rows",
                                       "server_time"],
        "properties": {"month": {"type": "string"}, "site": _NULLABLE_STR,
                       "kind": _NULLABLE_STR,
                       "weights": {"type": "object",
                                   "additionalProperties": {"type": "number"}},
                       "rows": {"type": "array", "items": _ref("RecapRow")},
                       "server_time": _SERVER_TIME},
    },
    "ClassRecapRow": {
        "type": "object",
        "required": ["site", "group", "students", "counts", "late", "working_days",
                     "percent_present"],
        "properties": {"site": {"type": "string"}, "group": {"type": "string"},
                       "students": {"type": "integer"},
                       "counts": {"type": "object",
                                  "additionalProperties": {"type": "integer"}},
                       "late": {"type": "integer"}, "working_days": {"type": "integer"},
                       "percent_present": {"type": "number"}},
    },
    "ClassRecapReply": {
        "type": "object", "required": ["month", "site", "classes", "server_time"],
        "properties": {"month": {"type": "string"}, "site": {"type": "string"},
                       "classes": {"type": "array", "items": _ref("ClassRecapRow")},
                       "server_time": _SERVER_TIME},
    },
    "Anomaly": {
        "type": "object",
        "required": ["id", "site", "date", "kind", "card_uid", "person_id", "event_id",
                     "detail", "first_seen_at"],
        "properties": {"id": {"type": "integer"}, "site": {"type": "string"},
                       "date": {"type": "string", "format": "date"},
                       "kind": {"type": "string"}, "card_uid": _NULLABLE_STR,
                       "person_id": _NULLABLE_STR, "event_id": _NULLABLE_STR,
                       "detail": {"type": "object"},
                       "first_seen_at": {"type": "string", "format": "date-time"}},
    },
    "AnomaliesReply": _page("anomalies", "Anomaly", _PAGE_CURSOR),
    "FleetDevice": {
        "type": "object",
        "required": ["device_id", "site", "name", "last_seen_at", "backlog",
                     "oldest_unsent_at", "clock_offset_ms", "reader_ok", "revoked"],
        "properties": {"device_id": {"type": "string"}, "site": {"type": "string"},
                       "name": {"type": "string"}, "created_at": _NULLABLE_TIME,
                       "last_seen_at": _NULLABLE_TIME, "backlog": {"type": ["integer", "null"]},
                       "oldest_unsent_at": _NULLABLE_TIME,
                       "clock_offset_ms": {"type": ["integer", "null"],
                                           "description": "Device clock minus server time."},
                       "reader_ok": {"type": ["boolean", "null"]},
                       "readers": {"type": "array"}, "versions": {"type": "object"},
                       "highest_seq": {"type": "integer"}, "revoked": {"type": "boolean"},
                       "revoked_at": _NULLABLE_TIME},
    },
    "DevicesReply": {
        "type": "object", "required": ["devices", "server_time"],
        "properties": {"devices": {"type": "array", "items": _ref("FleetDevice")},
                       "server_time": _SERVER_TIME},
    },
    "FleetAlert": {
        "type": "object",
        "required": ["kind", "severity", "device_id", "device_name", "site", "since", "value",
                     "threshold", "unit", "detail"],
        "properties": {
            "kind": {"type": "string", "enum": list(ALERT_KINDS)},
            "severity": {"type": "string", "enum": list(ALERT_SEVERITIES)},
            "device_id": {"type": "string"}, "device_name": {"type": "string"},
            "site": {"type": "string"},
            "since": {**_NULLABLE_TIME, "description": "Last heard from (silent), enrolled "
                      "(never_seen), oldest unsent tap (backlog), heartbeat that reported "
                      "it (clock_offset, reader_down)."},
            "value": {"type": "number", "description": "Minutes (silent, never_seen, "
                      "backlog), seconds of clock offset (signed: positive is ahead), "
                      "readers down (reader_down)."},
            "threshold": {"type": ["number", "null"],
                          "description": "The threshold crossed, in `unit`; null for "
                                         "reader_down."},
            "unit": {"type": "string", "enum": ["minutes", "seconds", "readers"]},
            "detail": {"type": "object", "description": "backlog: `backlog` (taps); "
                       "clock_offset: `offset_ms`; reader_down: `readers` "
                       "(`name`, `error`) and `readers_reported`."}},
    },
    "AlertsReply": {
        "type": "object", "required": ["alerts", "counts", "thresholds", "server_time"],
        "properties": {"alerts": {"type": "array", "items": _ref("FleetAlert")},
                       "counts": {"type": "object", "required": list(ALERT_SEVERITIES),
                                  "additionalProperties": {"type": "integer"}},
                       "thresholds": {"type": "object",
                                      "additionalProperties": {"type": "number"},
                                      "description": "The [alerts] configuration."},
                       "server_time": _SERVER_TIME},
    },
    "SiteInfo": {
        "type": "object", "required": ["code", "name", "timezone", "kind", "devices"],
        "properties": {"code": {"type": "string"}, "name": {"type": "string"},
                       "timezone": {"type": "string"},
                       "kind": {"type": ["string", "null"], "enum": ["school", "office", None]},
                       "regency": {"type": "string"}, "schedule": _NULLABLE_STR,
                       "reconciled_through": {"type": ["string", "null"], "format": "date"},
                       "devices": {"type": "integer", "description": "Devices not revoked."}},
    },
    "SitesReply": {
        "type": "object", "required": ["sites", "server_time"],
        "properties": {"sites": {"type": "array", "items": _ref("SiteInfo")},
                       "server_time": _SERVER_TIME},
    },
    "Person": {
        "type": "object", "required": ["person_id", "kind", "name", "site", "group", "active"],
        "properties": {"person_id": {"type": "string"}, "kind": _NULLABLE_STR,
                       "name": {"type": "string"}, "nip": _NULLABLE_STR,
                       "nisn": _NULLABLE_STR, "site": _NULLABLE_STR,
                       "group": {"type": "string"}, "position": {"type": "string"},
                       "employment": {"type": "string"}, "active": {"type": "boolean"}},
    },
    "PeopleReply": _page("people", "Person", _PAGE_CURSOR),
    "RegistryJson": {
        "type": ["object", "array"],
        "description": "Students: the Dapodik web-service answer (getPesertaDidik). Other "
                       "registries: `{\"rows\": [{column: value, …}]}` with the columns of "
                       "the CSV file.",
    },
    "RegistryEntry": {
        "type": "object", "required": ["key"],
        "properties": {"key": {"type": "string",
                               "description": "Person id, site code or card UID."},
                       "name": {"type": "string"}, "line": {"type": ["integer", "null"]},
                       "site_from": _NULLABLE_STR, "site_to": _NULLABLE_STR,
                       "effective": {"type": ["string", "null"], "format": "date"},
                       "changes": {"type": "object", "description": "field: [old, new]"},
                       "note": {"type": "string"}},
    },
    "RegistryDiffReply": {
        "type": "object",
        "required": ["registry", "source", "applied", "dry_run", "counts", "server_time"],
        "properties": {
            "registry": {"type": "string",
                         "enum": ["sites", "employees", "students", "cards"]},
            "source": {"type": "string"}, "site": _NULLABLE_STR,
            "applied": {"type": "boolean", "description": "False for a dry run or when "
                                                          "nothing changes."},
            "dry_run": {"type": "boolean"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            **{category: {"type": "array", "items": _ref("RegistryEntry")}
               for category in ("joiners", "leavers", "transfers", "changes", "new",
                                "rebound")},
            "server_time": _SERVER_TIME,
        },
    },
    "SettingsChange": {
        "type": "object",
        "required": ["settings"],
        "properties": {"settings": change_schema()},
    },
    "SettingsReply": {
        "type": "object",
        "required": ["site", "device", "settings", "changed", "effective", "server_time"],
        "properties": {
            "site": {"type": "string"},
            "device": {**_NULLABLE_STR, "description": "Null: the site level."},
            "settings": {"type": "object", "description": "The settings set at this level."},
            "changed": {"type": "object", "description": "For each of them: `updated_at` "
                                                         "and `updated_by`."},
            "effective": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["value", "level"],
                "properties": {"value": {"type": ["integer", "string"]},
                               "level": {"type": "string", "enum": ["site", "device"]}}},
                "description": "What a device gets (a device: its own over its site's; "
                               "a site: what its devices get unless they set their own)."},
            "set": {"type": "array", "items": {"type": "string"},
                    "description": "PATCH: the keys whose value changed."},
            "unset": {"type": "array", "items": {"type": "string"},
                      "description": "PATCH: the keys no longer set at this level."},
            "server_time": _SERVER_TIME,
        },
    },
}
SCHEMAS.update(KEY_SCHEMAS)

_KEY_SECURITY = [{"apiKey": []}]

KEY_PATHS: dict[str, Any] = {
    "/attendance": {"get": {
        "operationId": "getAttendance",
        "summary": "A local day's attendance rows (status, codes, check-in/out in UTC and "
                   "local time), by site and person.",
        "security": _KEY_SECURITY,
        "parameters": [_query("date", {"type": "string", "format": "date", "maxLength": 10},
                              "The local date, `YYYY-MM-DD`.", required=True),
                       _SITE_PARAM, _LIMIT_PARAM, _PAGE_PARAM],
        "responses": {"200": _ok("One page of rows.", "AttendanceReply"), **_KEY_ERRORS,
                      **_SITE_NOT_FOUND},
    }},
    "/changes": {"get": {
        "operationId": "getChanges",
        "summary": "The change feed: attendance rows whose version is above the cursor, "
                   "oldest first. Follow `next_cursor` until `changes` is empty.",
        "security": _KEY_SECURITY,
        "parameters": [_query("cursor", {"type": "string", "pattern": r"^[0-9]{1,18}$"},
                              "The `next_cursor` of the previous reply; `0` or left out: "
                              "from the beginning."),
                       _LIMIT_PARAM],
        "responses": {"200": _ok("Changed rows (operator keys: of their site only).",
                                 "ChangesReply"), **_KEY_ERRORS},
    }},
    "/recap": {"get": {
        "operationId": "getRecap",
        "summary": "Monthly recap per person and site: days H, TL1-4, PSW1-4, S, I, A, DL, "
                   "C; percent present; allowance deduction for employees.",
        "security": _KEY_SECURITY,
        "parameters": [_MONTH_PARAM, _SITE_PARAM,
                       _query("kind", {"type": "string", "enum": ["employee", "student"]},
                              "Only employees or only students."),
                       _FORMAT_PARAM],
        "responses": {"200": _report_ok("The recap (a file for csv and xlsx).", "RecapReply"),
                      **_KEY_ERRORS, **_SITE_NOT_FOUND},
    }},
    "/recap/classes": {"get": {
        "operationId": "getClassRecap",
        "summary": "Students of one school per class for a month: H, S, I, A, late days, "
                   "percent present.",
        "security": _KEY_SECURITY,
        "parameters": [_MONTH_PARAM, {**_SITE_PARAM, "description":
                                      "The school; diskominfo keys must give it."},
                       _FORMAT_PARAM],
        "responses": {"200": _report_ok("The class recap (a file for csv and xlsx).",
                                        "ClassRecapReply"),
                      **_KEY_ERRORS, **_SITE_NOT_FOUND},
    }},
    "/anomalies": {"get": {
        "operationId": "getAnomalies",
        "summary": "Anomalies found by reconciliation (unknown or lost cards used, other "
                   "site, impossible travel, …), oldest first.",
        "security": _KEY_SECURITY,
        "parameters": [_query("date_from", {"type": "string", "format": "date",
                                            "maxLength": 10}, "First local date."),
                       _query("date_to", {"type": "string", "format": "date",
                                          "maxLength": 10}, "Last local date (inclusive)."),
                       _SITE_PARAM,
                       _query("kind", {"type": "string", "pattern": r"^[a-z_]{1,32}$"},
                              "Only this kind, e.g. `unknown_card`."),
                       _LIMIT_PARAM, _PAGE_PARAM],
        "responses": {"200": _ok("One page of anomalies.", "AnomaliesReply"), **_KEY_ERRORS,
                      **_SITE_NOT_FOUND},
    }},
    "/devices": {"get": {
        "operationId": "getFleet",
        "summary": "The devices with their health: last seen, backlog, oldest unsent tap, "
                   "clock offset, reader state, revoked.",
        "security": _KEY_SECURITY,
        "parameters": [_SITE_PARAM],
        "responses": {"200": _ok("The devices.", "DevicesReply"), **_KEY_ERRORS,
                      **_SITE_NOT_FOUND},
    }},
    "/alerts": {"get": {
        "operationId": "getAlerts",
        "summary": "Fleet alerts now, critical first: devices silent or never seen, backlogs "
                   "older than a threshold, clock offsets, readers down. Revoked devices "
                   "raise none.",
        "security": _KEY_SECURITY,
        "parameters": [_SITE_PARAM,
                       _query("kind", {"type": "string", "enum": list(ALERT_KINDS)},
                              "Only alerts of this kind."),
                       _query("severity", {"type": "string", "enum": list(ALERT_SEVERITIES)},
                              "Only `critical` or only `warning` alerts.")],
        "responses": {"200": _ok("The alerts (operator keys: of their site).", "AlertsReply"),
                      **_KEY_ERRORS, **_SITE_NOT_FOUND},
    }},
    "/sites": {"get": {
        "operationId": "getSites",
        "summary": "The sites (operator keys: their own).",
        "security": _KEY_SECURITY,
        "responses": {"200": _ok("The sites.", "SitesReply"), **_KEY_ERRORS},
    }},
    "/people": {"get": {
        "operationId": "getPeople",
        "summary": "The registry's people at their current site, by person id (no NIK).",
        "security": _KEY_SECURITY,
        "parameters": [_SITE_PARAM, _LIMIT_PARAM, _PAGE_PARAM],
        "responses": {"200": _ok("One page of people.", "PeopleReply"), **_KEY_ERRORS,
                      **_SITE_NOT_FOUND},
    }},
    "/settings": {
        "get": {
            "operationId": "getSettings",
            "summary": "The remote settings of a site, or of one device with its site's "
                       "(docs/DISKOMINFO_API.md).",
            "security": _KEY_SECURITY,
            "parameters": [_SITE_PARAM, _DEVICE_PARAM],
            "responses": {"200": _ok("The settings of that level and the effective ones.",
                                     "SettingsReply"), **_KEY_ERRORS,
                          "404": _error("`not_found`: no such site, or no such device at "
                                        "the site.")},
        },
        "patch": {
            "operationId": "changeSettings",
            "summary": "Set (a value) or unset (null) remote settings of a site or of one "
                       "device; the devices get them with their next roster. Operator keys: "
                       "their own site and its devices.",
            "security": _KEY_SECURITY,
            "parameters": [_SITE_PARAM, _DEVICE_PARAM],
            "requestBody": _body("SettingsChange"),
            "responses": {"200": _ok("Changed (all or nothing).", "SettingsReply"),
                          **_KEY_ERRORS,
                          "400": _error("`bad_json`, or `validation_error`: an unknown "
                                        "setting, a wrong type or a value out of range "
                                        "(`details` names `settings.<key>`); nothing "
                                        "changed."),
                          "404": _error("`not_found`: no such site, or no such device at "
                                        "the site."),
                          "413": _error("`too_large`: the body is over the limit.")},
        },
    },
    "/registry/{kind}": {"post": {
        "operationId": "importRegistry",
        "summary": "Import a registry file (sites, employees, students, cards): all or "
                   "nothing; `dry_run=true` only shows the diff. Diskominfo keys only.",
        "security": _KEY_SECURITY,
        "parameters": [
            {"name": "kind", "in": "path", "required": True,
             "schema": {"type": "string", "enum": ["sites", "employees", "students", "cards"]}},
            _query("dry_run", {"type": "string", "enum": ["true", "false"]},
                   "`true`: compare only, write nothing (default `false`)."),
            _query("npsn", {"type": "string", "pattern": r"^[0-9]{8}$"},
                   "Students: the school, when the file's title rows do not name it."),
            _query("effective", {"type": "string", "format": "date", "maxLength": 10},
                   "Employees, students: the day joiners, leavers and transfers take "
                   "effect (default: today)."),
            _query("filename", {"type": "string", "pattern": r"^[A-Za-z0-9._ -]{1,100}$"},
                   "The file's name, used in problem reports."),
        ],
        "requestBody": {"required": True, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                "schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": _ref("RegistryJson")},
        }},
        "responses": {
            "200": _ok("The diff (applied unless `dry_run`).", "RegistryDiffReply"),
            **_KEY_ERRORS,
            "404": _error("`not_found`: not one of the four registries."),
            "413": _error("`too_large`: the file is over the upload limit (64 MiB)."),
            "422": _error("`invalid_file`: the file has problems; `details` lists every one "
                          "with `file`, `line` (or `row` for JSON), `field` and `reason`. "
                          "Nothing was written."),
        },
    }},
}
# -- end of the integrators' API ----------------------------------------------------------------

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Smart-card attendance sync API",
        "version": "1",
        "summary": "Edge readers push card taps, heartbeats and excuses; pull their roster.",
        "description": "See docs/SYNC_API.md (devices) and docs/DISKOMINFO_API.md "
                       "(integrators, API keys). Every successful reply carries `server_time`. "
                       "Errors are JSON: `{\"error\": {\"code\", \"message\", \"details\"}}`. "
                       "Unknown properties in request bodies are ignored.",
        "license": {"name": "MIT", "identifier": "MIT"},
        "x-server-version": __version__,
    },
    "servers": [{"url": API_PREFIX}],
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "deviceToken": {"type": "http", "scheme": "bearer",
                            "description": "The token a device got from /devices/enroll."},
            "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "ak_<key_id>.<secret>",
                       "description": "An API key from `attendance-server key add` "
                                      "(role diskominfo or operator); see "
                                      "docs/DISKOMINFO_API.md."},
        },
    },
    "paths": {
        "/devices/enroll": {
            "post": {
                "operationId": "enrollDevice",
                "summary": "Exchange a single-use claim code for a device id and token.",
                "security": [],
                "requestBody": _body("EnrollRequest"),
                "responses": {
                    "200": _ok("Enrolled.", "EnrollReply"),
                    "403": _error("`claim_code_invalid`: the code is unknown, used or expired."),
                    "409": _error("`outbox_mismatch`: a replacement code, but the edge's tap "
                                  "database holds taps that are not that device's; the code "
                                  "stays unused."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/devices/token": {
            "post": {
                "operationId": "rotateDeviceToken",
                "summary": "Replace the device's own token (idempotent; the old one is "
                           "refused from then on).",
                "security": [{"deviceToken": []}],
                "requestBody": _body("TokenRotation"),
                "responses": {
                    "200": _ok("The device's token is now the one of `token_sha256`.",
                               "TokenRotationReply"),
                    **_AUTH_ERRORS,
                    "403": _error("`forbidden`: `device_id` names another device."),
                    "409": _error("`token_in_use`: pick another random token."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/taps": {
            "post": {
                "operationId": "pushTaps",
                "summary": "Store a batch of taps (all or nothing, idempotent by event_id).",
                "security": [{"deviceToken": []}],
                "requestBody": _body("TapBatch"),
                "responses": {
                    "200": _ok("Every tap is named with accepted, duplicate or conflict.",
                               "TapBatchReply"),
                    **_AUTH_ERRORS,
                    "403": _error("`forbidden`: a tap names another device; nothing stored."),
                    **_COMMON_ERRORS,
                    "413": _error("`too_large`: over the size limit or more than 1000 taps."),
                },
            },
        },
        "/heartbeat": {
            "post": {
                "operationId": "heartbeat",
                "summary": "Fleet health and a clock anchor.",
                "security": [{"deviceToken": []}],
                "requestBody": _body("Heartbeat"),
                "responses": {"200": _ok("Recorded.", "HeartbeatReply"), **_AUTH_ERRORS,
                              **_COMMON_ERRORS},
            },
        },
        "/roster": {
            "get": {
                "operationId": "getRoster",
                "summary": "The roster of the device's site: whole, or the changes since a "
                           "cursor.",
                "security": [{"deviceToken": []}],
                "parameters": [{
                    "name": "since", "in": "query", "required": False,
                    "description": "The cursor of the previous reply. Missing, or a cursor "
                                   "the server can no longer serve: the whole roster.",
                    "schema": {"type": "string", "maxLength": 64},
                }],
                "responses": {"200": _ok("The roster or its delta.", "RosterReply"),
                              **_AUTH_ERRORS, **_COMMON_ERRORS},
            },
        },
        "/roster/people": {
            "get": {
                "operationId": "getSitePeople",
                "summary": "The people of the device's site, with or without a card (for "
                           "binding a new card at the gate).",
                "security": [{"deviceToken": []}],
                "parameters": [{
                    "name": "If-None-Match", "in": "header", "required": False,
                    "description": "The `version` (ETag) of a previous reply: 304 when "
                                   "nothing changed.",
                    "schema": {"type": "string", "maxLength": 200},
                }],
                "responses": {"200": _ok("The people and their version (also the `ETag`).",
                                         "SitePeopleReply"),
                              "304": {"description": "Not modified: the version sent in "
                                                     "`If-None-Match` is current."},
                              **_AUTH_ERRORS, **_COMMON_ERRORS},
            },
        },
        "/cards/requests": {
            "post": {
                "operationId": "pushCardRequests",
                "summary": "Bind cards to people of the device's site or report cards lost; "
                           "idempotent by request_id.",
                "security": [{"deviceToken": []}],
                "requestBody": _body("CardRequestBatch"),
                "responses": {
                    "200": _ok("Every request is named with applied, duplicate or rejected "
                               "(with the reason).", "CardRequestReply"),
                    **_AUTH_ERRORS, **_COMMON_ERRORS,
                    "413": _error("`too_large`: over the size limit or more than 1000 "
                                  "requests."),
                },
            },
        },
        "/excuses": {
            "post": {
                "operationId": "pushExcuses",
                "summary": "Store excuse records (sakit, izin, dinas luar, cuti), idempotent "
                           "by excuse_id.",
                "security": [{"deviceToken": []}, {"apiKey": []}],
                "requestBody": _body("ExcuseBatch"),
                "responses": {"200": _ok("Stored.", "ExcuseReply"), **_AUTH_ERRORS,
                              "403": _error("`forbidden`: an operator key sent an excuse "
                                            "for a person not of its site; nothing stored."),
                              **_COMMON_ERRORS},
            },
        },
        "/excuses/withdraw": {
            "post": {
                "operationId": "withdrawExcuses",
                "summary": "Withdraw excuses: they stay stored but no longer decide any day; "
                           "the days they covered are reconciled again. Idempotent.",
                "security": [{"deviceToken": []}, {"apiKey": []}],
                "requestBody": _body("WithdrawalBatch"),
                "responses": {"200": _ok("Withdrawn.", "WithdrawalReply"), **_AUTH_ERRORS,
                              "403": _error("`forbidden`: an excuse recorded for another "
                                            "site, or (operator key) a person not of its "
                                            "site; nothing withdrawn."),
                              **_COMMON_ERRORS},
            },
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness and database reachability (for load balancers).",
                "security": [],
                "responses": {
                    "200": _ok("The server and its database answer.", "Health"),
                    "503": _error("`unavailable`: the database does not answer."),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document.",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}}},
            },
        },
        **KEY_PATHS,
    },
}


def document() -> dict[str, Any]:
    """A copy of the document, safe to hand out."""
    return copy.deepcopy(DOCUMENT)


# -- validation -----------------------------------------------------------------------------
class Problem(Exception):
    """A request that does not match the contract; ``details`` are (path, message) dicts."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        self.details = details
        first = details[0]
        where = f"{first['path']}: " if first["path"] else ""
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        super().__init__(f"{where}{first['message']}{more}")


def json_path(parts: Any) -> str:
    """``["taps", 3, "seq"]`` -> ``taps[3].seq``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def check_json_values(value: Any, at: tuple[Any, ...] = ()) -> None:
    """Refuse NUL, unpaired surrogates and deep nesting anywhere in a parsed JSON value
    (found at path ``at`` of the body)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, at)]
    problems: list[dict[str, str]] = []
    while stack and len(problems) < MAX_DETAILS:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            problems.append({"path": json_path(path),
                             "message": f"nested more than {MAX_DEPTH} levels deep"})
            continue
        if isinstance(item, dict):
            for key, sub in item.items():
                reason = _bad_text(key)
                if reason:
                    problems.append({"path": json_path(path), "message": f"a key {reason}"})
                stack.append((sub, (*path, key)))
        elif isinstance(item, list):
            stack.extend((sub, (*path, i)) for i, sub in enumerate(item))
        elif isinstance(item, str):
            reason = _bad_text(item)
            if reason:
                problems.append({"path": json_path(path), "message": f"the string {reason}"})
    if problems:
        raise Problem(sorted(problems, key=lambda p: p["path"]))


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (not valid Unicode)"
    return None


def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(DATE_TIME_PATTERN[1:-1], value):
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def _check_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(DATE_PATTERN[1:-1], value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


#: The formats checked, by jsonschema and by the compiled checks alike.
_FORMAT_CHECKS: dict[str, Callable[[Any], bool]] = {"date-time": _check_date_time,
                                                    "date": _check_date}


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    match = _compiled(pattern).search(instance)
    # ECMA-262 "$" (no multiline flag) matches only at the end of the input.
    if match is None or (pattern.endswith("$") and not pattern.endswith("\\$")
                         and match.end() != len(instance)):
        yield ValidationError(f"{_short(instance)} does not match {pattern!r}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.validators import extend

    formats = FormatChecker(formats=())
    for name, check in _FORMAT_CHECKS.items():
        formats.checks(name)(check)
    cls = extend(Draft202012Validator, {"pattern": _ecma_pattern})
    return cls, formats


#: Raw JSON text that may hold NUL or a surrogate: only as \u escapes (JSON forbids raw
#: control characters and UTF-8 cannot encode surrogates).
_SUSPICIOUS = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_ANNOTATIONS = frozenset({"description", "default", "title", "examples", "deprecated"})
Check = Callable[[Any, int], bool]

#: Python tests of JSON Schema's types, as jsonschema's Draft 2020-12 checker has them
#: (booleans are not numbers; 1.0 is an integer).
_TYPE_TESTS = {
    "string": "isinstance({x}, str)",
    "integer": "((isinstance({x}, int) and not isinstance({x}, bool))"
               " or (isinstance({x}, float) and {x}.is_integer()))",
    "number": "(isinstance({x}, (int, float)) and not isinstance({x}, bool))",
    "boolean": "isinstance({x}, bool)",
    "null": "{x} is None",
    "object": "isinstance({x}, dict)",
    "array": "isinstance({x}, list)",
}
_COMPILED_KEYWORDS = frozenset({
    "type", "enum", "required", "properties", "additionalProperties", "propertyNames",
    "maxProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "pattern",
    "format", "minimum", "maximum"})


def _depth_ok(value: Any, depth: int) -> bool:
    """No deeper than :data:`MAX_DEPTH` (iteratively: the value may be deep)."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            return False
        if isinstance(item, dict):
            stack.extend((sub, level + 1) for sub in item.values())
        elif isinstance(item, list):
            stack.extend((sub, level + 1) for sub in item)
    return True


class _Codegen:
    """Writes Python source checking a schema: one function per ``$ref``d schema,
    everything else inline. Each function is ``f(value, depth) -> bool``.

    Only the keywords this document uses are supported; any other raises
    ValueError, so a compiled check can never silently skip a rule. Strings
    are not checked for NUL or surrogates here: the caller only trusts a
    compiled check for JSON text without such escapes.
    """

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.source: list[str] = []
        self.env: dict[str, Any] = {"_depth_ok": _depth_ok, "_MISSING": object()}
        self.by_ref: dict[str, str] = {}
        self.names = 0

    def fresh(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def constant(self, value: Any) -> str:
        name = self.fresh("c")
        self.env[name] = value
        return name

    def function(self, schema: Mapping[str, Any]) -> str:
        """The name of a function checking ``schema`` (written once per ``$ref``)."""
        if "$ref" in schema:
            self.checks(schema, "x", "d", 1)  # writes the function once
            return self.by_ref[schema["$ref"]]
        name = self.fresh("f")
        lines = [f"def {name}(x, d):", *self.checks(schema, "x", "d", 1), "    return True"]
        self.source.append("\n".join(lines))
        return name

    def checks(self, schema: Mapping[str, Any], x: str, d: str, level: int) -> list[str]:
        """Lines that ``return False`` unless the value in variable ``x`` matches."""
        pad = "    " * level
        if "$ref" in schema:
            if set(schema) - {"$ref"} - _ANNOTATIONS:
                raise ValueError("$ref with sibling keywords")
            if schema["$ref"] not in self.by_ref:
                target: Any = self.doc
                for part in schema["$ref"].removeprefix("#/").split("/"):
                    target = target[part]
                self.by_ref[schema["$ref"]] = name = self.fresh("f")
                lines = [f"def {name}(x, d):", *self.checks(target, "x", "d", 1),
                         "    return True"]
                self.source.append("\n".join(lines))
            return [f"{pad}if not {self.by_ref[schema['$ref']]}({x}, {d}): return False"]
        unknown = set(schema) - _ANNOTATIONS - _COMPILED_KEYWORDS
        if unknown:
            raise ValueError(f"keywords not compiled: {sorted(unknown)}")
        out: list[str] = []
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            tests = " or ".join(_TYPE_TESTS[t].format(x=x) for t in types)
            out.append(f"{pad}if not ({tests}): return False")
        if "enum" in schema:
            if not all(isinstance(o, str) for o in schema["enum"]):
                raise ValueError("only enums of strings are compiled")
            out.append(f"{pad}if not (isinstance({x}, str) and {x} in "
                       f"{self.constant(frozenset(schema['enum']))}): return False")
        inner = pad + "    "
        string = []
        if "minLength" in schema or "maxLength" in schema:
            low, high = schema.get("minLength", 0), schema.get("maxLength", 10**18)
            string.append(f"{inner}if not {low} <= len({x}) <= {high}: return False")
        if "pattern" in schema:
            pattern = schema["pattern"]
            m = self.fresh("m")
            string.append(f"{inner}{m} = {self.constant(_compiled(pattern))}.search({x})")
            string.append(f"{inner}if {m} is None: return False")
            if pattern.endswith("$") and not pattern.endswith("\\$"):
                string.append(f"{inner}if {m}.end() != len({x}): return False")
        if string:
            out += [f"{pad}if isinstance({x}, str):", *string]
        if "format" in schema:
            checker = _FORMAT_CHECKS.get(schema["format"])
            if checker is None:
                raise ValueError(f"format {schema['format']!r} is not checked")
            out.append(f"{pad}if not {self.constant(checker)}({x}): return False")
        if "minimum" in schema or "maximum" in schema:
            out.append(f"{pad}if {_TYPE_TESTS['number'].format(x=x)}:")
            if "minimum" in schema:
                out.append(f"{inner}if {x} < {schema['minimum']!r}: return False")
            if "maximum" in schema:
                out.append(f"{inner}if {x} > {schema['maximum']!r}: return False")
        array = []
        if "minItems" in schema or "maxItems" in schema:
            low, high = schema.get("minItems", 0), schema.get("maxItems", 10**18)
            array.append(f"{inner}if not {low} <= len({x}) <= {high}: return False")
        if "items" in schema:
            item = self.fresh("i")
            array += [f"{inner}for {item} in {x}:",
                      *self.checks(schema["items"], item, f"{d} + 1", level + 2)]
        if array:
            out += [f"{pad}if isinstance({x}, list):", *array]
        obj = []
        if "required" in schema:
            required = self.constant(frozenset(schema["required"]))
            obj.append(f"{inner}if not {x}.keys() >= {required}: return False")
        if "maxProperties" in schema:
            obj.append(f"{inner}if len({x}) > {schema['maxProperties']}: return False")
        if "propertyNames" in schema:
            k = self.fresh("k")
            obj += [f"{inner}for {k} in {x}:",
                    *self.checks(schema["propertyNames"], k, d, level + 2)]
        if "properties" in schema or "additionalProperties" in schema:
            properties = schema.get("properties", {})
            for key, sub in properties.items():
                v = self.fresh("v")
                obj += [f"{inner}{v} = {x}.get({key!r}, _MISSING)",
                        f"{inner}if {v} is not _MISSING:",
                        *self.checks(sub, v, f"{d} + 1", level + 2)]
            known = self.constant(frozenset(properties))
            extra = schema.get("additionalProperties", True)
            k = self.fresh("k")
            if extra is False:
                obj.append(f"{inner}if {x}.keys() - {known}: return False")
            elif extra is True:
                # Ignored, but held to the same depth rule as the slow path.
                obj += [f"{inner}for {k} in {x}.keys() - {known}:",
                        f"{inner}    if not _depth_ok({x}[{k}], {d} + 1): return False"]
            else:
                value = self.fresh("v")
                obj += [f"{inner}for {k} in {x}.keys() - {known}:",
                        f"{inner}    {value} = {x}[{k}]",
                        *self.checks(extra, value, f"{d} + 1", level + 2)]
        if obj:
            out += [f"{pad}if isinstance({x}, dict):", *obj]
        return out


def compile_schema(schema: Mapping[str, Any], doc: Mapping[str, Any] = DOCUMENT) -> Check:
    """Compile ``schema`` (refs into ``doc``) into ``check(value, depth) -> bool``."""
    gen = _Codegen(doc)
    entry = gen.function(schema)
    code = compile("\n\n".join(gen.source), f"<compiled schema {schema!r:.60}>", "exec")
    exec(code, gen.env)  # noqa: S102 - our own document, generated above
    return gen.env[entry]


class RequestValidator:
    """Validators for every operation's body and query, built from :data:`DOCUMENT`."""

    def __init__(self, doc: Mapping[str, Any] = DOCUMENT) -> None:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        cls, formats = _validator_class()
        registry = Registry().with_resource(
            SCHEMA_URI, Resource(contents=doc, specification=DRAFT202012))
        self._bodies: dict[tuple[str, str], Any] = {}
        self._fast: dict[tuple[str, str], Check] = {}
        self._queries: dict[tuple[str, str], tuple[Any, list[str]]] = {}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                key = (path, method.upper())
                content = op.get("requestBody", {}).get("content", {})
                schema = content.get("application/json", {}).get("schema")
                if schema is not None:
                    self._bodies[key] = cls({"$ref": SCHEMA_URI + schema["$ref"]},
                                            registry=registry, format_checker=formats)
                    self._fast[key] = compile_schema(schema, doc)
                params = [p for p in op.get("parameters", []) if p["in"] == "query"]
                if params:
                    query_schema = {
                        "type": "object",
                        "properties": {p["name"]: p["schema"] for p in params},
                        "required": [p["name"] for p in params if p.get("required")],
                    }
                    self._queries[key] = (cls(query_schema, registry=registry,
                                              format_checker=formats),
                                          [p["name"] for p in params])

    def has_body(self, path: str, method: str) -> bool:
        return (path, method.upper()) in self._bodies

    def body(self, path: str, method: str, value: Any, raw: bytes | None = None) -> None:
        """Raise :class:`Problem` unless ``value`` matches the operation's request body.

        ``raw``, the JSON text ``value`` was parsed from, lets a clean body skip the
        NUL/surrogate scan.
        """
        key = (path, method.upper())
        if raw is not None and not _SUSPICIOUS.search(raw) and self._fast[key](value, 0):
            return
        check_json_values(value)
        try:
            errors = list(itertools.islice(self._bodies[key].iter_errors(value), MAX_DETAILS))
            details = _details(errors)
        except RecursionError:
            raise Problem([{"path": "", "message": "nested too deeply"}]) from None
        if details:
            raise Problem(details)

    def fast_check(self, path: str, method: str, value: Any) -> bool:
        """The compiled check alone (for tests comparing it with jsonschema)."""
        return self._fast[(path, method.upper())](value, 0)

    def query(self, path: str, method: str, args: Mapping[str, list[str]]) -> dict[str, str]:
        """Check the operation's query parameters; returns them as single strings."""
        entry = self._queries.get((path, method.upper()))
        if entry is None:
            return {}
        validator, names = entry
        problems = []
        values: dict[str, str] = {}
        for name in names:
            given = args.get(name) or []
            if len(given) > 1:
                problems.append({"path": name, "message": "given more than once"})
            elif given:
                values[name] = given[0]
            elif name in validator.schema["required"]:
                # Named here: jsonschema reports a missing property at the object's path.
                problems.append({"path": name, "message": "required"})
        if not problems:
            try:
                check_json_values(values)
            except Problem as exc:
                problems.extend(exc.details)
        if not problems:
            problems = _details(list(itertools.islice(validator.iter_errors(values),
                                                      MAX_DETAILS)))
        if problems:
            raise Problem(problems)
        return values


def _details(errors: list[Any]) -> list[dict[str, str]]:
    details = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        message = error.message
        if len(message) > 300:
            message = message[:300] + "…"
        details.append({"path": json_path(error.absolute_path), "message": message})
    return details
