"""The test harness's end of leftover tasks (tests/conftest.py `_end_leftover_tasks`, after each in-process system)."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest


# Named as SQLAlchemy's class: the harness tells its close task by the coroutine's qualified name.
class AsyncAdapt_aiosqlite_connection:
    def __init__(self) -> None:
        self.closed = False

    async def _terminate_graceful_close(self) -> None:
        await asyncio.sleep(0.2)  # aiosqlite's thread closing the connection
        self.closed = True


@pytest.fixture
def end_leftover_tasks(request: pytest.FixtureRequest) -> Any:
    """The root conftest's function (a module named conftest is not importable by that name from here:
    each directory's conftest is registered apart)."""
    root = Path(__file__).resolve().parents[1] / "conftest.py"
    [harness] = [p for p in request.config.pluginmanager.get_plugins()
                 if Path(getattr(p, "__file__", None) or "/").resolve() == root]
    return harness._end_leftover_tasks


async def test_a_connection_being_closed_is_let_finish_without_a_warning(end_leftover_tasks: Any) -> None:
    connection = AsyncAdapt_aiosqlite_connection()
    task = asyncio.create_task(connection._terminate_graceful_close())
    await asyncio.sleep(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await end_leftover_tasks()
    assert connection.closed and task.done() and not task.cancelled()


async def test_any_other_leftover_is_cancelled_and_named(end_leftover_tasks: Any) -> None:
    task = asyncio.create_task(asyncio.sleep(60), name="a-loop-nobody-stopped")
    await asyncio.sleep(0)
    with pytest.warns(UserWarning, match="tasks left running"):
        await end_leftover_tasks()
    assert task.cancelled()
