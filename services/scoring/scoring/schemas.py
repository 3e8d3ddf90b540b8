"""scoring's request bodies."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaderEvaluation(_Body):
    unit_id: str
    year: int = Field(ge=2000, le=2100)
    grade: float = Field(ge=0, le=100)


class ProjectBody(_Body):
    unit_id: str
    year: int = Field(ge=2000, le=2100)
    title: str = Field(min_length=1, max_length=500)
    summary: str | None = Field(default=None, max_length=10_000)


class AssessmentBody(_Body):
    points: float


class AdjustmentBody(_Body):
    unit_id: str
    year: int = Field(ge=2000, le=2100)
    points: float
    reason: str = Field(min_length=1, max_length=4000)

    @field_validator("points")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("points must be a finite number")
        return value


class ObjectionBody(_Body):
    unit_id: str
    year: int = Field(ge=2000, le=2100)
    text: str = Field(min_length=1, max_length=10_000)


class AnswerBody(_Body):
    text: str = Field(min_length=1, max_length=10_000)
    upheld: bool


class FinalizeBody(_Body):
    force: bool = False
