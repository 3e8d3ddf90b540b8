"""Stopping the services' background loops (relays, consumers, sweeps) for sure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel background loops and wait until every one has ended, cancelling again any that
    swallowed its cancellation (Python 3.11's wait_for returns the inner result when the cancel
    arrives as it completes; a loop would then go on while its owner waited for it for ever).

    What a loop ended with is retrieved and dropped: a stopping service has nobody to tell.
    """
    every = list(tasks)
    pending = {t for t in every if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in every:
        if not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()


async def stop_task(task: asyncio.Task[Any]) -> None:
    await stop_tasks([task])
