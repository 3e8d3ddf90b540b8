"""Scoring's real consumer, killed right after its first database commit, before the offset commit.

Run as a process by test_foundation.py: the environment configures it like `yardstick serve scoring`.
"""

from __future__ import annotations

import asyncio
import os

from scoring.app import create_app
from yardstick.events import Envelope


async def main() -> None:
    app = create_app()
    runtime = app.state.runtime

    async def die(envelope: Envelope) -> None:
        # The transaction (effects + processed event id) has committed; the bus has not yet
        # recorded the offset. A hard exit here is the worst moment to crash.
        print(f"applied {envelope.id}; exiting before the offset commit", flush=True)
        os._exit(9)

    for consumer in runtime.consumers:
        consumer.after_commit = die
    async with app.router.lifespan_context(app):
        await asyncio.sleep(120)
    raise SystemExit("no event arrived within 120 s")


if __name__ == "__main__":
    asyncio.run(main())
