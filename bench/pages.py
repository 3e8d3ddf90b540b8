"""Benchmark of the pages: a year and its predecessor replayed, then dashboard, unit page and report timed over HTTP.

The baseline is the JSON ranking (`GET /v1/scorecards?group=`) measured in the same run: each page's
figure is printed with its ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name hides the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402

from scoring import consumers  # noqa: E402
from scoring.app import create_app  # noqa: E402
from scoring.settings import ScoringSettings  # noqa: E402
from yardstick import events  # noqa: E402
from yardstick.auth import issue  # noqa: E402
from yardstick.bus.memory import MemoryBus  # noqa: E402
from yardstick.city import CityProfile, default_city_path, load_city  # noqa: E402
from yardstick.events import Envelope  # noqa: E402

BATCH = 20_000
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def batch_of(size: int, city: CityProfile, year: int, rng: random.Random) -> list[Envelope]:
    start = datetime(year, 1, 1, tzinfo=UTC)
    units = sorted(city.unit_ids)
    categories = [(c.id, c.unit) for c in city.categories]
    out = []
    for _ in range(size):
        channel = rng.choice(("window", "window", "web", "mobile", "hotline"))
        if channel == "window":
            unit, category, level, text = rng.choice(units), None, rng.randint(1, 5), False
        else:
            category, unit = rng.choice(categories)
            level = rng.choice((None, 1, 2, 3, 4, 5))
            text = level is None or rng.random() < 0.5
        data = events.FeedbackReceived.model_construct(
            feedback_id=uuid.uuid4().hex, unit_id=unit, channel=channel, category_id=category, has_text=text,
            occurred_at=start + timedelta(minutes=rng.randrange(525_000)), year=year, level=level)
        out.append(Envelope.model_construct(id=uuid.uuid4().hex, source="bench", type="feedback.received",
                                            topic=events.FEEDBACK, key=unit, data=data))
    return out


async def timed(reads: int, fn: Callable[[], Awaitable[httpx.Response]]) -> list[float]:
    samples = []
    for _ in range(reads):
        t0 = time.perf_counter()
        response = await fn()
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.text[:300]
    return samples


async def main(total: int, reads: int) -> None:
    city = load_city(default_city_path())
    year = datetime.now(UTC).astimezone(city.timezone).year
    with tempfile.TemporaryDirectory() as tmp:
        settings = ScoringSettings(data_dir=Path(tmp), bus="memory", auth_secret=SECRET, database_url="")
        app = create_app(settings, bus=MemoryBus(), city=city)
        async with app.router.lifespan_context(app):
            runtime = app.state.runtime
            table = consumers.handlers(city)
            rng = random.Random(7)
            busy, applied = 0.0, 0
            for y in (year - 1, year):
                for start in range(0, total, BATCH):
                    batch = batch_of(min(BATCH, total - start), city, y, rng)  # generation is not timed
                    t0 = time.perf_counter()
                    async with runtime.transaction() as session:
                        applied += await consumers.apply_batch(session, batch, city, table)
                    busy += time.perf_counter() - t0
            rate = applied / busy
            print(f"replay with the pages' read model: {applied:,} feedback events in {busy:.1f} s = "
                  f"{rate:,.0f} events/s (SQLite; scoring's aim 50,000/s, ratio {rate / 50_000:.2f})")
            token, _ = issue(SECRET, role="commission", subject="bench")
            unit = "health-commission"
            group = city.unit(unit).group
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                         headers={"Authorization": f"Bearer {token}"},
                                         cookies={"yardstick_dashboard": token}) as client:
                await client.get(f"/v1/scorecards?year={year}")  # fill the scorecard cache for every page alike
                cases = {
                    "ranking JSON (baseline)": lambda: client.get(f"/v1/scorecards?year={year}&group={group}"),
                    "dashboard": lambda: client.get(f"/dashboard?year={year}"),
                    "unit page": lambda: client.get(f"/dashboard/units/{unit}?year={year}"),
                    "live stamp": lambda: client.get("/dashboard/stamp"),
                    "annual report HTML": lambda: client.get(f"/v1/reports/annual/{year}"),
                    "annual report JSON": lambda: client.get(f"/v1/reports/annual/{year}",
                                                             headers={"accept": "application/json"}),
                }
                results = {name: await timed(reads, fn) for name, fn in cases.items()}
            base = statistics.median(results["ranking JSON (baseline)"])
            for name, samples in results.items():
                p50 = statistics.median(samples)
                p95 = statistics.quantiles(samples, n=20)[18]
                print(f"{name:24} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms  ratio to baseline p50 {p50 / base:6.2f}"
                      f"  ({reads} reads)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000, help="feedback events per year (two years)")
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.reads))
