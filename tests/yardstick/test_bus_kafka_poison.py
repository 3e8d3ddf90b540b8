"""The Kafka bus against what the broker refuses for good, records aiokafka cannot read, and a stop cancelled
again and again (decision 0025): aiokafka's producer and consumer replaced by fakes that answer as they do."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownError,
)
from aiokafka.record import default_records
from aiokafka.record.memory_records import MemoryRecords

from yardstick.bus import BusUnavailable, Message, Subscription
from yardstick.bus import kafka as kafka_bus
from yardstick.bus.deadletters import DeadLettered
from yardstick.bus.kafka import KafkaBus, PublishRefused, _ConsumerRunner, read_raw, shortened
from yardstick.observability import DEAD_LETTERED
from yardstick.tasks import stop_tasks

# The broker's limit on a record batch (max.message.bytes, default 1,048,588), as the fake producer applies it.
LIMIT = 1_048_588
BAD_KEY = b"\xff\xfe-bad"


class _Batch:
    """aiokafka's BatchBuilder as `_send_batches` uses it: every message fits (the first one always does)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None, headers: list[tuple[str, bytes]]) -> object:
        self.messages.append(Message(topic="", key=key, value=value, headers=tuple(headers)))
        return object()

    def close(self) -> None:
        pass

    def record_count(self) -> int:
        return len(self.messages)


def _size(messages: Sequence[Message]) -> int:
    return sum(len(m.value) + len(m.key or b"") + sum(len(k) + len(v) for k, v in m.headers) for m in messages)


class FakeProducer:
    """Takes record batches; `answer(topic, messages)` is the broker's error for one, or None for its ack."""

    def __init__(self, answer: Callable[[str, list[Message]], BaseException | None]) -> None:
        self.answer = answer
        self.taken: list[Message] = []
        self.stops = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        error = self.answer(topic, batch.messages)
        if error is None:
            self.taken += [Message(topic=topic, key=m.key, value=m.value, headers=m.headers) for m in batch.messages]
            ack.set_result(None)
        else:
            ack.set_exception(error)
        return ack

    async def stop(self) -> None:
        self.stops += 1


def _bus(producer: Any) -> KafkaBus:
    bus = KafkaBus("127.0.0.1:1", client_id="test", retry_initial_s=0.01, retry_max_s=0.05)
    bus._topics_ready = True

    async def get_producer() -> Any:
        bus._producer = producer
        return producer

    bus._get_producer = get_producer  # type: ignore[method-assign]
    return bus


def _sub(group: str = "poison-test") -> Subscription:
    async def handler(message: Message) -> None:
        pass

    return Subscription(group=group, topics=["feedback.v1"], handler=handler)


def _limit(topic: str, messages: list[Message]) -> BaseException | None:
    return MessageSizeTooLargeError() if _size(messages) > LIMIT else None


# publishing ----------------------------------------------------------------------
async def test_a_message_refused_for_good_raises_publish_refused_and_the_producer_is_rebuilt() -> None:
    producer = FakeProducer(_limit)
    bus = _bus(producer)
    small = Message(topic="feedback.v1", key=b"u1", value=b"{}")
    big = Message(topic="targets.v1", key=b"u1", value=b"x" * 1_049_000)
    with pytest.raises(PublishRefused) as refused:
        await bus.publish([small, big])
    assert isinstance(refused.value, BusUnavailable)  # code that knows only BusUnavailable retries
    assert refused.value.messages_at_fault
    assert [m for m, _ in refused.value.refused] == [big]
    assert isinstance(refused.value.refused[0][1], MessageSizeTooLargeError)
    assert [m.value for m in producer.taken] == [b"{}"]  # the call's other message was acknowledged
    # Dropped: the idempotent producer counted the refused batch's sequence numbers.
    assert producer.stops == 1 and bus._producer is None
    assert bus.state()["last_error"] is None  # the broker answered: not an outage


