"""Alembic environment of feedback-intake: its own tables only."""

from feedback_intake.models import metadata
from yardstick.db import run_migrations_online

run_migrations_online(metadata)
