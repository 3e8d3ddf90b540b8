"""SQLite (the quick start's store, decision 0021): a transaction that reads, then writes, is not refused
when another connection committed meanwhile; a writer waiting for another leaves at once when cancelled;
reads go on beside a writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from yardstick import db
from yardstick.bus.memory import MemoryBus
from yardstick.runtime import ServiceRuntime
from yardstick.settings import ServiceSettings


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    """A service runtime on a SQLite file with one table `t (who)`, stopped (its engines disposed) after."""
    settings = ServiceSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'tx.db'}", auth_secret="s" * 40)
    runtime = ServiceRuntime(settings, db.new_metadata(), migrations="unused", bus=MemoryBus())
    try:
        async with runtime.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (who TEXT NOT NULL)"))
        yield runtime
    finally:
        await runtime.stop()


async def _insert(runtime: ServiceRuntime, who: str) -> None:
    async with runtime.transaction() as session:
        await session.execute(text("INSERT INTO t VALUES (:who)"), {"who": who})


async def _committed(runtime: ServiceRuntime) -> list[str]:
    async with runtime.reading() as conn:
        return sorted((await conn.execute(text("SELECT who FROM t"))).scalars())


async def test_a_read_then_write_transaction_waits_for_the_writer_instead_of_failing(
        runtime: ServiceRuntime) -> None:
    """As scoring's loops run beside its consumers: A reads, B writes and commits, A writes.

    Begun deferred, A's snapshot predates B's commit and its write failed at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT: busy_timeout does not apply). On the writer engine A holds the write
    lock from its first statement: B waits for A's commit, and both writes land."""
    a_read = asyncio.Event()

    async def writer_b() -> None:
        await a_read.wait()
        await _insert(runtime, "b")

    b = asyncio.create_task(writer_b())
    async with runtime.transaction() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
        a_read.set()
        # Long enough for B to commit had it not been made to wait (its thread would not block).
        done, _ = await asyncio.wait({b}, timeout=0.5)
        assert not done, "B committed while A's transaction was open: A began as a reader"
        await session.execute(text("INSERT INTO t VALUES ('a')"))
    await asyncio.wait_for(b, timeout=10)
    assert await _committed(runtime) == ["a", "b"]


async def test_a_writer_waiting_for_another_leaves_at_once_when_cancelled(runtime: ServiceRuntime) -> None:
    """A stopping service cancels its loops: one waiting to write while another transaction is open must
    end then, not when the other commits. (Waiting in SQLite's busy handler, its thread sat out the wait,
    up to busy_timeout, and the task with it.)"""
    async with runtime.transaction() as session:
        await session.execute(text("INSERT INTO t VALUES ('a')"))
        b = asyncio.create_task(_insert(runtime, "b"))
        await asyncio.sleep(0.2)
        assert not b.done()
        b.cancel()
        done, _ = await asyncio.wait({b}, timeout=2)
        assert done == {b} and b.cancelled(), "B went on waiting for the lock after it was cancelled"
    await _insert(runtime, "c")  # the writer is free again
    assert await _committed(runtime) == ["a", "c"]


async def test_reads_go_on_while_a_write_transaction_is_open(runtime: ServiceRuntime) -> None:
    """runtime.reading() and runtime.sessions() begin deferred: they read the last committed state beside
    an open writer instead of queueing behind it (a page must not wait for a long write)."""
    await _insert(runtime, "before")
    async with runtime.transaction() as session:
        await session.execute(text("INSERT INTO t VALUES ('open')"))
        async with asyncio.timeout(5), runtime.reading() as conn:
            assert list((await conn.execute(text("SELECT who FROM t"))).scalars()) == ["before"]
        async with asyncio.timeout(5), runtime.sessions() as reader:
            assert list((await reader.execute(text("SELECT who FROM t"))).scalars()) == ["before"]
    assert await _committed(runtime) == ["before", "open"]
