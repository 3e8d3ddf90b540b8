"""yearly channel sums

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 05:20:00

A recompute reads ratings per unit, channel and year (a few hundred rows) instead of summing a
year of daily rows; the consumer keeps both in the same transaction.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channel_years',
    sa.Column('unit_id', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('sum_s', sa.Float(), nullable=False),
    sa.Column('sum_s2', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('unit_id', 'channel', 'year', name=op.f('pk_channel_years'))
    )
    # The yearly sums of what is already counted (satisfaction values are quarters: the sums are exact).
    op.execute("INSERT INTO channel_years (unit_id, channel, year, n, sum_s, sum_s2) "
               "SELECT unit_id, channel, year, SUM(n), SUM(sum_s), SUM(sum_s2) FROM channel_days "
               "GROUP BY unit_id, channel, year")


def downgrade() -> None:
    op.drop_table('channel_years')
