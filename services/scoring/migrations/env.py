"""Alembic environment of scoring: its own tables only."""

from scoring.models import metadata
from yardstick.db import run_migrations_online

run_migrations_online(metadata)
