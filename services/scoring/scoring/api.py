"""scoring's routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response

from scoring import service
from scoring.schemas import (
    AdjustmentBody,
    AnswerBody,
    AssessmentBody,
    FinalizeBody,
    LeaderEvaluation,
    ObjectionBody,
    ProjectBody,
)
from yardstick.auth import Principal, ensure_unit, require
from yardstick.errors import ApiError
from yardstick.runtime import runtime_of
from yardstick.tables import csv_response, wants_csv

router = APIRouter(prefix="/v1")
COMPONENTS = ("public", "targets", "leaders", "bonus", "adjustments")
READERS = require("commission", "leader", "coordinator")
COMMISSION = require("commission")
# The years the bodies accept too (schemas.py); outside them a date of the year cannot even be built.
Year = Annotated[int, Path(ge=2000, le=2100)]
YEAR_QUERY = Query(default=None, ge=2000, le=2100)
# The audit's cursor is a row id; more digits than an INTEGER holds would be a database error.
CURSOR = Query(default=None, pattern=r"^\d{1,9}$")


RANKING_COLUMNS = ("group", "rank", "unit_id", "total", *COMPONENTS, "grade", "final")


def _csv(rows: list[dict[str, Any]]) -> Response:
    return csv_response(RANKING_COLUMNS, [{**r, **r["components"]} for r in rows])



@router.get("/scorecards", tags=["scorecards"], response_model=None)
async def get_ranking(request: Request, year: int | None = YEAR_QUERY, group: str | None = None,
                      principal: Principal = Depends(READERS)) -> dict[str, Any] | Response:
    runtime = runtime_of(request)
    body = await service.ranking(runtime=runtime, year=year or service.current_year(runtime), group=group)
    return _csv(body["rows"]) if wants_csv(request) else body


@router.get("/scorecards/{unit_id}", tags=["scorecards"])
async def get_scorecard(unit_id: str, request: Request, year: int | None = YEAR_QUERY,
                        principal: Principal = Depends(READERS)) -> dict[str, Any]:
    ensure_unit(principal, unit_id, readers=("leader",))
    runtime = runtime_of(request)
    return await service.scorecard(runtime=runtime, unit_id=unit_id, year=year or service.current_year(runtime))


@router.get("/public/scorecards", tags=["public"], response_model=None)
async def get_public_scorecards(request: Request, year: int | None = YEAR_QUERY) -> dict[str, Any] | Response:
    # No year: the newest published one, as the public pages choose.
    body = await service.public_scorecards(runtime=runtime_of(request), year=year)
    return _csv(body["rows"]) if wants_csv(request) else body


@router.get("/config/{year}", tags=["config"])
async def get_config(year: Year, request: Request, principal: Principal = Depends(READERS)) -> dict[str, Any]:
    return await service.get_config(runtime=runtime_of(request), year=year)


@router.put("/config/{year}", tags=["config"])
async def put_config(year: Year, request: Request, body: Any = Body(...),
                     principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, "the config must be a JSON object")
    return await service.put_config(runtime=runtime_of(request), principal=principal, year=year, body=body)


@router.post("/leader-evaluations", status_code=201, tags=["inputs"])
async def post_leader_evaluation(body: LeaderEvaluation, request: Request,
                                 principal: Principal = Depends(require("leader"))) -> dict[str, Any]:
    return await service.leader_evaluation(runtime=runtime_of(request), principal=principal, unit_id=body.unit_id,
                                           year=body.year, grade=body.grade)


@router.post("/innovation-projects", status_code=201, tags=["inputs"])
async def post_project(body: ProjectBody, request: Request,
                       principal: Principal = Depends(require("coordinator", "commission"))) -> dict[str, Any]:
    return await service.create_project(runtime=runtime_of(request), principal=principal, unit_id=body.unit_id,
                                        year=body.year, title=body.title, summary=body.summary)


@router.post("/innovation-projects/{project_id}/assessments", status_code=201, tags=["inputs"])
async def post_assessment(project_id: str, body: AssessmentBody, request: Request,
                          principal: Principal = Depends(require("assessor"))) -> dict[str, Any]:
    return await service.assess(runtime=runtime_of(request), principal=principal, project_id=project_id,
                                points=body.points)


@router.post("/adjustments", status_code=201, tags=["inputs"])
async def post_adjustment(body: AdjustmentBody, request: Request,
                          principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await service.adjust(runtime=runtime_of(request), principal=principal, unit_id=body.unit_id,
                                year=body.year, points=body.points, reason=body.reason)


@router.get("/audit", tags=["inputs"])
async def get_audit(request: Request, year: int | None = YEAR_QUERY, limit: int = 100, cursor: str | None = CURSOR,
                    principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    if not 1 <= limit <= 1000:
        raise ApiError(422, "limit must be between 1 and 1000")
    after = int(cursor) if cursor else 0
    return await service.audit_trail(runtime=runtime_of(request), year=year, limit=limit, cursor=after)


@router.post("/scorecards/{year}:publish-draft", tags=["closing"])
async def post_publish_draft(year: Year, request: Request,
                             principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await service.publish_draft(runtime=runtime_of(request), principal=principal, year=year)


@router.post("/scorecards/{year}:finalize", tags=["closing"])
async def post_finalize(year: Year, request: Request, body: FinalizeBody | None = None,
                        principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await service.finalize(runtime=runtime_of(request), principal=principal, year=year,
                                  force=bool(body and body.force))


@router.post("/objections", status_code=201, tags=["closing"])
async def post_objection(body: ObjectionBody, request: Request,
                         principal: Principal = Depends(require("coordinator"))) -> dict[str, Any]:
    return await service.file_objection(runtime=runtime_of(request), principal=principal, unit_id=body.unit_id,
                                        year=body.year, text=body.text)


@router.post("/objections/{objection_id}/answer", tags=["closing"])
async def post_answer(objection_id: str, body: AnswerBody, request: Request,
                      principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await service.answer_objection(runtime=runtime_of(request), principal=principal,
                                          objection_id=objection_id, text=body.text, upheld=body.upheld)
