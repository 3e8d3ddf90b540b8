"""target-tracker on a real PostgreSQL (in process, MemoryBus): what SQLite lets through and PostgreSQL
refuses (NUL in text, a lookup included) is a 422 naming the field, not a 500."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from yardstick.bus.codec import decode

pytestmark = pytest.mark.integration

UNIT = "health-commission"
PAST = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).year - 1


def numeric(**over: Any) -> dict[str, Any]:
    return {"unit_id": UNIT, "year": PAST, "code": "wait-minutes", "title": "Average wait", "unit_of_measure": "min",
            "direction": "decrease", "baseline": 30, "target": 20, "weight": 1, "public_commitment": True, **over}


@pytest.fixture
async def tracker(tmp_path: Path, secret: str, city: Any, token: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The app on a fresh PostgreSQL database (migrated at start), with the commission's token."""
    from target_tracker.app import create_app
    from target_tracker.settings import TargetsSettings
    from yardstick import db
    from yardstick.bus.memory import MemoryBus

    admin = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL")
    if not admin:
        pytest.fail("this test needs PostgreSQL: source the environment (YARDSTICK_TEST_PG_ADMIN_URL)", pytrace=False)
    async with db.scratch_database(admin, "tt_pg") as url:
        settings = TargetsSettings(data_dir=tmp_path, database_url=url, bus="memory", auth_secret=secret)
        bus = MemoryBus(retry_s=0.02)
        app = create_app(settings, bus=bus, city=city)
        async with app.router.lifespan_context(app):
            await bus.start()
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                             base_url="http://test",
                                             headers={"Authorization": "Bearer " + token("commission",
                                                                                         subject="staff")}) as client:
                    yield app, client
            finally:
                await bus.stop()
            await app.state.runtime.engine.dispose()


def refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"], response.text


async def test_nul_in_text_is_a_422_on_postgresql(tracker: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = tracker
    refused(await client.post("/v1/targets", json=numeric(title="wait\x00ing")), "title")
    refused(await client.post("/v1/targets", json=numeric(code="a\x00")), "code")
    target = (await client.post("/v1/targets", json=numeric())).json()
    on = date(PAST, 3, 1).isoformat()
    refused(await client.post(f"/v1/targets/{target['id']}/progress",
                              json={"date": on, "value": 25, "note": "a\x00b"}), "note")
    refused(await client.patch(f"/v1/targets/{target['id']}", json={"unit_of_measure": "\x00"}), "unit_of_measure")
    refused(await client.post(f"/v1/targets/{target['id']}:withdraw", json={"reason": "\x00"}), "reason")
    refused(await client.get("/v1/targets/a%00b"), "target_id")
    refused(await client.get(f"/v1/targets/{target['id']}%00/audit"), "target_id")
    refused(await client.get("/v1/public/targets?cursor=%00"), "cursor")
    batch = await client.post(f"/v1/units/{UNIT}/progress:batch", json={"reports": [
        {"target_id": target["id"], "date": on, "value": 25, "evidence_url": "\x00"},
        {"target_id": "a\x00", "date": on, "value": 25}]})
    assert batch.status_code == 200, batch.text
    assert [(r["index"], r["error"]["code"]) for r in batch.json()["rejected"]] == [(0, "invalid"), (1, "invalid")]
    csv = f"unit_id,code,title,unit_of_measure,direction,baseline,target,weight\n{UNIT},c1,t\x00,min,decrease,30,20,1\n"
    imported = await client.post(f"/v1/targets:import?year={PAST}", content=csv, headers={"Content-Type": "text/csv"})
    assert imported.status_code == 422, imported.text
    assert imported.json()["error"]["details"][0]["row"] == 2
    # The code taken is still the one conflict (a unique violation, SQLSTATE 23505).
    again = await client.post("/v1/targets", json=numeric())
    assert again.status_code == 409, again.text
    assert (await client.get(f"/v1/targets/{target['id']}")).json()["history"] == []


async def test_a_never_reported_target_is_marked_no_data_once_on_postgresql(
        tracker: tuple[Any, httpx.AsyncClient], eventually: Any) -> None:
    """No status stored until one is announced (NULL): the sweep's guarded write must still match it."""
    from target_tracker import service

    app, client = tracker
    year = PAST + 2
    target = (await client.post("/v1/targets", json=numeric(year=year))).json()
    runtime, settings = app.state.runtime, app.state.settings

    async def sweep(on: date) -> int:
        now = datetime(on.year, on.month, on.day, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
        return int((await service.sweep(runtime=runtime, settings=settings, now=now))["changed"])

    assert [await sweep(date(year, 1, d)) for d in (11, 12, 13)] == [0, 1, 0]
    marked = await eventually(lambda: [e for m in app.state.runtime.bus.logs.get("targets.v1", [])
                                       if (e := decode(m)).type == "target.status_changed"])
    assert [(e.data.target_id, e.data.previous, e.data.status) for e in marked] == [(target["id"], None, "no_data")]
