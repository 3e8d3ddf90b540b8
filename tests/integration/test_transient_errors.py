"""Which real PostgreSQL failures the idempotent consumer retries and which it dead-letters."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from yardstick.consumer import is_transient
from yardstick.db import make_engine


def _url() -> str:
    url = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL")
    if not url:
        pytest.fail("YARDSTICK_TEST_PG_ADMIN_URL is not set: run through `make test`", pytrace=False)
    return url


async def _error_of(*statements: str, concurrent_lock: bool = False) -> DBAPIError:
    engine = make_engine(_url())
    try:
        async with engine.connect() as holder:
            if concurrent_lock:
                await holder.execute(text("CREATE TEMP TABLE IF NOT EXISTS t_lock (x int)"))
                await holder.execute(text("SELECT pg_advisory_lock(424242)"))
            async with engine.connect() as conn:
                try:
                    for statement in statements:
                        await conn.execute(text(statement))
                except DBAPIError as exc:
                    return exc
                finally:
                    if concurrent_lock:
                        await holder.execute(text("SELECT pg_advisory_unlock(424242)"))
        raise AssertionError(f"no error from {statements}")
    finally:
        await engine.dispose()


def test_server_side_failures_of_the_moment_are_retried() -> None:
    # A query cancelled by a timeout (57014) is an operator-class failure: try again later.
    cancelled = asyncio.run(_error_of("SET statement_timeout = 50", "SELECT pg_sleep(2)"))
    assert is_transient(cancelled), repr(cancelled.orig)
    # A lock that is not available right now (55P03).
    locked = asyncio.run(_error_of("SET lock_timeout = 50", "SELECT pg_advisory_xact_lock(424242)",
                                   concurrent_lock=True))
    assert is_transient(locked), repr(locked.orig)


def test_errors_in_the_data_are_permanent() -> None:
    division = asyncio.run(_error_of("SELECT 1 / 0"))
    assert not is_transient(division)
    bad_input = asyncio.run(_error_of("SELECT 'not a number'::int"))
    assert not is_transient(bad_input)
