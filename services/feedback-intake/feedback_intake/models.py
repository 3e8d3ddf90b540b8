"""feedback-intake's tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from yardstick.auth import revoked_table
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

feedback = Table(
    "feedback", metadata,
    Column("id", String(36), primary_key=True),
    Column("tracking_code", String(20), nullable=False, unique=True),
    Column("client_id", String(64), nullable=True, unique=True, comment="the client's id for retries"),
    Column("channel", String(20), nullable=False),
    Column("unit_id", String(100), nullable=True, comment="null: in the commission's queue"),
    Column("category_id", String(100), nullable=False),
    Column("classified_by", String(20), nullable=False, comment="caller | keyword | model | none"),
    Column("confidence", Float, nullable=True, comment="the model's probability for its answer"),
    Column("level", Integer, nullable=True),
    Column("text", Text, nullable=True),
    Column("window_id", String(100), nullable=True),
    Column("district_id", String(100), nullable=True),
    Column("contact", Text, nullable=True, comment="Fernet-encrypted JSON; never leaves this service"),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("year", Integer, nullable=False),
    Column("due", Date, nullable=True),
    Column("notice_id", String(64), nullable=True),
    Column("response_text", Text, nullable=True),
    Column("responded_at", DateTime(timezone=True), nullable=True),
    Column("follow_up_level", Integer, nullable=True),
    Column("followed_up_at", DateTime(timezone=True), nullable=True),
    Column("platform", String(50), nullable=True),
    Column("post_id", String(200), nullable=True),
    Column("url", String(2000), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("platform", "post_id", name="uq_feedback_platform_post"),
    Index("ix_feedback_unit_id", "unit_id", "id"),
)

audit = Table(
    "audit", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("feedback_id", String(36), nullable=False, index=True),
    Column("action", String(30), nullable=False, comment="contact_read | reassign | route"),
    Column("actor", String(100), nullable=False, comment="the token id, never a name"),
    Column("role", String(20), nullable=False),
    Column("unit_id", String(100), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

surveys = Table(
    "surveys", metadata,
    Column("id", String(36), primary_key=True),
    Column("year", Integer, nullable=False, unique=True),
    Column("title", String(300), nullable=False),
    Column("strata", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

survey_responses = Table(
    "survey_responses", metadata,
    Column("survey_id", String(36), primary_key=True),
    Column("respondent_id", String(100), primary_key=True),
    Column("stratum", String(100), nullable=False),
    Column("ratings", JSON, nullable=False),
    Index("ix_survey_responses_stratum", "survey_id", "stratum"),
)

outbox = outbox_table(metadata)
processed_events = processed_table(metadata)
revoked_tokens = revoked_table(metadata)
