"""target-tracker's tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    false,
    func,
    text,
)

from yardstick.auth import revoked_table
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
    # 0002: review, trajectory, and the state after the latest report (so reads need no recompute).
    Column("rejected", Boolean, nullable=False, server_default=false()),
    Column("withdrawn", Boolean, nullable=False, server_default=false()),
    Column("milestones", JSON, nullable=True),
    Column("report_count", Integer, nullable=False, server_default=text("0")),
    Column("latest_date", Date, nullable=True),
    Column("latest_value", Float, nullable=True),
    Column("attainment", Float, nullable=False, server_default=text("0")),
    # The last status announced in an event: the sweep and reports compare against it. NULL until the
    # first announcement: a report, or the sweep once a target's first report is overdue (0005).
    Column("status", String(10), nullable=True),
    Column("projection_value", Float, nullable=True),
    Column("projection_low", Float, nullable=True),
    Column("projection_high", Float, nullable=True),
    Column("projection_method", String(20), nullable=True),
    Column("holt_alpha", Float, nullable=True),
    Column("holt_beta", Float, nullable=True),
    Column("holt_phi", Float, nullable=True),
    Column("holt_fitted_at", Integer, nullable=True),
    # 0005: the day (city time) the target was approved: its first report's clock starts then at the earliest.
    Column("approved_on", Date, nullable=True),
    UniqueConstraint("unit_id", "year", "code"),
    Index("ix_targets_year_public", "year", "public_commitment"),
)

# The current value per (target, date): what the method reads. Every value ever reported is in audit.
progress = Table(
    "progress", metadata,
    Column("target_id", String(64), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("value", Float, nullable=False),
    Column("note", String(2000), nullable=True),
    Column("evidence_url", String(2000), nullable=True),
    Column("late", Boolean, nullable=False),
    Column("revisions", Integer, nullable=False, server_default=text("0")),
    Column("reported_at", DateTime(timezone=True), nullable=False),
)

# Append-only: rows are inserted, never updated or deleted (a trigger refuses both).
audit = Table(
    "audit", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("target_id", String(64), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(20), nullable=False),
    Column("actor_role", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("date", Date, nullable=True),
    Column("value", Float, nullable=True),
    Column("previous_value", Float, nullable=True),
    Column("late", Boolean, nullable=True),
    Column("reason", String(2000), nullable=True),
    Column("note", String(2000), nullable=True),
    Column("evidence_url", String(2000), nullable=True),
    Column("changes", JSON, nullable=True),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
revoked_tokens = revoked_table(metadata)