async def test_a_refusal_of_the_setup_is_not_the_messages_fault() -> None:
    bus = _bus(FakeProducer(lambda topic, messages: TopicAuthorizationFailedError(topic)))
    with pytest.raises(PublishRefused) as refused:
        await bus.publish([Message(topic="feedback.v1", key=b"u1", value=b"{}")])
    assert not refused.value.messages_at_fault


@pytest.mark.parametrize("error", [KafkaConnectionError(), KafkaTimeoutError(), RequestTimedOutError(), UnknownError()],
                         ids=lambda e: type(e).__name__)
async def test_a_lost_broker_stays_transient(error: BaseException) -> None:
    # KafkaTimeoutError is not `retriable` in aiokafka: the flag alone would have made it a refusal.
    bus = _bus(FakeProducer(lambda topic, messages: error))
    with pytest.raises(BusUnavailable) as lost:
        await bus.publish([Message(topic="feedback.v1", key=b"u1", value=b"{}")])
    assert not isinstance(lost.value, PublishRefused)


async def test_a_refusal_beside_a_lost_broker_is_sent_again_whole() -> None:
    def answer(topic: str, messages: list[Message]) -> BaseException:
        return MessageSizeTooLargeError() if topic.startswith("feedback") else KafkaConnectionError()

    with pytest.raises(BusUnavailable) as lost:
        await _bus(FakeProducer(answer)).publish([Message(topic="feedback.v1", key=b"u", value=b"{}"),
                                                  Message(topic="targets.v1", key=b"u", value=b"{}")])
    assert not isinstance(lost.value, PublishRefused)


# dead letters --------------------------------------------------------------------
def _malformed(size: int) -> Message:
    headers = (("ce_id", b"ev-poison"), ("ce_type", b"feedback.received"), ("ce_source", b"feedback-intake"))
    return Message(topic="feedback.v1", key=b"unit-1", value=b"{" + b"x" * (size - 2) + b"}", headers=headers,
                   partition=3, offset=41)


async def test_a_dead_letter_too_large_with_its_reason_is_published_shortened() -> None:
    producer = FakeProducer(_limit)
    bus = _bus(producer)
    message = _malformed(1_046_500)  # the broker took it; with x-error added it is over the limit
    reason = "feedback.received breaks its schema: " + "reasons: int_parsing " * 400
    before = DEAD_LETTERED.labels(consumer="poison-test", topic="feedback.v1")._value.get()
    async with asyncio.timeout(5):  # retried for ever before decision 0025
        await bus._dead_letter(_sub(), message, reason, 3)
    [dead] = producer.taken
    assert dead.topic == "feedback.v1.dlq"
    assert dead.key == b"unit-1"
    assert dead.headers[:3] == message.headers  # the original headers first, as a whole copy has them
    assert dead.header("x-error") == reason[:4000].encode()
    assert dead.header("x-consumer") == b"poison-test" and dead.header("x-attempts") == b"3"
    assert dead.header("x-truncated") == b"MessageSizeTooLargeError"
    assert dead.header("x-original-bytes") == b"1046500"
    assert dead.header("x-original-sha256") == hashlib.sha256(message.value).hexdigest().encode()
    assert dead.value == message.value[:kafka_bus.SHORT_VALUE_BYTES]
    assert DEAD_LETTERED.labels(consumer="poison-test", topic="feedback.v1")._value.get() == before + 1


async def test_a_dead_letter_that_fits_is_published_whole() -> None:
    producer = FakeProducer(_limit)
    message = _malformed(2_000)
    await _bus(producer)._dead_letter(_sub(), message, "broken", 1)
    [dead] = producer.taken
    assert dead.value == message.value and dead.header("x-truncated") is None


def test_a_shortened_dead_letter_keeps_the_headers_that_fit() -> None:
    many = tuple((f"h{n}", b"v" * 10_000) for n in range(10))
    message = Message(topic="feedback.v1", key=b"k", value=b"x" * 100, headers=many)
    dead = shortened(message, "why", consumer="c", attempts=1, refusal=MessageSizeTooLargeError())
    assert dead.headers[:6] == many[:6]  # 60,030 bytes of the 64 KiB; the seventh would pass it
    assert dead.header("x-dropped-headers") == b"4"
    assert dead.value == message.value  # shorter than the prefix: kept whole, marked all the same
    assert dead.header("x-truncated") == b"MessageSizeTooLargeError"


