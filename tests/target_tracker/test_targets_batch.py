"""target-tracker's progress batches (POST /v1/units/{unit_id}/progress:batch) against single reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from yardstick.bus.codec import decode

UNIT = "health-commission"
OTHER = "finance"
PAST = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).year - 1


class Caller:
    def __init__(self, client: httpx.AsyncClient, bearer: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {bearer}"}

    async def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        response = await self.client.request(method, path, headers=self.headers, **kw)
        assert response.status_code == status, response.text
        return response.json()

    async def define(self, code: str, unit_id: str = UNIT, **over: Any) -> str:
        body = {"unit_id": unit_id, "year": PAST, "code": code, "title": f"Indicator {code}",
                "unit_of_measure": "minutes", "direction": "decrease", "baseline": 30, "target": 20, "weight": 1,
                "cadence": "daily", "valid_range": [0, 240], "public_commitment": False, **over}
        return str((await self.call("POST", "/v1/targets", 201, json=body))["id"])

    async def batch(self, reports: list[Any], status: int = 200, unit_id: str = UNIT) -> Any:
        return await self.call("POST", f"/v1/units/{unit_id}/progress:batch", status, json={"reports": reports})


@pytest.fixture
def commission(system: Any, token: Any) -> Caller:
    return Caller(system.targets, token("commission", subject="commission-staff"))


@pytest.fixture
def coordinator(system: Any, token: Any) -> Caller:
    return Caller(system.targets, token("coordinator", unit_id=UNIT, subject="coordinator-a"))


@pytest.fixture
def stranger(system: Any, token: Any) -> Caller:
    return Caller(system.targets, token("coordinator", unit_id=OTHER, subject="coordinator-b"))


def progress_events(system: Any, target_id: str) -> list[Any]:
    return [e for e in (decode(m) for m in system.bus.logs.get("targets.v1", []))
            if e.type in ("target.progress", "target.status_changed") and e.data.target_id == target_id]


def day(n: int) -> str:
    # A past year is judged on Dec 31: the last reports must be recent then, or the target is stale.
    return (date(PAST, 11, 21) + timedelta(days=n)).isoformat()


async def test_batch_scope(commission: Caller, coordinator: Caller, stranger: Caller) -> None:
    mine = await commission.define("mine")
    theirs = await commission.define("theirs", unit_id=OTHER)
    # A coordinator of another unit may not send this unit's batch at all.
    denied = await stranger.batch([{"target_id": mine, "date": day(0), "value": 25}], status=403)
    assert denied["error"]["code"] == "forbidden"
    await coordinator.batch([{"target_id": mine, "date": day(0), "value": 25}], status=404, unit_id="atlantis")
    # Another unit's target inside this unit's batch is rejected alone, and nothing is written for it.
    out = await coordinator.batch([{"target_id": theirs, "date": day(0), "value": 25},
                                   {"target_id": mine, "date": day(0), "value": 25}])
    assert out["accepted"] == 1 and [r["index"] for r in out["reports"]] == [1]
    assert out["rejected"] == [{"index": 0, "error": {"code": "not_found", "message": out["rejected"][0]["error"]
                                                      ["message"]}}]
    assert (await commission.call("GET", f"/v1/targets/{theirs}", 200))["history"] == []
    # The commission may send any unit's batch.
    assert (await commission.batch([{"target_id": theirs, "date": day(1), "value": 24}],
                                   unit_id=OTHER))["accepted"] == 1


async def test_each_item_is_judged_on_its_own(commission: Caller, coordinator: Caller,
                                               city_today: Callable[[], date]) -> None:
    target = await commission.define("wait")
    proposal_body = {"unit_id": UNIT, "year": PAST, "code": "proposed", "title": "Proposed", "unit_of_measure": "%",
                     "direction": "increase", "baseline": 1, "target": 2, "weight": 1}
    proposal = (await coordinator.call("POST", "/v1/targets", 201, json=proposal_body))["id"]
    await coordinator.batch([{"target_id": target, "date": day(0), "value": 26}])
    items: list[Any] = [
        {"target_id": target, "date": (city_today() + timedelta(days=1)).isoformat(), "value": 25},  # 0 future
        {"target_id": target, "date": day(1), "value": 500},  # 1 outside the valid range
        {"target_id": target, "date": day(0), "value": 25},  # 2 a second value without a reason
        {"target_id": target, "date": day(2), "value": 25},  # 3 fine
        {"target_id": target, "date": day(2), "value": 24.5},  # 4 the same date again in this batch: no reason
        {"target_id": proposal, "date": day(2), "value": 1.5},  # 5 not approved
        {"target_id": target, "value": 25},  # 6 no date
        "not an object",  # 7
        {"target_id": target, "date": day(0), "value": 25.5, "reason": "recount"},  # 8 a correction
        {"target_id": target, "date": date(PAST - 1, 6, 1).isoformat(), "value": 25},  # 9 not the target's year
        {"target_id": target, "date": day(3), "value": 24, "extra": 1},  # 10 unknown field
    ]
    out = await coordinator.batch(items)
    codes = {r["index"]: r["error"]["code"] for r in out["rejected"]}
    assert codes == {0: "invalid", 1: "invalid", 2: "conflict", 4: "conflict", 5: "conflict", 6: "invalid",
                     7: "invalid", 9: "invalid", 10: "invalid"}
    messages = {r["index"]: r["error"]["message"] for r in out["rejected"]}
    assert "future" in messages[0] and "valid range" in messages[1] and "reason" in messages[2]
    assert [(r["index"], r["correction"], r["late"]) for r in out["reports"]] == [(3, False, True), (8, True, True)]
    assert out["accepted"] == 2
    state = {t["target_id"]: t for t in out["targets"]}[target]
    assert state["latest"] == {"date": day(2), "value": 25}
    one = await coordinator.call("GET", f"/v1/targets/{target}", 200)
    assert [(h["date"], h["value"], h["corrected"]) for h in one["history"]] == [
        (day(0), 25.5, True), (day(2), 25, False)]
    assert (one["latest"], one["status"], one["projection"]) == (state["latest"], state["status"],
                                                                state["projection"])
    # Too many items, or none, is the request's own error.
    await coordinator.batch([], status=422)
    await coordinator.batch([{"target_id": target, "date": day(0), "value": 1}] * 5001, status=422)


def _sequence() -> list[dict[str, Any]]:
    """40 daily reports falling 0.1 a day with a wobble, and a correction before Holt takes over (report 30)."""
    reports: list[dict[str, Any]] = [{"date": day(d), "value": round(27 - 0.1 * d + (0.3 if d % 3 else -0.2), 2),
                                      **({"note": "counted at the windows"} if d == 4 else {})} for d in range(20)]
    reports.append({"date": day(5), "value": 26.0, "reason": "the first count missed a window"})
    reports += [{"date": day(d), "value": round(27 - 0.1 * d + (0.3 if d % 3 else -0.2), 2)} for d in range(20, 40)]
    return reports


async def test_a_batch_leaves_the_same_trail_and_events_as_single_reports(
        system: Any, commission: Caller, coordinator: Caller, eventually: Any) -> None:
    single = await commission.define("single")
    batched = await commission.define("batched")
    answers = []
    for body in _sequence():
        answers.append(await coordinator.call("POST", f"/v1/targets/{single}/progress", 201, json=body))
    out = await coordinator.batch([{"target_id": batched, **body} for body in _sequence()])
    assert out["accepted"] == 41 and out["rejected"] == []
    assert answers[-1]["projection"]["method"] == "holt"
    assert [(r["date"], r["correction"], r["late"], r["attainment"], r["status"]) for r in out["reports"]] == [
        (a["date"], a["correction"], a["late"], a["attainment"], a["status"]) for a in answers]

    def trail(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(i["action"], i["actor_role"], i["actor"], i["date"], i["value"], i["previous_value"], i["late"],
                 i["reason"], i["note"]) for i in items if i["action"] in ("report", "correction")]

    single_trail = (await coordinator.call("GET", f"/v1/targets/{single}/audit?limit=1000", 200))["items"]
    batch_trail = (await coordinator.call("GET", f"/v1/targets/{batched}/audit?limit=1000", 200))["items"]
    assert len(trail(single_trail)) == 41
    assert trail(batch_trail) == trail(single_trail)

    def payloads(target_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(e.type, e.data.model_dump(mode="json", exclude={"target_id", "code", "title"}))
                for e in progress_events(system, target_id)]

    def progress(events_: list[tuple[str, dict[str, Any]]]) -> int:
        return [t for t, _ in events_].count("target.progress")

    # Every report's event, not 41 events of any kind: a status change may be published before the last report's.
    expected = await eventually(lambda: progress(payloads(single)) >= 41 and payloads(single))
    got = await eventually(lambda: len(payloads(batched)) >= len(expected) and payloads(batched))
    assert progress(expected) == 41
    assert "target.status_changed" in [t for t, _ in expected]
    assert got == expected
    a = await coordinator.call("GET", f"/v1/targets/{single}", 200)
    b = await coordinator.call("GET", f"/v1/targets/{batched}", 200)
    keys = ("latest", "attainment", "status", "projection", "history")
    assert {k: b[k] for k in keys} == {k: a[k] for k in keys}
