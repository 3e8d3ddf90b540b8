"""The bus's batched publishing and consuming, and the bulk insert, on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from harness import _require
from kafka_tools import bootstrap, group_lag, read_all
from sqlalchemy import JSON, Column, Integer, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from yardstick.bus import Message, Subscription
from yardstick.bus.kafka import KafkaBus
from yardstick.db import (
    JsonText,
    bulk_insert,
    make_engine,
    new_metadata,
    scratch_database,
    session_factory,
    transaction,
)


async def _publish_scenario() -> None:
    prefix = f"tb{secrets.token_hex(3)}."
    bus = KafkaBus(bootstrap(), client_id="test-batches", prefix=prefix)
    keys = [f"unit-{n}" for n in range(40)]
    # Three messages per key, interleaved across keys, plus one too big to share a batch.
    messages = [Message(topic="feedback.v1", key=keys[n % 40].encode(), value=f'{{"n": {n}}}'.encode(),
                        headers=(("ce_id", str(n).encode()),)) for n in range(120)]
    messages.append(Message(topic="feedback.v1", key=b"unit-0", value=b'{"n": 120, "pad": "' + b"x" * 600_000 + b'"}',
                            headers=(("ce_id", b"120"),)))
    try:
        await bus.ensure_topics()
        await bus.publish(messages)
        # Where the producer's own send() puts each key: the reference the consumers agreed on.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap())
        await producer.start()
        try:
            expected = {}
            for key in keys:
                record = await (await producer.send(f"{prefix}feedback.v1", key=key.encode(), value=b"{}"))
                expected[key] = record.partition
        finally:
            await producer.stop()
        stored = [m for m in await read_all(f"{prefix}feedback.v1") if m.header("ce_id") is not None]
        assert sorted(int(m.header("ce_id") or b"-1") for m in stored) == list(range(121))
        for m in stored:
            assert m.partition == expected[m.key.decode()], m.key
        for key in keys:
            order = [int(m.header("ce_id") or b"-1") for m in stored if m.key == key.encode()]
            assert order == sorted(order), (key, order)  # each key's messages in publishing order
    finally:
        await bus.stop()


def test_batched_publish_keeps_the_default_partitioner_and_the_order_per_key() -> None:
    asyncio.run(_publish_scenario())


async def _bulk_scenario() -> None:
    admin_url = _require("YARDSTICK_TEST_PG_ADMIN_URL")
    async with scratch_database(admin_url, "yt_bulk") as url:
        await _bulk_insert_checks(make_engine(url))


async def _bulk_insert_checks(engine: AsyncEngine) -> None:
    metadata = new_metadata()
    table = Table("items", metadata, Column("id", String(10), primary_key=True), Column("n", Integer),
                  Column("doc", JSON))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sessions = session_factory(engine)
        async with transaction(sessions) as session:
            inserted = await bulk_insert(session, table, [
                {"id": "a", "n": 1, "doc": {"x": [1, "é"]}}, {"id": "b", "n": None, "doc": JsonText('{"y":2}')},
            ], returning=table.c.id)
            assert sorted(inserted) == ["a", "b"]
        async with transaction(sessions) as session:
            again = await bulk_insert(session, table, [{"id": "b", "n": 5, "doc": None},
                                                       {"id": "c", "n": 3, "doc": []}],
                                      skip_conflicts=True, returning=table.c.id)
            assert again == ["c"]  # "b" was stored before: skipped, not overwritten
            rows = {r.id: (r.n, r.doc) for r in (await session.execute(select(table))).all()}
        assert rows == {"a": (1, {"x": [1, "é"]}), "b": (None, {"y": 2}), "c": (3, [])}
    finally:
        await engine.dispose()


def test_bulk_insert_on_postgresql() -> None:
    asyncio.run(_bulk_scenario())



async def _poll_scenario() -> None:
    prefix = f"tp{secrets.token_hex(3)}."
    bus = KafkaBus(bootstrap(), client_id="test-polls", prefix=prefix)
    # 600 messages over 40 keys: all six partitions hold some, in a known order each.
    messages = [Message(topic="feedback.v1", key=f"unit-{n % 40}".encode(), value=b"{}",
                        headers=(("ce_id", str(n).encode()),)) for n in range(600)]
    calls: list[list[Message]] = []
    done = asyncio.Event()

    async def batch(polled: Sequence[Message]) -> list[tuple[Message, str]]:
        calls.append(list(polled))
        if sum(len(c) for c in calls) >= len(messages):
            done.set()
        return []

    async def one(message: Message) -> None:
        raise AssertionError("a batch subscription gets batches")

    try:
        await bus.ensure_topics()
        await bus.publish(messages)  # all there before the consumer starts: its first polls are full
        bus.subscribe(Subscription(group="polls", topics=["feedback.v1"], handler=one, batch_handler=batch))
        await bus.start()
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        await bus.stop()
    got = [m for c in calls for m in c]
    assert sorted(int(m.header("ce_id") or b"-1") for m in got) == list(range(600))  # each message once
    # A poll spanning partitions is one call (one transaction for the consumer), not one call a partition:
    # a call a partition would never hold two (which poll spans which partitions is the broker's timing).
    assert any(len({m.partition for m in c}) > 1 for c in calls), [sorted({m.partition for m in c}) for c in calls]
    for partition in {m.partition for m in got}:
        offsets = [m.offset for m in got if m.partition == partition]
        assert offsets == list(range(len(offsets)))  # each partition's messages in order, none skipped
    for key in {m.key for m in got}:
        order = [int(m.header("ce_id") or b"-1") for m in got if m.key == key]
        assert order == sorted(order), key
    assert await group_lag(f"{prefix}polls", [f"{prefix}feedback.v1"]) == 0  # and committed (the group prefixed too)


def test_a_batch_subscription_gets_a_whole_poll_in_one_call() -> None:
    asyncio.run(_poll_scenario())
