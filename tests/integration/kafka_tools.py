"""Small Kafka operations the integration tests need: raw produce, read a topic, reset a group."""

from __future__ import annotations

import asyncio
import os

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from yardstick.bus import Message


def bootstrap() -> str:
    return os.environ["KAFKA_BOOTSTRAP_SERVERS"]


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, once the client's metadata knows them (about 2 s at most; none if it never does)."""
    parts = consumer.partitions_for_topic(topic) or set()
    for _ in range(20):
        if parts:
            break
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def produce(topic: str, messages: list[Message]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(topic, value=m.value, key=m.key, headers=list(m.headers))
    finally:
        await producer.stop()


async def read_all(topic: str, timeout_s: float = 5.0) -> list[Message]:
    """Every message currently in the topic, from the beginning, without a group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Message] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out.extend(Message(topic=r.topic, key=r.key, value=r.value, headers=tuple(r.headers or ()),
                                   partition=r.partition, offset=r.offset) for r in records)
        return out
    finally:
        await consumer.stop()


async def rewind_group(group: str, topic: str) -> None:
    """Commit offset 0 on every partition for a stopped consumer group: a full redelivery."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


async def group_lag(group: str, topics: list[str]) -> int:
    """Messages of `topics` the group has not committed yet: end offsets minus committed offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            tps += await _partitions(consumer, topic)
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            committed = await consumer.committed(tp)
            lag += ends[tp] - (committed or 0)
        return lag
    finally:
        await consumer.stop()
