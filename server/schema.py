"""The server's tables (SQLAlchemy Core), for SQLite and PostgreSQL alike.

Changes go through Alembic migrations in ``server/migrations/versions``; a
test compares this metadata with a migrated database, so the two cannot drift.

Conventions:

* every timestamp is UTC (:class:`UTCDateTime`: ``timestamptz`` on PostgreSQL,
  ISO text on SQLite, always an aware ``datetime`` in Python);
* ``taps.tapped_at`` keeps the device's text exactly as sent (with its offset);
  ``tapped_at_utc`` is that device time in UTC, ``corrected_at`` the server's
  best estimate of when the tap happened (see :mod:`server.clock`);
* ``*_code`` columns name a site (NPSN for a school, OPD code for an office).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

CLOCK_STATUSES = ("verified", "corrected", "unverified")
VERDICTS = ("accepted", "unknown", "blocked", "duplicate")
PERSON_KINDS = ("student", "employee")
CARD_STATUSES = ("active", "blocked", "lost", "replaced")
EXCUSE_KINDS = ("sakit", "izin", "dinas_luar", "cuti")
ROSTER_CHANGES = ("upsert", "remove")
SITE_KINDS = ("school", "office")
DAY_STATUSES = ("H", "A", "S", "I", "DL", "C", "LIBUR", "PENDING")
CALENDAR_KINDS = ("holiday", "workday", "half_day", "ramadan")
API_ROLES = ("diskominfo", "operator")
CARD_REQUEST_KINDS = ("bind", "lost")
CARD_REQUEST_STATUSES = ("applied", "rejected")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime``; naive values are refused rather than guessed."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)  # stored as fixed-width, sortable text
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


#: 64-bit ids; SQLite only auto-increments a column declared INTEGER.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: JSON documents; JSONB on PostgreSQL.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


sites = sa.Table(
    "sites", metadata,
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # Registry fields (NULL for sites made before the registries existed).
    sa.Column("kind", sa.String(16)),
    sa.Column("schedule", sa.String(64)),  # schedules.name; NULL = the default for the kind
    sa.Column("regency", sa.String(100), nullable=False, server_default=""),
    sa.Column("updated_at", UTCDateTime()),
    # Every local day up to this one has been reconciled at least once.
    sa.Column("reconciled_through", sa.Date()),
    sa.CheckConstraint("kind IS NULL OR " + _in("kind", SITE_KINDS), name="kind"),
)

devices = sa.Table(
    "devices", metadata,
    sa.Column("device_id", sa.String(40), primary_key=True),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), nullable=False,
              index=True),
    sa.Column("name", sa.String(100), nullable=False, server_default=""),
    sa.Column("hardware_id", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    # Fleet health, from the last heartbeat (last_seen_at from any exchange).
    sa.Column("last_seen_at", UTCDateTime()),
    sa.Column("boot_id", sa.String(64)),
    sa.Column("backlog", sa.BigInteger()),
    sa.Column("oldest_unsent_at", UTCDateTime()),
    sa.Column("reader_ok", sa.Boolean()),
    sa.Column("readers", Json),
    sa.Column("versions", Json),
    sa.Column("clock_offset_ms", sa.BigInteger()),
    # Sequence bookkeeping: the highest seq received and the ranges below it never seen.
    sa.Column("highest_seq", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("missing_seq", Json),
)

claim_codes = sa.Table(
    "claim_codes", metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), nullable=False),
    sa.Column("device_name", sa.String(100), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("used_at", UTCDateTime()),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("devices.device_id")),
)

clock_anchors = sa.Table(
    "clock_anchors", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("devices.device_id"), nullable=False),
    sa.Column("boot_id", sa.String(64), nullable=False),
    sa.Column("mono_ns", sa.BigInteger(), nullable=False),
    sa.Column("device_wall", UTCDateTime(), nullable=False),
    sa.Column("device_synced", sa.Boolean(), nullable=False),
    sa.Column("server_time", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Index(None, "device_id", "boot_id", "mono_ns"),
)

taps = sa.Table(
    "taps", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("devices.device_id"), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("card_uid", sa.String(20), nullable=False),
    sa.Column("tapped_at", sa.String(40), nullable=False),
    sa.Column("tapped_at_utc", UTCDateTime(), nullable=False),
    sa.Column("boot_id", sa.String(64), nullable=False),
    sa.Column("mono_ns", sa.BigInteger(), nullable=False),
    sa.Column("clock_synced", sa.Boolean(), nullable=False),
    sa.Column("reader", sa.String(64), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("corrected_at", UTCDateTime(), nullable=False),
    sa.Column("clock_status", sa.String(12), nullable=False),
    # The anchor the correction used; NULL = none yet (re-evaluated when one arrives).
    sa.Column("clock_anchor_id", BigId, sa.ForeignKey("clock_anchors.id")),
    # The device's site when the tap arrived: where it happened, even if the device moves.
    sa.Column("site_code", sa.String(32)),
    sa.UniqueConstraint("device_id", "seq"),
    sa.CheckConstraint(_in("clock_status", CLOCK_STATUSES), name="clock_status"),
    sa.Index(None, "corrected_at"),
    sa.Index(None, "site_code", "corrected_at"),
    sa.Index(None, "card_uid", "corrected_at"),
    # Small: only the taps still waiting for an anchor of their boot.
    sa.Index("ix_taps_unanchored", "device_id", "boot_id",
             sqlite_where=sa.text("clock_anchor_id IS NULL"),
             postgresql_where=sa.text("clock_anchor_id IS NULL")),
)

tap_conflicts = sa.Table(
    "tap_conflicts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("devices.device_id"), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("raw", Json, nullable=False),
    # SHA-256 of the tap as sent (canonical JSON): the same conflict pushed again is one row.
    sa.Column("raw_sha256", sa.String(64), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("device_id", "raw_sha256"),
)

people = sa.Table(
    "people", metadata,
    sa.Column("person_id", sa.String(32), primary_key=True),  # NISN, NIP, or a local id
    sa.Column("kind", sa.String(16)),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), index=True),
    sa.Column("group_name", sa.String(100), nullable=False, server_default=""),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # Registry fields: NIK for everyone, NIP for ASN, NISN for students.
    sa.Column("nik", sa.String(16)),
    sa.Column("nip", sa.String(18)),
    sa.Column("nisn", sa.String(10)),
    sa.Column("position", sa.String(200), nullable=False, server_default=""),
    sa.Column("employment", sa.String(32), nullable=False, server_default=""),
    sa.Column("sex", sa.String(1)),
    sa.Column("birth_date", sa.Date()),
    # False once the person left the registry (a leaver); their history stays.
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.CheckConstraint("kind IS NULL OR " + _in("kind", PERSON_KINDS), name="kind"),
    sa.Index(None, "nik", unique=True),
    sa.Index(None, "nip", unique=True),
    sa.Index(None, "nisn", unique=True),
)

#: Where a person is expected, day by day: a transfer closes one row and opens another.
#: ``valid_to`` is the last day (inclusive); NULL = still there.
person_sites = sa.Table(
    "person_sites", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("person_id", sa.String(32), sa.ForeignKey("people.person_id"), nullable=False,
              index=True),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), nullable=False),
    sa.Column("group_name", sa.String(100), nullable=False, server_default=""),
    sa.Column("valid_from", sa.Date(), nullable=False),
    sa.Column("valid_to", sa.Date()),
    sa.CheckConstraint("valid_to IS NULL OR valid_from <= valid_to", name="dates"),
    sa.Index(None, "site_code", "valid_from"),
)

cards = sa.Table(
    "cards", metadata,
    sa.Column("card_uid", sa.String(20), primary_key=True),
    sa.Column("person_id", sa.String(32), sa.ForeignKey("people.person_id"), nullable=False,
              index=True),
    sa.Column("status", sa.String(16), nullable=False),
    # NULL once the card left every site's roster (kept for the card -> person history).
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code")),
    sa.Column("changed_version", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # Card register: validity (local dates, inclusive) and when the status last changed.
    sa.Column("valid_from", sa.Date()),
    sa.Column("valid_to", sa.Date()),
    sa.Column("status_since", UTCDateTime()),
    sa.CheckConstraint(_in("status", CARD_STATUSES), name="status"),
    sa.Index(None, "site_code", "changed_version"),
)

#: Every state a card has had: the person and status in force from ``effective_at``.
#: A tap is judged by the row in force when it happened, so a card reported lost
#: today leaves last week's taps counted, and old taps keep their person.
card_history = sa.Table(
    "card_history", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("card_uid", sa.String(20), nullable=False),
    sa.Column("person_id", sa.String(32), sa.ForeignKey("people.person_id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("effective_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_in("status", CARD_STATUSES), name="status"),
    sa.Index(None, "card_uid", "effective_at"),
)

#: Named work schedules (see server.schedule.Schedule.to_dict for ``definition``).
schedules = sa.Table(
    "schedules", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("definition", Json, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: Local calendar overrides on top of the national holidays: ``scope`` is "" (everywhere),
#: "regency:<name>" or "site:<code>".
calendar_days = sa.Table(
    "calendar_days", metadata,
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("scope", sa.String(120), primary_key=True, server_default=""),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("end_time", sa.String(5)),  # HH:MM, for half days
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_in("kind", CALENDAR_KINDS), name="kind"),
)

#: The roster delta feed: one row per card and site each time a roster version changes it.
roster_changes = sa.Table(
    "roster_changes", metadata,
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), primary_key=True),
    sa.Column("version", sa.BigInteger(), primary_key=True),
    sa.Column("card_uid", sa.String(20), primary_key=True),
    sa.Column("change", sa.String(8), nullable=False),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_in("change", ROSTER_CHANGES), name="change"),
)

#: Named counters (``roster``: the roster version). Incrementing one locks its row
#: until commit, so versions become visible in order.
counters = sa.Table(
    "counters", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

excuses = sa.Table(
    "excuses", metadata,
    sa.Column("excuse_id", sa.String(64), primary_key=True),
    sa.Column("person_id", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("date_from", sa.Date(), nullable=False),
    sa.Column("date_to", sa.Date(), nullable=False),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code")),
    sa.Column("source_device_id", sa.String(40), sa.ForeignKey("devices.device_id")),
    sa.Column("source_operator", sa.String(64)),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    # Withdrawn (server.excuses.withdraw_excuses): kept, but no longer decides any day.
    sa.Column("withdrawn_at", UTCDateTime()),
    sa.Column("withdrawn_by", sa.String(64)),  # a device id or an API key's label
    sa.CheckConstraint(_in("kind", EXCUSE_KINDS), name="kind"),
    sa.CheckConstraint("date_from <= date_to", name="dates"),
)

#: One row per person and local day: the outcome of reconciliation (server.reconcile).
#: ``version`` comes from the ``attendance`` counter and changes only when the row's
#: content changes: the change feed follows it. No foreign keys (migration 0005): the rows
#: are derived from ``person_sites``, whose keys hold, and people and sites are never
#: deleted; checking 160,000 of them per city day cost PostgreSQL seconds.
attendance_days = sa.Table(
    "attendance_days", metadata,
    sa.Column("person_id", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("site_code", sa.String(32), nullable=False),
    sa.Column("group_name", sa.String(100), nullable=False, server_default=""),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("late_code", sa.String(8)),
    sa.Column("early_code", sa.String(8)),
    sa.Column("check_in", UTCDateTime()),
    sa.Column("check_out", UTCDateTime()),
    sa.Column("minutes_late", sa.Integer()),
    sa.Column("minutes_early", sa.Integer()),
    sa.Column("tap_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("flags", Json),
    sa.Column("excuse_id", sa.String(64)),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_in("status", DAY_STATUSES), name="status"),
    sa.Index(None, "site_code", "day"),
    sa.Index(None, "version"),
)

#: Findings of reconciliation for one site and local day; ``key`` makes re-runs idempotent.
anomalies = sa.Table(
    "anomalies", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(300), nullable=False, unique=True),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("card_uid", sa.String(20)),
    sa.Column("person_id", sa.String(32)),
    sa.Column("event_id", sa.String(64)),
    sa.Column("detail", Json),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Index(None, "site_code", "day"),
    sa.Index(None, "day", "kind"),
)

#: Site days waiting for (re-)reconciliation: late taps, excuses, pending days.
reconcile_queue = sa.Table(
    "reconcile_queue", metadata,
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("queued_at", UTCDateTime(), nullable=False),
)

#: API keys of people and systems (not devices): ``diskominfo`` sees everything,
#: ``operator`` one site. Only the SHA-256 of the secret is kept.
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code")),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Column("last_used_at", UTCDateTime()),
    sa.CheckConstraint(_in("role", API_ROLES), name="role"),
    sa.CheckConstraint("role <> 'operator' OR site_code IS NOT NULL", name="operator_site"),
)

#: Card requests sent by devices (``POST /cards/requests``): bind a card to a person of
#: the device's site, or report a card lost. Idempotent by ``request_id``: the outcome of
#: the first delivery is kept (``rejected`` with its ``error``), a repeat changes nothing.
card_requests = sa.Table(
    "card_requests", metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("devices.device_id"), nullable=False),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("card_uid", sa.String(20), nullable=False),  # as sent
    sa.Column("person_id", sa.String(32)),
    sa.Column("requested_at", UTCDateTime(), nullable=False),  # the device's clock
    sa.Column("effective_at", UTCDateTime()),  # the moment applied (NULL when rejected)
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("error", sa.String(300)),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_in("kind", CARD_REQUEST_KINDS), name="kind"),
    sa.CheckConstraint(_in("status", CARD_REQUEST_STATUSES), name="status"),
    sa.Index(None, "site_code", "received_at"),
)

#: Accounts of the web dashboard: ``diskominfo`` sees every site, ``operator`` one site.
#: Passwords are kept as werkzeug hashes (scrypt). ``failed_logins`` and ``locked_until``
#: hold the lockout after repeated failures; ``session_version`` changes when the password
#: changes, the account is disabled or its user logs out, which ends every open session.
web_users = sa.Table(
    "web_users", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code")),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("locked_until", UTCDateTime()),
    sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_login_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_in("role", API_ROLES), name="role"),
    sa.CheckConstraint("(role = 'operator') = (site_code IS NOT NULL)", name="operator_site"),
)

#: Remote settings of the edges (``edge.settings`` lists the keys and their limits), set by
#: Diskominfo or the site's operator: for every device of a site, or for one device (which
#: wins). ``value`` is the JSON value as validated; unsetting a key deletes its row. Each
#: device receives its effective settings with every roster reply.
site_settings = sa.Table(
    "site_settings", metadata,
    sa.Column("site_code", sa.String(32), sa.ForeignKey("sites.code"), primary_key=True),
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("value", Json, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=False, server_default=""),
)

device_settings = sa.Table(
    "device_settings", metadata,
    sa.Column("device_id", sa.String(40), sa.ForeignKey("devices.device_id"),
              primary_key=True),
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("value", Json, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=False, server_default=""),
)
