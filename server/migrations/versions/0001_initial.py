"""initial schema: sites, devices, taps, clock anchors, roster, excuses

Revision ID: 0001
Revises: -
Create Date: 2026-11-23

Written out in full (no imports from server.schema) so that it keeps creating
this exact schema whatever the code becomes.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

#: Timestamps: timestamptz on PostgreSQL; UTC text on SQLite (see server.schema.UTCDateTime).
UTC = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
#: SQLite only auto-increments a column declared INTEGER.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('counters',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_counters'))
    )
    counters = sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(counters, [{"name": "roster", "value": 0}])
    op.create_table('sites',
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('timezone', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.PrimaryKeyConstraint('code', name=op.f('pk_sites'))
    )
    op.create_table('devices',
        sa.Column('device_id', sa.String(length=40), nullable=False),
        sa.Column('site_code', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=100), server_default='', nullable=False),
        sa.Column('hardware_id', sa.String(length=200), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('revoked_at', UTC, nullable=True),
        sa.Column('last_seen_at', UTC, nullable=True),
        sa.Column('boot_id', sa.String(length=64), nullable=True),
        sa.Column('backlog', sa.BigInteger(), nullable=True),
        sa.Column('oldest_unsent_at', UTC, nullable=True),
        sa.Column('reader_ok', sa.Boolean(), nullable=True),
        sa.Column('readers', JSON, nullable=True),
        sa.Column('versions', JSON, nullable=True),
        sa.Column('clock_offset_ms', sa.BigInteger(), nullable=True),
        sa.Column('highest_seq', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('missing_seq', JSON, nullable=True),
        sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_devices_site_code_sites')),
        sa.PrimaryKeyConstraint('device_id', name=op.f('pk_devices')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_devices_token_hash'))
    )
    op.create_index(op.f('ix_devices_site_code'), 'devices', ['site_code'], unique=False)
    op.create_table('people',
        sa.Column('person_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=True),
        sa.Column('name', sa.String(length=200), server_default='', nullable=False),
        sa.Column('site_code', sa.String(length=32), nullable=True),
        sa.Column('group_name', sa.String(length=100), server_default='', nullable=False),
        sa.Column('updated_at', UTC, nullable=False),
        sa.CheckConstraint("kind IS NULL OR kind IN ('student', 'employee')", name=op.f('ck_people_kind')),
        sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_people_site_code_sites')),
        sa.PrimaryKeyConstraint('person_id', name=op.f('pk_people'))
    )
    op.create_index(op.f('ix_people_site_code'), 'people', ['site_code'], unique=False)
    op.create_table('roster_changes',
        sa.Column('site_code', sa.String(length=32), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('card_uid', sa.String(length=20), nullable=False),
        sa.Column('change', sa.String(length=8), nullable=False),
        sa.Column('changed_at', UTC, nullable=False),
        sa.CheckConstraint("change IN ('upsert', 'remove')", name=op.f('ck_roster_changes_change')),
        sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_roster_changes_site_code_sites')),
        sa.PrimaryKeyConstraint('site_code', 'version', 'card_uid', name=op.f('pk_roster_changes'))
    )
    op.create_table('cards',
        sa.Column('card_uid', sa.String(length=20), nullable=False),
        sa.Column('person_id', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('site_code', sa.String(length=32), nullable=True),
        sa.Column('changed_version', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', UTC, nullable=False),
        sa.CheckConstraint("status IN ('active', 'blocked', 'lost', 'replaced')", name=op.f('ck_cards_status')),
        sa.ForeignKeyConstraint(['person_id'], ['people.person_id'], name=op.f('fk_cards_person_id_people')),
        sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_cards_site_code_sites')),
        sa.PrimaryKeyConstraint('card_uid', name=op.f('pk_cards'))
    )
    op.create_index(op.f('ix_cards_person_id'), 'cards', ['person_id'], unique=False)
    op.create_index(op.f('ix_cards_site_code_changed_version'), 'cards', ['site_code', 'changed_version'], unique=False)
    op.create_table('claim_codes',
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('site_code', sa.String(length=32), nullable=False),
        sa.Column('device_name', sa.String(length=100), server_default='', nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('expires_at', UTC, nullable=False),
        sa.Column('used_at', UTC, nullable=True),
        sa.Column('device_id', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['device_id'], ['devices.device_id'], name=op.f('fk_claim_codes_device_id_devices')),
        sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_claim_codes_site_code_sites')),
        sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_claim_codes'))
    )
    op.create_table('clock_anchors',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('device_id', sa.String(length=40), nullable=False),
        sa.Column('boot_id', sa.String(length=64), nullable=False),
        sa.Column('mono_ns', sa.BigInteger(), nullable=False),
        sa.Column('device_wall', UTC, nullable=False),
        sa.Column('device_synced', sa.Boolean(), nullable=False),
        sa.Column('server_time', UTC, nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['device_id'], ['devices.device_id'], name=op.f('fk_clock_anchors_device_id_devices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_clock_anchors'))
    )
    op.create_index(op.f('ix_clock_anchors_device_id_boot_id_mono_ns'), 'clock_anchors', ['device_id', 'boot_id', 'mono_ns'], unique=False)
    op.create_table('excuses',
        sa.Column('excuse_id', sa.String(length=64), nullable=False),
        sa.Column('person_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('date_from', sa.Date(), nullable=False),
        sa.Column('date_to', sa.Date(), nullable=False),
        sa.Column('note', sa.Text(), server_default='', nullable=False),
        sa.Column('site_code', sa.String(length=32), nullable=True),
        sa.Column('source_device_id', sa.String(length=40), nullable=True),
        sa.Column('source_operator', sa.String(length=64), nullable=True),
        sa.Column('received_at', UTC, nullable=False),
        sa.CheckConstraint("kind IN ('sakit', 'izin', 'dinas_luar', 'cuti')", name=op.f('ck_excuses_kind')),
        sa.CheckConstraint('date_from <= date_to', name=op.f('ck_excuses_dates')),
        sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_excuses_site_code_sites')),
        sa.ForeignKeyConstraint(['source_device_id'], ['devices.device_id'], name=op.f('fk_excuses_source_device_id_devices')),
        sa.PrimaryKeyConstraint('excuse_id', name=op.f('pk_excuses'))
    )
    op.create_index(op.f('ix_excuses_person_id'), 'excuses', ['person_id'], unique=False)
    op.create_table('tap_conflicts',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('device_id', sa.String(length=40), nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('raw', JSON, nullable=False),
        sa.Column('raw_sha256', sa.String(length=64), nullable=False),
        sa.Column('received_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['device_id'], ['devices.device_id'], name=op.f('fk_tap_conflicts_device_id_devices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tap_conflicts')),
        sa.UniqueConstraint('device_id', 'raw_sha256', name=op.f('uq_tap_conflicts_device_id_raw_sha256'))
    )
    op.create_table('taps',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('device_id', sa.String(length=40), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('card_uid', sa.String(length=20), nullable=False),
        sa.Column('tapped_at', sa.String(length=40), nullable=False),
        sa.Column('tapped_at_utc', UTC, nullable=False),
        sa.Column('boot_id', sa.String(length=64), nullable=False),
        sa.Column('mono_ns', sa.BigInteger(), nullable=False),
        sa.Column('clock_synced', sa.Boolean(), nullable=False),
        sa.Column('reader', sa.String(length=64), nullable=False),
        sa.Column('verdict', sa.String(length=16), nullable=False),
        sa.Column('received_at', UTC, nullable=False),
        sa.Column('corrected_at', UTC, nullable=False),
        sa.Column('clock_status', sa.String(length=12), nullable=False),
        sa.Column('clock_anchor_id', BIG_ID, nullable=True),
        sa.CheckConstraint("clock_status IN ('verified', 'corrected', 'unverified')", name=op.f('ck_taps_clock_status')),
        sa.ForeignKeyConstraint(['clock_anchor_id'], ['clock_anchors.id'], name=op.f('fk_taps_clock_anchor_id_clock_anchors')),
        sa.ForeignKeyConstraint(['device_id'], ['devices.device_id'], name=op.f('fk_taps_device_id_devices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_taps')),
        sa.UniqueConstraint('device_id', 'seq', name=op.f('uq_taps_device_id_seq')),
        sa.UniqueConstraint('event_id', name=op.f('uq_taps_event_id'))
    )
    op.create_index(op.f('ix_taps_corrected_at'), 'taps', ['corrected_at'], unique=False)
    op.create_index('ix_taps_unanchored', 'taps', ['device_id', 'boot_id'], unique=False, sqlite_where=sa.text('clock_anchor_id IS NULL'), postgresql_where=sa.text('clock_anchor_id IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_taps_unanchored', table_name='taps', sqlite_where=sa.text('clock_anchor_id IS NULL'), postgresql_where=sa.text('clock_anchor_id IS NULL'))
    op.drop_index(op.f('ix_taps_corrected_at'), table_name='taps')
    op.drop_table('taps')
    op.drop_table('tap_conflicts')
    op.drop_index(op.f('ix_excuses_person_id'), table_name='excuses')
    op.drop_table('excuses')
    op.drop_index(op.f('ix_clock_anchors_device_id_boot_id_mono_ns'), table_name='clock_anchors')
    op.drop_table('clock_anchors')
    op.drop_table('claim_codes')
    op.drop_index(op.f('ix_cards_site_code_changed_version'), table_name='cards')
    op.drop_index(op.f('ix_cards_person_id'), table_name='cards')
    op.drop_table('cards')
    op.drop_table('roster_changes')
    op.drop_index(op.f('ix_people_site_code'), table_name='people')
    op.drop_table('people')
    op.drop_index(op.f('ix_devices_site_code'), table_name='devices')
    op.drop_table('devices')
    op.drop_table('sites')
    op.drop_table('counters')
