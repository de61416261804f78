"""remote settings of the edges, per site and per device

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Written out in full (no imports from server.schema), like 0001 to 0003.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('site_settings',
    sa.Column('site_code', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', JSON, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.Column('updated_by', sa.String(length=100), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['site_code'], ['sites.code'], name=op.f('fk_site_settings_site_code_sites')),
    sa.PrimaryKeyConstraint('site_code', 'key', name=op.f('pk_site_settings'))
    )
    op.create_table('device_settings',
    sa.Column('device_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', JSON, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.Column('updated_by', sa.String(length=100), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.device_id'], name=op.f('fk_device_settings_device_id_devices')),
    sa.PrimaryKeyConstraint('device_id', 'key', name=op.f('pk_device_settings'))
    )


def downgrade() -> None:
    op.drop_table('device_settings')
    op.drop_table('site_settings')
