"""The bus: one interface, a Kafka backend for production and an in-process one for `yardstick run`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """A message as Kafka carries it: key, value and headers; partition/offset once read."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int = -1
    offset: int = -1

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class BusUnavailable(Exception):
    """The broker cannot take or give messages right now: transient, retry later."""


class DeadLetter(Exception):
    """A message that can never be processed: it goes to `<topic>.dlq` with this reason."""


Handler = Callable[[Message], Awaitable[None]]
# Takes a poll's messages of one partition, in order; returns the dead letters (message, reason).
BatchHandler = Callable[[Sequence[Message]], Awaitable[Sequence[tuple[Message, str]]]]


@dataclass
class Subscription:
    group: str
    topics: Sequence[str]
    handler: Handler
    # broadcast: every instance reads every message from the beginning, no group offsets
    # (the auth.v1 revocation list each instance keeps in memory).
    broadcast: bool = False
    # When set the bus hands over messages in batches (retrying a transient failure of the whole batch).
    batch_handler: BatchHandler | None = None
    # At most this many messages a poll (a batch handler's call); the bus's own default when None.
    poll_size: int | None = None


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Bus(Protocol):
    backend: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish and wait until the broker has them all (raises BusUnavailable)."""
        ...

    def subscribe(self, subscription: Subscription) -> None:
        """Register a consumer; it runs from `start()` until `stop()`."""
        ...

    def state(self) -> dict[str, Any]: ...
