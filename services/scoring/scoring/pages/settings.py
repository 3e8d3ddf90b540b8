"""Settings of the pages (env prefix YARDSTICK_PAGES_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class PagesSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_PAGES_")

    # Where citizens' browsers reach feedback-intake: the tracking lookup redirects there.
    intake_url: str = "http://127.0.0.1:8001"
    # How often a live dashboard asks whether anything changed.
    poll_s: float = 3.0
    # Set the sign-in cookie's Secure flag (behind HTTPS in production).
    secure_cookie: bool = False
