"""target-tracker's request and response bodies."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from yardstick.text import PUBLIC, STORABLE, PublicText, StoredText

# Every string this service stores, looks up or puts in an event comes in as StoredText (yardstick.text); a
# target's title, which the public targets list and target.defined show, as PublicText (no personal data).

# Every body with numbers refuses NaN and Infinity (JSON extensions Python's parser accepts): the
# reads could not encode them (a 500 for every reader of the lists) and they break the method's math.
FINITE = ConfigDict(extra="forbid", allow_inf_nan=False)
# A finite number can still overflow in the projection (squares and sums of 1e308 are Infinity), with
# the same 500 on the reads: every number a target or a report holds is within +-1e15 (more than any
# city indicator needs; its squares over a year stay far from overflow).
Number = Annotated[float, Field(ge=-1e15, le=1e15)]


class TargetIn(BaseModel):
    model_config = FINITE
    unit_id: StoredText
    year: int = Field(ge=2000, le=2100)
    code: StoredText = Field(min_length=1, max_length=100)
    title: PublicText = Field(min_length=1, max_length=500)
    unit_of_measure: StoredText = Field(min_length=1, max_length=100)
    direction: Literal["increase", "decrease"]
    kind: Literal["numeric", "milestone"] = "numeric"
    baseline: Number
    target: Number
    weight: Number = Field(gt=0)
    cadence: Literal["daily", "weekly", "monthly"] = "daily"
    due: date | None = None
    valid_range: tuple[Number, Number] | None = None
    public_commitment: bool = False
    milestones: list[Number] | None = Field(
        default=None, min_length=12, max_length=12,
        description="expected value at the end of each month, January to December (the trajectory)")


class TargetPatch(BaseModel):
    """What the commission may change; the unit, year, code and kind identify the target and stay."""

    model_config = FINITE
    title: Annotated[str, Field(min_length=1, max_length=500), STORABLE, PUBLIC] | None = None
    unit_of_measure: Annotated[str, Field(min_length=1, max_length=100), STORABLE] | None = None
    direction: Literal["increase", "decrease"] | None = None
    baseline: Number | None = None
    target: Number | None = None
    weight: Annotated[Number, Field(gt=0)] | None = None
    cadence: Literal["daily", "weekly", "monthly"] | None = None
    due: date | None = None
    valid_range: tuple[Number, Number] | None = None
    public_commitment: bool | None = None
    milestones: list[Number] | None = Field(default=None, min_length=12, max_length=12)
    reason: Annotated[str, Field(max_length=2000), STORABLE] | None = None

    @field_validator("title", "unit_of_measure", "direction", "baseline", "target", "weight", "cadence",
                     "public_commitment", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only on fields sent: an omitted field stays None and unchanged, an explicit null
        # would clear a column that cannot be empty. (due, valid_range and milestones may be null:
        # the default due, no range, the linear trajectory.)
        if value is None:
            raise ValueError(f"{info.field_name} cannot be null; leave it out to keep the current value")
        return value


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(max_length=2000), STORABLE] | None = None


class ProgressIn(BaseModel):
    model_config = FINITE
    date: date
    value: Number
    note: Annotated[str, Field(max_length=2000), STORABLE] | None = None
    evidence_url: Annotated[str, Field(max_length=2000), STORABLE] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=2000), STORABLE] | None = None


class BatchReportIn(ProgressIn):
    """One item of a progress batch: a report as on the single route, naming its target."""

    target_id: StoredText = Field(min_length=1, max_length=64)


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
