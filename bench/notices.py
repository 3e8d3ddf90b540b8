"""Benchmark of notices: a full daily sweep over 60 units x 25 categories with a year of history, and events/s.

Run: .venv/bin/python bench/notices.py [--database-url URL]. Prints figures and ratios against
baselines measured in the same run (the pure detector on the same counts; a consumer with no handler).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

# This script is named like the package it measures: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from notices import consumers, detectors, service  # noqa: E402
from notices.app import MIGRATIONS  # noqa: E402
from notices.models import negative_days, processed_events  # noqa: E402
from notices.settings import NoticesSettings  # noqa: E402
from notices.workdays import WorkCalendar  # noqa: E402
from yardstick import db, events  # noqa: E402
from yardstick.city import default_city_path, load_city  # noqa: E402
from yardstick.consumer import IdempotentConsumer  # noqa: E402
from yardstick.events import Envelope  # noqa: E402

UNITS, CATEGORIES, DAYS = 60, 25, 365
TODAY = date(2026, 11, 28)


async def main(url: str | None) -> None:
    tmp = Path(tempfile.mkdtemp())
    engine = db.make_engine(url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    await db.migrate(engine, MIGRATIONS)
    sessions = db.session_factory(engine)
    city = load_city(default_city_path())
    calendar = WorkCalendar(NoticesSettings(auth_secret="x").calendar)
    rng = np.random.default_rng(1)
    rates = rng.gamma(0.6, 0.8, size=(UNITS, CATEGORIES))
    counts = rng.poisson(rates[:, :, None], size=(UNITS, CATEGORIES, DAYS))
    first = TODAY - timedelta(days=DAYS - 1)
    rows = [{"unit_id": f"u{u:02d}", "category_id": f"c{c:02d}", "day": first + timedelta(days=d),
             "count": int(counts[u, c, d])}
            for u in range(UNITS) for c in range(CATEGORIES) for d in range(DAYS) if counts[u, c, d]]
    async with sessions() as session, session.begin():
        await session.execute(delete(negative_days))
        for i in range(0, len(rows), 20000):
            await session.execute(negative_days.insert(), rows[i:i + 20000])
    print(f"history: {len(rows)} cell-days over {UNITS} units x {CATEGORIES} categories x {DAYS} days")

    # Baseline: the pure detector on the same day's counts, without the database.
    w = counts[:, :, -7:].sum(axis=2)
    b = counts[:, :, -35:-7].sum(axis=2)
    cells = [detectors.ComplaintCell(f"u{u:02d}", f"c{c:02d}", int(w[u, c]), int(b[u, c]))
             for u in range(UNITS) for c in range(CATEGORIES)]
    start = time.perf_counter()
    for _ in range(20):
        detectors.complaint_recurrence(cells, detectors.ComplaintSettings(), history_days=DAYS)
    pure = (time.perf_counter() - start) / 20

    times = []
    for i in range(5):
        day = TODAY - timedelta(days=i)
        start = time.perf_counter()
        async with sessions() as session, session.begin():
            result = await service.evaluate(session, city=city, calendar=calendar, today=day,
                                            now=datetime.now(UTC))
        times.append(time.perf_counter() - start)
    sweep = float(np.median(times))
    print(f"daily sweep: median {sweep * 1000:.1f} ms (aim < 2000 ms); fired {result.fired} cells")
    print(f"pure detector on the same cells: {pure * 1000:.1f} ms; sweep / pure = {sweep / pure:.1f}x")

    # Events through the detector path: the idempotent consumer with notices' handlers.
    n = 2000
    unit = city.categories[0].unit
    envelopes = [Envelope.of(events.FeedbackReceived(
        feedback_id=f"b-{i}", unit_id=unit, channel="web", occurred_at=datetime.now(UTC), year=TODAY.year,
        level=1 + i % 5, category_id=city.categories[0].id, has_text=True), source="bench", key=unit)
        for i in range(n)]
    rates_out = {}
    for name, handlers in (("bare", {}), ("notices", consumers.handlers(city))):
        async with sessions() as session, session.begin():
            await session.execute(delete(processed_events))
        consumer = IdempotentConsumer(name=f"bench-{name}", sessions=sessions, table=processed_events,
                                      handlers=handlers)
        start = time.perf_counter()
        for envelope in envelopes:
            await consumer.apply(envelope)
        rates_out[name] = n / (time.perf_counter() - start)
    print(f"events/s through the detector path: {rates_out['notices']:.0f}; bare idempotent consumer "
          f"{rates_out['bare']:.0f}; ratio {rates_out['notices'] / rates_out['bare']:.2f}")
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    asyncio.run(main(parser.parse_args().database_url))
