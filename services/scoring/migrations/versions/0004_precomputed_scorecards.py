"""precomputed scorecards

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 04:40:00

Reads answer from the scorecards a debounced pass computed for the whole year; the years
table says which version of the aggregates (and which day) they were computed from.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scorecards',
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.String(length=100), nullable=False),
    sa.Column('group_id', sa.String(length=100), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('year', 'unit_id', name=op.f('pk_scorecards'))
    )
    with op.batch_alter_table('years', schema=None) as batch_op:
        batch_op.add_column(sa.Column('computed_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('computed_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('years', schema=None) as batch_op:
        batch_op.drop_column('computed_on')
        batch_op.drop_column('computed_version')
    op.drop_table('scorecards')
