"""Alembic environment of target-tracker: its own tables only."""

from target_tracker.models import metadata
from yardstick.db import run_migrations_online

run_migrations_online(metadata)
