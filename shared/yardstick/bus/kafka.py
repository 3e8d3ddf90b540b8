"""Kafka backend (aiokafka): idempotent producer, manual commits, dead-letter topics."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from yardstick.bus import BusUnavailable, DeadLetter, Message, Subscription, dlq_topic
from yardstick.events import DOMAIN_TOPICS
from yardstick.observability import CONSUMER_LAG, DEAD_LETTERED, PUBLISHED
from yardstick.tasks import stop_tasks

log = logging.getLogger(__name__)
# Messages a poll handed to a batch handler, unless its subscription says otherwise (Subscription.poll_size).
POLL_SIZE = 2000
_PARTITIONER = DefaultPartitioner()


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
        await consumer.start()
        try:
            if sub.broadcast:
                topics = [self.bus.physical(t) for t in sub.topics]
                parts = [TopicPartition(t, p) for t in topics
                         for p in (consumer.partitions_for_topic(t) or await self._partitions(consumer, t))]
                consumer.assign(parts)
                await consumer.seek_to_beginning(*parts)
            else:
                consumer.subscribe([self.bus.physical(t) for t in sub.topics], listener=_Rebalance(self))
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=sub.poll_size or (
                    POLL_SIZE if sub.batch_handler else 500))
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
                self._record_lag(consumer)
        finally:
            with contextlib.suppress(Exception):
                async with self.lock:
                    await self.commit_processed()
            self.consumer = None
            await consumer.stop()

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
                 retry_initial_s: float = 0.2, retry_max_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.partitions = partitions
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
                NewTopic(name=self.physical(t), num_partitions=self.partitions, replication_factor=1,
                         topic_configs={"retention.ms": "-1"})
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

    async def _send_batches(self, producer: AIOKafkaProducer, messages: Sequence[Message]) -> list[Any]:
        """Queue the messages as one record batch per partition; the futures of their acks.

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
        futures = []
        for (topic, partition), group in by_partition.items():
            batch = producer.create_batch()
            for m in group:
                if batch.append(key=m.key, value=m.value, timestamp=None, headers=list(m.headers)) is None:
                    batch.close()  # closed before it is queued: send() can never add to it
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=m.key, value=m.value, timestamp=None, headers=list(m.headers)) is None:
                        raise KafkaError(f"a message of {len(m.value)} bytes does not fit in a record batch")
            if batch.record_count():
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        try:
            await self.ensure_topics()
            producer = await self._get_producer()
            await asyncio.gather(*await self._send_batches(producer, messages))
        except (TimeoutError, KafkaError, OSError) as exc:
            self._last_error = repr(exc)
            # A producer that lost the broker is rebuilt; idempotence covers the resend.
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                self._producer = None
            raise BusUnavailable(f"broker at {self.bootstrap} unreachable: {exc!r}") from exc
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
        DEAD_LETTERED.labels(consumer=sub.group, topic=message.topic).inc()
        log.error("dead-lettered", extra={"consumer": sub.group, "topic": message.topic,
                                          "partition": message.partition, "offset": message.offset,
                                          "reason": reason[:500]})
        headers = (*message.headers, ("x-error", reason[:4000].encode()),
                   ("x-consumer", sub.group.encode()), ("x-attempts", str(attempts).encode()))
        dead = replace(message, topic=dlq_topic(message.topic), headers=headers)
        backoff = self.retry_initial_s
        while True:
            try:
                await self.publish([dead])
                return
            except BusUnavailable:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
