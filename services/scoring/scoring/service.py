"""scoring's use cases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime

from scoring import repository
from scoring.method import ChannelSums, public_evaluation


def current_year(runtime: ServiceRuntime) -> int:
    return datetime.now(UTC).astimezone(runtime.city.timezone).year


def _pooled(per_unit: dict[str, dict[str, ChannelSums]]) -> dict[str, ChannelSums]:
    pooled: dict[str, ChannelSums] = {}
    for channels in per_unit.values():
        for name, sums in channels.items():
            p = pooled.get(name, ChannelSums())
            pooled[name] = ChannelSums(n=p.n + sums.n, sum_s=p.sum_s + sums.sum_s,
                                       sum_s2=p.sum_s2 + sums.sum_s2, count=p.count + sums.count)
    return pooled


async def scorecard(*, runtime: ServiceRuntime, unit_id: str, year: int) -> dict[str, Any]:
    if unit_id not in runtime.city.unit_ids:
        raise ApiError(404, f"unit {unit_id!r} is not in the city profile")
    async with runtime.sessions() as session:
        per_unit = await repository.channel_sums(session, year)
    public = public_evaluation(per_unit.get(unit_id, {}), _pooled(per_unit))
    unit = runtime.city.unit(unit_id)
    warnings = list(public.warnings)
    warnings.append("targets, leaders' grades and the innovation bonus are not scored yet")
    components = {"public": public.points, "targets": 0.0, "leaders": 0.0, "bonus": 0.0,
                  "adjustments": 0.0}
    return {
        "unit_id": unit_id, "year": year, "group": unit.group, "rank": None, "grade": None,
        "final": False, "total": sum(components.values()), "components": components,
        "public": {"S": public.S, "interval": list(public.interval) if public.interval else None,
                   "channels": public.channels},
        "targets": [], "leaders": {"n": 0, "mean": None}, "bonus": {"projects": []},
        "adjustments": [], "late_after_final": {"ratings": 0}, "warnings": warnings,
    }
