"""excuses can be withdrawn (by the site that recorded them, or by Diskominfo)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

A withdrawn excuse stays (the first record of an ``excuse_id`` is kept for
ever, so a late repeat of it cannot apply again) and no longer decides any
day. Written out in full (no imports from server.schema), like 0001 to 0004.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('excuses') as batch:
        batch.add_column(sa.Column('withdrawn_at', UTC, nullable=True))
        batch.add_column(sa.Column('withdrawn_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('excuses') as batch:
        batch.drop_column('withdrawn_by')
        batch.drop_column('withdrawn_at')
