"""outbox lz4: a shared row's payload is compressed with lz4 on PostgreSQL (decision 0028)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 00:10:00
"""
from alembic import op

from yardstick.outbox import compress_payloads

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    compress_payloads(op.get_bind())


def downgrade() -> None:
    compress_payloads(op.get_bind(), lz4=False)
