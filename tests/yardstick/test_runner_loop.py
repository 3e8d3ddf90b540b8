"""`yardstick serve` and `run` drive their servers on uvloop, as uvicorn would on its own."""

from __future__ import annotations

import asyncio

import uvloop

from yardstick.runner import _loop_factory


def test_the_servers_run_on_uvloop() -> None:
    factory = _loop_factory()
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