def test_the_dlq_reader_shows_a_shortened_letters_original_size() -> None:
    entry = DeadLettered(topic="feedback.v1.dlq", partition=0, offset=0, timestamp=datetime.now(UTC), key="k",
                         headers={"ce_id": "ev", "x-error": "why", "x-truncated": "MessageSizeTooLargeError",
                                  "x-original-bytes": "1046500", "x-original-sha256": "ab"},
                         payload_bytes=kafka_bus.SHORT_VALUE_BYTES)
    shown = entry.as_json()
    assert shown["payload_bytes"] == 1_046_500
    assert shown["truncated"] == "MessageSizeTooLargeError" and shown["sha256"] == "ab"
    assert shown["headers"] == {"ce_id": "ev"}


async def test_a_dead_letter_that_cannot_be_published_is_logged_with_what_to_do(
        caplog: pytest.LogCaptureFixture) -> None:
    refusals = 5

    def answer(topic: str, messages: list[Message]) -> BaseException | None:
        nonlocal refusals
        refusals -= 1
        return TopicAuthorizationFailedError(topic) if refusals >= 0 else None

    producer = FakeProducer(answer)
    caplog.set_level(logging.ERROR, logger="yardstick.bus.kafka")
    async with asyncio.timeout(5):
        await _bus(producer)._dead_letter(_sub(), _malformed(2_000), "broken", 1)
    retries = [r for r in caplog.records if r.getMessage().startswith("dead letter not published")]
    assert len(retries) == 1  # five failures in a few tens of milliseconds: one line (DEAD_LETTER_LOG_S)
    assert "grant this service's principal Write on feedback.v1.dlq" in retries[0].getMessage()
    assert retries[0].offset == 41 and retries[0].count == 1
    # The setup's refusal is not the copy's fault: it is published whole once allowed.
    assert producer.taken[0].header("x-truncated") is None


async def test_every_retry_of_a_dead_letter_is_logged_past_the_rate_limit(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_bus, "DEAD_LETTER_LOG_S", 0.0)
    failures = 3

    def answer(topic: str, messages: list[Message]) -> BaseException | None:
        nonlocal failures
        failures -= 1
        return KafkaConnectionError() if failures >= 0 else None

    caplog.set_level(logging.ERROR, logger="yardstick.bus.kafka")
    await _bus(FakeProducer(answer))._dead_letter(_sub(), _malformed(100), "broken", 1)
    retries = [r for r in caplog.records if r.getMessage().startswith("dead letter not published")]
    assert [r.count for r in retries] == [1, 2, 3]
    assert "unreachable" in retries[0].getMessage()


# reading raw records -------------------------------------------------------------
class RawKey(str):
    """A header key whose bytes are not UTF-8: the pure-Python record builder writes h_key.encode("utf-8")."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return BAD_KEY


def _records(base_offset: int, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
             compression: int = 0) -> bytes:
    """A record batch as the broker stores it, built by aiokafka's pure-Python builder."""
    builder = default_records._DefaultRecordBatchBuilderPy(
        magic=2, compression_type=compression, is_transactional=False, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=10 * 1024 * 1024)
    for n, (key, value, headers) in enumerate(records):
        builder.append(n, timestamp=1_700_000_000_000 + n, key=key, value=value, headers=headers)
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base_offset)  # the broker's offset (outside the checksum)
    return bytes(data)


