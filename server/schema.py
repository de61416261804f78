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
    sa.UniqueConstraint("device_id", "seq"),
    sa.CheckConstraint(_in("clock_status", CLOCK_STATUSES), name="clock_status"),
    sa.Index(None, "corrected_at"),
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
    sa.CheckConstraint("kind IS NULL OR " + _in("kind", PERSON_KINDS), name="kind"),
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
    sa.CheckConstraint(_in("status", CARD_STATUSES), name="status"),
    sa.Index(None, "site_code", "changed_version"),
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
    sa.CheckConstraint(_in("kind", EXCUSE_KINDS), name="kind"),
    sa.CheckConstraint("date_from <= date_to", name="dates"),
)
