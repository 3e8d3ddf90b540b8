"""revoked tokens: the revocations this service has seen, kept across restarts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 05:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('revoked_tokens',
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_id', name=op.f('pk_revoked_tokens'))
    )


def downgrade() -> None:
    op.drop_table('revoked_tokens')
