"""feedback-intake's routes: parse, authorize, call the service, map errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from feedback_intake import service
from feedback_intake.limits import RateLimiter
from feedback_intake.schemas import (
    ContactOut,
    FeedbackIn,
    FeedbackPage,
    FeedbackReceipt,
    FeedbackStatus,
    FollowUpIn,
    RatingBatch,
    RatingResult,
    ReassignIn,
    ResponseIn,
    SocialItem,
    SurveyCreated,
    SurveyIn,
    SurveyOut,
    SurveyUploadResult,
    UnitFeedback,
)
from feedback_intake.service import Intake, NewFeedback
from feedback_intake.settings import IntakeSettings
from yardstick.auth import Principal, optional_principal, require
from yardstick.db import as_utc
from yardstick.errors import ApiError
from yardstick.runtime import runtime_of

router = APIRouter(prefix="/v1")

StatusFilter = Literal["received", "routed", "in_rectification", "responded"]


def intake_of(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


def rate_limit(request: Request, principal: Principal | None) -> None:
    """429 with Retry-After when the caller's bucket is empty.

    Authenticated callers are limited per token. Anonymous ones always draw on their address's
    bucket, a larger one since a carrier's NAT puts many phones behind one address; an install
    id, when the app sends one, adds a finer bucket inside it (a fresh id per request must not
    buy a fresh burst).
    """
    limiter: RateLimiter = request.app.state.limiter
    settings: IntakeSettings = request.app.state.settings
    if principal is not None:
        wait = limiter.take(f"token:{principal.token_id}")
    else:
        address = request.client.host if request.client else "unknown"
        wait = limiter.take(f"address:{address}", scale=settings.address_rate_scale)
        if wait == 0 and (install := request.headers.get("x-install-id", "").strip()[:100]):
            wait = limiter.take(f"install:{install}")
    if wait > 0:
        raise ApiError(429, "too many requests; slow down", headers={"Retry-After": str(max(1, math.ceil(wait)))})


@router.post("/ratings", status_code=202, response_model=RatingResult, tags=["ratings"])
async def post_ratings(body: RatingBatch, request: Request,
                       principal: Principal = Depends(require("kiosk"))) -> RatingResult:
    runtime = runtime_of(request)
    settings: IntakeSettings = request.app.state.settings
    outcome = await service.post_ratings(runtime=runtime, settings=settings, principal=principal,
                                         items=body.ratings)
    return RatingResult.model_validate(outcome.__dict__)


@router.post("/feedback", status_code=201, response_model=FeedbackReceipt, tags=["feedback"],
             responses={200: {"model": FeedbackReceipt, "description": "a retry of a stored item (same client_id)"}})
async def post_feedback(body: FeedbackIn, request: Request, response: Response,
                        principal: Principal | None = Depends(optional_principal)) -> FeedbackReceipt:
    if body.channel in service.STAFF_CHANNELS:
        if principal is None:
            raise ApiError(401, f"channel {body.channel} needs a staff token", headers={"WWW-Authenticate": "Bearer"})
        if principal.role != "staff":
            raise ApiError(403, f"channel {body.channel} is for staff tokens")
    rate_limit(request, principal)
    contact = body.contact.model_dump(exclude_none=True) if body.contact else {}
    outcome, created = await service.create_feedback(intake_of(request), NewFeedback(
        channel=body.channel, level=body.level, text=body.text, unit_id=body.unit_id, window_id=body.window_id,
        category_id=body.category_id, district_id=body.district_id, contact=contact,
        submitted_at=body.submitted_at, client_id=body.client_id))
    if not created:
        response.status_code = 200
    return FeedbackReceipt.model_validate(outcome)


def _status(row: Any) -> FeedbackStatus:
    response = ({"text": row.response_text, "responded_at": as_utc(row.responded_at)}
                if row.responded_at is not None else None)
    return FeedbackStatus(tracking_code=row.tracking_code, status=service.status_of(row), unit_id=row.unit_id,
                          category_id=row.category_id, submitted_at=as_utc(row.submitted_at), due=row.due,
                          notice={"id": row.notice_id} if row.notice_id else None, response=response,
                          follow_up_level=row.follow_up_level)


@router.get("/feedback/{tracking_code}", response_model=FeedbackStatus, tags=["feedback"])
async def get_feedback(tracking_code: str, request: Request,
                       principal: Principal | None = Depends(optional_principal)) -> FeedbackStatus:
    rate_limit(request, principal)
    return _status(await service.by_tracking_code(intake_of(request), tracking_code))


@router.post("/feedback/{tracking_code}/follow-up", response_model=FeedbackStatus, tags=["feedback"])
async def post_follow_up(tracking_code: str, body: FollowUpIn, request: Request,
                         principal: Principal | None = Depends(optional_principal)) -> FeedbackStatus:
    rate_limit(request, principal)
    return _status(await service.follow_up(intake_of(request), tracking_code, body.level))


def _unit_item(intake: Intake, row: Any) -> UnitFeedback:
    now = datetime.now(UTC)
    return UnitFeedback(
        id=row.id, tracking_code=row.tracking_code, channel=row.channel, unit_id=row.unit_id,
        category_id=row.category_id, classified_by=row.classified_by, confidence=row.confidence, level=row.level,
        text=row.text, window_id=row.window_id, district_id=row.district_id, has_contact=row.contact is not None,
        status=service.status_of(row), submitted_at=as_utc(row.submitted_at), due=row.due,
        overdue=service.is_overdue(intake, row, now), notice_id=row.notice_id, response_text=row.response_text,
        responded_at=as_utc(row.responded_at) if row.responded_at else None,
        follow_up_level=row.follow_up_level)


async def _page(request: Request, principal: Principal, unit_id: str | None, status: StatusFilter | None,
                category_id: str | None, overdue: bool | None, cursor: str | None, limit: int) -> FeedbackPage:
    intake = intake_of(request)
    rows, next_cursor = await service.list_for_unit(intake, principal, unit_id, status=status,
                                                    category_id=category_id, overdue=overdue, cursor=cursor,
                                                    limit=limit)
    return FeedbackPage(items=[_unit_item(intake, r) for r in rows], next_cursor=next_cursor)


@router.get("/units/{unit_id}/feedback", response_model=FeedbackPage, tags=["unit feedback"])
async def list_unit_feedback(unit_id: str, request: Request, status: StatusFilter | None = None,
                             category_id: str | None = None, overdue: bool | None = None,
                             cursor: str | None = None, limit: int = Query(100, ge=1, le=1000),
                             principal: Principal = Depends(require("coordinator", "commission"))) -> FeedbackPage:
    return await _page(request, principal, unit_id, status, category_id, overdue, cursor, limit)


@router.post("/units/{unit_id}/feedback/{feedback_id}/response", response_model=UnitFeedback,
             tags=["unit feedback"])
async def post_response(unit_id: str, feedback_id: str, body: ResponseIn, request: Request,
                        principal: Principal = Depends(require("coordinator"))) -> UnitFeedback:
    intake = intake_of(request)
    return _unit_item(intake, await service.respond(intake, principal, unit_id, feedback_id, body.text))


@router.post("/units/{unit_id}/feedback/{feedback_id}/reassign", response_model=UnitFeedback,
             tags=["unit feedback"])
async def post_reassign(unit_id: str, feedback_id: str, body: ReassignIn, request: Request,
                        principal: Principal = Depends(require("coordinator", "commission"))) -> UnitFeedback:
    intake = intake_of(request)
    return _unit_item(intake, await service.reassign(intake, principal, unit_id, feedback_id, body.unit_id,
                                                     body.reason))


@router.get("/units/{unit_id}/feedback/{feedback_id}/contact", response_model=ContactOut, tags=["unit feedback"])
async def get_contact(unit_id: str, feedback_id: str, request: Request,
                      principal: Principal = Depends(require("coordinator"))) -> ContactOut:
    return ContactOut.model_validate(await service.read_contact(intake_of(request), principal, unit_id, feedback_id))


@router.get("/units/{unit_id}/feedback/{feedback_id}/audit", tags=["unit feedback"])
async def get_audit(unit_id: str, feedback_id: str, request: Request,
                    principal: Principal = Depends(require("coordinator", "commission"))) -> dict[str, Any]:
    return {"items": await service.audit_trail(intake_of(request), principal, unit_id, feedback_id)}


@router.get("/queue/feedback", response_model=FeedbackPage, tags=["unit feedback"])
async def list_queue(request: Request, category_id: str | None = None, cursor: str | None = None,
                     limit: int = Query(100, ge=1, le=1000),
                     principal: Principal = Depends(require("commission"))) -> FeedbackPage:
    """Feedback no unit holds yet (uncategorised, no unit named): the commission routes it."""
    return await _page(request, principal, None, None, category_id, None, cursor, limit)


@router.post("/queue/feedback/{feedback_id}/route", response_model=UnitFeedback, tags=["unit feedback"])
async def post_route(feedback_id: str, body: ReassignIn, request: Request,
                     principal: Principal = Depends(require("commission"))) -> UnitFeedback:
    intake = intake_of(request)
    return _unit_item(intake, await service.reassign(intake, principal, None, feedback_id, body.unit_id, body.reason))


@router.post("/social/items", status_code=201, response_model=FeedbackReceipt, tags=["social"],
             responses={200: {"model": FeedbackReceipt, "description": "a post stored before"}})
async def post_social(request: Request, response: Response) -> FeedbackReceipt:
    """Authenticated by `X-Signature: sha256=<hex HMAC-SHA256 of the body>` with the platform's secret."""
    intake = intake_of(request)
    raw = service.verify_social(intake.settings, await request.body(), request.headers.get("x-signature"))
    try:
        item = SocialItem.model_validate(raw)
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in e["loc"]], "message": e["msg"], "type": e["type"]}
                   for e in exc.errors(include_url=False)]
        raise ApiError(422, "invalid social item: " + "; ".join(
            f"{'.'.join(d['loc'])}: {d['message']}" for d in details[:5]), details=details) from None
    # The author hash is the bridge's pseudonym for a person: not kept, so nothing links posts to people.
    outcome, created = await service.create_feedback(intake, NewFeedback(
        channel="social", text=item.text, submitted_at=item.posted_at, platform=item.platform,
        post_id=item.post_id, url=item.url))
    if not created:
        response.status_code = 200
    return FeedbackReceipt.model_validate(outcome)


