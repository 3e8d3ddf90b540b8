"""notices' tables: the daily counts the detectors read."""

from __future__ import annotations

from sqlalchemy import Column, Date, Integer, String, Table
from yardstick.consumer import processed_table
from yardstick.db import new_metadata
from yardstick.outbox import outbox_table

metadata = new_metadata()

# Ratings per subject and local day: kiosk ratings per window, online ratings per unit.
rating_days = Table(
    "rating_days", metadata,
    Column("subject_kind", String(10), primary_key=True, comment="window | unit"),
    Column("subject_id", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("unit_id", String(100), nullable=False, index=True),
    Column("n", Integer, nullable=False),
    Column("satisfied", Integer, nullable=False),
)

# Negative items per (unit, category) cell and local day.
negative_days = Table(
    "negative_days", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("category_id", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("count", Integer, nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
