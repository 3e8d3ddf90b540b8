"""target-tracker's request and response bodies."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

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
    milestones: list[float] | None = Field(
        default=None, min_length=12, max_length=12,
        description="expected value at the end of each month, January to December (the trajectory)")


class TargetPatch(BaseModel):
    """What the commission may change; the unit, year, code and kind identify the target and stay."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, max_length=500)
    unit_of_measure: str | None = Field(default=None, min_length=1, max_length=100)
    direction: Literal["increase", "decrease"] | None = None
    baseline: float | None = None
    target: float | None = None
    weight: float | None = Field(default=None, gt=0)
    cadence: Literal["daily", "weekly", "monthly"] | None = None
    due: date | None = None
    valid_range: tuple[float, float] | None = None
    public_commitment: bool | None = None
    milestones: list[float] | None = Field(default=None, min_length=12, max_length=12)
    reason: str | None = Field(default=None, max_length=2000)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)


class ProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    value: float
    note: str | None = Field(default=None, max_length=2000)
    evidence_url: str | None = Field(default=None, max_length=2000)
    reason: str | None = Field(default=None, min_length=1, max_length=2000)


class BatchReportIn(ProgressIn):
    """One item of a progress batch: a report as on the single route, naming its target."""

    target_id: str = Field(min_length=1, max_length=64)


class ProgressBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Items stay raw here: each is validated on its own in the service, so one bad item is
    # rejected alone (with its index), never the whole batch (as intake's kiosk batches).
    reports: list[Any] = Field(min_length=1, max_length=5000,
                               description="BatchReportIn items: target_id, date, value, note?, evidence_url?, "
                                           "reason? (a correction)")


class BatchRejection(BaseModel):
    index: int
    error: dict[str, Any]


class BatchReport(BaseModel):
    index: int
    target_id: str
    date: date
    correction: bool
    late: bool
    attainment: float
    status: str


class TargetState(BaseModel):
    target_id: str
    latest: dict[str, Any] | None
    attainment: float
    status: str
    projection: dict[str, Any]


class ProgressBatchResult(BaseModel):
    accepted: int
    rejected: list[BatchRejection]
    reports: list[BatchReport]
    targets: list[TargetState]
