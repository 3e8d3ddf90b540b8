"""The event contracts: one pydantic model per event type of events.md, and their topics."""

from __future__ import annotations

import functools
import os
import time
from datetime import UTC, date, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

FEEDBACK = "feedback.v1"
SURVEY = "survey.v1"
TARGETS = "targets.v1"
NOTICES = "notices.v1"
SCORES = "scores.v1"
AUTH = "auth.v1"
DOMAIN_TOPICS = (FEEDBACK, SURVEY, TARGETS, NOTICES, SCORES, AUTH)

Channel = Literal[
    "window", "web", "mobile", "hotline", "face_to_face", "exhibit_hall", "social", "open311", "survey"
]
class _Event(BaseModel):
    # Unknown fields are ignored, not refused: a producer may add an optional field (a compatible
    # change, docs/decisions/0008) before every consumer knows it, as in a rolling deploy.
    model_config = ConfigDict(extra="ignore", frozen=True)
    __event_type__: str = ""
    __topic__: str = ""


# feedback.v1 --------------------------------------------------------------------------


class FeedbackReceived(_Event):
    """A rating or feedback item was accepted and counted. Kiosk presses too (channel window)."""

    __event_type__ = "feedback.received"
    __topic__ = FEEDBACK
    feedback_id: str
    unit_id: str
    channel: Channel
    occurred_at: datetime = Field(description="rated_at or submitted_at (receipt time when absent)")
    year: int
    level: int | None = Field(default=None, ge=1, le=5)
    window_id: str | None = None
    category_id: str | None = None
    district_id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    has_text: bool = False
    device: str | None = Field(default=None, description="kiosk device (token subject), never a person")


class FeedbackReassigned(_Event):
    """An item moved to another unit; consumers move its counts from one unit to the other."""

    __event_type__ = "feedback.reassigned"
    __topic__ = FEEDBACK
    feedback_id: str
    from_unit_id: str
    unit_id: str
    channel: Channel
    occurred_at: datetime
    year: int
    level: int | None = Field(default=None, ge=1, le=5)
    category_id: str | None = None
    revision: int = Field(default=1, ge=1, description=(
        "how many times the item has been reassigned, this move included. A move is keyed by the unit "
        "the item's feedback.received named, so it is read after the item and after earlier moves; moves "
        "published before that rule were keyed by their new unit and can be read in any order: the higher "
        "revision wins"))


class FeedbackResponded(_Event):
    __event_type__ = "feedback.responded"
    __topic__ = FEEDBACK
    feedback_id: str
    unit_id: str
    responded_at: datetime
    due: date
    overdue: bool


class FeedbackFollowUp(_Event):
    """The citizen's one follow-up rating after the unit responded (counts in the online channel)."""

    __event_type__ = "feedback.follow_up"
    __topic__ = FEEDBACK
    feedback_id: str
    unit_id: str
    level: int = Field(ge=1, le=5)
    occurred_at: datetime
    year: int
    category_id: str | None = None


# survey.v1 ----------------------------------------------------------------------------


