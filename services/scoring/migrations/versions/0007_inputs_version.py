"""inputs version of a year

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 07:50:00

years.inputs_version moves with every change of a year's inputs except ratings, so the
recompute that follows a batch of ratings reads only the ratings again.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('years', sa.Column('inputs_version', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_column('years', 'inputs_version')
