"""target-tracker's routes: parse, authorize, call the service, map errors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from target_tracker import service
from target_tracker.schemas import (
    ProgressBatchIn,
    ProgressBatchResult,
    ProgressIn,
    ReasonIn,
    TargetIn,
    TargetPatch,
)
from target_tracker.settings import TargetsSettings
from yardstick.auth import Principal, require
from yardstick.errors import ApiError
from yardstick.responses import JSONBody
from yardstick.runtime import runtime_of
from yardstick.tables import csv_response, wants_csv
from yardstick.text import StoredText

router = APIRouter(prefix="/v1")

COMMISSION = require("commission")
WRITERS = require("commission", "coordinator")
READERS = require("commission", "leader", "coordinator")
LIMIT = Query(default=100, ge=1, le=1000)
YEAR = Query(default=None, ge=2000, le=2100)
# The audit's cursor is a row id; more digits than an INTEGER holds would be a database error.
# Target ids and list cursors are StoredText: PostgreSQL refuses a NUL even in a lookup (a 500).
AUDIT_CURSOR = Query(default=None, pattern=r"^\d{1,9}$")


def settings_of(request: Request) -> TargetsSettings:
    settings: TargetsSettings = request.app.state.settings
    return settings


@router.post("/targets", status_code=201, tags=["targets"])
async def define_target(body: TargetIn, request: Request, principal: Principal = Depends(WRITERS)) -> dict[str, Any]:
    return await service.define(runtime=runtime_of(request), principal=principal, body=body)


@router.post("/targets:import", status_code=201, tags=["targets"])
async def import_targets(request: Request, year: int = Query(ge=2000, le=2100),
                         principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("text/csv"):
        raise ApiError(415, "send the year's targets as text/csv")
    try:
        text = (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "the CSV must be UTF-8") from exc
    return await service.import_year(runtime=runtime_of(request), principal=principal, year=year, text=text)


@router.post("/targets:sweep", tags=["targets"])
async def sweep_now(request: Request, _: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await service.sweep(runtime=runtime_of(request), settings=settings_of(request))


async def _review(request: Request, principal: Principal, target_id: str, decision: str,
                  body: ReasonIn | None) -> dict[str, Any]:
    return await service.review(runtime=runtime_of(request), principal=principal, target_id=target_id,
                                decision=decision, reason=body.reason if body else None)


@router.post("/targets/{target_id}:approve", tags=["targets"])
async def approve(target_id: StoredText, request: Request, body: ReasonIn | None = None,
                  principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await _review(request, principal, target_id, "approve", body)


@router.post("/targets/{target_id}:reject", tags=["targets"])
async def reject(target_id: StoredText, request: Request, body: ReasonIn | None = None,
                 principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await _review(request, principal, target_id, "reject", body)


@router.post("/targets/{target_id}:withdraw", tags=["targets"])
async def withdraw(target_id: StoredText, request: Request, body: ReasonIn | None = None,
                   principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await _review(request, principal, target_id, "withdraw", body)


@router.patch("/targets/{target_id}", tags=["targets"])
async def change_target(target_id: StoredText, body: TargetPatch, request: Request,
                        principal: Principal = Depends(COMMISSION)) -> dict[str, Any]:
    return await service.change(runtime=runtime_of(request), settings=settings_of(request), principal=principal,
                                target_id=target_id, body=body)


@router.post("/targets/{target_id}/progress", status_code=201, tags=["progress"])
async def report_progress(target_id: StoredText, body: ProgressIn, request: Request,
                          principal: Principal = Depends(WRITERS)) -> dict[str, Any]:
    outcome = await service.report(runtime=runtime_of(request), settings=settings_of(request),
                                   principal=principal, target_id=target_id, body=body)
    projection = outcome.projection
    return {"target_id": outcome.target_id, "date": outcome.date, "value": outcome.value,
            "correction": outcome.correction, "late": outcome.late, "attainment": outcome.attainment,
            "status": outcome.status,
            "projection": {"value": projection.value, "low": projection.low, "high": projection.high,
                           "method": projection.method}}


@router.post("/units/{unit_id}/progress:batch", response_model=ProgressBatchResult, tags=["progress"])
async def report_progress_batch(unit_id: str, body: ProgressBatchIn, request: Request,
                                principal: Principal = Depends(WRITERS)) -> dict[str, Any]:
    """A unit's reports at once (coordinators' tools, imports): not in api.md, an addition to it.

    Each item is judged as on `POST /v1/targets/{id}/progress` and accepted or rejected on its own
    (`rejected`: its index and the error the single route would answer); one transaction.
    """
    return await service.report_batch(runtime=runtime_of(request), settings=settings_of(request),
                                      principal=principal, unit_id=unit_id, items=body.reports)


# The reads answer with JSONBody (yardstick.responses): encoded in one pass, not walked by FastAPI first.
@router.get("/targets/{target_id}", tags=["targets"], response_class=JSONBody, response_model=None)
async def get_target(target_id: StoredText, request: Request, principal: Principal = Depends(READERS)) -> JSONBody:
    return JSONBody(await service.get(runtime=runtime_of(request), settings=settings_of(request),
                                      principal=principal, target_id=target_id))


@router.get("/targets/{target_id}/audit", tags=["targets"], response_class=JSONBody, response_model=None)
async def get_audit(target_id: StoredText, request: Request, limit: int = LIMIT, cursor: str | None = AUDIT_CURSOR,
                    principal: Principal = Depends(READERS)) -> JSONBody:
    return JSONBody(await service.audit_list(runtime=runtime_of(request), principal=principal,
                                             target_id=target_id, cursor=cursor, limit=limit))


@router.get("/units/{unit_id}/targets", tags=["targets"], response_class=JSONBody, response_model=None)
async def unit_targets(unit_id: str, request: Request, year: int | None = YEAR, limit: int = LIMIT,
                       cursor: StoredText | None = None, principal: Principal = Depends(READERS)) -> JSONBody:
    return JSONBody(await service.unit_list(runtime=runtime_of(request), settings=settings_of(request),
                                            principal=principal, unit_id=unit_id, year=year, cursor=cursor,
                                            limit=limit))


PUBLIC_CSV = ("id", "unit_id", "year", "code", "title", "unit_of_measure", "direction", "kind", "baseline",
              "target", "due", "latest_date", "latest_value", "attainment", "status", "projection_value")


@router.get("/public/targets", tags=["public"], response_class=JSONBody, response_model=None)
async def public_targets(request: Request, year: int | None = YEAR, limit: int = LIMIT,
                         cursor: StoredText | None = None) -> Response:
    page = await service.public_list(runtime=runtime_of(request), settings=settings_of(request), year=year,
                                     cursor=cursor, limit=limit)
    if not wants_csv(request):
        return JSONBody(page)
    flat = [{**item, "latest_date": (item["latest"] or {}).get("date"),
             "latest_value": (item["latest"] or {}).get("value"), "projection_value": item["projection"]["value"]}
            for item in page["items"]]
    return csv_response(PUBLIC_CSV, flat, next_cursor=page["next_cursor"])
