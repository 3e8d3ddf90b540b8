"""The process ends once its services stopped, even when a task left behind never ends (runner.run_to_exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

# A task that, once cancelled, waits for ever on a future nobody resolves: what SQLAlchemy's shielded
# close of an aiosqlite connection does when the connection's worker thread has already stopped.
_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from yardstick.runner import run_to_exit

    async def stuck() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.get_running_loop().create_future()

    async def main() -> None:
        if sys.argv[1] != "clean":
            asyncio.get_running_loop().create_task(stuck())
        await asyncio.sleep(0.1)
        print("main done", flush=True)
        if sys.argv[1] == "stuck-failed":
            raise RuntimeError("the services failed")

    run_to_exit(main(), grace_s=0.5)
    print("closed", flush=True)
""")


@pytest.mark.parametrize(("mode", "status"), [("stuck", 0), ("stuck-failed", 1), ("clean", 0)])
def test_the_process_exits_when_a_leftover_task_never_ends(mode: str, status: int) -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    # The status a normal end would have had: 0, or 1 when the main coroutine failed.
    assert done.returncode == status, done.stderr
    assert "main done" in done.stdout
    if mode != "clean":
        # The loop's close never returned: the watchdog ended the process after grace_s.
        assert "closed" not in done.stdout
        assert "tasks still running 0.5 s after the services stopped" in done.stderr
    else:
        assert "closed" in done.stdout and "tasks still running" not in done.stderr
        assert elapsed < 30
