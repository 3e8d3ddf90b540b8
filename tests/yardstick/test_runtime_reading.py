"""runtime.reading(): reads on a bare connection (autocommit on PostgreSQL) that leave the pool as it was."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import AsyncAdaptedQueuePool

from yardstick import db
from yardstick.bus.memory import MemoryBus
from yardstick.runtime import ServiceRuntime
from yardstick.settings import ServiceSettings


class Boom(Exception):
    pass


async def test_a_transaction_after_a_read_on_the_same_pooled_connection_still_rolls_back(
        backend: str, tmp_path: Path) -> None:
    """The read switched the connection to autocommit; back in the pool it must not stay so, or a
    failed request's writes would be kept. One pooled connection: the transaction gets the same one."""
    async with database(backend, tmp_path) as url:
        settings = ServiceSettings(database_url=url, auth_secret="s" * 40)
        runtime = ServiceRuntime(settings, db.new_metadata(), migrations="unused", bus=MemoryBus())
        runtime.engine = db.make_engine(url, pool_size=1, max_overflow=0, poolclass=AsyncAdaptedQueuePool)
        runtime.sessions = db.session_factory(runtime.engine)
        try:
            async with runtime.engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (x INTEGER NOT NULL)"))
            async with runtime.reading() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
            with pytest.raises(Boom):
                async with runtime.transaction() as session:
                    await session.execute(text("INSERT INTO t VALUES (1)"))
                    raise Boom
            async with runtime.reading() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
        finally:
            await runtime.engine.dispose()


@contextlib.asynccontextmanager
async def database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "postgresql":
        async with db.scratch_database(os.environ["YARDSTICK_TEST_PG_ADMIN_URL"], "yt_reading") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'reading.db'}"