@pytest.mark.parametrize("compression", [0, 1], ids=["plain", "gzip"])
def test_read_raw_reads_the_record_aiokafka_cannot(compression: int) -> None:
    data = _records(0, [(b"k0", b"v0", [])]) + _records(40, [
        (b"k40", b"v40", [("ce_id", b"a")]),
        (b"k41", b"v41", [("ce_id", b"b"), (RawKey("x"), b"1")]),
        (None, b"v42", []),
    ], compression)
    with pytest.raises(UnicodeDecodeError):  # what aiokafka's fetcher meets (its C reader)
        for batch in iter(MemoryRecords(data).next_batch, None):
            list(batch)
    at, raw = read_raw(data, 41)
    assert at == 41 and raw is not None
    assert (raw.key, raw.value, raw.headers) == (b"k41", b"v41", [(b"ce_id", b"b"), (BAD_KEY, b"1")])
    at, raw = read_raw(data, 42)
    assert at == 42 and raw is not None and raw.key is None
    assert read_raw(data, 43) == (43, None)  # past the data


def test_read_raw_names_the_offset_of_bytes_that_do_not_parse() -> None:
    data = bytearray(_records(40, [(b"k40", b"v40", []), (b"k41", b"v41", [])]))
    data[61:72] = b"\xff" * 11  # the first record's length: a varint that never ends
    assert read_raw(bytes(data), 41) == (41, None)
    assert read_raw(bytes(data), 12) == (40, None)  # the batch's first offset at or after it


# a consumer over a fake partitioned log ------------------------------------------
POISON = object()


class FakeConsumer:
    """An AIOKafkaConsumer over `log` that fails a poll as aiokafka's does on a record it cannot read: the
    poll raises, its records are dropped, the failing partition keeps its position and the partitions read
    before it in the same poll have moved theirs."""

    log: ClassVar[dict[TopicPartition, list[Any]]] = {}
    committed_offsets: ClassVar[dict[TopicPartition, int]] = {}
    instances: ClassVar[list[FakeConsumer]] = []
    raw_fetch_fails: ClassVar[bool] = False
    fail_once: ClassVar[Exception | None] = None  # the next poll raises it, whatever the records
    on_commit: ClassVar[Callable[[], None]] = staticmethod(lambda: None)
    commit_s = 0.0
    stop_s = 0.0
    hang = False

    def __init__(self, **kwargs: Any) -> None:
        self.pos: dict[TopicPartition, int] = {}
        self.assigned: list[TopicPartition] = []
        self.stop_started = self.stop_ended = False
        self._client = SimpleNamespace(cluster=SimpleNamespace(leader_for_partition=lambda tp: 1),
                                       send=self._send)
        FakeConsumer.instances.append(self)

    async def start(self) -> None:
        pass

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.assigned = sorted((tp for tp in self.log if tp.topic in topics), key=lambda tp: tp.partition)
        self.pos = {tp: self.committed_offsets.get(tp, 0) for tp in self.assigned}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def getmany(self, *tps: TopicPartition, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0)
        if FakeConsumer.fail_once is not None:
            error, FakeConsumer.fail_once = FakeConsumer.fail_once, None
            raise error
        out, left = {}, max_records
        for tp in tps or self.assigned:
            at, records = self.pos[tp], []
            while left and at < len(self.log[tp]):
                if self.log[tp][at] is POISON:
                    raise UnicodeDecodeError("utf-8", BAD_KEY, 0, 1, "invalid start byte")
                records.append(self.log[tp][at])
                at, left = at + 1, left - 1
            if records:
                self.pos[tp], out[tp] = at, records
        if not out:
            await asyncio.sleep(0.01)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self._wait(self.commit_s)
        self.committed_offsets.update(offsets)
        self.on_commit()

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offsets.get(tp)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log[tp]) for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.log[tp])

    async def stop(self) -> None:
        self.stop_started = True
        await self._wait(self.stop_s)
        self.stop_ended = True

    async def _wait(self, seconds: float) -> None:
        if self.hang:
            await asyncio.Event().wait()
        await asyncio.sleep(seconds)

    async def _send(self, node: int, request: Any) -> Any:
        [(topic, [(partition, offset, _)])] = request.topics
        if self.raw_fetch_fails:
            raise KafkaConnectionError("no route")
        tp = TopicPartition(topic, partition)
        found = [(b"unit-1", b'{"raw": true}', [("ce_id", b"ev-bad"), (RawKey("x"), b"1")])
                 if r is POISON else (r.key, r.value, list(r.headers)) for r in self.log[tp][offset:]]
        return SimpleNamespace(topics=[(topic, [(partition, 0, len(self.log[tp]), _records(offset, found))])])


