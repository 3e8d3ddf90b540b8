"""notices' request bodies and the editable settings of each detector rule."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, HttpUrl, Tag

from notices import detectors
from yardstick.text import PublicText, StoredText

# Every string this service stores comes in as StoredText (yardstick.text); a plan, which the public register
# shows and notice.transitioned carries, as PublicText (no personal contact or identity data).


class _Strict(BaseModel):
    # NaN and Infinity are valid to Python's JSON parser but not JSON: stored in a plan they made every
    # page of the public register that shows it a 500. Every float input is finite.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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


def _text_or_number(value: Any) -> str:
    return "text" if isinstance(value, str) else "number"


# A text or a number, judged by what was sent: the error then names one (`target.number: Input should be
# a finite number`), not both members of the union.
TextOrNumber = Annotated[Annotated[PublicText, Tag("text")] | Annotated[float, Tag("number")],
                         Discriminator(_text_or_number)]


class Commitment(_Strict):
    metric: PublicText = Field(min_length=1, max_length=500)
    target: TextOrNumber = Field(description="the value the unit commits to, publicly")
    due: date


class PlanIn(_Strict):
    actions: list[PublicText] = Field(min_length=1, max_length=50)
    commitment: Commitment


class TextIn(_Strict):
    text: StoredText = Field(min_length=1, max_length=4000)


class OptionalTextIn(_Strict):
    text: StoredText | None = Field(default=None, max_length=4000)


class SubscriptionIn(_Strict):
    unit_id: StoredText | None = None
    webhook_url: HttpUrl | None = None
    email: StoredText | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


def rule_settings(rule_id: str, stored: dict[str, Any] | None) -> BaseModel:
    return RULE_MODELS[rule_id].model_validate(stored or {})
