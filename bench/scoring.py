"""Benchmark of scoring: replay feedback events into the read model, then time scorecard and ranking reads."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name hides the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from scoring import consumers, service  # noqa: E402
from scoring.app import MIGRATIONS  # noqa: E402
from scoring.models import metadata  # noqa: E402
from scoring.settings import ScoringSettings  # noqa: E402
from yardstick import db, events  # noqa: E402
from yardstick.bus.memory import MemoryBus  # noqa: E402
from yardstick.city import default_city_path, load_city  # noqa: E402
from yardstick.events import Envelope  # noqa: E402
from yardstick.runtime import ServiceRuntime  # noqa: E402

BATCH = 20_000


def batch_of(size: int, units: list[str], year: int, rng: random.Random) -> list[Envelope]:
    start = datetime(year, 1, 1, tzinfo=UTC)
    out = []
    for _ in range(size):
        unit = rng.choice(units)
        data = events.FeedbackReceived.model_construct(
            feedback_id=uuid.uuid4().hex, unit_id=unit, channel=rng.choice(("window", "window", "web", "mobile")),
            occurred_at=start + timedelta(minutes=rng.randrange(525_000)), year=year, level=rng.randint(1, 5))
        out.append(Envelope.model_construct(id=uuid.uuid4().hex, source="bench", type="feedback.received",
                                            topic=events.FEEDBACK, key=unit, data=data))
    return out


async def main(total: int, reads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = ScoringSettings(data_dir=Path(tmp), bus="memory", auth_secret="bench", database_url="")
        runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=MemoryBus(),
                                 city=load_city(default_city_path()))
        await db.migrate(runtime.engine, MIGRATIONS)
        units = sorted(runtime.city.unit_ids)
        table = consumers.handlers(runtime.city)
        rng = random.Random(5)
        year = 2026
        applied = 0
        busy = 0.0
        for start in range(0, total, BATCH):
            batch = batch_of(min(BATCH, total - start), units, year, rng)  # generation is not timed
            t0 = time.perf_counter()
            async with runtime.transaction() as session:
                applied += await consumers.apply_batch(session, batch, runtime.city, table)
            busy += time.perf_counter() - t0
        print(f"replay: {applied} feedback events in {busy:.1f} s = {applied / busy:,.0f} events/s "
              f"(batches of {BATCH}, SQLite; aim 50,000/s, ratio {applied / busy / 50_000:.2f})")

        async def timed(fn: object) -> list[float]:
            samples = []
            for i in range(reads):
                if i % 50 == 0:
                    async with runtime.transaction() as session:  # an event arrives: the cache is invalid
                        await consumers.apply_batch(session, batch_of(1, units, year, rng), runtime.city, table)
                t0 = time.perf_counter()
                await fn()  # type: ignore[operator]
                samples.append((time.perf_counter() - t0) * 1000)
            return samples

        unit = units[0]
        group = runtime.city.unit(unit).group
        one = await timed(lambda: service.scorecard(runtime=runtime, unit_id=unit, year=year))
        rank = await timed(lambda: service.ranking(runtime=runtime, year=year, group=group))
        t0 = time.perf_counter()
        async with runtime.sessions() as session:
            inputs = await service.load_inputs(session, year, datetime.now(UTC).date())
        service.compute(service.groups_of(runtime), inputs)
        full = (time.perf_counter() - t0) * 1000
        for name, samples in (("scorecard", one), ("ranking", rank)):
            p99 = statistics.quantiles(samples, n=100)[98]
            print(f"{name}: p50 {statistics.median(samples):.2f} ms, p99 {p99:.2f} ms over {reads} reads "
                  f"(every 50th after a new event; aim p99 < 20 ms, ratio {p99 / 20:.2f})")
        print(f"a whole year's scorecards recomputed from the aggregates: {full:.1f} ms ({len(units)} units)")
        await runtime.engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--reads", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.reads))
