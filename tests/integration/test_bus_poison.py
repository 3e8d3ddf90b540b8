"""Poison records on real Kafka (decision 0025): a dead letter too large for the broker, a message the broker
refuses for good, and a record whose header key is not UTF-8. Each is dead-lettered once, the valid events
around it are applied once and in order, and the consumer group's lag returns to zero."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer import message_accumulator
from aiokafka.record import default_records
from kafka_tools import bootstrap, group_lag, read_all

from yardstick.bus import DeadLetter, Message, Subscription
from yardstick.bus.kafka import SHORT_VALUE_BYTES, KafkaBus, PublishRefused

GROUP = "poison"
REASON = "feedback.received breaks its schema: " + "reasons.0: int_parsing; " * 250  # over x-error's 4,000


def _bus(prefix: str) -> KafkaBus:
    return KafkaBus(bootstrap(), client_id="test-poison", partitions=2, prefix=prefix, retry_max_s=1.0)


def _event(event_id: str, key: bytes = b"unit-1") -> Message:
    return Message(topic="feedback.v1", key=key, value=f'{{"id": "{event_id}"}}'.encode(),
                   headers=(("ce_id", event_id.encode()), ("ce_type", b"feedback.received")))


async def _consume_until(bus: KafkaBus, prefix: str, *, batched: bool, poison: bytes, expect: int) -> list[Message]:
    """Run a consumer of feedback.v1 that dead-letters the message whose ce_id is `poison`, until it applied
    `expect` messages and the group's lag is zero; the messages it applied, in order."""
    applied: list[Message] = []

    async def handler(message: Message) -> None:
        if message.header("ce_id") == poison:
            raise DeadLetter(REASON)
        applied.append(message)

    async def batch_handler(messages: Sequence[Message]) -> list[tuple[Message, str]]:
        applied.extend(m for m in messages if m.header("ce_id") != poison)
        return [(m, REASON) for m in messages if m.header("ce_id") == poison]

    bus.subscribe(Subscription(group=GROUP, topics=["feedback.v1"], handler=handler,
                               batch_handler=batch_handler if batched else None))
    await bus.start()
    try:
        # Stuck behind the poison before decision 0025: nothing behind it was ever applied.
        for _ in range(120):
            if len(applied) >= expect and await group_lag(prefix + GROUP, [prefix + "feedback.v1"]) == 0:
                return applied
            await asyncio.sleep(0.5)
        raise AssertionError(f"applied {len(applied)} of {expect} messages in 60 s")
    finally:
        await bus.stop()


async def _oversized_scenario(batched: bool) -> None:
    prefix = f"tp{secrets.token_hex(3)}."
    bus = _bus(prefix)
    await bus.ensure_topics()
    # Under the broker's 1,048,588 bytes; its dead-letter copy, with the reason's 4,000 bytes, is not.
    value = b'{"pad": "' + b"x" * (1_046_500 - 11) + b'"}'
    poison = Message(topic="feedback.v1", key=b"unit-1", value=value,
                     headers=(("ce_id", b"ev-poison"), ("ce_type", b"feedback.received")))
    await bus.publish([poison])
    await bus.publish([_event("ev-after")])
    applied = await _consume_until(bus, prefix, batched=batched, poison=b"ev-poison", expect=1)
    assert [m.header("ce_id") for m in applied] == [b"ev-after"]
    [dead] = await read_all(prefix + "feedback.v1.dlq")
    assert dead.key == b"unit-1"
    assert dead.headers[:2] == poison.headers
    assert dead.header("x-error") == REASON[:4000].encode()
    assert dead.header("x-consumer") == GROUP.encode() and dead.header("x-attempts") == b"1"
    assert dead.header("x-truncated") == b"MessageSizeTooLargeError"
    assert dead.header("x-original-bytes") == str(len(value)).encode()
    assert dead.header("x-original-sha256") == hashlib.sha256(value).hexdigest().encode()
    assert dead.value == value[:SHORT_VALUE_BYTES]


