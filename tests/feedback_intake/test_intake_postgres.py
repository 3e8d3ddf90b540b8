"""feedback-intake on real PostgreSQL: what SQLite lets through or never interleaves (NUL in text,
READ COMMITTED between a response and a reassign)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from feedback_intake.models import feedback
from yardstick import db
from yardstick.auth import issue
from yardstick.bus.memory import MemoryBus
from yardstick.city import CityProfile
from yardstick.services import SERVICES

pytestmark = pytest.mark.integration

PG_ADMIN_ENV = "YARDSTICK_TEST_PG_ADMIN_URL"
INTAKE = "feedback-intake"


@pytest.fixture
async def intake(tmp_path: Path, secret: str, city: CityProfile) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The intake app alone, on a fresh PostgreSQL database, with its client."""
    admin = os.environ.get(PG_ADMIN_ENV)
    if admin is None:
        pytest.fail(f"this test needs PostgreSQL: set {PG_ADMIN_ENV} (make test does)", pytrace=False)
    async with db.scratch_database(admin, "yt_intake_pg") as url:
        bus = MemoryBus(retry_s=0.02)
        spec = SERVICES[INTAKE]
        settings = spec.settings(data_dir=tmp_path, bus="memory", auth_secret=secret, database_url=url)
        app = spec.create_app(settings, bus=bus, city=city)
        async with app.router.lifespan_context(app):
            await bus.start()
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                             base_url="http://test") as client:
                    yield app, client
            finally:
                await bus.stop()


def bearer(secret: str, role: str, **scope: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue(secret, role=role, **scope)[0]}"}


async def test_nul_in_stored_text_is_422_not_500(intake: tuple[Any, httpx.AsyncClient], secret: str) -> None:
    app, client = intake
    posted = await client.post("/v1/feedback", json={"channel": "web", "unit_id": "tax", "level": 2,
                                                     "text": "窗口太少\x00排队太久"})
    assert posted.status_code == 422, posted.text
    assert "text: Value error, must not contain the NUL character" in posted.json()["error"]["message"]
    created = await client.post("/v1/feedback", json={"channel": "web", "unit_id": "tax", "level": 2})
    assert created.status_code == 201, created.text
    answer = await client.post(f"/v1/units/tax/feedback/{created.json()['id']}/response",
                               headers=bearer(secret, "coordinator", unit_id="tax"), json={"text": "已处理\x00"})
    assert answer.status_code == 422, answer.text
    commission = bearer(secret, "commission")
    survey = await client.post("/v1/surveys", headers=commission, json={
        "year": 2026, "title": "Household survey", "strata": [{"id": "urban", "population": 10}]})
    rows = [{"respondent_id": "h1", "stratum": "urban", "ratings": {"tax": 5}},
            {"respondent_id": "h2\x00", "stratum": "urban", "ratings": {"tax": 4}},
            {"respondent_id": "h3", "stratum": "urban", "ratings": {"tax": 3}}]
    uploaded = await client.post(f"/v1/surveys/{survey.json()['id']}/responses",
                                 content="\n".join(json.dumps(r) for r in rows),
                                 headers={**commission, "Content-Type": "application/x-ndjson"})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["accepted"] == 2 and [r["row"] for r in uploaded.json()["rejected"]] == [2]
    async with app.state.runtime.transaction() as session:
        count = (await session.execute(select(func.count()).select_from(feedback))).scalar_one()
    assert count == 1


async def _interleaved(app: Any, feedback_id: str, change: dict[str, Any],
                       request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """`request` reads the item, then waits on the row lock of an uncommitted `change`, which then
    commits: READ COMMITTED lets its UPDATE go on against the changed row."""
    engine = app.state.runtime.engine
    async with engine.connect() as other:
        transaction = await other.begin()
        await other.execute(update(feedback).where(feedback.c.id == feedback_id).values(**change))
        pending = asyncio.ensure_future(request())
        async with engine.connect() as watcher:
            # Each poll its own transaction: PostgreSQL reads pg_stat_activity once a transaction, so in one
            # the first poll's answer (taken before the request reached the lock, on a loaded machine)
            # would come back for ever.
            await watcher.execution_options(isolation_level="AUTOCOMMIT")
            # Waiting on a row lock: for the other transaction's id, or a tuple behind it.
            waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')")
            async with asyncio.timeout(30):
                while not (await watcher.execute(waiting)).scalar_one():
                    assert not pending.done(), pending.result().text
                    await asyncio.sleep(0.02)
        await transaction.commit()
    return await pending


async def test_a_response_committed_during_a_reassign_keeps_the_item(intake: tuple[Any, httpx.AsyncClient],
                                                                     secret: str) -> None:
    app, client = intake
    created = (await client.post("/v1/feedback", json={"channel": "web", "unit_id": "tax", "level": 2})).json()
    moved = await _interleaved(
        app, created["id"], {"responded_at": datetime.now(UTC), "response_text": "已处理"},
        lambda: client.post(f"/v1/units/tax/feedback/{created['id']}/reassign", headers=bearer(secret, "commission"),
                            json={"unit_id": "finance", "reason": "wrong unit"}))
    assert moved.status_code == 409, moved.text
    assert moved.json()["error"]["message"] == "a responded item stays with the unit that responded"
    status = (await client.get(f"/v1/feedback/{created['tracking_code']}")).json()
    assert status["unit_id"] == "tax" and status["status"] == "responded"


async def test_a_response_that_loses_to_a_reassign_is_told_the_item_moved(intake: tuple[Any, httpx.AsyncClient],
                                                                          secret: str) -> None:
    app, client = intake
    created = (await client.post("/v1/feedback", json={"channel": "web", "unit_id": "tax", "level": 2})).json()
    answer = await _interleaved(
        app, created["id"], {"unit_id": "finance"},
        lambda: client.post(f"/v1/units/tax/feedback/{created['id']}/response",
                            headers=bearer(secret, "coordinator", unit_id="tax"), json={"text": "已处理"}))
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["message"] == "the feedback was moved to another unit meanwhile; reload it"
    status = (await client.get(f"/v1/feedback/{created['tracking_code']}")).json()
    assert status["unit_id"] == "finance" and status["status"] == "routed"
