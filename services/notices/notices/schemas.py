"""notices' request bodies and the editable settings of each detector rule."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from notices import detectors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComplaintRule(_Strict):
    window_days: int = Field(7, ge=1, le=90)
    baseline_days: int = Field(28, ge=1, le=365)
    min_count: int = Field(5, ge=1)
    alpha: float = Field(0.01, gt=0, lt=1)


class SatisfactionRule(_Strict):
    window_days: int = Field(14, ge=1, le=90)
    previous_days: int = Field(28, ge=1, le=365)
    min_ratings: int = Field(30, ge=1)
    threshold: float = Field(0.80, gt=0, lt=1)
    drop: float = Field(0.10, ge=0, lt=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)


class TargetRule(_Strict):
    consecutive_reports: int = Field(7, ge=1, le=365)


class RecurrenceRule(_Strict):
    recurrence_days: int = Field(180, ge=0, le=3650)


RULE_MODELS: dict[str, type[_Strict]] = {
    detectors.COMPLAINT: ComplaintRule, detectors.SATISFACTION: SatisfactionRule,
    detectors.TARGET: TargetRule, detectors.RECURRENCE: RecurrenceRule,
}


class Commitment(_Strict):
    metric: str = Field(min_length=1, max_length=500)
    target: str | float = Field(description="the value the unit commits to, publicly")
    due: date


class PlanIn(_Strict):
    actions: list[str] = Field(min_length=1, max_length=50)
    commitment: Commitment


class TextIn(_Strict):
    text: str = Field(min_length=1, max_length=4000)


class OptionalTextIn(_Strict):
    text: str | None = Field(default=None, max_length=4000)


class SubscriptionIn(_Strict):
    unit_id: str | None = None
    webhook_url: HttpUrl | None = None
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


def rule_settings(rule_id: str, stored: dict[str, Any] | None) -> BaseModel:
    return RULE_MODELS[rule_id].model_validate(stored or {})
