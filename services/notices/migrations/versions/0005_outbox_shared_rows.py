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
    # A release before this one reads a shared row as one event: the rest would be lost with the column.
    shared = op.get_bind().execute(sa.text("SELECT count(*) FROM outbox WHERE events > 1")).scalar()
    if shared:
        raise RuntimeError(f"the outbox holds {shared} rows of several events: run the relay with "
                           "YARDSTICK_OUTBOX_SHARED_ROWS=false until they are published, then downgrade")
    op.drop_column('outbox', 'events')
