"""registries, card history, schedules, calendar, attendance, anomalies, API keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Written out in full (no imports from server.schema), like 0001. Existing taps get
their site from their device; the ``attendance`` counter starts at 0.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('calendar_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('scope', sa.String(length=120), server_default='', nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('end_time', sa.String(length=5), nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.CheckConstraint("kind IN ('holiday', 'workday', 'half_day', 'ramadan')", name=op.f('ck_calendar_days_kind')),
    sa.PrimaryKeyConstraint('day', 'scope', 'kind', name=op.f('pk_calendar_days'))
    )
    op.create_table('schedules',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('definition', JSON, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_schedules'))
    )
    op.create_table('anomalies',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('card_uid', sa.String(length=20), nullable=True),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.Column('detail', JSON, nullable=True),
    sa.Column('first_seen_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_anomalies_site_code_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anomalies')),
    sa.UniqueConstraint('key', name=op.f('uq_anomalies_key'))
    )
    op.create_index(op.f('ix_anomalies_day_kind'), 'anomalies', ['day', 'kind'], unique=False)
    op.create_index(op.f('ix_anomalies_site_code_day'), 'anomalies', ['site_code', 'day'], unique=False)
    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=True),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('revoked_at', UTC, nullable=True),
    sa.Column('last_used_at', UTC, nullable=True),
    sa.CheckConstraint("role <> 'operator' OR site_code IS NOT NULL", name=op.f('ck_api_keys_operator_site')),
    sa.CheckConstraint("role IN ('diskominfo', 'operator')", name=op.f('ck_api_keys_role')),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_api_keys_site_code_sites')),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('reconcile_queue',
    sa.Column('site_code', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('queued_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_reconcile_queue_site_code_sites')),
    sa.PrimaryKeyConstraint('site_code', 'day', name=op.f('pk_reconcile_queue'))
    )
    op.create_table('attendance_days',
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=False),
    sa.Column('group_name', sa.String(length=100), server_default='', nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('late_code', sa.String(length=8), nullable=True),
    sa.Column('early_code', sa.String(length=8), nullable=True),
    sa.Column('check_in', UTC, nullable=True),
    sa.Column('check_out', UTC, nullable=True),
    sa.Column('minutes_late', sa.Integer(), nullable=True),
    sa.Column('minutes_early', sa.Integer(), nullable=True),
    sa.Column('tap_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('flags', JSON, nullable=True),
    sa.Column('excuse_id', sa.String(length=64), nullable=True),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.CheckConstraint("status IN ('H', 'A', 'S', 'I', 'DL', 'C', 'LIBUR', 'PENDING')", name=op.f('ck_attendance_days_status')),
    sa.ForeignKeyConstraint(['person_id'], ['people.person_id'], name=op.f('fk_attendance_days_person_id_people')),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_attendance_days_site_code_sites')),
    sa.PrimaryKeyConstraint('person_id', 'day', name=op.f('pk_attendance_days'))
    )
    op.create_index(op.f('ix_attendance_days_site_code_day'), 'attendance_days', ['site_code', 'day'], unique=False)
    op.create_index(op.f('ix_attendance_days_version'), 'attendance_days', ['version'], unique=False)
    op.create_table('card_history',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('card_uid', sa.String(length=20), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('effective_at', UTC, nullable=False),
    sa.Column('recorded_at', UTC, nullable=False),
    sa.CheckConstraint("status IN ('active', 'blocked', 'lost', 'replaced')", name=op.f('ck_card_history_status')),
    sa.ForeignKeyConstraint(['person_id'], ['people.person_id'], name=op.f('fk_card_history_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_history'))
    )
    op.create_index(op.f('ix_card_history_card_uid_effective_at'), 'card_history', ['card_uid', 'effective_at'], unique=False)
    op.create_table('person_sites',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=False),
    sa.Column('group_name', sa.String(length=100), server_default='', nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.CheckConstraint('valid_to IS NULL OR valid_from <= valid_to', name=op.f('ck_person_sites_dates')),
    sa.ForeignKeyConstraint(['person_id'], ['people.person_id'], name=op.f('fk_person_sites_person_id_people')),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_person_sites_site_code_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person_sites'))
    )
    op.create_index(op.f('ix_person_sites_person_id'), 'person_sites', ['person_id'], unique=False)
    op.create_index(op.f('ix_person_sites_site_code_valid_from'), 'person_sites', ['site_code', 'valid_from'], unique=False)
    op.add_column('cards', sa.Column('valid_from', sa.Date(), nullable=True))
    op.add_column('cards', sa.Column('valid_to', sa.Date(), nullable=True))
    op.add_column('cards', sa.Column('status_since', UTC, nullable=True))
    op.add_column('people', sa.Column('nik', sa.String(length=16), nullable=True))
    op.add_column('people', sa.Column('nip', sa.String(length=18), nullable=True))
    op.add_column('people', sa.Column('nisn', sa.String(length=10), nullable=True))
    op.add_column('people', sa.Column('position', sa.String(length=200), server_default='', nullable=False))
    op.add_column('people', sa.Column('employment', sa.String(length=32), server_default='', nullable=False))
    op.add_column('people', sa.Column('sex', sa.String(length=1), nullable=True))
    op.add_column('people', sa.Column('birth_date', sa.Date(), nullable=True))
    op.add_column('people', sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_index(op.f('ix_people_nik'), 'people', ['nik'], unique=True)
    op.create_index(op.f('ix_people_nip'), 'people', ['nip'], unique=True)
    op.create_index(op.f('ix_people_nisn'), 'people', ['nisn'], unique=True)
    op.add_column('sites', sa.Column('kind', sa.String(length=16), nullable=True))
    op.add_column('sites', sa.Column('schedule', sa.String(length=64), nullable=True))
    op.add_column('sites', sa.Column('regency', sa.String(length=100), server_default='', nullable=False))
    op.add_column('sites', sa.Column('updated_at', UTC, nullable=True))
    op.add_column('sites', sa.Column('reconciled_through', sa.Date(), nullable=True))
    op.add_column('taps', sa.Column('site_code', sa.String(length=32), nullable=True))
    op.create_index(op.f('ix_taps_card_uid_corrected_at'), 'taps', ['card_uid', 'corrected_at'], unique=False)
    op.create_index(op.f('ix_taps_site_code_corrected_at'), 'taps', ['site_code', 'corrected_at'], unique=False)

    op.execute("UPDATE taps SET site_code = (SELECT devices.site_code FROM devices "
               "WHERE devices.device_id = taps.device_id)")
    counters = sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(counters, [{"name": "attendance", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'attendance'")
    op.drop_index(op.f('ix_taps_site_code_corrected_at'), table_name='taps')
    op.drop_index(op.f('ix_taps_card_uid_corrected_at'), table_name='taps')
    with op.batch_alter_table('taps') as batch:
        batch.drop_column('site_code')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('reconciled_through')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('updated_at')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('regency')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('schedule')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('kind')
    op.drop_index(op.f('ix_people_nisn'), table_name='people')
    op.drop_index(op.f('ix_people_nip'), table_name='people')
    op.drop_index(op.f('ix_people_nik'), table_name='people')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('active')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('birth_date')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('sex')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('employment')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('position')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('nisn')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('nip')
    with op.batch_alter_table('people') as batch:
        batch.drop_column('nik')
    with op.batch_alter_table('cards') as batch:
        batch.drop_column('status_since')
    with op.batch_alter_table('cards') as batch:
        batch.drop_column('valid_to')
    with op.batch_alter_table('cards') as batch:
        batch.drop_column('valid_from')
    op.drop_index(op.f('ix_person_sites_site_code_valid_from'), table_name='person_sites')
    op.drop_index(op.f('ix_person_sites_person_id'), table_name='person_sites')
    op.drop_table('person_sites')
    op.drop_index(op.f('ix_card_history_card_uid_effective_at'), table_name='card_history')
    op.drop_table('card_history')
    op.drop_index(op.f('ix_attendance_days_version'), table_name='attendance_days')
    op.drop_index(op.f('ix_attendance_days_site_code_day'), table_name='attendance_days')
    op.drop_table('attendance_days')
    op.drop_table('reconcile_queue')
    op.drop_table('api_keys')
    op.drop_index(op.f('ix_anomalies_site_code_day'), table_name='anomalies')
    op.drop_index(op.f('ix_anomalies_day_kind'), table_name='anomalies')
    op.drop_table('anomalies')
    op.drop_table('schedules')
    op.drop_table('calendar_days')
