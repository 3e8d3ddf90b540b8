"""target-tracker's use cases."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from yardstick import events
from yardstick.auth import Principal
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime

from target_tracker.models import targets
from target_tracker.schemas import TargetIn


def target_problems(body: TargetIn) -> list[str]:
    """The method's validity rules (scoring-method.md): every problem, not just the first."""
    problems = []
    if body.kind == "milestone":
        if (body.baseline, body.target) != (0, 1):
            problems.append("a milestone goes from baseline 0 (not done) to target 1 (done)")
    elif body.target == body.baseline:
        problems.append("target equals baseline: attainment would be undefined")
    elif (body.target > body.baseline) != (body.direction == "increase"):
        problems.append(f"direction {body.direction} disagrees with target - baseline = "
                        f"{body.target - body.baseline:g}")
    if body.valid_range is not None and body.valid_range[0] >= body.valid_range[1]:
        problems.append("valid_range must be [min, max] with min < max")
    return problems


async def define(*, runtime: ServiceRuntime, principal: Principal, body: TargetIn) -> dict[str, Any]:
    if body.unit_id not in runtime.city.unit_ids:
        raise ApiError(422, f"unit {body.unit_id!r} is not in the city profile")
    if not principal.covers_unit(body.unit_id):
        raise ApiError(403, f"this token does not cover unit {body.unit_id}")
    problems = target_problems(body)
    if problems:
        raise ApiError(422, "; ".join(problems), details=problems)
    row = body.model_dump()
    row["valid_range"] = list(body.valid_range) if body.valid_range else None
    row.update(id=uuid.uuid4().hex, approved=principal.is_commission(),
               created_by=principal.subject or principal.token_id)
    try:
        async with runtime.transaction() as session:
            await session.execute(targets.insert().values(**row))
            if row["approved"]:
                await runtime.emit(session, [_defined(runtime, row)])
    except IntegrityError as exc:
        raise ApiError(409, f"unit {body.unit_id} already has a target {body.code!r} in {body.year}") from exc
    return await get(runtime=runtime, target_id=row["id"])


def _defined(runtime: ServiceRuntime, row: dict[str, Any]) -> events.Envelope:
    data = events.TargetDefined(
        target_id=row["id"], unit_id=row["unit_id"], year=row["year"], code=row["code"],
        title=row["title"], kind=row["kind"], direction=row["direction"], baseline=row["baseline"],
        target=row["target"], weight=row["weight"], cadence=row["cadence"], due=row["due"],
        approved=row["approved"], public_commitment=row["public_commitment"])
    return events.Envelope.of(data, source=runtime.service, key=row["unit_id"])


async def get(*, runtime: ServiceRuntime, target_id: str) -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = (await session.execute(select(targets).where(targets.c.id == target_id))).mappings().first()
    if row is None:
        raise ApiError(404, f"no target {target_id}")
    out = {k: row[k] for k in ("id", "unit_id", "year", "code", "title", "direction", "kind", "baseline",
                               "target", "weight", "approved", "cadence", "public_commitment")}
    out.update(latest=None, attainment=0.0, status="no_data",
               projection={"value": None, "low": None, "high": None}, history=[])
    return out
