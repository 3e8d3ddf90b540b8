"""Idempotent consumers: each event applied once, recorded in the same transaction as its effects."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yardstick.bus import DeadLetter, Message
from yardstick.bus.codec import decode
from yardstick.events import Envelope
from yardstick.observability import CONSUMED, event_id

log = logging.getLogger(__name__)

EventHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class NotFound(Exception):
    """An event names something that does not exist: a permanent failure (dead-lettered)."""


def processed_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events", metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


# SQLSTATE classes that say "try again" rather than "this event is wrong": connection exceptions,
# transaction rollbacks (deadlock, serialization), insufficient resources (too many connections),
# operator intervention (shutdown, "starting up", cancelled), system errors; and lock_not_available.
_TRANSIENT_SQLSTATE_CLASSES = {"08", "40", "53", "57", "58"}
_TRANSIENT_SQLSTATES = {"55P03"}
_TRANSIENT_DRIVER_ERRORS = {"ConnectionDoesNotExistError", "CannotConnectNowError", "InterfaceError",
                            "ConnectionFailureError", "PostgresConnectionError", "InternalClientError"}


def is_transient(exc: BaseException) -> bool:
    """Database or network unreachable or busy: retry. Everything else is the message's fault."""
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        # SQLAlchemy wraps most asyncpg server errors in a plain DBAPIError: judge by the
        # driver's error (its SQLSTATE, or the connection error that caused it).
        return any(_transient_driver_error(e) for e in _chain(exc.orig))
    return _transient_driver_error(exc)


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _transient_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | OSError | TimeoutError):
        return True
    if type(exc).__name__ in _TRANSIENT_DRIVER_ERRORS:
        return True
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return isinstance(code, str) and (code[:2] in _TRANSIENT_SQLSTATE_CLASSES or code in _TRANSIENT_SQLSTATES)


class IdempotentConsumer:
    """Turns bus messages into typed events and applies each one exactly once.

    `handlers` maps event types to functions that take the open session and the event;
    types without a handler are recorded as seen and skipped. Offsets are committed by the
    bus only after this returns, i.e. after the transaction committed.
    """

    def __init__(self, *, name: str, sessions: async_sessionmaker[AsyncSession], table: Table,
                 handlers: Mapping[str, EventHandler],
                 after_commit: Callable[[Envelope], Awaitable[None]] | None = None) -> None:
        self.name = name
        self.sessions = sessions
        self.table = table
        self.handlers = dict(handlers)
        self.after_commit = after_commit
        self.applied = 0
        self.skipped = 0

    async def __call__(self, message: Message) -> None:
        envelope = decode(message)  # raises DeadLetter
        token = event_id.set(envelope.id)
        try:
            applied = await self.apply(envelope)
        finally:
            event_id.reset(token)
        if applied and self.after_commit is not None:
            await self.after_commit(envelope)

    async def apply(self, envelope: Envelope) -> bool:
        handler = self.handlers.get(envelope.type)
        t = self.table
        try:
            async with self.sessions() as session, session.begin():
                seen = (await session.execute(
                    select(t.c.event_id).where(t.c.consumer == self.name, t.c.event_id == envelope.id)
                )).first()
                if seen is not None:
                    self.skipped += 1
                    CONSUMED.labels(consumer=self.name, type=envelope.type, outcome="duplicate").inc()
                    return False
                await session.execute(t.insert().values(consumer=self.name, event_id=envelope.id))
                if handler is not None:
                    await handler(session, envelope)
        except DeadLetter:
            raise
        except NotFound as exc:
            raise DeadLetter(f"{envelope.type} {envelope.id}: {exc}") from exc
        except Exception as exc:
            if is_transient(exc):
                raise
            # An integrity error from a concurrent duplicate is a duplicate, not a poison message.
            if _is_duplicate_key(exc):
                self.skipped += 1
                return False
            raise DeadLetter(f"{envelope.type} {envelope.id}: handler failed: {exc!r}"[:2000]) from exc
        self.applied += 1
        CONSUMED.labels(consumer=self.name, type=envelope.type, outcome="applied").inc()
        return True


def _is_duplicate_key(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "processed_events" in text and ("unique" in text or "duplicate" in text)
