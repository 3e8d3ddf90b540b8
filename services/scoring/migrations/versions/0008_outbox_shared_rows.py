"""outbox shared rows: how many events a row holds (a request's events may share one row)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 17:00:00
"""
import sqlalchemy as sa
from alembic import op

from yardstick.outbox import refuse_to_drop_shared_rows

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column('outbox', sa.Column('events', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    refuse_to_drop_shared_rows(op.get_bind())
    op.drop_column('outbox', 'events')