@router.post("/surveys", status_code=201, response_model=SurveyCreated, tags=["survey"])
async def post_survey(body: SurveyIn, request: Request,
                      principal: Principal = Depends(require("commission"))) -> SurveyCreated:
    survey_id = await service.define_survey(intake_of(request), year=body.year, title=body.title,
                                            strata=[s.model_dump() for s in body.strata])
    return SurveyCreated(id=survey_id)


@router.post("/surveys/{survey_id}/responses", response_model=SurveyUploadResult, tags=["survey"],
             openapi_extra={"requestBody": {"content": {
                 "application/x-ndjson": {"schema": {"type": "string"}},
                 "text/csv": {"schema": {"type": "string"}}}}})
async def post_survey_responses(survey_id: str, request: Request,
                                principal: Principal = Depends(require("commission"))) -> SurveyUploadResult:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in {"application/x-ndjson", "application/jsonl", "text/csv"}:
        raise ApiError(415, "send JSON lines (application/x-ndjson) or CSV (text/csv)")
    outcome = await service.upload_survey(intake_of(request), survey_id, request.stream(),
                                          csv_format=media == "text/csv")
    return SurveyUploadResult.model_validate(outcome.__dict__)


@router.get("/surveys/{survey_id}", response_model=SurveyOut, tags=["survey"])
async def get_survey(survey_id: str, request: Request,
                     principal: Principal = Depends(require("commission", "leader"))) -> SurveyOut:
    return SurveyOut.model_validate(await service.get_survey(intake_of(request), survey_id))
