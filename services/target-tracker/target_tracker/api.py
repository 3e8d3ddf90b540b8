"""target-tracker's routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from yardstick.auth import Principal, ensure_unit, require
from yardstick.runtime import runtime_of

from target_tracker import service
from target_tracker.schemas import TargetIn

router = APIRouter(prefix="/v1")


@router.post("/targets", status_code=201, tags=["targets"])
async def define_target(body: TargetIn, request: Request,
                        principal: Principal = Depends(require("commission", "coordinator"))) -> dict[str, Any]:
    return await service.define(runtime=runtime_of(request), principal=principal, body=body)


@router.get("/targets/{target_id}", tags=["targets"])
async def get_target(target_id: str, request: Request,
                     principal: Principal = Depends(require("commission", "leader", "coordinator"))
                     ) -> dict[str, Any]:
    target = await service.get(runtime=runtime_of(request), target_id=target_id)
    ensure_unit(principal, target["unit_id"], readers=("leader",))
    return target
