"""target-tracker's settings (env prefix YARDSTICK_TARGETS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict
from yardstick.settings import ServiceSettings


class TargetsSettings(ServiceSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_TARGETS_")
    service: ClassVar[str] = "target-tracker"
    default_port: ClassVar[int] = 8002
    db_name: ClassVar[str] = "targets"
