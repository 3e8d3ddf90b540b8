"""In-process bus for the one-process mode and unit tests: an append-only log per topic."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from yardstick.bus import DeadLetter, Message, Subscription, dlq_topic
from yardstick.observability import DEAD_LETTERED, PUBLISHED
from yardstick.tasks import stop_tasks

log = logging.getLogger(__name__)

DLQ_SUFFIX = dlq_topic("")
TRIM_EVERY = 1000
# Dead letters a topic keeps in the one-process mode when no group reads them (the newest; up to
# TRIM_EVERY more gather between two trims).
DEAD_LETTERS_KEPT = 10_000


class MemoryBus:
    """Keeps every message, so a late subscriber (or a rebuild) reads from the beginning.

    Groups keep one offset per topic; a handler that raises DeadLetter sends the message
    to the topic's dead-letter log, any other exception is retried after a pause (the
    in-process stand-in for an unreachable database).

    The log lives in memory only. With `ack_when_applied` (the one-process mode, `yardstick run`),
    a publish returns once every group that reads the topic has applied its messages, so a relay
    deletes its outbox rows only then: a stop or crash before that leaves them in the outbox, the
    next start publishes them again, and the consumers skip what they had applied by event id
    (decision 0027). In that mode the log also lets go of what every group reading a topic has
    applied (a topic no group reads, at once; of dead letters, the newest 10,000 stay): a quick start left running under
    load would otherwise hold every message it ever carried. Offsets stay those of the whole log.
    Unit tests keep the default: every message is kept, and a publish returns once they are logged.
    """

    backend = "memory"

    def __init__(self, retry_s: float = 0.2, batch: int = 500, *, ack_when_applied: bool = False) -> None:
        self.logs: dict[str, list[Message]] = defaultdict(list)
        self._trimmed: dict[str, int] = defaultdict(int)  # messages let go from each log's start
        self._offsets: dict[tuple[str, str], int] = defaultdict(int)
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Condition()
        self._retry_s = retry_s
        self.batch = batch  # messages per call of a batch handler
        self._running = False
        self._ack_when_applied = ack_when_applied

    async def start(self) -> None:
        self._running = True
        for sub in self._subs:
            self._launch(sub)

    def _launch(self, sub: Subscription) -> None:
        self._tasks.append(asyncio.create_task(self._consume(sub), name=f"memory-bus:{sub.group}"))

    async def stop(self) -> None:
        self._running = False
        await stop_tasks(self._tasks)
        self._tasks.clear()

    async def publish(self, messages: Sequence[Message]) -> None:
        async with self._changed:
            ends: dict[str, int] = {}
            for m in messages:
                log_ = self.logs[m.topic]
                end = self._trimmed[m.topic] + len(log_)
                log_.append(replace(m, partition=0, offset=end))
                ends[m.topic] = end + 1
                PUBLISHED.labels(topic=m.topic).inc()
            self._changed.notify_all()
            if self._ack_when_applied:
                # The condition's lock is let go while waiting; consumers notify as they move on.
                await self._changed.wait_for(lambda: self._applied(ends))
                self._trim()

    def _applied(self, ends: dict[str, int]) -> bool:
        """Every group reading one of these topics is past its end offset there."""
        return all(self._offsets[(sub.group, topic)] >= end
                   for sub in self._subs for topic, end in ends.items() if topic in sub.topics)

    async def _moved_on(self) -> None:
        if self._ack_when_applied:
            self._trim()
            async with self._changed:
                self._changed.notify_all()

    def published(self, topic: str) -> int:
        """How many messages the topic has had: the offset its next one gets."""
        return self._trimmed[topic] + len(self.logs[topic])

    def _trim(self) -> None:
        for topic, log_ in self.logs.items():
            if not log_:
                continue
            readers = [self._offsets[(sub.group, topic)] for sub in self._subs if topic in sub.topics]
            dead_letters = topic.endswith(DLQ_SUFFIX) and not readers
            if dead_letters:
                # Each was logged as an error when it came, and no one reads them in one process: the
                # newest DEAD_LETTERS_KEPT stay (a consumer dead-lettering everything must not fill memory).
                drop = len(log_) - DEAD_LETTERS_KEPT
            else:
                drop = (min(readers) if readers else self.published(topic)) - self._trimmed[topic]
            # By the thousand (a slice's delete moves what stays), or all of it when everything is applied.
            if drop >= TRIM_EVERY or (drop > 0 and drop == len(log_)):
                del log_[:drop]
                self._trimmed[topic] += drop
                if dead_letters:
                    log.warning("the oldest dead letters let go", extra={"topic": topic, "count": drop})

    def subscribe(self, subscription: Subscription) -> None:
        self._subs.append(subscription)
        if self._running:
            self._launch(subscription)

    def state(self) -> dict[str, Any]:
        return {"backend": self.backend, "connected": True}

    def lag(self, group: str) -> int:
        return sum(
            self.published(topic) - max(self._offsets[(group, topic)], self._trimmed[topic])
            for sub in self._subs if sub.group == group for topic in sub.topics
        )

    async def _consume(self, sub: Subscription) -> None:
        while True:
            pending = []
            for topic in sub.topics:
                at = self._at(sub, topic)  # first: a group that subscribed late starts at what is kept
                if at < len(self.logs[topic]):
                    pending.append((topic, self.logs[topic][at]))
            if not pending:
                async with self._changed:
                    await self._changed.wait_for(lambda: any(
                        self._offsets[(sub.group, t)] < self.published(t) for t in sub.topics))
                continue
            if sub.batch_handler is not None:
                for topic in sub.topics:
                    start = self._at(sub, topic)
                    offset = self._offsets[(sub.group, topic)]  # read after _at, which may move it on
                    chunk = self.logs[topic][start:start + (sub.poll_size or self.batch)]
                    if chunk:
                        await self._deliver_batch(sub, chunk)
                        self._offsets[(sub.group, topic)] = offset + len(chunk)
                        await self._moved_on()
                continue
            for topic, message in pending:
                await self._deliver(sub, message)
                self._offsets[(sub.group, topic)] += 1
                await self._moved_on()

    def _at(self, sub: Subscription, topic: str) -> int:
        """The group's next message's place in the kept log. A group that subscribed after its start
        was let go reads from what is kept, as a Kafka consumer past a topic's retention does."""
        key = (sub.group, topic)
        self._offsets[key] = max(self._offsets[key], self._trimmed[topic])
        return self._offsets[key] - self._trimmed[topic]

    async def _deliver_batch(self, sub: Subscription, messages: list[Message]) -> None:
        assert sub.batch_handler is not None
        while True:
            try:
                dead = await sub.batch_handler(messages)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch handler failed; retrying", extra={"consumer": sub.group})
                await asyncio.sleep(self._retry_s)
        for message, reason in dead:
            await self._dead_letter(sub, message, reason, 1)

    async def _dead_letter(self, sub: Subscription, message: Message, reason: str, attempts: int) -> None:
        DEAD_LETTERED.labels(consumer=sub.group, topic=message.topic).inc()
        log.error("dead-lettered", extra={"consumer": sub.group, "topic": message.topic,
                                          "offset": message.offset, "reason": reason})
        headers = (*message.headers, ("x-error", reason.encode()),
                   ("x-consumer", sub.group.encode()), ("x-attempts", str(attempts).encode()))
        await self.publish([replace(message, topic=dlq_topic(message.topic), headers=headers)])

    async def _deliver(self, sub: Subscription, message: Message) -> None:
        attempts = 0
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
            except Exception:
                log.exception("handler failed; retrying", extra={"consumer": sub.group})
                await asyncio.sleep(self._retry_s)
