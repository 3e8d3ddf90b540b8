"""notices' settings (env prefix YARDSTICK_NOTICES_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict
from yardstick.settings import ServiceSettings


class NoticesSettings(ServiceSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_NOTICES_")
    service: ClassVar[str] = "notices"
    default_port: ClassVar[int] = 8004
    db_name: ClassVar[str] = "notices"
