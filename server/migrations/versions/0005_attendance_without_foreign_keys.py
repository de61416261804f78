"""attendance_days without foreign keys (a derived table written 160,000 rows at a time)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Reconciliation writes a city's day (160,000 rows) at once. On PostgreSQL each
row's two foreign-key checks run as triggers at the end of the COPY and lock
the referenced ``people`` row (``FOR KEY SHARE``): 3-4 s of a 14 s day. The
rows are derived: their ``person_id`` and ``site_code`` come from
``person_sites``, whose own foreign keys hold, and people and sites are never
deleted. See docs/DESIGN.md. SQLite copies the table (batch mode).
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

FOREIGN_KEYS = (
    ('fk_attendance_days_person_id_people', 'people', ['person_id'], ['person_id']),
    ('fk_attendance_days_site_code_sites', 'sites', ['site_code'], ['code']),
)


def upgrade() -> None:
    with op.batch_alter_table('attendance_days') as batch:
        for name, _, _, _ in FOREIGN_KEYS:
            batch.drop_constraint(name, type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('attendance_days') as batch:
        for name, table, local, remote in FOREIGN_KEYS:
            batch.create_foreign_key(name, table, local, remote)
