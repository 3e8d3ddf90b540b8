"""`yardstick serve` and `run` drive their servers on uvloop, as uvicorn would on its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import uvloop

from yardstick.runner import GC_THRESHOLDS, _loop_factory


def test_the_servers_run_on_uvloop() -> None:
    factory = _loop_factory()
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)


def test_a_started_server_freezes_its_start_up_heap_and_raises_the_collector_thresholds() -> None:
    """In a process of its own: the collector's settings are the whole process's."""
    script = textwrap.dedent("""
        import asyncio, gc, json
        from fastapi import FastAPI
        import uvicorn
        from yardstick.runner import _Server, _serve_all

        server = _Server(uvicorn.Config(FastAPI(), host="127.0.0.1", port=0, log_config=None, lifespan="off"))
        before = gc.get_threshold()

        async def main():
            async def watch():
                await server.up.wait()
                while gc.get_threshold() == before:
                    await asyncio.sleep(0.01)
                print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
                server.should_exit = True
            watcher = asyncio.create_task(watch())
            await asyncio.wait_for(_serve_all([server], []), 60)
            await watcher

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == [700, 10, 10]
    assert seen["after"] == list(GC_THRESHOLDS)
    assert seen["frozen"] > 10_000  # the imported modules and the app, at least
