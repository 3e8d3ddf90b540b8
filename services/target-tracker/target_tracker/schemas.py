"""target-tracker's request and response bodies."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: str
    year: int = Field(ge=2000, le=2100)
    code: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=500)
    unit_of_measure: str = Field(min_length=1, max_length=100)
    direction: Literal["increase", "decrease"]
    kind: Literal["numeric", "milestone"] = "numeric"
    baseline: float
    target: float
    weight: float = Field(gt=0)
    cadence: Literal["daily", "weekly", "monthly"] = "daily"
    due: date | None = None
    valid_range: tuple[float, float] | None = None
    public_commitment: bool = False
