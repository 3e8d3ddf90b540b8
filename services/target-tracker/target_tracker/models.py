"""target-tracker's tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    UniqueConstraint,
    func,
)
from yardstick.consumer import processed_table
from yardstick.db import new_metadata
from yardstick.outbox import outbox_table

metadata = new_metadata()

targets = Table(
    "targets", metadata,
    Column("id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False, index=True),
    Column("year", Integer, nullable=False),
    Column("code", String(100), nullable=False),
    Column("title", String(500), nullable=False),
    Column("unit_of_measure", String(100), nullable=False),
    Column("direction", String(10), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("baseline", Float, nullable=False),
    Column("target", Float, nullable=False),
    Column("weight", Float, nullable=False),
    Column("cadence", String(10), nullable=False),
    Column("due", Date, nullable=True),
    Column("valid_range", JSON, nullable=True),
    Column("public_commitment", Boolean, nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("unit_id", "year", "code"),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
