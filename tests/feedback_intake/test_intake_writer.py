"""Feedback posts that arrive together are stored in one transaction (service.FeedbackWriter), each
still answered on its own: a retry inside the same transaction, a bad row beside good ones."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from feedback_intake.models import feedback
from feedback_intake.service import new_tracking_code

INTAKE = "feedback-intake"


async def stored(system: Any, event_type: str = "feedback.received") -> tuple[int, list[str]]:
    runtime = system.runtime(INTAKE)
    async with runtime.transaction() as session:
        count = (await session.execute(select(func.count()).select_from(feedback))).scalar_one()
    return int(count), [e["feedback_id"] for e in await system.emitted(INTAKE, event_type)]


def row(**change: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": str(uuid.uuid4()), "tracking_code": new_tracking_code(), "client_id": str(uuid.uuid4()),
            "channel": "web", "unit_id": "chunan-county", "category_id": "bus", "classified_by": "caller",
            "confidence": None, "level": 2, "text": "候车室太冷", "window_id": None, "district_id": None,
            "contact": None, "submitted_at": now, "year": now.year, "due": now.date(), "platform": None,
            "post_id": None, "url": None} | change


async def test_a_burst_for_one_unit_is_stored_once_each_with_one_event_each(system: Any) -> None:
    shared = str(uuid.uuid4())
    bodies = [{"channel": "web", "text": f"公交车总是不准点 {i}", "level": 2, "unit_id": "chunan-county",
               "client_id": str(uuid.uuid4())} for i in range(30)]
    retried = {"channel": "web", "text": "公交车总是不准点", "level": 2, "unit_id": "chunan-county",
               "client_id": shared}
    answers = await asyncio.gather(*(system.intake.post("/v1/feedback", json=b) for b in [*bodies, *[retried] * 5]))
    assert [a.status_code for a in answers[:30]] == [201] * 30, [a.text for a in answers if a.status_code >= 300]
    # The five copies of one client id: stored once (201), the others told it was stored before (200).
    assert sorted(a.status_code for a in answers[30:]) == [200, 200, 200, 200, 201]
    assert len({a.json()["tracking_code"] for a in answers[30:]}) == 1
    count, announced = await stored(system)
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 31 and count == 31
    assert sorted(announced) == sorted(ids)  # one event per stored item, none for a retry


async def test_rows_arriving_together_share_a_transaction_and_a_bad_row_fails_alone(system: Any) -> None:
    writer = system.apps[INTAKE].state.intake.writer
    taken = row()
    assert await writer.insert(taken) is True
    good = [row() for _ in range(3)]
    bad = row(channel=None)  # NOT NULL: the database refuses it
    again = row(client_id=taken["client_id"])  # a unique key already taken
    results = await asyncio.gather(*(writer.insert(r) for r in [good[0], bad, good[1], again, good[2]]),
                                   return_exceptions=True)
    assert results[0] is True and results[2] is True and results[4] is True
    assert results[3] is False
    assert isinstance(results[1], Exception)
    count, announced = await stored(system)
    assert count == 4
    assert sorted(announced) == sorted(r["id"] for r in [taken, *good])


@pytest.mark.parametrize("n", [1, 7])
async def test_a_cancelled_request_leaves_the_others_answered(system: Any, n: int) -> None:
    writer = system.apps[INTAKE].state.intake.writer
    rows = [row() for _ in range(n + 1)]
    tasks = [asyncio.ensure_future(writer.insert(r)) for r in rows]
    await asyncio.sleep(0)
    tasks[0].cancel()  # its client went away while the transaction was in flight
    done = await asyncio.gather(*tasks[1:])
    assert done == [True] * n
    assert tasks[0].cancelled()


async def test_with_the_database_unreachable_the_whole_group_fails_on_one_attempt() -> None:
    """A transient failure is every post's answer at once (503), not a retry row by row."""
    from sqlalchemy import event

    from feedback_intake.models import metadata
    from feedback_intake.service import FeedbackWriter
    from feedback_intake.settings import IntakeSettings
    from yardstick.bus.memory import MemoryBus
    from yardstick.consumer import is_transient
    from yardstick.runtime import ServiceRuntime

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    settings = IntakeSettings(database_url=f"postgresql+asyncpg://u:p@127.0.0.1:{port}/nothing", auth_secret="s" * 40)
    runtime = ServiceRuntime(settings, metadata, migrations="unused", bus=MemoryBus())
    attempts = []
    event.listen(runtime.engine.sync_engine, "do_connect", lambda *args: attempts.append(1))
    try:
        writer = FeedbackWriter(runtime)
        results = await asyncio.gather(*(writer.insert(row()) for _ in range(6)), return_exceptions=True)
    finally:
        await runtime.engine.dispose()
    assert all(isinstance(r, Exception) and is_transient(r) for r in results), results
    assert len(attempts) == 1


async def test_stopping_the_service_lets_the_transaction_in_flight_finish(system: Any) -> None:
    """Stopping waits for the write queue while the database is still there (a flusher cancelled
    after the engine was disposed could wait for ever on a connection that was gone)."""
    writer = system.apps[INTAKE].state.intake.writer
    rows = [row() for _ in range(5)]
    tasks = [asyncio.ensure_future(writer.insert(r)) for r in rows]
    await asyncio.sleep(0)  # the flusher has started its transaction
    await asyncio.wait_for(writer.stop(), 10)
    assert all(t.done() for t in tasks)
    assert [t.result() for t in tasks] == [True] * 5
    count, announced = await stored(system)
    assert count == 5 and sorted(announced) == sorted(r["id"] for r in rows)