class Stratum(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str
    population: int = Field(gt=0)


class SurveyDefined(_Event):
    __event_type__ = "survey.defined"
    __topic__ = SURVEY
    survey_id: str
    year: int
    title: str
    strata: list[Stratum]


class SurveyResponse(_Event):
    """One household's answers: a level per unit, or None for "unknown"."""

    __event_type__ = "survey.response"
    __topic__ = SURVEY
    survey_id: str
    year: int
    respondent_id: str
    stratum: str
    ratings: dict[str, int | None]


# targets.v1 ---------------------------------------------------------------------------


class TargetFields(_Event):
    target_id: str
    unit_id: str
    year: int
    code: str
    title: str
    kind: Literal["numeric", "milestone"]
    direction: Literal["increase", "decrease"]
    baseline: float
    target: float
    weight: float = Field(gt=0)
    cadence: Literal["daily", "weekly", "monthly"]
    due: date | None = None
    approved: bool
    withdrawn: bool = False
    public_commitment: bool = False


class TargetDefined(TargetFields):
    __event_type__ = "target.defined"
    __topic__ = TARGETS


class TargetChanged(TargetFields):
    __event_type__ = "target.changed"
    __topic__ = TARGETS
    changes: list[str] = Field(default_factory=list, description="names of the fields that changed")


class Projection(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    value: float | None
    low: float | None
    high: float | None


TargetStatus = Literal["on_track", "at_risk", "off_track", "no_data"]


class TargetProgress(_Event):
    __event_type__ = "target.progress"
    __topic__ = TARGETS
    target_id: str
    unit_id: str
    year: int
    date: date
    value: float
    correction: bool = False
    late: bool = False
    attainment: float
    status: TargetStatus
    projection: Projection | None = None


class TargetStatusChanged(_Event):
    __event_type__ = "target.status_changed"
    __topic__ = TARGETS
    target_id: str
    unit_id: str
    year: int
    previous: TargetStatus | None
    status: TargetStatus
    as_of: date


# notices.v1 ---------------------------------------------------------------------------

NoticeState = Literal["issued", "acknowledged", "plan_submitted", "resolved", "verified"]


class NoticeIssued(_Event):
    __event_type__ = "notice.issued"
    __topic__ = NOTICES
    notice_id: str
    unit_id: str
    rule: str
    subject: str
    severity: Literal["normal", "escalated"]
    issued_at: datetime
    year: int
    evidence: dict[str, Any] = Field(default_factory=dict, description="counts and statistics only")
    linked_notice_id: str | None = None
    feedback_ids: list[str] = Field(default_factory=list)


class NoticeCommitment(BaseModel):
    """A plan's public commitment (notices.md: the register shows it)."""

    metric: str
    target: str | float
    due: date


class NoticeTransitioned(_Event):
    __event_type__ = "notice.transitioned"
    __topic__ = NOTICES
    notice_id: str
    unit_id: str
    previous: NoticeState
    status: NoticeState
    at: datetime
    actor_role: str
    # Optional, added later (readers of older events see none of them): what the public register shows.
    actions: list[str] | None = Field(default=None, description="the plan's actions (on plan_submitted)")
    commitment: NoticeCommitment | None = Field(default=None, description="the plan's commitment")
    deadline: date | None = Field(default=None, description="when the step now due must be done")
    figures: dict[str, float | int] | None = Field(
        default=None, description="on verified: the numeric figures that showed the metric back to normal")


class NoticeOverdue(_Event):
    __event_type__ = "notice.overdue"
    __topic__ = NOTICES
    notice_id: str
    unit_id: str
    step: str
    deadline: date


# scores.v1 ----------------------------------------------------------------------------


class ScorecardUpdated(_Event):
    __event_type__ = "scorecard.updated"
    __topic__ = SCORES
    unit_id: str
    year: int
    group: str
    total: float
    components: dict[str, float]
    final: bool = False


class ScorecardPublished(_Event):
    __event_type__ = "scorecard.published"
    __topic__ = SCORES
    unit_id: str
    year: int
    total: float
    rank: int
    grade: str
    draft: bool


class ScorecardFinalized(_Event):
    __event_type__ = "scorecard.finalized"
    __topic__ = SCORES
    unit_id: str
    year: int
    total: float
    rank: int
    grade: str
    digest: str


# auth.v1 ------------------------------------------------------------------------------


class TokenIssued(_Event):
    __event_type__ = "token.issued"
    __topic__ = AUTH
    token_id: str
    role: str
    # No subject: it may name a person (a leader, an assessor); the registry keeps it.
    unit_id: str | None = None
    window_id: str | None = None
    expires_at: datetime | None = None


class TokenRevoked(_Event):
    __event_type__ = "token.revoked"
    __topic__ = AUTH
    token_id: str
    revoked_at: datetime


EVENT_MODELS: dict[str, type[_Event]] = {
    m.__event_type__: m
    for m in (
        FeedbackReceived, FeedbackReassigned, FeedbackResponded, FeedbackFollowUp,
        SurveyDefined, SurveyResponse,
        TargetDefined, TargetChanged, TargetProgress, TargetStatusChanged,
        NoticeIssued, NoticeTransitioned, NoticeOverdue,
        ScorecardUpdated, ScorecardPublished, ScorecardFinalized,
        TokenIssued, TokenRevoked,
    )
}
Event = _Event


class UnknownEventType(ValueError):
    pass


def topic_of(data: _Event) -> str:
    return data.__topic__


def type_of(data: _Event) -> str:
    return data.__event_type__


def parse(event_type: str, payload: dict[str, Any]) -> _Event:
    """Validate an event's data against its model (raises for an unknown type or a broken schema)."""
    model = EVENT_MODELS.get(event_type)
    if model is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    return model.model_validate(payload)


# Random hex digits for event ids, drawn for a thousand ids at a time: one read of the system's random
# source instead of one an event (uuid4() cost more than building the rest of a progress event). A
# forked child draws its own.
_RANDOM: list[str] = []
os.register_at_fork(after_in_child=_RANDOM.clear)


def new_event_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562): the millisecond it was made, then 74 random bits.

    Ordered by the millisecond (random within one), a producer's new ids land at the right-hand end
    of every index that holds them (each consumer's processed_events, the outbox's event ids)
    instead of on a random page of it: a year's events make an index of millions of entries that
    does not fit in memory, and random ids then cost a page read (and a full-page write after each
    checkpoint) an insert (decision 0015). Written from hex digits, the version (7) and variant (10xx) bits set as
    RFC 9562 sets them (tests compare with uuid.UUID).
    """
    try:
        r = _RANDOM.pop()
    except IndexError:
        raw = os.urandom(10 * 1024).hex()
        _RANDOM.extend(raw[i:i + 20] for i in range(0, len(raw), 20))
        r = _RANDOM.pop()
    ms = f"{time.time_ns() // 1_000_000:012x}"
    return f"{ms[:8]}-{ms[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"


# The first hex digit of a UUID's clock_seq_hi_and_reserved with the RFC 4122 variant bits (10xx) set.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def ce_time(moment: datetime) -> str:
    """A timestamp as the CloudEvents SDK writes `ce_time`: ISO 8601, UTC as Z."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class Envelope(BaseModel):
    """An event as it travels: CloudEvents attributes plus the typed data."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    id: str = Field(default_factory=new_event_id)
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    topic: str
    key: str
    data: _Event

    @classmethod
    def of(cls, data: _Event, *, source: str, key: str, event_id: str | None = None,
           time: datetime | None = None) -> Envelope:
        return cls(
            id=event_id or new_event_id(), source=source, type=type_of(data),
            time=time or datetime.now(UTC), topic=topic_of(data), key=key, data=data,
        )


class Prepared(NamedTuple):
    """An event for the outbox whose data is JSON text already: what `prepare` builds on hot paths.

    The outbox stores an Envelope as these same columns; building the pydantic event, its envelope
    and its JSON cost about 20 us an event, more than the rest of a progress report's bookkeeping.
    A tuple in the order of the outbox's shared rows (event id, topic, key, type, source, time,
    data), which the outbox writes as it is: a frozen dataclass's constructor alone cost a
    kiosk batch a tenth of a millisecond.
    """

    id: str
    topic: str
    key: str
    type: str
    source: str
    time: str  # as ce_time writes it
    payload: str


def json_text(value: Any) -> str:
    """Compact JSON text by pydantic's own serialiser: what `model_dump_json` writes for the values an
    event holds (str, int, float, bool, None, date, datetime, lists and dicts of them).

    For the events' data and the outbox's shared rows: a fifth of the standard library encoder's
    cost for an event (2 us against 11 on this machine; a kiosk batch is a hundred of them), and the
    same spelling as the models' (floats as pydantic writes them, a float that is not finite as null).
    Other types are written as pydantic writes them untyped (a Decimal as a string, where a model's
    float field would write a number): `prepare`'s callers pass the field's own types, and tests hold
    each to its model. A value it cannot serialise raises ValueError.
    """
    return to_json(value, inf_nan_mode="null", by_alias=False).decode()


@functools.cache
def _defaults(model: type[_Event]) -> dict[str, Any]:
    """The model's fields in order with their defaults (None where required): its JSON's shape. A copy
    updated with a call's values keeps that order. Never changed: a default list is shared."""
    return {name: field.get_default(call_default_factory=True) if not field.is_required() else None
            for name, field in model.model_fields.items()}


def prepare(model: type[_Event], *, source: str, key: str, time: str, event_id: str | None = None,
            **fields: Any) -> Prepared:
    """The event `model(**fields)` would be, serialised as `model_dump_json` would, without the model.

    For values the caller has already checked (a service's own state): nothing is validated here;
    tests hold each caller's output to the model. A float that is not finite (JSON has none) is
    written null, as the model writes it. A name the model has no field for raises TypeError.
    """
    defaults = _defaults(model)
    data = defaults | fields  # the model's order: a key already there keeps its place
    if len(data) != len(defaults):
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(set(fields) - set(defaults)))}")
    try:
        payload = json_text(data)
    except ValueError:  # a value only the model can convert
        payload = model(**fields).model_dump_json()
    return Prepared(event_id or new_event_id(), model.__topic__, key, model.__event_type__, source, time, payload)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event type, by type: what `schemas/events/` holds."""
    return {t: m.model_json_schema() for t, m in sorted(EVENT_MODELS.items())}


def is_negative(level: int | None, has_text: bool) -> bool:
    """notices.md's negative item: a level of 2 or less, or a text complaint with no level.

    Scoring's complaint counts and the notices' detectors both count by this one rule.
    """
    return level <= 2 if level is not None else has_text


def parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
