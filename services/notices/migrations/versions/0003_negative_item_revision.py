"""negative items carry feedback.reassigned's revision

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 05:15:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('negative_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='0', nullable=False,
                                      comment="feedback.reassigned's revision; 0 as received"))


def downgrade() -> None:
    with op.batch_alter_table('negative_items', schema=None) as batch_op:
        batch_op.drop_column('revision')
