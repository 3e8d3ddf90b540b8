"""feedback-intake's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt


class RatingItem(BaseModel):
    """One kiosk press; validated item by item so one bad item never rejects the batch."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    window_id: str
    level: StrictInt = Field(ge=1, le=5)
    rated_at: AwareDatetime
    reasons: list[str] = Field(default_factory=list, max_length=10)


class RatingBatch(BaseModel):
    # Items stay raw here, whatever their type: each is validated on its own in the service,
    # so one item that is not even an object is rejected alone, not with the whole batch.
    ratings: list[Any] = Field(min_length=1, max_length=500)


class RatingRejection(BaseModel):
    index: int
    error: dict[str, Any]


class RatingResult(BaseModel):
    accepted: int
    duplicates: int
    suppressed: int
    rejected: list[RatingRejection]


class StoredRating(BaseModel):
    id: str
    window_id: str
    unit_id: str
    level: int
    rated_at: datetime
    status: str
