"""notices' tables: the daily counts the detectors read, the notices, rules and notifications."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Date, DateTime, Index, Integer, String, Table, Text

from yardstick.auth import revoked_table
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

# The sweep reads every cell over a range of days.
Index("ix_negative_days_day", negative_days.c.day)
Index("ix_rating_days_day", rating_days.c.day)

# Every categorised item per cell and day: the denominator of "share of negative feedback".
category_days = Table(
    "category_days", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("category_id", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("n", Integer, nullable=False),
)

# The negative items themselves, by id only: the evidence's sample feedback ids.
negative_items = Table(
    "negative_items", metadata,
    Column("feedback_id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False),
    Column("category_id", String(100), nullable=False),
    Column("day", Date, nullable=False, index=True),
    Column("revision", Integer, nullable=False, server_default="0",
           comment="feedback.reassigned's revision; 0 as received"),
)

# Each target's latest status, and the status of each progress report (by report date).
target_states = Table(
    "target_states", metadata,
    Column("target_id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("as_of", Date, nullable=True),
)
target_reports = Table(
    "target_reports", metadata,
    Column("target_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("status", String(20), nullable=False),
)

notices = Table(
    "notices", metadata,
    Column("id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=False, index=True),
    Column("rule", String(60), nullable=False),
    Column("subject", String(100), nullable=False),
    # "unit|rule|subject" while open, NULL once verified: one open notice per cell, by the database.
    Column("open_key", String(300), nullable=True, unique=True),
    Column("status", String(20), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("overdue", Boolean, nullable=False, default=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("issued_on", Date, nullable=False, index=True),
    Column("year", Integer, nullable=False, index=True),
    Column("evidence", JSON, nullable=False),
    Column("latest_evidence", JSON, nullable=True),
    Column("evidence_updates", Integer, nullable=False, default=0),
    Column("feedback_ids", JSON, nullable=False),
    Column("linked_notice_id", String(64), nullable=True),
    Column("plan", JSON, nullable=True),
    Column("resolution", Text, nullable=True),
    Column("step", String(20), nullable=True, comment="acknowledge | plan | resolve: the step now due"),
    Column("deadline", Date, nullable=True),
    Column("reminded_for", Date, nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("plan_at", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("verified_at", DateTime(timezone=True), nullable=True),
    Column("verified_on", Date, nullable=True),
)

notice_history = Table(
    "notice_history", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("notice_id", String(64), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(30), nullable=False),
    Column("previous", String(20), nullable=True),
    Column("status", String(20), nullable=False),
    Column("actor_role", String(20), nullable=False),
    Column("actor", String(200), nullable=True, comment="token subject; never shown publicly"),
    Column("text", Text, nullable=True),
)

rules = Table(
    "rules", metadata,
    Column("rule_id", String(60), primary_key=True),
    Column("settings", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
rule_audit = Table(
    "rule_audit", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("rule_id", String(60), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=False),
)

# The closed local days the sweep has evaluated (one row per service: the last one).
sweeps = Table(
    "sweeps", metadata,
    Column("name", String(40), primary_key=True),
    Column("last_day", Date, nullable=False),
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("id", String(64), primary_key=True),
    Column("unit_id", String(100), nullable=True, comment="NULL: every unit (commission)"),
    Column("webhook_url", String(2000), nullable=True),
    Column("email", String(320), nullable=True),
    Column("secret", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Notifications to deliver, written in the transaction of what they announce.
deliveries = Table(
    "deliveries", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("channel", String(10), nullable=False, comment="webhook | email"),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True, index=True),
    Column("last_error", Text, nullable=True),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
revoked_tokens = revoked_table(metadata)
