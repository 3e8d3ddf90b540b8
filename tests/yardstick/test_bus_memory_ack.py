"""The in-process bus of the one-process mode (`ack_when_applied`): an event the consumers had not
applied when the process stopped is published again by the next start and applied once (decision 0027)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_outbox import Db, _consumer, _event, _relay, _rows, _tally, metadata
from test_outbox import outbox as outbox_rows

from yardstick import db, events, outbox
from yardstick.bus import Message, Subscription
from yardstick.bus.memory import MemoryBus
from yardstick.tasks import stop_task


def _msg(n: int) -> Message:
    return Message(topic="a", key=b"k", value=f"m{n}".encode(), headers=(("ce_id", f"id-{n}".encode()),))


async def test_a_publish_returns_once_every_group_reading_the_topic_applied_it() -> None:
    bus = MemoryBus(retry_s=0.01, ack_when_applied=True)
    gate = asyncio.Event()
    seen: list[bytes] = []

    async def slow(message: Message) -> None:
        await gate.wait()
        seen.append(message.value)

    async def quick(message: Message) -> None:
        seen.append(message.value)

    bus.subscribe(Subscription(group="slow", topics=["a"], handler=slow))
    bus.subscribe(Subscription(group="quick", topics=["a"], handler=quick))
    bus.subscribe(Subscription(group="elsewhere", topics=["b"], handler=slow))  # never waited for
    await bus.start()
    try:
        publish = asyncio.create_task(bus.publish([_msg(1), _msg(2)]))
        await asyncio.sleep(0.1)
        assert not publish.done() and seen == [b"m1", b"m2"]  # the quick group applied them, the slow one not
        gate.set()
        await asyncio.wait_for(publish, 2)
        assert sorted(seen) == [b"m1", b"m1", b"m2", b"m2"]
    finally:
        await bus.stop()


async def test_an_event_not_applied_before_a_stop_stays_in_the_outbox_and_is_applied_once_after(
        tmp_path: Path, eventually: Any) -> None:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-process.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    database = Db(engine=engine, sessions=db.session_factory(engine))
    try:
        async with database.sessions.begin() as session:
            await outbox.add(session, outbox_rows, [_event(1), _event(2)])
        # First run: the consumer is stuck (its database busy, say) when the process stops.
        gate = asyncio.Event()
        applying = _consumer(database)

        async def stuck(message: Message) -> None:
            await gate.wait()
            await applying(message)

        bus = MemoryBus(retry_s=0.01, ack_when_applied=True)
        bus.subscribe(Subscription(group="test", topics=[events.FEEDBACK], handler=stuck))
        await bus.start()
        relay = _relay(database, bus)
        task = asyncio.create_task(relay.publish_once())
        await eventually(lambda: len(bus.logs[events.FEEDBACK]) == 2)
        # No connection is held while the bus waits: a stop cancelling the wait closes none in its middle
        # (on SQLite that left an aiosqlite close that never ended, and `yardstick run` waited for it).
        assert not task.done() and engine.sync_engine.pool.checkedout() == 0
        await stop_task(task)
        await bus.stop()
        assert len(await _rows(database)) == 1  # both events, one shared row: kept, not deleted
        assert await _tally(database) is None
        # The next start: a new in-memory log, the relay publishes the row again, applied once each.
        bus = MemoryBus(retry_s=0.01, ack_when_applied=True)
        consumer = _consumer(database)
        bus.subscribe(Subscription(group="test", topics=[events.FEEDBACK], handler=consumer))
        await bus.start()
        try:
            relay = _relay(database, bus)
            await relay.publish_once()
            await relay.publish_once()  # nothing left
            assert await _rows(database) == []
            assert await _tally(database) == 2 and consumer.applied == 2
        finally:
            await bus.stop()
    finally:
        await engine.dispose()

