"""scoring's routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from yardstick.auth import Principal, ensure_unit, require
from yardstick.runtime import runtime_of

from scoring import service

router = APIRouter(prefix="/v1")


@router.get("/scorecards/{unit_id}", tags=["scorecards"])
async def get_scorecard(unit_id: str, request: Request, year: int | None = None,
                        principal: Principal = Depends(require("commission", "leader", "coordinator"))
                        ) -> dict[str, Any]:
    ensure_unit(principal, unit_id, readers=("leader",))
    runtime = runtime_of(request)
    return await service.scorecard(runtime=runtime, unit_id=unit_id, year=year or service.current_year(runtime))
