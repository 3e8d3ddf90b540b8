"""outbox shared rows: how many events a row holds (a request's events may share one row)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column('outbox', sa.Column('events', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    # Only once the outbox is empty: a shared row's later events would be lost with the column.
    op.drop_column('outbox', 'events')
