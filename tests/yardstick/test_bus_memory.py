"""Tests of the in-process bus: order, consumer groups, dead letters and transient retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from yardstick.bus import DeadLetter, Message, Subscription
from yardstick.bus.memory import MemoryBus


def _msg(topic: str, n: int, key: bytes = b"k") -> Message:
    return Message(topic=topic, key=key, value=f"m{n}".encode(), headers=(("ce_id", f"id-{n}".encode()),))


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus(retry_s=0.01)
    try:
        yield bus
    finally:
        await bus.stop()


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def __call__(self, message: Message) -> None:
        self.seen.append((message.topic, message.value))


async def test_messages_arrive_in_publish_order_per_topic(bus: MemoryBus, eventually: Any) -> None:
    rec = Recorder()
    bus.subscribe(Subscription(group="g", topics=["a", "b"], handler=rec))
    await bus.start()
    await bus.publish([_msg("a", 0), _msg("b", 0), _msg("a", 1)])
    await bus.publish([_msg("a", 2), _msg("b", 1), _msg("b", 2)])
    await eventually(lambda: len(rec.seen) == 6)
    assert [v for t, v in rec.seen if t == "a"] == [b"m0", b"m1", b"m2"]
    assert [v for t, v in rec.seen if t == "b"] == [b"m0", b"m1", b"m2"]
    assert bus.lag("g") == 0


async def test_offsets_and_partition_are_assigned(bus: MemoryBus) -> None:
    await bus.publish([_msg("a", 0), _msg("a", 1)])
    assert [(m.partition, m.offset) for m in bus.logs["a"]] == [(0, 0), (0, 1)]


async def test_a_late_subscriber_reads_from_the_beginning(bus: MemoryBus, eventually: Any) -> None:
    await bus.start()
    await bus.publish([_msg("a", n) for n in range(3)])
    rec = Recorder()
    bus.subscribe(Subscription(group="late", topics=["a"], handler=rec))
    await eventually(lambda: len(rec.seen) == 3)
    assert [v for _, v in rec.seen] == [b"m0", b"m1", b"m2"]


async def test_two_groups_each_get_every_message(bus: MemoryBus, eventually: Any) -> None:
    first, second = Recorder(), Recorder()
    bus.subscribe(Subscription(group="one", topics=["a"], handler=first))
    bus.subscribe(Subscription(group="two", topics=["a"], handler=second))
    await bus.start()
    await bus.publish([_msg("a", n) for n in range(5)])
    await eventually(lambda: len(first.seen) == 5 and len(second.seen) == 5)
    expected = [("a", f"m{n}".encode()) for n in range(5)]
    assert first.seen == expected
    assert second.seen == expected
    await asyncio.sleep(0.05)  # nothing is delivered twice
    assert len(first.seen) == 5 and len(second.seen) == 5


async def test_a_dead_letter_goes_to_the_dlq_and_the_next_message_still_arrives(
        bus: MemoryBus, eventually: Any) -> None:
    seen: list[bytes] = []
    calls: dict[bytes, int] = {}

    async def handler(message: Message) -> None:
        calls[message.value] = calls.get(message.value, 0) + 1
        if message.value == b"m1":
            raise DeadLetter("level 9 is out of range")
        seen.append(message.value)

    bus.subscribe(Subscription(group="scoring", topics=["feedback.v1"], handler=handler))
    await bus.start()
    await bus.publish([_msg("feedback.v1", n) for n in range(3)])
    await eventually(lambda: seen == [b"m0", b"m2"])
    await eventually(lambda: len(bus.logs["feedback.v1.dlq"]) == 1)
    assert calls[b"m1"] == 1, "a permanent failure is not retried"
    dead = bus.logs["feedback.v1.dlq"][0]
    assert dead.value == b"m1"
    assert dead.key == b"k"
    assert dead.header("ce_id") == b"id-1", "the original headers travel with it"
    assert dead.header("x-error") == b"level 9 is out of range"
    assert dead.header("x-consumer") == b"scoring"
    assert dead.header("x-attempts") == b"1"
    assert bus.lag("scoring") == 0


async def test_a_transient_failure_is_retried_until_it_succeeds(bus: MemoryBus, eventually: Any) -> None:
    attempts: list[bytes] = []
    done: list[bytes] = []

    async def handler(message: Message) -> None:
        attempts.append(message.value)
        if message.value == b"m0" and attempts.count(b"m0") < 4:
            raise ConnectionError("database unreachable")
        done.append(message.value)

    bus.subscribe(Subscription(group="g", topics=["a"], handler=handler))
    await bus.start()
    await bus.publish([_msg("a", 0), _msg("a", 1)])
    await eventually(lambda: done == [b"m0", b"m1"])
    # The partition is held: m1 waits until m0 went through, and nothing is dead-lettered.
    assert attempts == [b"m0", b"m0", b"m0", b"m0", b"m1"]
    assert bus.logs["a.dlq"] == []


async def test_stop_ends_the_consumers(bus: MemoryBus, eventually: Any) -> None:
    rec = Recorder()
    bus.subscribe(Subscription(group="g", topics=["a"], handler=rec))
    await bus.start()
    await bus.publish([_msg("a", 0)])
    await eventually(lambda: len(rec.seen) == 1)
    await bus.stop()
    await bus.publish([_msg("a", 1)])
    await asyncio.sleep(0.05)
    assert len(rec.seen) == 1
