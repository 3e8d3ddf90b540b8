"""Kafka backend (aiokafka): idempotent producer, manual commits, dead-letter topics."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import struct
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CommitFailedError,
    ConsumerStoppedError,
    CorruptRecordException,
    InvalidRequiredAcksError,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownError,
    UnsupportedForMessageFormatError,
    for_code,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.fetch import FetchRequest

from yardstick.bus import BusUnavailable, DeadLetter, Message, Subscription, dlq_topic
from yardstick.events import DOMAIN_TOPICS
from yardstick.observability import CONSUMER_LAG, DEAD_LETTERED, PUBLISHED
from yardstick.tasks import stop_tasks

log = logging.getLogger(__name__)
# Messages a poll handed to a batch handler, unless its subscription says otherwise (Subscription.poll_size).
POLL_SIZE = 2000
_PARTITIONER = DefaultPartitioner()
# A dead letter the broker refuses whole is sent shortened: this much of its value, and of its original headers.
SHORT_VALUE_BYTES = 16 * 1024
SHORT_HEADER_BYTES = 64 * 1024
# A dead letter that cannot be published holds its partition; its retries are logged at most this often.
DEAD_LETTER_LOG_S = 30.0
# Stopping a consumer: its last commit, then its stop (leaving the group), each bounded, since a dead broker
# answers neither; the stop ends when they have, however often its task is cancelled meanwhile.
STOP_COMMIT_S = 5.0
STOP_CONSUMER_S = 10.0
# Reading the partitions one at a time after a poll failed on a record (_ConsumerRunner._read_apart).
READ_APART_S = 30.0
RAW_FETCH_BYTES = 8 * 1024 * 1024

# Answers of the broker (or of the client, before sending) that sending again cannot change. aiokafka's
# `retriable` flag cannot say it alone: it is false for a timeout and several lost-connection errors too.
# The message's own fault: too large, an invalid record or timestamp.
_MESSAGE_REFUSALS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, CorruptRecordException,
    InvalidTimestampError)
# The setup's fault: no right to write the topic, a topic or setting the broker does not accept.
_SETUP_REFUSALS: tuple[type[KafkaError], ...] = (
    TopicAuthorizationFailedError, ClusterAuthorizationFailedError, TransactionalIdAuthorizationFailed,
    InvalidTopicError, InvalidRequiredAcksError, UnsupportedForMessageFormatError)


class PublishRefused(BusUnavailable):
    """The broker refused messages for good: sending them again gets the same answer.

    A BusUnavailable, so code that knows only that one keeps retrying and drops nothing; the relay tells it
    apart (decision 0025). `refused` pairs each refused message with the broker's answer; the call's other
    messages were acknowledged.
    """

    def __init__(self, refused: Sequence[tuple[Message, BaseException]]) -> None:
        self.refused = tuple(refused)
        names = sorted({type(error).__name__ for _, error in self.refused})
        super().__init__(f"the broker refused {len(self.refused)} message(s) for good: {', '.join(names)}")

    @property
    def messages_at_fault(self) -> bool:
        """The messages themselves are refused (too large, invalid), not this service's rights or the topic."""
        return all(isinstance(error, _MESSAGE_REFUSALS) for _, error in self.refused)


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a benchmark's or a test's run); the names deleted.

    A topic left behind costs the broker for as long as it lives: its partitions' logs, indexes and
    metadata stay open, and each run would add its own.
    """
    if not prefix:
        raise ValueError("an empty prefix would name every topic")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
        return ours
    finally:
        await admin.close()


def _refusal(exc: BaseException) -> bool:
    return isinstance(exc, _MESSAGE_REFUSALS + _SETUP_REFUSALS)


def _reason_headers(reason: str, consumer: str, attempts: int) -> tuple[tuple[str, bytes], ...]:
    return (("x-error", reason[:4000].encode()), ("x-consumer", consumer.encode()),
            ("x-attempts", str(attempts).encode()))


def shortened(message: Message, reason: str, *, consumer: str, attempts: int, refusal: BaseException) -> Message:
    """A dead letter of `message` small enough for any broker, for when the broker refused the whole copy.

    It keeps the original headers (those that fit in SHORT_HEADER_BYTES; `x-dropped-headers` counts the
    rest), the reason headers, the value's size, sha256 and first SHORT_VALUE_BYTES, and `x-truncated`
    names the refusal.
    """
    kept: list[tuple[str, bytes]] = []
    room = SHORT_HEADER_BYTES
    for name, value in message.headers:
        room -= len(name.encode()) + len(value)
        if room < 0:
            break
        kept.append((name, value))
    headers = (*kept, *_reason_headers(reason, consumer, attempts),
               ("x-truncated", type(refusal).__name__.encode()),
               ("x-original-bytes", str(len(message.value)).encode()),
               ("x-original-sha256", hashlib.sha256(message.value).hexdigest().encode()))
    if len(kept) < len(message.headers):
        headers += (("x-dropped-headers", str(len(message.headers) - len(kept)).encode()),)
    return replace(message, topic=dlq_topic(message.topic), headers=headers,
                   key=None if message.key is None else message.key[:SHORT_VALUE_BYTES],
                   value=message.value[:SHORT_VALUE_BYTES])


def _what_to_do(exc: BusUnavailable, topic: str) -> str:
    """The log line's advice when a dead letter cannot be published."""
    if isinstance(exc, PublishRefused):
        if exc.messages_at_fault:
            return f"the broker refuses even the shortened copy: check max.message.bytes of {topic}"
        return (f"the broker refuses it ({exc}): grant this service's principal Write on {topic} "
                "or fix the topic; the partition moves on once it is published")
    return f"the broker is unreachable, or {topic} is missing: the partition moves on once it is published"


