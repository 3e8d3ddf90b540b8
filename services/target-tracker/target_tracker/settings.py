"""target-tracker's settings (env prefix YARDSTICK_TARGETS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from target_tracker.forecast import Thresholds
from yardstick.settings import ServiceSettings


class TargetsSettings(ServiceSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_TARGETS_")
    service: ClassVar[str] = "target-tracker"
    default_port: ClassVar[int] = 8002
    db_name: ClassVar[str] = "targets"

    # Projected attainment at or above on_track is on_track, at or above at_risk is at_risk;
    # per year, e.g. YARDSTICK_TARGETS_THRESHOLDS='{"2026": {"on_track": 1.0, "at_risk": 0.85}}'.
    thresholds: dict[int, dict[str, float]] = Field(default_factory=dict)
    default_on_track: float = 1.0
    default_at_risk: float = 0.9
    # Days without a report after which a numeric target is no_data (docs/decisions/targets-*.md).
    stale_days: dict[str, int] = Field(default_factory=lambda: {"daily": 10, "weekly": 21, "monthly": 62})
    # Holt's parameters are re-estimated after this many new reports (the fit costs ~20 ms).
    holt_refit_every: int = 30
    # The stale sweep runs this often; each run is idempotent.
    sweep_interval_s: float = 3600.0

    def thresholds_for(self, year: int) -> Thresholds:
        given = self.thresholds.get(year, {})
        return Thresholds(on_track=given.get("on_track", self.default_on_track),
                          at_risk=given.get("at_risk", self.default_at_risk))
