"""Alembic environment of notices: its own tables only."""

from notices.models import metadata
from yardstick.db import run_migrations_online

run_migrations_online(metadata)
