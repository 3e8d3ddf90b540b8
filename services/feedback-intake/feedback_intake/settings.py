"""feedback-intake's settings (env prefix YARDSTICK_INTAKE_)."""

from __future__ import annotations

from typing import ClassVar

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
