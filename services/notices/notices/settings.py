"""notices' settings (env prefix YARDSTICK_NOTICES_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from notices.workdays import DEFAULT_CALENDAR, HolidayYear
from yardstick.settings import ServiceSettings


class NoticesSettings(ServiceSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_NOTICES_")
    service: ClassVar[str] = "notices"
    default_port: ClassVar[int] = 8004
    db_name: ClassVar[str] = "notices"

    # Per-year public holidays and make-up working days, as JSON: {"2027": {"holidays": [...], "workdays": [...]}}.
    # Configurable; the default (China's 2026 schedule) is illustrative.
    calendar: dict[int, HolidayYear] = Field(default_factory=lambda: dict(DEFAULT_CALENDAR))
    # Live evaluation waits this long after the last event before it runs (debounce).
    debounce_s: float = 3.0
    # ... but no longer than this after the first event it has not evaluated (events may never pause).
    evaluate_within_s: float = 30.0
    # Switches for the background loops (tests drive evaluation themselves, with an injected day).
    live_evaluation: bool = True
    daily_sweep: bool = True
    # How often the sweep checks whether a local day has closed.
    sweep_check_s: float = 30.0
    # After a gap (first start, an outage, a replay) the sweep evaluates at most this many closed days.
    catchup_days: int = 400
    # Notification delivery: polling, retries with exponential backoff, SMTP server.
    delivery_interval_s: float = 1.0
    delivery_backoff_s: float = 2.0
    delivery_backoff_max_s: float = 600.0
    delivery_max_attempts: int = 12
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "notices@yardstick.invalid"
    smtp_timeout_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # Webhooks to loopback, private or link-local addresses would let a subscriber make this
    # service call inside the network; allowed only where that is the point (local tests).
    webhook_allow_private: bool = False
    # The span before a notice and after its verification over which the effect is measured.
    effect_days: int = 28
