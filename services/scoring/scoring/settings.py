"""scoring's settings (env prefix YARDSTICK_SCORING_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from yardstick.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_SCORING_")
    service: ClassVar[str] = "scoring"
    default_port: ClassVar[int] = 8003
    db_name: ClassVar[str] = "scoring"

    # scorecard.updated goes out at most this often per unit (issue 5: once a second).
    update_interval_s: float = 1.0
    # Scorecards are recomputed (all units of a year, one pass) when a batch is applied, resting at least
    # this long between passes (and twice as long as the last pass took); at least every recompute_poll_s
    # when another instance applied the events. Either way current within a second (issue 5).
    recompute_gap_s: float = 0.1
    recompute_poll_s: float = 0.5
