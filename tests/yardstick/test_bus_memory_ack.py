"""The in-process bus of the one-process mode (`ack_when_applied`): an event the consumers had not
applied when the process stopped is published again by the next start and applied once (decision 0027)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_outbox import Db, _consumer, _event, _relay, _rows, _tally, metadata
from test_outbox import outbox as outbox_rows

from yardstick import db, events, outbox
from yardstick.bus import Message, Subscription, memory
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
        await eventually(lambda: bus.published(events.FEEDBACK) == 2)
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



async def test_the_log_lets_go_of_what_every_group_applied_and_keeps_offsets_and_order() -> None:
    """A quick start left running must not hold every message it carried: what every group reading a topic
    applied is let go (by the thousand, or all once all is applied), a slow group holds it back, offsets
    stay those of the whole log, a topic no group reads keeps nothing and dead letters stay."""
    bus = MemoryBus(retry_s=0.01, ack_when_applied=True)
    gate = asyncio.Event()
    quick_seen: list[int] = []
    slow_seen: list[int] = []

    async def quick(message: Message) -> None:
        quick_seen.append(message.offset)

    async def slow(message: Message) -> None:
        if message.offset >= 2100:
            await gate.wait()
        slow_seen.append(message.offset)

    bus.subscribe(Subscription(group="quick", topics=["a"], handler=quick))
    bus.subscribe(Subscription(group="slow", topics=["a"], handler=slow))
    await bus.start()
    try:
        await bus.publish([_msg(n) for n in range(1000)])
        assert bus.logs["a"] == [] and bus.published("a") == 1000  # all applied by both: nothing kept
        publish = asyncio.create_task(bus.publish([_msg(n) for n in range(1000, 2500)]))
        await asyncio.sleep(0.2)
        # The slow group is at 2100: let go by the thousand, up to 2000 (when it got there); the rest kept.
        assert not publish.done()
        assert len(bus.logs["a"]) == 500 and bus.logs["a"][0].offset == 2000 and bus.lag("slow") == 400
        gate.set()
        await asyncio.wait_for(publish, 5)
        assert quick_seen == slow_seen == list(range(2500))  # each in order, once
        assert bus.logs["a"] == [] and bus.published("a") == 2500 and bus.lag("slow") == bus.lag("quick") == 0
        await bus.publish([Message(topic="nobody-reads", key=None, value=b"x")] * 3)
        assert bus.logs["nobody-reads"] == [] and bus.published("nobody-reads") == 3
        await bus.publish([Message(topic="a.dlq", key=None, value=b"dead")])
        assert len(bus.logs["a.dlq"]) == 1  # kept for whoever looks into it
    finally:
        await bus.stop()


async def test_a_group_that_subscribes_after_its_topic_was_let_go_reads_what_comes_next() -> None:
    """A review's find: a late group's first read indexed an emptied log and its task died, so every later
    publish to the topic waited for it for ever."""
    bus = MemoryBus(retry_s=0.01, ack_when_applied=True)
    seen: list[int] = []

    async def late(message: Message) -> None:
        seen.append(message.offset)

    await bus.start()
    try:
        await bus.publish([_msg(n) for n in range(3)])  # nobody reads "a" yet: let go at once
        bus.subscribe(Subscription(group="late", topics=["a"], handler=late))
        assert bus.lag("late") == 0
        await asyncio.wait_for(bus.publish([_msg(3)]), 2)
        assert seen == [3] and bus.lag("late") == 0
    finally:
        await bus.stop()


async def test_dead_letters_no_group_reads_keep_the_newest(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A consumer dead-lettering every message must not fill a quick start's memory: each dead letter was
    logged as an error when it came, and of those no group reads the newest DEAD_LETTERS_KEPT stay."""
    monkeypatch.setattr(memory, "DEAD_LETTERS_KEPT", 3)
    monkeypatch.setattr(memory, "TRIM_EVERY", 2)
    bus = MemoryBus(retry_s=0.01, ack_when_applied=True)
    read: list[int] = []

    async def reader(message: Message) -> None:
        read.append(message.offset)

    bus.subscribe(Subscription(group="inspector", topics=["b.dlq"], handler=reader))
    await bus.start()
    try:
        dead = [Message(topic="a.dlq", key=None, value=f"dead {n}".encode()) for n in range(6)]
        await bus.publish(dead[:4])
        assert [m.value for m in bus.logs["a.dlq"]] == [m.value for m in dead[:4]]  # under 3 + 2: all kept
        await bus.publish(dead[4:5])
        assert [m.value for m in bus.logs["a.dlq"]] == [m.value for m in dead[2:5]]  # the newest 3
        assert [m.offset for m in bus.logs["a.dlq"]] == [2, 3, 4] and bus.published("a.dlq") == 5
        assert any(r.getMessage() == "the oldest dead letters let go" and r.count == 2 for r in caplog.records)
        await bus.publish(dead[5:])
        assert [m.offset for m in bus.logs["a.dlq"]] == [2, 3, 4, 5]
        # A dead-letter topic a group reads is let go as any other: once read, not before.
        await bus.publish([Message(topic="b.dlq", key=None, value=b"x")] * 6)
        assert read == list(range(6)) and bus.logs["b.dlq"] == []
    finally:
        await bus.stop()
