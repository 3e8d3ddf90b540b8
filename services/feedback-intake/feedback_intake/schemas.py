"""feedback-intake's request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from yardstick.text import STORABLE


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


# feedback ------------------------------------------------------------------------------

FeedbackChannel = Literal["web", "mobile", "hotline", "face_to_face", "exhibit_hall"]
Slug = Annotated[str, Field(min_length=1, max_length=100), STORABLE]


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: Annotated[str, Field(max_length=40), STORABLE] | None = None
    email: Annotated[str, Field(max_length=254), STORABLE] | None = None


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: FeedbackChannel
    unit_id: Slug | None = None
    window_id: Slug | None = None
    level: StrictInt | None = Field(default=None, ge=1, le=5)
    text: Annotated[str, Field(max_length=4000), STORABLE] | None = None
    category_id: Slug | None = None
    district_id: Slug | None = None
    contact: Contact | None = None
    submitted_at: AwareDatetime | None = None
    # A UUID (api.md): ids a client counts up ("1", "2", ...) would collide between citizens.
    client_id: str | None = Field(default=None, pattern=UUID_PATTERN)


class FeedbackReceipt(BaseModel):
    id: str
    tracking_code: str
    unit_id: str | None
    category_id: str
    status: Literal["received"] = "received"


class NoticeLink(BaseModel):
    id: str


class Response(BaseModel):
    text: str
    responded_at: datetime


class FeedbackStatus(BaseModel):
    """What the citizen sees by tracking code: no contact data, no text echoed back."""

    tracking_code: str
    status: str
    unit_id: str | None
    category_id: str
    submitted_at: datetime
    due: date | None
    notice: NoticeLink | None
    response: Response | None
    follow_up_level: int | None


class FollowUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: StrictInt = Field(ge=1, le=5)


class UnitFeedback(BaseModel):
    id: str
    tracking_code: str
    channel: str
    unit_id: str | None
    category_id: str
    classified_by: str
    confidence: float | None
    level: int | None
    text: str | None
    window_id: str | None
    district_id: str | None
    has_contact: bool
    status: str
    submitted_at: datetime
    due: date | None
    overdue: bool
    notice_id: str | None
    response_text: str | None
    responded_at: datetime | None
    follow_up_level: int | None


class FeedbackPage(BaseModel):
    items: list[UnitFeedback]
    next_cursor: str | None


class ResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=4000), STORABLE]


class ReassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: Slug
    reason: Annotated[str, Field(min_length=1, max_length=1000), STORABLE]


class ContactOut(BaseModel):
    feedback_id: str
    phone: str | None = None
    email: str | None = None


# social media ----------------------------------------------------------------------------


class SocialItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: Annotated[str, Field(min_length=1, max_length=50), STORABLE]
    post_id: Annotated[str, Field(min_length=1, max_length=200), STORABLE]
    text: Annotated[str, Field(min_length=1, max_length=4000), STORABLE]
    posted_at: AwareDatetime
    author_hash: Annotated[str, Field(max_length=200), STORABLE] | None = None
    url: Annotated[str, Field(max_length=2000), STORABLE] | None = None


# survey ----------------------------------------------------------------------------------


class StratumIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Slug
    population: StrictInt = Field(gt=0)


class SurveyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    year: StrictInt = Field(ge=2000, le=2100)
    title: Annotated[str, Field(min_length=1, max_length=300), STORABLE]
    strata: list[StratumIn] = Field(min_length=1, max_length=1000)


class SurveyCreated(BaseModel):
    id: str


class RowRejection(BaseModel):
    row: int
    error: dict[str, Any]


class SurveyUploadResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RowRejection]


class StratumCount(BaseModel):
    id: str
    population: int
    respondents: int


class SurveyOut(BaseModel):
    id: str
    year: int
    title: str
    respondents: int
    strata: list[StratumCount]
