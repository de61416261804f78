"""card requests from devices, dashboard accounts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Written out in full (no imports from server.schema), like 0001 and 0002.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('card_requests',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('card_uid', sa.String(length=20), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('requested_at', UTC, nullable=False),
    sa.Column('effective_at', UTC, nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('received_at', UTC, nullable=False),
    sa.CheckConstraint("kind IN ('bind', 'lost')", name=op.f('ck_card_requests_kind')),
    sa.CheckConstraint("status IN ('applied', 'rejected')", name=op.f('ck_card_requests_status')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.device_id'], name=op.f('fk_card_requests_device_id_devices')),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_card_requests_site_code_sites')),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_card_requests'))
    )
    op.create_index(op.f('ix_card_requests_site_code_received_at'), 'card_requests', ['site_code', 'received_at'], unique=False)
    op.create_table('web_users',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=True),
    sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_until', UTC, nullable=True),
    sa.Column('session_version', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_login_at', UTC, nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('changed_at', UTC, nullable=False),
    sa.CheckConstraint("(role = 'operator') = (site_code IS NOT NULL)", name=op.f('ck_web_users_operator_site')),
    sa.CheckConstraint("role IN ('diskominfo', 'operator')", name=op.f('ck_web_users_role')),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_web_users_site_code_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_users')),
    sa.UniqueConstraint('username', name=op.f('uq_web_users_username'))
    )


def downgrade() -> None:
    op.drop_table('web_users')
    op.drop_index(op.f('ix_card_requests_site_code_received_at'), table_name='card_requests')
    op.drop_table('card_requests')
