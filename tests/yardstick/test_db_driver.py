"""`db.driver`: the hot paths' statements on the asyncpg connection, inside the session's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from yardstick import db
from yardstick.consumer import is_transient

metadata = MetaData()
things = Table("things", metadata, Column("id", String(64), primary_key=True), Column("n", Integer, nullable=False))

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(scratch_engine: Any) -> AsyncIterator[AsyncEngine]:
    async with scratch_engine("postgresql", metadata, "yt_driver") as engine:
        yield engine


async def _lock_is_free(engine: AsyncEngine, name: str) -> bool:
    async with engine.connect() as other:
        free = (await other.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": name})).scalar()
        await other.rollback()
    return bool(free)


async def test_a_lock_taken_on_the_driver_first_is_held_until_the_session_commits(engine: AsyncEngine) -> None:
    """The first statement of a transaction on the driver: SQLAlchemy had not begun it on the server yet.
    Run outside one, the transaction-scoped lock would end with its own statement."""
    sessions = db.session_factory(engine)
    async with db.transaction(sessions) as session:
        await db.xact_lock(session, "kiosk:a")
        assert not await _lock_is_free(engine, "kiosk:a")
        await db.xact_lock(session, "outbox:b", "outbox:c")
        assert not await _lock_is_free(engine, "outbox:c")
    assert await _lock_is_free(engine, "kiosk:a") and await _lock_is_free(engine, "outbox:c")


async def test_rows_inserted_on_the_driver_commit_and_roll_back_with_the_session(engine: AsyncEngine) -> None:
    sessions = db.session_factory(engine)
    with pytest.raises(RuntimeError):
        async with db.transaction(sessions) as session:
            assert await db.bulk_insert(session, things, [{"id": "a", "n": 1}], returning=things.c.id) == ["a"]
            raise RuntimeError("the request failed after its insert")
    async with sessions() as session:
        # One session, two transactions: the second gets its own connection, not the first one's.
        async with session.begin():
            await db.bulk_insert(session, things, [{"id": "b", "n": 2}, {"id": "c", "n": 3}])
        async with session.begin():
            inserted = await db.bulk_insert(session, things, [{"id": "c", "n": 9}, {"id": "d", "n": 4}],
                                            skip_conflicts=True, returning=things.c.id)
            assert inserted == ["d"]
            # The session's own statements see the driver's rows: one transaction.
            assert (await session.execute(select(func.count()).select_from(things))).scalar() == 3
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.id, things.c.n).order_by(things.c.id))).all() == [
            ("b", 2), ("c", 3), ("d", 4)]


async def test_a_driver_error_rolls_the_session_back_and_is_judged_like_sqlalchemys(engine: AsyncEngine) -> None:
    sessions = db.session_factory(engine)
    async with db.transaction(sessions) as session:
        await db.bulk_insert(session, things, [{"id": "x", "n": 1}])
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        async with db.transaction(sessions) as session:
            await db.bulk_insert(session, things, [{"id": "y", "n": 1}])
            await db.bulk_insert(session, things, [{"id": "x", "n": 2}])
    assert not is_transient(caught.value)  # the data's fault (SQLSTATE class 23), as through SQLAlchemy
    async with db.transaction(sessions) as session:  # the pool's connections are usable after it
        await db.bulk_insert(session, things, [{"id": "z", "n": 3}])
    async with engine.connect() as conn:
        assert [r[0] for r in await conn.execute(select(things.c.id).order_by(things.c.id))] == ["x", "z"]
