"""Benchmark of notices: a full daily sweep over 60 units x 25 categories with a year of history, and events/s.

Run: .venv/bin/python bench/notices.py [--database-url URL] [--consumer-backend postgresql|sqlite|none]
[--events 20000] [--batch 500] [--profile]. Prints figures and ratios against baselines measured in the
same run (the pure detector on the same counts; a consumer with no handler).

The consumer part feeds wire messages, as the outbox relay writes them, through
IdempotentConsumer.batch in polls of --batch (the Kafka bus hands a batched consumer up to 2,000
at a time): a kiosk stream (window ratings at every window of the city, as bench/e2e.py posts
them) and a mixed one (mostly kiosk ratings, online ratings and complaints with a category, a few
reassignments and target reports), both with 1 % redelivered messages. Each is measured three
ways on a scratch database (PostgreSQL on the shared server by default): decode + record ids only
(the bare consumer), the per-event handlers inside the batch's transaction (the live path until
the batch handler), and the batch handler. After each run the counts in the tables are checked
against totals computed from the generated events, so a fast but wrong path fails loudly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# This script is named like the package it measures: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
from sqlalchemy import Table, delete, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from notices import consumers, detectors, service  # noqa: E402
from notices.app import MIGRATIONS  # noqa: E402
from notices.models import (  # noqa: E402
    category_days,
    negative_days,
    negative_items,
    processed_events,
    rating_days,
    target_reports,
    target_states,
)
from notices.settings import NoticesSettings  # noqa: E402
from notices.workdays import WorkCalendar  # noqa: E402
from yardstick import db, events  # noqa: E402
from yardstick.bus import Message  # noqa: E402
from yardstick.bus.codec import encode_stored  # noqa: E402
from yardstick.city import CityProfile, default_city_path, load_city  # noqa: E402
from yardstick.consumer import IdempotentConsumer  # noqa: E402

ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                       "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
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

    await engine.dispose()


class Feed:
    """Wire messages as the outbox relay writes them (building them is not timed).

    `kiosk`: window ratings at every window of the city, as bench/e2e.py's kiosks post them.
    `mixed`: 80 % kiosk ratings, online ratings and complaints with a category (many negative),
    text complaints without a level, reassignments of earlier items (revision by revision) and
    target reports. Both redeliver 1 % of the messages (from the previous poll or this one).
    """

    def __init__(self, city: CityProfile, mix: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mix = mix
        self.windows = [(w.id, w.unit) for w in city.windows]
        self.units = sorted(city.unit_ids)
        self.categories = [(c.unit, c.id) for c in city.categories]
        self.start = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # about three local days at 1,000 events/s
        self.serial = 0
        self.items: list[list[Any]] = []  # [feedback_id, unit, category, level, revision] of online items
        self.recent: list[Message] = []

    def _message(self, event_type: str, key: str, body: dict[str, Any], topic: str = events.FEEDBACK) -> Message:
        self.serial += 1
        moment = (self.start + timedelta(seconds=self.serial * 0.001 * 200)).isoformat()
        body.setdefault("occurred_at", moment)
        return encode_stored(event_id=f"bench-{self.serial:012d}", source="bench", event_type=event_type,
                             time=moment, key=key, value=json.dumps(body).encode(), topic=topic)

    def _one(self) -> Message:
        rng = self.rng
        roll = rng.random() if self.mix == "mixed" else 0.0
        if roll < 0.80:
            window, unit = rng.choice(self.windows)
            return self._message("feedback.received", unit, {
                "feedback_id": f"k{self.serial}", "unit_id": unit, "channel": "window", "year": 2026,
                "level": rng.randint(1, 5), "window_id": window, "device": "bench-kiosk"})
        if roll < 0.95:
            unit, category = rng.choice(self.categories)
            level = rng.choice([1, 1, 2, 3, 4, 5])
            fid = f"o{self.serial}"
            self.items.append([fid, unit, category, level, 0])
            return self._message("feedback.received", unit, {
                "feedback_id": fid, "unit_id": unit, "channel": rng.choice(["web", "mobile", "hotline"]),
                "year": 2026, "level": level, "category_id": category, "has_text": True})
        if roll < 0.97:
            unit, category = rng.choice(self.categories)
            return self._message("feedback.received", unit, {
                "feedback_id": f"t{self.serial}", "unit_id": unit, "channel": "face_to_face", "year": 2026,
                "category_id": category, "has_text": True})
        if roll < 0.99 and self.items:
            item = rng.choice(self.items)
            to = rng.choice([u for u in self.units if u != item[1]])
            item[4] += 1
            message = self._message("feedback.reassigned", to, {
                "feedback_id": item[0], "from_unit_id": item[1], "unit_id": to, "channel": "web", "year": 2026,
                "level": item[3], "category_id": item[2], "revision": item[4]})
            item[1] = to
            return message
        unit = rng.choice(self.units)
        target = f"target-{rng.randrange(40)}"
        return self._message("target.progress", unit, {
            "target_id": target, "unit_id": unit, "year": 2026,
            "date": (date(2026, 1, 1) + timedelta(days=rng.randrange(330))).isoformat(), "value": 1.0,
            "attainment": 0.5, "status": rng.choice(["on_track", "at_risk", "off_track"])}, topic=events.TARGETS)

    def poll(self, size: int) -> list[Message]:
        out: list[Message] = []
        for _ in range(size):
            if self.rng.random() < 0.01 and (self.recent or out):
                out.append(self.rng.choice(self.recent or out))  # a redelivery: must change nothing
            else:
                out.append(self._one())
        self.recent = out[-200:]
        return out


STATE: tuple[Table, ...] = (rating_days, negative_days, category_days, negative_items, target_states, target_reports)


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[tuple[Any, ...]]]:
    async with sessions() as session:
        return {t.name: sorted(tuple(r) for r in (await session.execute(select(t))).all()) for t in STATE}


async def clear(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Empty the tables between runs; on PostgreSQL by TRUNCATE, so no run inherits another's dead rows."""
    async with sessions() as session, session.begin():
        if db.dialect_name(session) == "postgresql":
            await session.execute(text(f"TRUNCATE {', '.join(t.name for t in (*STATE, processed_events))}"))
            return
        for t in (*STATE, processed_events):
            await session.execute(delete(t))


