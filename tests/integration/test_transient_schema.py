"""On PostgreSQL, an event met by another pod's migration is retried and applied, never dead-lettered."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from yardstick import db, events
from yardstick.bus import DeadLetter, Message
from yardstick.bus.codec import encode
from yardstick.consumer import IdempotentConsumer, is_transient, processed_table

metadata = MetaData()
processed = processed_table(metadata)
tally = Table("tally", metadata, Column("unit_id", String(50), primary_key=True), Column("n", Integer, nullable=False))


def _admin() -> str:
    url = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL")
    if not url:
        pytest.fail("YARDSTICK_TEST_PG_ADMIN_URL is not set: run through `make test`", pytrace=False)
    return url


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[tuple[AsyncEngine, asyncpg.Connection]]:
    """A scratch database with the tally at 0: the consumer's engine and another pod's connection."""
    async with db.scratch_database(_admin(), "yt_schema") as url:
        engine = db.make_engine(url, pool_size=1, max_overflow=0)
        other = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                await conn.execute(tally.insert().values(unit_id="u", n=0))
            yield engine, other
        finally:
            await other.close()
            await engine.dispose()


def _message(n: int) -> Message:
    return encode(events.Envelope.of(
        events.FeedbackReceived(feedback_id=f"f{n}", unit_id="u", channel="window", occurred_at=datetime.now(UTC),
                                year=2026, level=3, window_id="w"), source="test", key="u"))


async def _count(session: AsyncSession, envelope: events.Envelope) -> None:
    # Reads, then writes, as the handlers do: both statements prepared once and cached per connection.
    n = (await session.execute(select(tally.c.n).where(tally.c.unit_id == envelope.key))).scalar_one()
    await session.execute(tally.update().where(tally.c.unit_id == envelope.key).values(n=n + 1))


async def _deliver(attempt: Callable[[], Awaitable[Any]], between: Callable[[], Awaitable[None]] | None = None,
                   ) -> tuple[Any, int]:
    """As the bus delivers: a DeadLetter fails the test, any other failure must be transient and is retried;
    `between` runs after each failure (the migration finishing). (What the attempt returned, attempts.)"""
    for attempts in range(1, 6):
        try:
            return await attempt(), attempts
        except DeadLetter as letter:
            pytest.fail(f"a valid event was dead-lettered: {letter}")
        except Exception as exc:
            assert is_transient(exc), repr(exc)
            if between is not None:
                await between()
    raise AssertionError("still failing after 5 attempts")


async def _tally(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(tally.c.n))).scalar_one())


async def test_an_event_applied_while_a_column_changes_type_is_applied() -> None:
    async with _database() as (engine, other):
        consumer: IdempotentConsumer[events.Envelope] = IdempotentConsumer(
            name="c", sessions=db.session_factory(engine), table=processed, handlers={"feedback.received": _count})
        await consumer(_message(1))
        # Another pod's migration: the consumer's prepared statements on the tally are stale now
        # (InvalidCachedStatementError, 0A000); the retry prepares them again and succeeds.
        await other.execute("ALTER TABLE tally ALTER COLUMN n TYPE bigint")
        message = _message(2)
        _, attempts = await _deliver(lambda: consumer(message))
        assert attempts == 2
        assert await _tally(engine) == 2
        # The event applied is never applied again.
        await consumer(message)
        assert await _tally(engine) == 2


async def test_a_poll_applied_while_a_column_changes_type_is_applied() -> None:
    async with _database() as (engine, other):
        async def batch_handler(session: AsyncSession, envelopes: list[events.Envelope]) -> None:
            for envelope in envelopes:
                await _count(session, envelope)

        consumer: IdempotentConsumer[events.Envelope] = IdempotentConsumer(
            name="c", sessions=db.session_factory(engine), table=processed, handlers={"feedback.received": _count},
            batch_handler=batch_handler)
        assert await consumer.batch([_message(1)]) == []
        await other.execute("ALTER TABLE tally ALTER COLUMN n TYPE bigint")
        poll = [_message(n) for n in range(2, 6)]
        dead, attempts = await _deliver(lambda: consumer.batch(poll))
        assert (dead, attempts) == ([], 2)
        assert await _tally(engine) == 5


async def test_an_event_met_by_a_rolling_migration_waits_for_it() -> None:
    async with _database() as (engine, other):
        consumer: IdempotentConsumer[events.Envelope] = IdempotentConsumer(
            name="c", sessions=db.session_factory(engine), table=processed, handlers={"feedback.received": _count})
        # The column renamed under this release's code (42703): retried until the migration is set right.
        await other.execute("ALTER TABLE tally RENAME COLUMN n TO total")

        async def set_right() -> None:
            await other.execute("ALTER TABLE tally RENAME COLUMN total TO n")

        message = _message(1)
        _, attempts = await _deliver(lambda: consumer(message), between=set_right)
        assert attempts == 2
        assert await _tally(engine) == 1
