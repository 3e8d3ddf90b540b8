"""The test harness's end of leftover tasks (tests/conftest.py `_end_leftover_tasks`)."""

from __future__ import annotations

import asyncio
import warnings

import conftest
import pytest


class AsyncAdapt_aiosqlite_connection:  # noqa: N801: named as SQLAlchemy's class, whose close task is let finish
    def __init__(self) -> None:
        self.closed = False

    async def _terminate_graceful_close(self) -> None:
        await asyncio.sleep(0.2)  # aiosqlite's thread closing the connection
        self.closed = True


async def test_a_connection_being_closed_is_let_finish_without_a_warning() -> None:
    connection = AsyncAdapt_aiosqlite_connection()
    task = asyncio.create_task(connection._terminate_graceful_close())
    await asyncio.sleep(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await conftest._end_leftover_tasks()
    assert connection.closed and task.done() and not task.cancelled()


async def test_any_other_leftover_is_cancelled_and_named() -> None:
    task = asyncio.create_task(asyncio.sleep(60), name="a-loop-nobody-stopped")
    await asyncio.sleep(0)
    with pytest.warns(UserWarning, match="tasks left running"):
        await conftest._end_leftover_tasks()
    assert task.cancelled()