def _unreadable(exc: BaseException) -> bool:
    """A poll failed on what a record holds, not on the broker: aiokafka raises a header key that is not
    UTF-8 as UnicodeDecodeError, a bad checksum or record structure as CorruptRecordException."""
    if isinstance(exc, CorruptRecordException):
        return True
    return not isinstance(exc, KafkaError | OSError | TimeoutError | ConsumerStoppedError)


async def _to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` in a task of its own and wait until it has ended, even if cancelled meanwhile (stop_tasks
    cancels again every second until a task ends); a cancel is raised after it, never in the middle."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()


class _RawRecord(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[bytes, bytes | None]]


# Kafka's record batch (v2): base offset, length, leader epoch, magic, crc, attributes, last offset delta,
# first and max timestamps, producer id and epoch, base sequence, record count.
_BATCH = struct.Struct(">qiibIhiqqqhii")
_DECOMPRESS: dict[int, Callable[[bytes], bytes]] = {1: gzip_decode, 2: snappy_decode, 3: lz4_decode,
                                                    4: zstd_decode}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint of the record format: its value and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _sized(data: bytes, pos: int) -> tuple[bytes | None, int]:
    size, pos = _varint(data, pos)
    if size < 0:
        return None, pos
    if pos + size > len(data):
        raise ValueError("field runs past the record")
    return data[pos:pos + size], pos + size


def read_raw(data: bytes, offset: int) -> tuple[int, _RawRecord | None]:
    """The first record at or after `offset` in a fetch's bytes, read without decoding any of it (aiokafka
    decodes header keys as UTF-8 and raises on one that is not). Its offset and the record; when the bytes
    do not parse, the best guess of its offset (the batch's first at or after `offset`) and None."""
    pos = 0
    while pos + _BATCH.size <= len(data):
        base, length, _, magic, _, attributes, last_delta, *_, count = _BATCH.unpack_from(data, pos)
        end = pos + 12 + length
        at = max(offset, base)
        if length < _BATCH.size - 12:  # no batch: the bytes cannot be walked any further
            return at, None
        if base + last_delta < offset or attributes & 0x20:  # before it, or a control batch
            pos = end
            continue
        try:
            if magic != 2 or end > len(data):
                return at, None
            body = data[pos + _BATCH.size:end]
            if attributes & 0x07:
                body = _DECOMPRESS[attributes & 0x07](body)
            cursor = 0
            for _ in range(count):
                size, cursor = _varint(body, cursor)
                after = cursor + size
                _, cursor = _varint(body, cursor + 1)  # the timestamp's delta, after the attributes byte
                offset_delta, cursor = _varint(body, cursor)
                if base + offset_delta < offset:
                    cursor = after
                    continue
                key, cursor = _sized(body, cursor)
                value, cursor = _sized(body, cursor)
                n, cursor = _varint(body, cursor)
                headers = []
                for _ in range(n):
                    name, cursor = _sized(body, cursor)
                    header, cursor = _sized(body, cursor)
                    headers.append((name or b"", header))
                return base + offset_delta, _RawRecord(key, value, headers)
        except Exception:
            return at, None
        pos = end
    return offset, None


async def _fetch_raw(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bytes:
    """The partition's bytes from `offset`, fetched from its leader as they are (aiokafka's fetcher would parse
    them). The broker returns at least the first batch whatever its size."""
    client = consumer._client
    node = client.cluster.leader_for_partition(tp)
    request = FetchRequest(0, 1, RAW_FETCH_BYTES, 1, [(tp.topic, [(tp.partition, offset, RAW_FETCH_BYTES)])])
    response = await client.send(node, request)
    for _topic, partitions in response.topics:
        for partition, code, _high, *data in partitions:
            if partition == tp.partition:
                if code:
                    raise for_code(code)()
                return bytes(data[-1] or b"")
    raise KafkaError(f"the fetch of {tp.topic}:{tp.partition} returned no data")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was processed before partitions go to another instance."""

    def __init__(self, runner: _ConsumerRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.runner.lock:
            await self.runner.commit_processed()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"consumer": self.runner.sub.group,
                                               "partitions": [f"{tp.topic}:{tp.partition}" for tp in assigned]})


class _ConsumerRunner:
    def __init__(self, bus: KafkaBus, sub: Subscription) -> None:
        self.bus = bus
        self.sub = sub
        self.lock = asyncio.Lock()
        self.processed: dict[TopicPartition, int] = {}  # handled, offset not yet committed
        self.positions: dict[TopicPartition, int] = {}  # next offset to handle, for the lag gauge
        self.consumer: AIOKafkaConsumer | None = None

    async def commit_processed(self) -> None:
        if not self.processed or self.consumer is None or self.sub.broadcast:
            return
        offsets, self.processed = self.processed, {}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # Harmless: the idempotent consumer skips what is redelivered.
            log.warning("offset commit failed; messages will be redelivered and skipped",
                        extra={"consumer": self.sub.group, "error": str(exc)})

    async def run(self) -> None:
        backoff = self.bus.retry_initial_s
        while True:
            try:
                await self._run_once()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer lost the broker; reconnecting",
                            extra={"consumer": self.sub.group, "error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.bus.retry_max_s)

    async def _run_once(self) -> None:
        sub = self.sub
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bus.bootstrap,
            group_id=None if sub.broadcast else self.bus.physical(sub.group),
            client_id=sub.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=600_000,
            metadata_max_age_ms=5_000,
        )
        self.consumer = consumer
        try:
            await consumer.start()
            if sub.broadcast:
                topics = [self.bus.physical(t) for t in sub.topics]
                parts = [TopicPartition(t, p) for t in topics
                         for p in (consumer.partitions_for_topic(t) or await self._partitions(consumer, t))]
                consumer.assign(parts)
                await consumer.seek_to_beginning(*parts)
            else:
                consumer.subscribe([self.bus.physical(t) for t in sub.topics], listener=_Rebalance(self))
            size = sub.poll_size or (POLL_SIZE if sub.batch_handler else 500)
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=500, max_records=size)
                except Exception as exc:
                    if not _unreadable(exc):
                        raise
                    await self._read_apart(consumer, exc, size)
                    continue
                await self._hand_over(batch)
                self._record_lag(consumer)
        finally:
            # Shielded: stop_tasks cancels again every second, and a cancel in the middle of the last commit
            # or of the stop left the consumer running (its connections and its place in the group).
            await _to_the_end(self._close(consumer))

    async def _hand_over(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """A poll's records to the handler, then their offsets committed."""
        sub = self.sub
        async with self.lock:
            polled = [(tp, [Message(
                topic=self.bus.logical(record.topic), key=record.key, value=record.value,
                headers=tuple(record.headers or ()), partition=record.partition, offset=record.offset,
            ) for record in records]) for tp, records in batch.items() if records]
            if sub.batch_handler is not None and polled:
                # The whole poll in one call (one transaction), not one a partition: six partitions
                # made six transactions of a few hundred events where the handler pays a fixed cost
                # each (the ids' statement, the aggregates' upsert, the commit). Each partition's
                # messages stay in their order, so each key's do.
                await self.bus.deliver_batch(sub, [m for _, messages in polled for m in messages])
            for tp, messages in polled:
                if sub.batch_handler is None:
                    for message in messages:
                        await self.bus.deliver(sub, message)
                self.processed[tp] = messages[-1].offset + 1
                self.positions[tp] = messages[-1].offset + 1
            await self.commit_processed()

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        """The last commit, then the consumer's stop, each within its bound."""
        try:
            async with asyncio.timeout(STOP_COMMIT_S), self.lock:
                await self.commit_processed()
        except Exception as exc:
            log.warning("last offset commit failed; messages will be redelivered and skipped",
                        extra={"consumer": self.sub.group, "error": repr(exc)})
        self.consumer = None
        try:
            async with asyncio.timeout(STOP_CONSUMER_S):
                await consumer.stop()
        except Exception as exc:
            log.warning("consumer did not stop cleanly", extra={"consumer": self.sub.group, "error": repr(exc)})

    # records aiokafka cannot read ----------------------------------------------------
    async def _read_apart(self, consumer: AIOKafkaConsumer, error: Exception, size: int) -> None:
        """A poll failed on a record aiokafka cannot read: read the partitions one at a time to find it,
        dead-letter it and go on (a reconnect would read it again for ever).

        aiokafka drops the failed poll's records and may have moved the positions of partitions it had
        read, so each partition starts again where this runner stands (its committed offset; a broadcast
        runner's own position). When no partition fails again the error is raised: the runner reconnects.
        """
        log.warning("a poll failed on a record; reading the partitions one at a time",
                    extra={"consumer": self.sub.group, "error": repr(error)[:500]})
        parts = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        for tp in parts:
            at = self.positions.get(tp) if self.sub.broadcast else await consumer.committed(tp)
            if at is None:
                at = (await consumer.beginning_offsets([tp]))[tp]
            consumer.seek(tp, at)
        for tp in parts:
            if await self._read_partition(consumer, tp, size):
                return
        raise error

    async def _read_partition(self, consumer: AIOKafkaConsumer, tp: TopicPartition, size: int) -> bool:
        """Up to `size` records of one partition handed over as usual; True when one could not be read (it
        is dead-lettered, and the records before it handed over, in order)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_APART_S
        end = (await consumer.end_offsets([tp]))[tp]
        read, failed = 0, False
        while not failed and read < size and await consumer.position(tp) < end and loop.time() < deadline:
            try:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=size - read)
            except Exception as exc:
                if not _unreadable(exc):
                    raise
                failed = True
                continue
            read += len(batch.get(tp, ()))
            await self._hand_over(batch)
        if not failed:
            return False
        # A failed poll leaves the position where it started: read from there one record at a time.
        consumer.seek(tp, await consumer.position(tp))  # and drop the fetch the failure left behind
        before: list[Any] = []
        while len(before) <= size and await consumer.position(tp) < end and loop.time() < deadline:
            try:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            except Exception as exc:
                if not _unreadable(exc):
                    raise
                await self._hand_over({tp: before})
                await self._skip_unreadable(consumer, tp, await consumer.position(tp), exc)
                return True
            before += batch.get(tp, ())
        await self._hand_over({tp: before})
        return False

    async def _skip_unreadable(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int,
                               error: Exception) -> None:
        """Dead-letter the first record at or after `offset`, which aiokafka failed to read, and seek past it.

        The dead letter carries the record's key, value and headers as the partition holds them (fetched
        raw; header keys that are not UTF-8 written with backslash escapes), or, when its bytes cannot be
        had, only where it was and why.
        """
        topic = self.bus.logical(tp.topic)
        try:
            at, raw = read_raw(await _fetch_raw(consumer, tp, offset), offset)
            why = "its bytes did not parse"
        except Exception as exc:
            at, raw, why = offset, None, f"its bytes could not be fetched: {exc!r}"
        if raw is not None:
            message = Message(topic=topic, key=raw.key, value=raw.value or b"", partition=tp.partition, offset=at,
                              headers=tuple((name.decode("utf-8", "backslashreplace"), value or b"")
                                            for name, value in raw.headers))
            reason = (f"unreadable record: {error!r} (header keys that are not UTF-8 are written here with "
                      "backslash escapes)")
        else:
            message = Message(topic=topic, key=None, value=b"", partition=tp.partition, offset=at)
            reason = f"unreadable record at {tp.topic}:{tp.partition}:{at}: {error!r}; {why}"
        async with self.lock:
            await self.bus._dead_letter(self.sub, message, reason, 1)
            consumer.seek(tp, at + 1)
            self.processed[tp] = at + 1
            self.positions[tp] = at + 1
            await self.commit_processed()

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> set[int]:
        for _ in range(50):
            parts = consumer.partitions_for_topic(topic)
            if parts:
                return set(parts)
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise BusUnavailable(f"topic {topic} has no partitions")

    def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = self.positions.get(tp)
            if high is None or position is None:
                continue
            CONSUMER_LAG.labels(consumer=self.sub.group, topic=tp.topic,
                                partition=str(tp.partition)).set(max(0, high - position))


class KafkaBus:
    backend = "kafka"

    def __init__(self, bootstrap: str, *, client_id: str, partitions: int = 6, prefix: str = "",
                 retry_initial_s: float = 0.2, retry_max_s: float = 10.0, replication_factor: int = 1) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.prefix = prefix
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._producer: AIOKafkaProducer | None = None
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._topics_ready = False
        self._last_error: str | None = None
        self._last_ok: float | None = None
        self._producer_lock = asyncio.Lock()

    def physical(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    def logical(self, topic: str) -> str:
        return topic[len(self.prefix):] if self.prefix and topic.startswith(self.prefix) else topic

    # lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        for sub in self._subs:
            self._launch(sub)

    def _launch(self, sub: Subscription) -> None:
        runner = _ConsumerRunner(self, sub)
        self._tasks.append(asyncio.create_task(self._supervise(runner), name=f"kafka:{sub.group}"))

    async def _supervise(self, runner: _ConsumerRunner) -> None:
        backoff = self.retry_initial_s
        while True:
            try:
                await self.ensure_topics()
                await runner.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = repr(exc)
                log.warning("consumer waiting for the broker", extra={"consumer": runner.sub.group,
                                                                     "error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    def subscribe(self, subscription: Subscription) -> None:
        self._subs.append(subscription)
        if self._tasks:
            self._launch(subscription)

    def state(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "bootstrap": self.bootstrap,
            "connected": self._last_error is None and self._last_ok is not None,
            "last_error": self._last_error,
        }

    # topics ------------------------------------------------------------------------
    def _topic_configs(self) -> dict[str, str]:
        """Kept for ever (the topics are the record a replay rebuilds from); with replicas, acks=all needs
        two in sync, so one broker down loses no acknowledged event."""
        configs = {"retention.ms": "-1"}
        if self.replication_factor >= 3:
            configs["min.insync.replicas"] = "2"
        return configs

    async def ensure_topics(self) -> None:
        """Create the domain topics (unlimited retention) and their dead-letter topics."""
        if self._topics_ready:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                    request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name=self.physical(t), num_partitions=self.partitions,
                         replication_factor=self.replication_factor, topic_configs=self._topic_configs())
                for topic in DOMAIN_TOPICS for t in (topic, dlq_topic(topic)) if self.physical(t) not in existing
            ]
            if wanted:
                with contextlib.suppress(TopicAlreadyExistsError):
                    result = await admin.create_topics(wanted)
                    for name, code, *_ in getattr(result, "topic_errors", []):
                        if code not in (0, 36):  # 36: already exists (another instance won)
                            raise BusUnavailable(f"could not create topic {name}: error {code}")
            self._topics_ready = True
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"broker at {self.bootstrap} unreachable: {exc!r}") from exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    # producing ---------------------------------------------------------------------
    async def _get_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id=self.client_id,
                    enable_idempotence=True, acks="all", linger_ms=5,
                    request_timeout_ms=15_000, max_batch_size=1024 * 1024,
                )
                try:
                    await producer.start()
                except Exception:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def _send_batches(self, producer: AIOKafkaProducer,
                            messages: Sequence[Message]) -> list[tuple[list[Message], Any]]:
        """Queue the messages as one record batch per partition; each batch's messages and the future of its ack.

        The partition is the one `send()` would pick (the default murmur2 partitioner on the key),
        and each partition's messages keep their order. Building the batches here costs a few
        microseconds a message where `send()` costs about twenty (its per-message future and
        accumulator round): the relay's largest cost before.
        """
        by_partition: dict[tuple[str, int], list[Message]] = {}
        partitions: dict[str, list[int]] = {}
        chosen_for: dict[tuple[str, bytes | None], int] = {}  # murmur2 is pure Python: once a key
        for m in messages:
            topic = self.physical(m.topic)
            chosen = chosen_for.get((topic, m.key))
            if chosen is None:
                if topic not in partitions:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                chosen = _PARTITIONER(m.key, partitions[topic], partitions[topic])
                if m.key is not None:  # no key: a random partition each, as send() picks
                    chosen_for[(topic, m.key)] = chosen
            by_partition.setdefault((topic, chosen), []).append(m)
        sent: list[tuple[list[Message], Any]] = []
        for (topic, partition), group in by_partition.items():
            batch = producer.create_batch()
            in_batch: list[Message] = []
            for m in group:
                if batch.append(key=m.key, value=m.value, timestamp=None, headers=list(m.headers)) is None:
                    batch.close()  # closed before it is queued: send() can never add to it
                    sent.append((in_batch, await producer.send_batch(batch, topic, partition=partition)))
                    batch, in_batch = producer.create_batch(), []
                    if batch.append(key=m.key, value=m.value, timestamp=None, headers=list(m.headers)) is None:
                        raise RecordTooLargeError(f"a message of {len(m.value)} bytes does not fit in a record batch")
                in_batch.append(m)
            if batch.record_count():
                batch.close()
                sent.append((in_batch, await producer.send_batch(batch, topic, partition=partition)))
        return sent

    async def _drop_producer(self) -> None:
        # Rebuilt for the next call: after a lost broker (idempotence covers the resend), and after a refused
        # batch, whose sequence numbers the idempotent producer had counted (the next batch would be out of order).
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish and wait for the broker's acks: BusUnavailable when it cannot take them now, PublishRefused
        (a BusUnavailable) when it refused some for good."""
        if not messages:
            return
        try:
            await self.ensure_topics()
            producer = await self._get_producer()
            sent = await self._send_batches(producer, messages)
            outcomes = await asyncio.gather(*(ack for _, ack in sent), return_exceptions=True)
        except (TimeoutError, KafkaError, OSError) as exc:
            await self._drop_producer()
            if _refusal(exc):
                raise PublishRefused([(m, exc) for m in messages]) from exc
            self._last_error = repr(exc)
            raise BusUnavailable(f"broker at {self.bootstrap} unreachable: {exc!r}") from exc
        failed = [(group, outcome) for (group, _), outcome in zip(sent, outcomes, strict=True)
                  if isinstance(outcome, BaseException)]
        if failed:
            await self._drop_producer()
            refused = [(m, error) for group, error in failed if _refusal(error) for m in group]
            transient = next((error for _, error in failed if not _refusal(error)), None)
            if transient is not None and refused:
                # A refused batch puts the idempotent producer's later batches of its partition out of
                # sequence (OutOfOrderSequenceNumber): those go again, in order, on the new producer, once.
                again = [m for group, error in failed if not _refusal(error) for m in group]
                try:
                    await self.publish(again)
                    transient = None
                except PublishRefused as more:
                    refused += more.refused
                    transient = None
                except BusUnavailable:
                    pass
            if transient is not None:  # sent again whole: consumers skip what was acknowledged
                self._last_error = repr(transient)
                raise BusUnavailable(f"broker at {self.bootstrap} unreachable: {transient!r}") from transient
            raise PublishRefused(refused) from failed[0][1]
        self._last_error = None
        self._last_ok = time.monotonic()
        for topic, n in collections.Counter(m.topic for m in messages).items():
            PUBLISHED.labels(topic=topic).inc(n)

    # consuming ---------------------------------------------------------------------
    async def deliver(self, sub: Subscription, message: Message) -> None:
        """Run the handler; dead-letter permanent failures, retry transient ones without limit."""
        attempts = 0
        backoff = self.retry_initial_s
        while True:
            attempts += 1
            try:
                await sub.handler(message)
                return
            except DeadLetter as exc:
                await self._dead_letter(sub, message, str(exc), attempts)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("handler failed (transient); retrying",
                            extra={"consumer": sub.group, "topic": message.topic,
                                   "partition": message.partition, "offset": message.offset,
                                   "error": repr(exc), "attempt": attempts})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)

    async def deliver_batch(self, sub: Subscription, messages: Sequence[Message]) -> None:
        """deliver() for a batch handler: a transient failure retries the whole batch (the consumer skips
        what had committed), the dead letters it returns go to their dead-letter topics."""
        assert sub.batch_handler is not None
        attempts = 0
        backoff = self.retry_initial_s
        while True:
            attempts += 1
            try:
                dead = await sub.batch_handler(messages)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A poll spans partitions: its first message says where it starts.
                log.warning("batch handler failed (transient); retrying",
                            extra={"consumer": sub.group, "topic": messages[0].topic,
                                   "partition": messages[0].partition, "offset": messages[0].offset,
                                   "messages": len(messages), "partitions": len({(m.topic, m.partition)
                                                                                  for m in messages}),
                                   "error": repr(exc), "attempt": attempts})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
        for message, reason in dead:
            await self._dead_letter(sub, message, reason, attempts)

    async def _dead_letter(self, sub: Subscription, message: Message, reason: str, attempts: int) -> None:
        """Publish the message to its dead-letter topic with the reason, shortened if the broker refuses the
        whole copy; until it is published the consumer holds the partition (nothing is skipped unrecorded)."""
        DEAD_LETTERED.labels(consumer=sub.group, topic=message.topic).inc()
        log.error("dead-lettered", extra={"consumer": sub.group, "topic": message.topic,
                                          "partition": message.partition, "offset": message.offset,
                                          "reason": reason[:500]})
        dead = replace(message, topic=dlq_topic(message.topic),
                       headers=(*message.headers, *_reason_headers(reason, sub.group, attempts)))
        backoff = self.retry_initial_s
        failures, logged = 0, -DEAD_LETTER_LOG_S
        while True:
            try:
                await self.publish([dead])
                return
            except BusUnavailable as exc:
                # The copy's own fault (too large with the reason added, an invalid record; aiokafka reports
                # the broker's INVALID_RECORD as an UnknownError): a shortened copy is refused for neither.
                refusal = (exc.refused[0][1] if isinstance(exc, PublishRefused) and exc.messages_at_fault
                           else exc.__cause__ if isinstance(exc.__cause__, UnknownError) else None)
                if refusal is not None and dead.header("x-truncated") is None:
                    log.warning("dead letter refused whole; publishing a shortened copy",
                                extra={"consumer": sub.group, "topic": message.topic,
                                       "partition": message.partition, "offset": message.offset,
                                       "error": str(exc)[:300]})
                    dead = shortened(message, reason, consumer=sub.group, attempts=attempts, refusal=refusal)
                    continue
                failures += 1
                if time.monotonic() - logged >= DEAD_LETTER_LOG_S:
                    logged = time.monotonic()
                    # What to do goes in the message: the JSON formatter keeps only the allowed extra keys.
                    log.error("dead letter not published; its partition waits, retrying: %s",
                              _what_to_do(exc, self.physical(dead.topic)),
                              extra={"consumer": sub.group, "topic": message.topic,
                                     "partition": message.partition, "offset": message.offset,
                                     "count": failures, "error": str(exc)[:300]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
