"""scoring's tables: aggregates only, never raw rows to scan."""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, Integer, String, Table
from yardstick.consumer import processed_table
from yardstick.db import new_metadata
from yardstick.outbox import outbox_table

metadata = new_metadata()

# Counted ratings per unit, channel and local day: n, sum of s and of s^2 (for the variance).
channel_days = Table(
    "channel_days", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("year", Integer, nullable=False, index=True),
    Column("n", Integer, nullable=False),
    Column("sum_s", Float, nullable=False),
    Column("sum_s2", Float, nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
