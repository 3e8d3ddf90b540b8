"""Scratch databases for tests and benchmarks: made empty, usable, and dropped whatever happens."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest
from sqlalchemy import text

from yardstick import db

pytestmark = pytest.mark.integration  # PostgreSQL: make test, not make unit


@pytest.fixture
def admin() -> str:
    url = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL")
    if not url:
        pytest.fail("this test needs PostgreSQL: run it through `make test` (YARDSTICK_TEST_PG_ADMIN_URL)",
                    pytrace=False)
    return url


async def exists(admin: str, name: str) -> bool:
    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_a_scratch_database_is_made_used_and_dropped_even_with_a_connection_open(admin: str) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.scratch_database(admin, "yt_scratch") as url:
            name = url.rsplit("/", 1)[1]
            assert name.startswith("yt_scratch_") and await exists(admin, name)
            engine = db.make_engine(url)
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
                        ).scalar_one() == 0
                raise Boom  # the connection is still open: the drop forces it closed
    await engine.dispose()
    assert not await exists(admin, name)


def test_the_same_outside_an_event_loop(admin: str) -> None:
    with db.scratch_database_sync(admin, "yt_scratch") as url:
        name = url.rsplit("/", 1)[1]
        assert url.startswith("postgresql+asyncpg://") and asyncio.run(exists(admin, name))
    assert not asyncio.run(exists(admin, name))