@pytest.mark.parametrize("batched", [False, True], ids=["per-event", "batch"])
def test_a_dead_letter_too_large_for_the_broker_goes_shortened_and_the_consumer_moves_on(batched: bool) -> None:
    asyncio.run(_oversized_scenario(batched))


async def _refused_scenario() -> None:
    prefix = f"tp{secrets.token_hex(3)}."
    bus = _bus(prefix)
    try:
        await bus.ensure_topics()
        big = Message(topic="feedback.v1", key=b"unit-1", value=b"x" * 1_049_000)
        with pytest.raises(PublishRefused) as refused:
            await asyncio.wait_for(bus.publish([big]), 30)
        assert refused.value.messages_at_fault
        assert [m for m, _ in refused.value.refused] == [big]
        # The next publish goes through: the producer that counted the refused batch was replaced.
        await asyncio.wait_for(bus.publish([_event("ev-after")]), 30)
        assert [m.header("ce_id") for m in await read_all(prefix + "feedback.v1")] == [b"ev-after"]
    finally:
        await bus.stop()


def test_a_message_the_broker_refuses_for_good_raises_publish_refused() -> None:
    asyncio.run(_refused_scenario())


class RawKey(str):
    """A header key whose bytes are not UTF-8: the pure-Python record builder writes h_key.encode("utf-8")."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe-bad"


async def _produce_bad_header_key(topic: str, message: Message, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's producer with its pure-Python record builder, which takes the key's bytes as they come (Kafka's
    protocol does not stop a producer in another language from writing them)."""
    with monkeypatch.context() as patched:
        patched.setattr(message_accumulator, "DefaultRecordBatchBuilder",
                        default_records._DefaultRecordBatchBuilderPy)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), acks="all")
        await producer.start()
        try:
            batch = producer.create_batch()  # send() would size the record with the C builder, which refuses it
            batch.append(key=message.key, value=message.value, timestamp=None,
                         headers=[*message.headers, (RawKey("x"), b"1")])
            batch.close()
            partition = DefaultPartitioner()(message.key, [0, 1], [0, 1])
            await (await producer.send_batch(batch, topic, partition=partition))
        finally:
            await producer.stop()


async def _header_key_scenario(batched: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"tp{secrets.token_hex(3)}."
    bus = _bus(prefix)
    await bus.ensure_topics()
    other = next(key for n in range(100) if (key := f"unit-{n}".encode()) != b"unit-1"
                 and DefaultPartitioner()(key, [0, 1], [0, 1]) != DefaultPartitioner()(b"unit-1", [0, 1], [0, 1]))
    await bus.publish([_event("ev-1"), _event("ev-2"), _event("ev-o1", other)])
    poison = _event("ev-bad")
    await _produce_bad_header_key(prefix + "feedback.v1", poison, monkeypatch)
    await bus.publish([_event("ev-3"), _event("ev-o2", other), _event("ev-4")])
    applied = await _consume_until(bus, prefix, batched=batched, poison=b"never", expect=6)
    ids = [m.header("ce_id") for m in applied]
    assert sorted(ids) == sorted({*ids})  # each once
    assert [i for i in ids if i in (b"ev-1", b"ev-2", b"ev-3", b"ev-4")] == [b"ev-1", b"ev-2", b"ev-3", b"ev-4"]
    assert [i for i in ids if i in (b"ev-o1", b"ev-o2")] == [b"ev-o1", b"ev-o2"]
    [dead] = await read_all(prefix + "feedback.v1.dlq")
    assert (dead.key, dead.value) == (poison.key, poison.value)  # the record as the partition holds it
    assert dead.headers[:3] == (*poison.headers, ("\\xff\\xfe-bad", b"1"))
    assert "UnicodeDecodeError" in (dead.header("x-error") or b"").decode()
    assert dead.header("x-consumer") == GROUP.encode()


@pytest.mark.parametrize("batched", [False, True], ids=["per-event", "batch"])
def test_a_header_key_that_is_not_utf8_is_dead_lettered_and_its_partition_moves_on(
        batched: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_header_key_scenario(batched, monkeypatch))
