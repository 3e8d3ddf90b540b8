"""SQLite (the quick start's store, decision 0021): a transaction that reads, then writes, is not refused
when another connection committed meanwhile; a writer waiting for another leaves at once when cancelled;
reads go on beside a writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from yardstick import db
from yardstick.bus.memory import MemoryBus
from yardstick.runtime import ServiceRuntime
from yardstick.settings import ServiceSettings


def _runtime(tmp_path: Path) -> ServiceRuntime:
    settings = ServiceSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'tx.db'}", auth_secret="s" * 40)
    return ServiceRuntime(settings, db.new_metadata(), migrations="unused", bus=MemoryBus())


async def test_a_read_then_write_transaction_waits_for_the_writer_instead_of_failing(tmp_path: Path) -> None:
    """As scoring's loops run beside its consumers: A reads, B writes and commits, A writes.

    Begun deferred, A's snapshot predates B's commit and its write failed at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT: busy_timeout does not apply). On the writer engine A holds the write
    lock from its first statement: B waits for A's commit, and both writes land."""
    runtime = _runtime(tmp_path)
    try:
        async with runtime.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (who TEXT NOT NULL)"))
        a_read = asyncio.Event()

        async def writer_b() -> None:
            await a_read.wait()
            async with runtime.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES ('b')"))

        b = asyncio.create_task(writer_b())
        async with runtime.transaction() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
            a_read.set()
            # Long enough for B to commit had it not been made to wait (its thread would not block).
            done, _ = await asyncio.wait({b}, timeout=0.5)
            assert not done, "B committed while A's transaction was open: A began as a reader"
            await session.execute(text("INSERT INTO t VALUES ('a')"))
        await asyncio.wait_for(b, timeout=10)
        async with runtime.reading() as conn:
            assert sorted((await conn.execute(text("SELECT who FROM t"))).scalars()) == ["a", "b"]
    finally:
        await runtime.stop()


async def test_a_writer_waiting_for_another_leaves_at_once_when_cancelled(tmp_path: Path) -> None:
    """A stopping service cancels its loops: one waiting to write while another transaction is open must
    end then, not when the other commits. (Waiting in SQLite's busy handler, its thread sat out the wait,
    up to busy_timeout, and the task with it.)"""
    runtime = _runtime(tmp_path)
    try:
        async with runtime.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (who TEXT NOT NULL)"))
        started = asyncio.Event()

        async def writer_b() -> None:
            started.set()
            async with runtime.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES ('b')"))

        async with runtime.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES ('a')"))
            b = asyncio.create_task(writer_b())
            await started.wait()
            await asyncio.sleep(0.2)
            assert not b.done()
            b.cancel()
            done, _ = await asyncio.wait({b}, timeout=2)
            assert done == {b} and b.cancelled(), "B went on waiting for the lock after it was cancelled"
        async with runtime.transaction() as session:  # the writer is free again
            await session.execute(text("INSERT INTO t VALUES ('c')"))
        async with runtime.reading() as conn:
            assert sorted((await conn.execute(text("SELECT who FROM t"))).scalars()) == ["a", "c"]
    finally:
        await runtime.stop()


async def test_reads_go_on_while_a_write_transaction_is_open(tmp_path: Path) -> None:
    """runtime.reading() and runtime.sessions() begin deferred: they read the last committed state beside
    an open writer instead of queueing behind it (a page must not wait for a long write)."""
    runtime = _runtime(tmp_path)
    try:
        async with runtime.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (who TEXT NOT NULL)"))
            await conn.execute(text("INSERT INTO t VALUES ('before')"))
        async with runtime.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES ('open')"))
            async with asyncio.timeout(5), runtime.reading() as conn:
                assert list((await conn.execute(text("SELECT who FROM t"))).scalars()) == ["before"]
            async with asyncio.timeout(5), runtime.sessions() as reader:
                assert list((await reader.execute(text("SELECT who FROM t"))).scalars()) == ["before"]
        async with runtime.reading() as conn:
            assert sorted((await conn.execute(text("SELECT who FROM t"))).scalars()) == ["before", "open"]
    finally:
        await runtime.stop()