@contextlib.asynccontextmanager
async def scratch_database(backend: str, url: str | None) -> AsyncIterator[str]:
    if url is not None:
        yield url
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-notices-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'notices.db'}"
        return
    async with db.scratch_database(ADMIN, "bench_notices") as scratch:
        yield scratch


async def consumer_bench(backend: str, url: str | None, total: int, batch: int, profile: bool) -> None:
    city = load_city(default_city_path())
    async with scratch_database(backend, url) as database_url:
        engine = db.make_engine(database_url)
        try:
            await db.migrate(engine, MIGRATIONS)
            sessions = db.session_factory(engine)
            for mix in ("kiosk", "mixed"):
                await consumer_runs(sessions, city, backend, mix, total, batch, profile)
        finally:
            await engine.dispose()


async def consumer_runs(sessions: async_sessionmaker[AsyncSession], city: CityProfile, backend: str, mix: str,
                        total: int, batch: int, profile: bool) -> None:
    feed = Feed(city, mix, seed=7)
    polls = [feed.poll(batch) for _ in range(max(1, total // batch))]
    n = sum(len(p) for p in polls)
    handlers = consumers.handlers(city)
    batch_handler = getattr(consumers, "batch_handler", None)
    modes: list[tuple[str, dict[str, Any], Callable[..., Any] | None]] = [
        ("bare (decode + record ids)", {}, None),
        ("per-event handlers in the batch's transaction", handlers, None)]
    if batch_handler is not None:
        modes.append(("batch handler", handlers, batch_handler(city)))
    print(f"--- consumer on {backend}, {mix} stream: {n:,} messages in polls of {batch} "
          f"(1 % redelivered)", flush=True)
    states: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    rates: dict[str, float] = {}
    # Warm up (statements prepared, caches filled) on other events, so the first mode measured pays no more.
    warm = Feed(city, mix, seed=8)
    for _, table, handler in modes:
        consumer = IdempotentConsumer(name="notices", sessions=sessions, table=processed_events, handlers=table,
                                      batch_handler=handler)
        for _ in range(3):
            await consumer.batch(warm.poll(batch))
    for label, table, handler in modes:
        await clear(sessions)
        consumer = IdempotentConsumer(name="notices", sessions=sessions, table=processed_events, handlers=table,
                                      batch_handler=handler)
        profiler = cProfile.Profile() if profile and table else None
        busy = cpu = 0.0
        for i, poll in enumerate(polls):
            t0, c0 = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            dead = await consumer.batch(poll)
            if profiler is not None:
                profiler.disable()
            busy += time.perf_counter() - t0
            cpu += time.process_time() - c0
            assert not dead, dead[:1]
            if (i + 1) % max(1, len(polls) // 4) == 0:
                print(f"  {label}: {(i + 1) * batch:>8,} / {n:,}, {(i + 1) * batch / busy:,.0f} events/s so far",
                      flush=True)
        rates[label] = n / busy
        print(f"{label}: {n / busy:,.0f} events/s ({consumer.applied:,} applied, {consumer.skipped:,} redelivered "
              f"skipped; {n / cpu:,.0f} per CPU second of this process"
              f"{', SQLite included' if backend == 'sqlite' else ', the server not included'})", flush=True)
        if table:
            states[label] = await snapshot(sessions)
        if profiler is not None:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            print(out.getvalue(), flush=True)
    reference = states["per-event handlers in the batch's transaction"]
    windows = sum(r[4] for r in reference["rating_days"] if r[0] == "window")
    kiosk = len({m.header("ce_id") for p in polls for m in p
                 if b'"channel": "window"' in m.value})
    assert windows == kiosk, (windows, kiosk)
    for label, state in states.items():
        assert state == reference, f"{label}: the counts differ from the per-event handlers'"
    bare = rates["bare (decode + record ids)"]
    summary = ", ".join(f"{label} {rate:,.0f}/s ({rate / bare:.2f} of bare)" for label, rate in rates.items())
    print(f"{mix}: {summary}; counts identical across paths, {kiosk:,} kiosk ratings counted once each", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None, help="for the sweep (default: SQLite in a scratch folder)")
    parser.add_argument("--consumer-backend", choices=["postgresql", "sqlite", "none"], default="postgresql")
    parser.add_argument("--consumer-url", default=None, help="an existing database instead of a scratch one")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile the handler paths (in-process)")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    if not args.no_sweep:
        asyncio.run(main(args.database_url))
    if args.consumer_backend != "none":
        asyncio.run(consumer_bench(args.consumer_backend, args.consumer_url, args.events, args.batch, args.profile))
