"""What this machine charges a process for going idle and waking up: the floor under a quiet hour's cost.

Run: .venv/bin/python -P bench/wakeup.py [--wakeups 2000]

A service at a low request rate blocks in the event loop between requests and between the database's
and the broker's answers; each time it wakes. This measures the CPU (user and system, from os.times)
one wake-up costs an asyncio event loop that sleeps for a given time and does nothing else, on the
standard loop and on uvloop (the services' loop), beside the baseline of the same loop yielding
without sleeping (asyncio.sleep(0): no block, no wake-up). CPU is this process's
(time.process_time: the scheduler's own count, user and system time together). Then the same small piece of work (the
intake's classification of one text) timed in a tight loop and between sleeps, as a server runs it:
the ratio says how much slower code runs after the process slept (cold caches, a descheduled CPU).
No Kafka or PostgreSQL needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable

import uvloop

from feedback_intake.classify import Classifier
from yardstick.city import default_city_path, load_city

SLEEPS_S = (0.0, 0.001, 0.002, 0.005, 0.02)  # uvloop rounds timers to the millisecond
TEXT = "公交车总是不准点，等了四十分钟"


async def wakeups(n: int, sleep_s: float, work: Callable[[], object] | None = None) -> tuple[float, float]:
    """(CPU, wall) seconds an iteration: `work` (if any), then a sleep of sleep_s."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        if work is not None:
            work()
        await asyncio.sleep(sleep_s)
    return (time.process_time() - c0) / n, (time.perf_counter() - w0) / n


async def measure(loop_name: str, n: int, classify: Callable[[], object]) -> None:
    base, _ = await wakeups(n, 0.0)
    for sleep_s in SLEEPS_S[1:]:
        spent, wall = await wakeups(n, sleep_s)
        print(f"{loop_name:8s} sleep {sleep_s * 1e3:4.1f} ms: {spent * 1e6:5.0f} us of CPU an iteration "
              f"(wall {wall * 1e3:5.2f} ms); yielding without sleeping {base * 1e6:4.1f} us, "
              f"ratio {spent / max(base, 1e-9):5.1f}", flush=True)
    # The same work hot (back to back) and cold (between sleeps of 2 ms, as a server between requests).
    c0 = time.process_time()
    for _ in range(n):
        classify()
    hot = time.process_time() - c0
    asleep, _ = await wakeups(n, 0.002)
    working, _ = await wakeups(n, 0.002, classify)
    cold = max(working - asleep, 0.0) * n
    print(f"{loop_name:8s} classifying one text: {hot / n * 1e6:.0f} us back to back, {cold / n * 1e6:.0f} us "
          f"between sleeps of 2 ms (ratio cold / hot {cold / max(hot, 1e-9):.1f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wakeups", type=int, default=2000, help="iterations per figure")
    args = parser.parse_args()
    if args.wakeups < 10:
        parser.error("--wakeups must be at least 10")
    classifier = Classifier(load_city(default_city_path()))

    def classify() -> object:
        return classifier.classify(TEXT)

    print(f"wake-up cost on this machine ({os.cpu_count()} CPUs), {args.wakeups} iterations a figure", flush=True)
    asyncio.run(measure("asyncio", args.wakeups, classify))
    uvloop.run(measure("uvloop", args.wakeups, classify))


if __name__ == "__main__":
    main()
