"""The outbox relay on PostgreSQL: one holder of the lock, and letting go when its session dies."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from yardstick import events
from yardstick.bus.memory import MemoryBus
from yardstick.db import make_engine, new_metadata, scratch_database
from yardstick.outbox import Relay, add, outbox_table


def _admin() -> str:
    url = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL")
    if not url:
        pytest.fail("YARDSTICK_TEST_PG_ADMIN_URL is not set: run through `make test`", pytrace=False)
    return url


def _event(n: int) -> events.Envelope:
    now = datetime.now(UTC)
    return events.Envelope.of(events.FeedbackReceived(feedback_id=f"f{n}", unit_id="u", channel="window",
                                                      occurred_at=now, year=now.year, level=5),
                              source="test", key="u")


@contextlib.asynccontextmanager
async def _outbox_database(prefix: str) -> AsyncIterator[tuple[asyncpg.Connection, AsyncEngine, Table, str]]:
    """A fresh database holding an outbox table: (admin connection, engine, table, database name); dropped after."""
    async with scratch_database(_admin(), prefix) as url:
        admin = await asyncpg.connect(_admin().replace("postgresql+asyncpg", "postgresql"))
        engine = make_engine(url)
        metadata = new_metadata()
        table = outbox_table(metadata)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            yield admin, engine, table, url.rsplit("/", 1)[1]
        finally:
            await engine.dispose()
            await admin.close()


async def _scenario() -> None:
    async with _outbox_database("yt_relay") as (admin, engine, table, name):
        await _hand_over(admin, engine, table, name)


async def _hand_over(admin: asyncpg.Connection, engine: AsyncEngine, table: Table, name: str) -> None:
    bus = MemoryBus()
    relays = [Relay(engine=engine, table=table, bus=bus, service="t", interval_s=0.05) for _ in range(2)]
    try:
        for relay in relays:
            await relay.start()

        async def write(first: int, count: int) -> None:
            async with AsyncSession(engine) as session, session.begin():
                await add(session, table, [_event(n) for n in range(first, first + count)])
            for relay in relays:
                relay.wake()

        async def published() -> list[str]:
            return [m.header("ce_id").decode() for m in bus.logs["feedback.v1"]]  # type: ignore[union-attr]

        await write(0, 50)
        for _ in range(200):
            if len(await published()) >= 50:
                break
            await asyncio.sleep(0.05)
        # Published and deleted: a kill between the two would rightly publish them again.
        for _ in range(200):
            async with engine.connect() as conn:
                unsent = (await conn.execute(select(func.count()).select_from(table)
                                             .where(table.c.sent_at.is_(None)))).scalar_one()
            if not unsent:
                break
            await asyncio.sleep(0.05)
        holders = [r for r in relays if r.holds_lock]
        assert len(holders) == 1, "exactly one relay holds the lock"
        # Kill the holder's session: its lock is gone, and the other relay may take over.
        # (Found from outside: the relay is using its own session concurrently.)
        pids = await admin.fetch(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1", name)
        assert len(pids) == 1, pids
        await admin.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])
        # Termination is a signal the backend acts on when it next runs: until it is gone, the
        # old holder could still publish a batch and only fail to delete it (a duplicate that the
        # consumers would skip, but not what this test is about).
        for _ in range(200):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pids[0]["pid"]):
                break
            await asyncio.sleep(0.05)
        await write(50, 50)
        for _ in range(400):
            if len(await published()) >= 100:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        ids = await published()
        assert len(ids) == 100 and len(set(ids)) == 100, f"{len(ids)} published, {len(set(ids))} distinct"
        assert sum(r.holds_lock for r in relays) <= 1
    finally:
        for relay in relays:
            await relay.stop()


def test_one_relay_publishes_and_a_dead_lock_session_hands_over() -> None:
    asyncio.run(_scenario())


async def _keys_scenario() -> None:
    """Events for several keys in one transaction: every key's lock is held until it ends (one statement)."""

    def of(unit: str, n: int) -> events.Envelope:
        now = datetime.now(UTC)
        return events.Envelope.of(events.FeedbackReceived(feedback_id=f"{unit}{n}", unit_id=unit, channel="web",
                                                          occurred_at=now, year=now.year, level=2),
                                  source="test", key=unit)

    async with _outbox_database("yt_keys") as (_admin_conn, engine, table, _name):

        async def free(key: str) -> bool:
            """Whether another transaction may take the key's lock now."""
            async with AsyncSession(engine) as other, other.begin():
                return bool((await other.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"),
                                                 {"k": f"outbox:{key}"})).scalar())

        units = ["water", "health", "transport", "finance"]
        async with AsyncSession(engine) as session, session.begin():
            await add(session, table, [of(u, n) for n in range(3) for u in units])
            assert [await free(u) for u in units] == [False] * len(units)
            assert await free("police")  # a key with no events here is not locked
        assert [await free(u) for u in units] == [True] * len(units)  # released at commit


def test_a_transaction_holds_the_lock_of_every_key_it_adds_events_for() -> None:
    asyncio.run(_keys_scenario())
