"""Which database failures a consumer retries (the environment's) and which it dead-letters (the message's)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection, PGDialect_asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from yardstick import db, events
from yardstick.bus import DeadLetter
from yardstick.bus.codec import encode
from yardstick.consumer import IdempotentConsumer, is_transient, processed_table

metadata = MetaData()
processed = processed_table(metadata)
late = MetaData()
# A table a migration adds while the consumer runs.
tallies = Table("tallies", late, Column("unit_id", String(100), primary_key=True), Column("n", Integer))


def _asyncpg_error(code: str, message: str = "refused") -> DBAPIError:
    """A server error as SQLAlchemy's asyncpg dialect raises it: asyncpg's error, translated, wrapped."""
    error = asyncpg.PostgresError.new({"C": code, "M": message, "S": "ERROR"})
    dbapi = PGDialect_asyncpg.import_dbapi()
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, error)
    except dbapi.Error as translated:
        return DBAPIError.instance("SELECT 1", {}, translated, dbapi.Error)  # type: ignore[return-value]
    raise AssertionError("not translated")


def _sqlite_error(error: sqlite3.Error) -> DBAPIError:
    return DBAPIError.instance("SELECT 1", {}, error, sqlite3.Error)  # type: ignore[return-value]


# The environment's: a retry applies the event once it passes or an operator ends it.
ENVIRONMENT = {
    "0A000": "cached statement plan is invalid due to a database schema or configuration change",
    "42P01": "relation \"tallies\" does not exist",
    "42703": "column \"n\" does not exist",
    "42501": "permission denied for table tallies",
    "25006": "cannot execute UPDATE in a read-only transaction",
    "25P02": "current transaction is aborted",
    "55P03": "could not obtain lock on row",
    "55006": "object is in use",
    "57P01": "terminating connection due to administrator command",
    "57P02": "terminating connection due to crash of another server process",
    "57P03": "the database system is starting up",
    "57014": "canceling statement due to statement timeout",
    "53300": "too many connections",
    "53100": "could not extend file: No space left on device",
    "08006": "connection failure",
    "40001": "could not serialize access",
    "40P01": "deadlock detected",
    "XX000": "cache lookup failed for type 16384",
}
# The message's own data: dead-lettered.
MESSAGE = {
    "22001": "value too long for type character varying(100)",
    "22003": "numeric value out of range",
    "22P02": "invalid input syntax for type integer",
    "22012": "division by zero",
    "23505": "duplicate key value violates unique constraint",
    "23503": "insert or update on table violates foreign key constraint",
    "23502": "null value in column violates not-null constraint",
    "23514": "new row violates check constraint",
}


@pytest.mark.parametrize("code", sorted(ENVIRONMENT))
def test_a_refusal_of_the_environment_is_retried(code: str) -> None:
    wrapped = _asyncpg_error(code, ENVIRONMENT[code])
    assert is_transient(wrapped), f"{code} {type(wrapped).__name__}"
    # The driver's own error, from a handler's raw asyncpg query.
    assert is_transient(asyncpg.PostgresError.new({"C": code, "M": ENVIRONMENT[code]}))


@pytest.mark.parametrize("code", sorted(MESSAGE))
def test_an_error_in_the_messages_data_is_permanent(code: str) -> None:
    assert not is_transient(_asyncpg_error(code, MESSAGE[code]))
    assert not is_transient(asyncpg.PostgresError.new({"C": code, "M": MESSAGE[code]}))


def test_sqlites_errors_are_judged_by_their_kind() -> None:
    for environment in (sqlite3.OperationalError("database is locked"), sqlite3.OperationalError("no such table: t"),
                        sqlite3.DatabaseError("database disk image is malformed"),
                        sqlite3.ProgrammingError("Cannot operate on a closed database.")):
        assert is_transient(_sqlite_error(environment)), environment
    for message in (sqlite3.IntegrityError("UNIQUE constraint failed: t.id"), sqlite3.DataError("string too big")):
        assert not is_transient(_sqlite_error(message)), message
    # Failures outside the database stay the message's (a handler's bug on this event).
    assert not is_transient(KeyError("window"))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'consumer.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


def _event(n: int) -> events.Envelope:
    return events.Envelope.of(
        events.FeedbackReceived(feedback_id=f"f-{n}", unit_id="finance", channel="window",
                                occurred_at=datetime(2026, 3, 1, 9, tzinfo=UTC), year=2026, level=4,
                                window_id="finance-w1"),
        source="test", key="finance")


async def _count(session: AsyncSession, envelope: events.Envelope) -> None:
    n = (await session.execute(select(tallies.c.n).where(tallies.c.unit_id == envelope.key))).scalar()
    if n is None:
        await session.execute(tallies.insert().values(unit_id=envelope.key, n=1))
    else:
        await session.execute(tallies.update().where(tallies.c.unit_id == envelope.key).values(n=n + 1))


async def test_an_event_met_by_a_migration_not_yet_run_waits_for_it(
        engine: AsyncEngine, caplog: pytest.LogCaptureFixture) -> None:
    consumer: IdempotentConsumer[events.Envelope] = IdempotentConsumer(
        name="c", sessions=db.session_factory(engine), table=processed, handlers={"feedback.received": _count})
    message = encode(_event(1))
    with caplog.at_level(logging.WARNING, logger="yardstick.consumer"), pytest.raises(DBAPIError) as raised:
        await consumer(message)  # "no such table": the bus retries it, never a dead letter
    assert is_transient(raised.value)
    assert any("the database refused" in r.getMessage() and "check migrations" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    async with engine.begin() as conn:
        await conn.run_sync(late.create_all)  # the migration ran
    await consumer(message)
    await consumer(message)
    async with engine.connect() as conn:
        assert (await conn.execute(select(tallies.c.n))).scalar_one() == 1


@pytest.mark.parametrize("code", ["0A000", "42P01", "42501"])
async def test_a_poll_the_database_refuses_is_retried_whole_not_dead_lettered_in_halves(
        engine: AsyncEngine, code: str) -> None:
    applied: list[str] = []
    refusals = 1

    async def batch_handler(session: AsyncSession, envelopes: list[events.Envelope]) -> None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise _asyncpg_error(code, ENVIRONMENT[code])
        applied.extend(e.id for e in envelopes)

    async def refused(session: AsyncSession, envelope: events.Envelope) -> None:
        raise _asyncpg_error(code, ENVIRONMENT[code])  # the halves end in single events, refused as well

    consumer: IdempotentConsumer[events.Envelope] = IdempotentConsumer(
        name="c", sessions=db.session_factory(engine), table=processed, handlers={"feedback.received": refused},
        batch_handler=batch_handler)
    poll = [encode(_event(n)) for n in range(4)]
    with pytest.raises(DBAPIError):
        await consumer.batch(poll)
    assert await consumer.batch(poll) == []
    assert applied == [m.header("ce_id").decode() for m in poll]  # type: ignore[union-attr]


@pytest.mark.parametrize("code", sorted(MESSAGE))
async def test_an_event_whose_data_the_database_refuses_is_dead_lettered(engine: AsyncEngine, code: str) -> None:
    async def refused(session: AsyncSession, envelope: events.Envelope) -> None:
        raise _asyncpg_error(code, MESSAGE[code])

    consumer: IdempotentConsumer[events.Envelope] = IdempotentConsumer(
        name="c", sessions=db.session_factory(engine), table=processed, handlers={"feedback.received": refused})
    with pytest.raises(DeadLetter, match="handler failed"):
        await consumer(encode(_event(1)))
