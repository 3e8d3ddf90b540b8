"""notices' routes."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from yardstick.auth import Principal, require
from yardstick.errors import ApiError
from yardstick.runtime import runtime_of

from notices import repository

router = APIRouter(prefix="/v1")


@router.get("/notices", tags=["notices"])
async def list_notices(principal: Principal = Depends(require("commission", "leader", "coordinator"))
                       ) -> dict[str, Any]:
    # Detection and the lifecycle arrive with the notices issue; none are issued yet.
    return {"items": [], "next_cursor": None}


@router.get("/counts/{kind}/{subject_id}", tags=["counts"])
async def rating_counts(kind: Literal["window", "unit"], subject_id: str, request: Request,
                        principal: Principal = Depends(require("commission"))) -> dict[str, Any]:
    """The rating counts the satisfaction detector reads for one window or unit (all days)."""
    runtime = runtime_of(request)
    known = runtime.city.window_ids if kind == "window" else runtime.city.unit_ids
    if subject_id not in known:
        raise ApiError(404, f"{kind} {subject_id!r} is not in the city profile")
    async with runtime.sessions() as session:
        n, satisfied = await repository.rating_totals(session, kind, subject_id)
    return {"kind": kind, "subject_id": subject_id, "n": n, "satisfied": satisfied}