def _record(tp: TopicPartition, offset: int) -> Any:
    return SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=offset, key=b"unit-1",
                           value=f'{{"n": {offset}}}'.encode(),
                           headers=(("ce_id", f"{tp.partition}-{offset}".encode()),))


@pytest.fixture
def fake_consumer(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    monkeypatch.setattr(kafka_bus, "AIOKafkaConsumer", FakeConsumer)
    for name in ("committed_offsets", "instances"):
        monkeypatch.setattr(FakeConsumer, name, type(getattr(FakeConsumer, name))())
    monkeypatch.setattr(FakeConsumer, "on_commit", FakeConsumer.__dict__["on_commit"])
    return FakeConsumer


def _log(*partitions: list[Any]) -> dict[TopicPartition, list[Any]]:
    log: dict[TopicPartition, list[Any]] = {}
    for p, shape in enumerate(partitions):
        tp = TopicPartition("feedback.v1", p)
        log[tp] = [POISON if r is POISON else _record(tp, n) for n, r in enumerate(shape)]
    return log


async def _consume(fake: type[FakeConsumer], log: dict[TopicPartition, list[Any]], *, batched: bool,
                   until: Callable[[list[tuple[str, int, int]]], bool]) -> tuple[list[tuple[str, int, int]],
                                                                                 list[Message]]:
    """Run a runner over `log` until `until(seen)` and every partition is committed to its end; what it saw
    (handled or dead-lettered, in order) and the dead letters it published."""
    fake.log = log
    seen: list[tuple[str, int, int]] = []
    dead: list[Message] = []
    done = asyncio.Event()
    bus = KafkaBus("127.0.0.1:1", client_id="test", retry_initial_s=0.01, retry_max_s=0.05)

    def check() -> None:
        if until(seen) and fake.committed_offsets == {tp: len(records) for tp, records in log.items()}:
            done.set()

    def note(what: str, message: Message) -> None:
        seen.append((what, message.partition, message.offset))
        check()

    fake.on_commit = staticmethod(check)  # type: ignore[assignment]

    async def publish(messages: Sequence[Message]) -> None:
        for m in messages:
            dead.append(m)
            note("dead", m)

    bus.publish = publish  # type: ignore[method-assign]

    async def handler(message: Message) -> None:
        note("applied", message)

    async def batch_handler(messages: Sequence[Message]) -> list[tuple[Message, str]]:
        for m in messages:
            await handler(m)
        return []

    sub = Subscription(group="poison-test", topics=["feedback.v1"], handler=handler,
                       batch_handler=batch_handler if batched else None)
    task = asyncio.create_task(_ConsumerRunner(bus, sub).run())
    try:
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        await stop_tasks([task])
    return seen, dead


@pytest.mark.parametrize("batched", [False, True], ids=["per-event", "batch"])
async def test_a_record_aiokafka_cannot_read_is_dead_lettered_and_its_partition_moves_on(
        fake_consumer: type[FakeConsumer], batched: bool) -> None:
    # Partition 0 is polled first and moves its position before partition 1's poison fails the poll.
    log = _log([0, 0, 0], [0, 0, POISON, 0, 0])
    seen, dead = await _consume(fake_consumer, log, batched=batched, until=lambda seen: len(seen) == 8)
    assert [s for s in seen if s[1] == 1] == [("applied", 1, 0), ("applied", 1, 1), ("dead", 1, 2),
                                              ("applied", 1, 3), ("applied", 1, 4)]
    assert sorted(s for s in seen if s[1] == 0) == [("applied", 0, n) for n in range(3)]  # none lost, none twice
    [letter] = dead
    assert letter.topic == "feedback.v1.dlq"
    assert (letter.key, letter.value) == (b"unit-1", b'{"raw": true}')  # the record's bytes, fetched raw
    assert letter.headers[:2] == (("ce_id", b"ev-bad"), ("\\xff\\xfe-bad", b"1"))
    assert "UnicodeDecodeError" in (letter.header("x-error") or b"").decode()
    assert fake_consumer.committed_offsets == {TopicPartition("feedback.v1", 0): 3,
                                               TopicPartition("feedback.v1", 1): 5}
    assert len(fake_consumer.instances) == 1  # no reconnect


async def test_an_unreadable_record_whose_bytes_cannot_be_fetched_is_dead_lettered_by_place(
        fake_consumer: type[FakeConsumer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeConsumer, "raw_fetch_fails", True)
    seen, dead = await _consume(fake_consumer, _log([POISON, 0]), batched=False, until=lambda seen: len(seen) == 2)
    assert seen == [("dead", 0, 0), ("applied", 0, 1)]
    [letter] = dead
    assert (letter.key, letter.value, letter.partition, letter.offset) == (None, b"", 0, 0)
    reason = (letter.header("x-error") or b"").decode()
    assert "feedback.v1:0:0" in reason and "could not be fetched" in reason and "UnicodeDecodeError" in reason


async def test_a_poll_that_fails_once_without_a_bad_record_dead_letters_nothing(
        fake_consumer: type[FakeConsumer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeConsumer, "fail_once", ValueError("a glitch"))
    seen, dead = await _consume(fake_consumer, _log([0, 0], [0]), batched=False, until=lambda seen: len(seen) >= 3)
    assert dead == []
    assert sorted(set(seen)) == [("applied", 0, 0), ("applied", 0, 1), ("applied", 1, 0)]


# stopping ------------------------------------------------------------------------
async def _stop_while(fake: type[FakeConsumer], *, commit_s: float = 0.0, stop_s: float = 0.0,
                      hang: bool = False) -> tuple[FakeConsumer, float]:
    """A runner whose handler blocks on partition 1's record once partition 0's was handled (so an offset waits
    for the last commit), stopped by stop_tasks, which cancels it again every second; the consumer and how long
    the stop took."""
    fake.log = _log([0], [0])
    bus = KafkaBus("127.0.0.1:1", client_id="test", retry_initial_s=0.01, retry_max_s=0.05)
    blocked = asyncio.Event()

    async def handler(message: Message) -> None:
        if message.partition == 1:
            blocked.set()
            await asyncio.Event().wait()

    runner = _ConsumerRunner(bus, Subscription(group="poison-test", topics=["feedback.v1"], handler=handler))
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(5):
        await blocked.wait()
    consumer = fake.instances[0]
    consumer.commit_s, consumer.stop_s, consumer.hang = commit_s, stop_s, hang
    started = time.monotonic()
    async with asyncio.timeout(30):
        await stop_tasks([task])
    return consumer, time.monotonic() - started


async def test_a_stop_cancelled_again_during_the_last_commit_still_stops_the_consumer(
        fake_consumer: type[FakeConsumer]) -> None:
    consumer, _ = await _stop_while(fake_consumer, commit_s=1.5)  # stop_tasks cancels again after 1 s
    assert fake_consumer.committed_offsets == {TopicPartition("feedback.v1", 0): 1}
    assert consumer.stop_ended


async def test_a_stop_cancelled_again_while_the_consumer_stops_lets_it_finish(
        fake_consumer: type[FakeConsumer]) -> None:
    consumer, _ = await _stop_while(fake_consumer, stop_s=1.5)
    assert consumer.stop_ended


async def test_a_dead_broker_cannot_hang_the_stop(fake_consumer: type[FakeConsumer],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_bus, "STOP_COMMIT_S", 0.3)
    monkeypatch.setattr(kafka_bus, "STOP_CONSUMER_S", 0.3)
    consumer, took = await _stop_while(fake_consumer, hang=True)  # neither the commit nor the stop answers
    assert consumer.stop_started and not consumer.stop_ended
    assert took < 3

