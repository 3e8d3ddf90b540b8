"""feedback-intake's routes: parse, authorize, call the service, map errors."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from yardstick.auth import Principal, require
from yardstick.runtime import runtime_of

from feedback_intake import service
from feedback_intake.schemas import RatingBatch, RatingResult
from feedback_intake.settings import IntakeSettings

router = APIRouter(prefix="/v1")


@router.post("/ratings", status_code=202, response_model=RatingResult, tags=["ratings"])
async def post_ratings(body: RatingBatch, request: Request,
                       principal: Principal = Depends(require("kiosk"))) -> RatingResult:
    runtime = runtime_of(request)
    settings: IntakeSettings = request.app.state.settings
    outcome = await service.post_ratings(runtime=runtime, settings=settings, principal=principal,
                                         items=body.ratings)
    return RatingResult.model_validate(outcome.__dict__)
