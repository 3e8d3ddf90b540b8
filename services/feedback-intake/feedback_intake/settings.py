"""feedback-intake's settings (env prefix YARDSTICK_INTAKE_)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from yardstick.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_INTAKE_")
    service: ClassVar[str] = "feedback-intake"
    default_port: ClassVar[int] = 8001
    db_name: ClassVar[str] = "intake"

    # A rating older than this (by rated_at) is rejected; kiosks may buffer for days.
    horizon_days: int = 30
    # How far ahead of the server's clock rated_at may be.
    future_tolerance_s: int = 300
    # Presses by the same kiosk closer than this are kept but not counted.
    suppress_interval_s: float = 5.0

    # How many working days a unit has to respond to feedback routed to it (api.md).
    response_days: int = 15
    # Public holidays and make-up working days (ISO dates) for the response deadline.
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)
    # Fernet key (urlsafe base64, 32 bytes) for contact data; derived from the auth secret when empty.
    contact_key: str = ""
    # {platform: secret} for the social-media bridge's HMAC-SHA256 signatures.
    social_secrets: dict[str, str] = Field(default_factory=dict)
    # Token buckets: per token (authenticated callers) and per client (anonymous callers).
    rate_per_s: float = 5.0
    rate_burst: float = 30.0
    # Without an install id an anonymous client is its address, which a carrier's NAT shares among
    # many phones: such buckets are this many times larger.
    address_rate_scale: float = 20.0
    # The classifier's answer below this probability files the text as uncategorised.
    min_confidence: float = 0.15
    # Survey uploads commit every this many rows.
    survey_chunk_rows: int = 500
