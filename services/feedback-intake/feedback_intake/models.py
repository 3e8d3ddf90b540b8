"""feedback-intake's tables."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, func
from yardstick.consumer import processed_table
from yardstick.db import new_metadata
from yardstick.outbox import outbox_table

metadata = new_metadata()

ratings = Table(
    "ratings", metadata,
    Column("id", String(64), primary_key=True, comment="made by the kiosk; retries reuse it"),
    Column("window_id", String(100), nullable=False),
    Column("unit_id", String(100), nullable=False),
    Column("device", String(200), nullable=False, comment="the kiosk token's subject"),
    Column("level", Integer, nullable=False),
    Column("rated_at", DateTime(timezone=True), nullable=False),
    Column("year", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("status", String(20), nullable=False, comment="counted | suppressed"),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_ratings_device_rated_at", "device", "rated_at"),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
