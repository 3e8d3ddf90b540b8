"""first report clock: the day a target was approved, and no status until one is announced

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('targets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approved_on', sa.Date(), nullable=True))
        # NULL: no status announced yet (a target with no report, before its first report is overdue).
        batch_op.alter_column('status', existing_type=sa.String(length=10), nullable=True,
                              server_default=None, existing_server_default='no_data')
    # Targets approved before this revision: the day of their approval in the audit trail (a proposal's),
    # else of their definition. In UTC, not the city's time zone: at most a day off, on a clock of weeks.
    def day(column: str) -> str:
        if op.get_bind().dialect.name == "sqlite":
            return f"date({column})"
        return f"CAST({column} AT TIME ZONE 'UTC' AS DATE)"

    op.execute(f"UPDATE targets SET approved_on = COALESCE((SELECT max({day('audit.at')}) FROM audit "
               f"WHERE audit.target_id = targets.id AND audit.action = 'approved'), {day('targets.created_at')}) "
               "WHERE approved")
    # A target never reported had only its status at definition stored, never announced (target.defined
    # has none): no_data, or on_track for a milestone before its due date (a later off_track came from
    # the sweep and was announced, so it stays).
    op.execute("UPDATE targets SET status = NULL WHERE latest_date IS NULL AND status IN ('no_data', 'on_track')")


def downgrade() -> None:
    op.execute("UPDATE targets SET status = CASE WHEN kind = 'milestone' THEN 'on_track' ELSE 'no_data' END "
               "WHERE status IS NULL")
    with op.batch_alter_table('targets', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=sa.String(length=10), nullable=False,
                              server_default='no_data')
        batch_op.drop_column('approved_on')
