"""Benchmark of scoring: replay feedback events through the live consumer's batch path, then time reads.

For each backend (SQLite in a scratch folder, PostgreSQL in a scratch database on the shared
server): the bare cost first (decoding the wire messages: the SDK's path, decode_fast, decode_lean and
the batch consumer's rows; and, as a reference that stays the same from one version of scoring
to the next, decode_fast plus recording the ids with no read model), the live path before batching
on a sample (the SDK's decode and one transaction per event, into a read model emptied
afterwards), then the replay of --events feedback events (kiosk presses, web and mobile items
with a category, follow-ups, a few reassignments and redelivered duplicates) in polls of --batch messages through
IdempotentConsumer.batch, as the Kafka consumer hands them over (feedback events as rows, a poll
summed in the decoding thread while its ids are recorded: decision 0018); then, with the read model full
and the recompute loop running as in the service, one unit's scorecard and a group's ranking
read --reads times each while events keep arriving, and one recompute of the whole year; then
the freshness of the stored scorecards under a steady stream (--fresh seconds of a 50-event batch
every 50 ms, each woken into the recompute loop as the service's consumer does): the time from a
batch's commit until a pass stored scorecards that include it.
Figures on a loaded machine are only comparable within one run; the events per CPU second of
this process (SQLite's work included, PostgreSQL's server not) vary less. The collector is set as
in a serving process (runner.tune_gc) unless --gc default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name hides the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


from sqlalchemy import text  # noqa: E402

from scoring import consumers, repository, service  # noqa: E402
from scoring.app import MIGRATIONS  # noqa: E402
from scoring.models import READ_MODEL, metadata  # noqa: E402
from scoring.settings import ScoringSettings  # noqa: E402
from yardstick import consumer as consumer_module  # noqa: E402
from yardstick import db, events  # noqa: E402
from yardstick.bus import Message  # noqa: E402
from yardstick.bus.codec import decode, encode_stored  # noqa: E402
from yardstick.bus.memory import MemoryBus  # noqa: E402
from yardstick.city import CityProfile, default_city_path, load_city  # noqa: E402
from yardstick.consumer import IdempotentConsumer, decode_fast, decode_lean  # noqa: E402
from yardstick.runner import tune_gc  # noqa: E402
from yardstick.runtime import ServiceRuntime  # noqa: E402

# The end-to-end bench's helpers from beside this file, once the scoring package is imported (it would hide it).
sys.path.append(str(Path(__file__).resolve().parent))
from e2e import MachineCpu  # noqa: E402

ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                       "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
YEAR = 2026
TOPIC = "feedback.v1"
# The events' ids: as the producers make them (time-ordered, decision 0015), or random version 4 UUIDs as
# they made them before (each id recorded on a random page of processed_events' index).
EVENT_IDS: dict[str, Callable[[], str]] = {"v7": events.new_event_id, "v4": lambda: str(uuid.uuid4())}


class Feed:
    """Wire messages as the outbox relay writes them, built from a template (building them is not timed)."""

    def __init__(self, city: CityProfile, seed: int, new_id: Callable[[], str]) -> None:
        self.rng = random.Random(seed)
        self.new_id = new_id
        self.units = sorted(city.unit_ids)
        self.categories = {u: [c.id for c in city.categories_of(u)] or [city.categories[0].id] for u in self.units}
        self.start = datetime(YEAR, 1, 1, tzinfo=UTC)
        self.serial = 0
        # Seconds between two events: 5,000,000 a year, whatever --events (a poll spans a few hours of them).
        self.step = 31_000_000 / 5_000_000
        self.recent: list[Message] = []

    def _message(self, event_type: str, key: str, body: str) -> Message:
        self.serial += 1
        moment = self.start + timedelta(seconds=self.serial * self.step)
        return encode_stored(event_id=self.new_id(), source="bench", event_type=event_type,
                             time=moment.isoformat(), key=key, value=body.encode(), topic=TOPIC)

    def batch(self, size: int) -> list[Message]:
        rng, out = self.rng, []
        for _ in range(size):
            roll = rng.random()
            if roll < 0.01 and self.recent:
                out.append(rng.choice(self.recent))  # a redelivery: must change nothing
                continue
            unit = rng.choice(self.units)
            # In the log's order, as a replay reads it: time moves on, with items a few hours late.
            at = (self.start + timedelta(seconds=self.serial * self.step - rng.randrange(14_400))).isoformat()
            level = rng.randint(1, 5)
            fid = f"f{self.serial}"
            if roll < 0.012:
                to = rng.choice(self.units)
                body = (f'{{"feedback_id":"{fid}","from_unit_id":"{unit}","unit_id":"{to}","channel":"web",'
                        f'"occurred_at":"{at}","year":{YEAR},"level":{level},'
                        f'"category_id":"{self.categories[unit][0]}"}}')
                out.append(self._message("feedback.reassigned", unit, body))
            elif roll < 0.02:
                body = (f'{{"feedback_id":"{fid}","unit_id":"{unit}","level":{level},"occurred_at":"{at}",'
                        f'"year":{YEAR}}}')
                out.append(self._message("feedback.follow_up", unit, body))
            elif roll < 0.55:
                body = (f'{{"feedback_id":"{fid}","unit_id":"{unit}","channel":"window","occurred_at":"{at}",'
                        f'"year":{YEAR},"level":{level},"window_id":"{unit}-w1","device":"kiosk-1"}}')
                out.append(self._message("feedback.received", unit, body))
            else:
                channel = "web" if roll < 0.8 else "mobile"
                category = rng.choice(self.categories[unit])
                body = (f'{{"feedback_id":"{fid}","unit_id":"{unit}","channel":"{channel}","occurred_at":"{at}",'
                        f'"year":{YEAR},"level":{level},"category_id":"{category}","has_text":true}}')
                out.append(self._message("feedback.received", unit, body))
        self.recent = out[-200:]
        return out

    def batches(self, total: int, size: int) -> Iterator[list[Message]]:
        for start in range(0, total, size):
            yield self.batch(min(size, total - start))


class Steps:
    """--steps: wall and CPU time of the consumer's steps during the replay, by timers wrapped around them.

    Installed for the replay only and taken off after; the timers cost a little themselves. CPU is the
    calling thread's (the decoding thread's for decoding and summing), except "the poll", which is the
    whole process's.
    """

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = {}
        self.polls = 0
        self.undo: list[Callable[[], None]] = []

    def _add(self, name: str, wall: float, cpu: float) -> None:
        step = self.spent[name]
        step[0] += wall
        step[1] += cpu

    def _wrap(self, owner: object, attr: str, name: str, *, coroutine: bool, clock: Callable[[], float]) -> None:
        self.spent[name] = [0.0, 0.0]  # reported in the order installed
        original = getattr(owner, attr)
        raw = inspect.getattr_static(owner, attr)  # a staticmethod stays one when put back
        self.undo.append(lambda: setattr(owner, attr, raw))
        add = self._add
        if coroutine:
            async def timed_async(*args: object, **kwargs: object) -> object:
                t0, c0 = time.perf_counter(), clock()
                try:
                    return await original(*args, **kwargs)
                finally:
                    add(name, time.perf_counter() - t0, clock() - c0)
            setattr(owner, attr, timed_async)
        else:
            def timed(*args: object, **kwargs: object) -> object:
                t0, c0 = time.perf_counter(), clock()
                try:
                    return original(*args, **kwargs)
                finally:
                    add(name, time.perf_counter() - t0, clock() - c0)
            setattr(owner, attr, staticmethod(timed) if attr == "_header_ids" else timed)

    def install(self) -> None:
        thread = time.thread_time
        self._wrap(IdempotentConsumer, "batch", "the poll (process CPU)", coroutine=True, clock=time.process_time)
        self._wrap(IdempotentConsumer, "_header_ids", "ids read from the headers", coroutine=False, clock=thread)
        self._wrap(consumer_module, "record_new", "ids recorded (the statement)", coroutine=True, clock=thread)
        self._wrap(IdempotentConsumer, "_decode_poll", "decoded and summed (thread)", coroutine=False, clock=thread)
        self._wrap(consumers, "summarise", "  of which summed", coroutine=False, clock=thread)
        self._wrap(consumers.Summary, "write", "summary written (year, upsert)", coroutine=True, clock=thread)

    def remove(self) -> None:
        for undo in reversed(self.undo):
            undo()

    def report(self, polls: int, events: int) -> None:
        print(f"  steps, a poll of {events / polls:,.0f} events on average (wall / CPU, ms a poll):", flush=True)
        for name, (wall, cpu) in self.spent.items():
            print(f"    {name:34s} {wall / polls * 1000:8.1f} / {cpu / polls * 1000:8.1f}", flush=True)


def percentiles(samples: list[float]) -> str:
    p99 = statistics.quantiles(samples, n=100)[98]
    return f"p50 {statistics.median(samples):6.2f} ms, p99 {p99:6.2f} ms (aim p99 < 20 ms, ratio {p99 / 20:.2f})"


@contextlib.asynccontextmanager
async def scratch_database(backend: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'scoring.db'}"
        return
    async with db.scratch_database(ADMIN, "bench_scoring") as scratch:
        yield scratch


async def bench(backend: str, total: int, batch: int, reads: int, bare_events: int, per_event: int,
                fresh_s: float, new_id: Callable[[], str], steps: bool = False) -> None:
    city = load_city(default_city_path())
    async with scratch_database(backend) as url:
        with tempfile.TemporaryDirectory() as tmp:
            settings = ScoringSettings(data_dir=Path(tmp), bus="memory", auth_secret="bench", database_url=url)
            runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=MemoryBus(), city=city)
            try:
                await db.migrate(runtime.engine, MIGRATIONS)
                await run(backend, runtime, settings, total, batch, reads, bare_events, per_event, fresh_s, new_id,
                          steps)
            finally:
                await runtime.engine.dispose()


async def run(backend: str, runtime: ServiceRuntime, settings: ScoringSettings, total: int, batch: int, reads: int,
              bare_events: int, per_event: int, fresh_s: float, new_id: Callable[[], str], steps: bool) -> None:
    city = runtime.city
    print(f"--- {backend}: {total:,} feedback events in polls of {batch}, event ids "
          f"{'time-ordered (v7)' if new_id is events.new_event_id else 'random (v4)'}", flush=True)
    # Baselines: decoding alone (the SDK's path on a sample, the fast path), then decode + record ids only.
    sample = Feed(city, seed=1, new_id=new_id).batch(min(bare_events, 20_000))
    t0 = time.perf_counter()
    for m in sample[:2000]:
        decode(m)
    sdk = 2000 / (time.perf_counter() - t0)
    # Each decoder over the sample three times, in turn (this machine's speed drifts): the best of each.
    decoders: dict[str, Callable[[], object]] = {
        "fast": lambda: [decode_fast(m) for m in sample],
        "lean": lambda: [decode_lean(m) for m in sample],
        "rows": lambda: [consumers.DECODE_BATCH(m) for m in sample],
        "poll": lambda: consumers.DECODE_BATCH.poll(sample),
    }
    best = dict.fromkeys(decoders, 0.0)
    for _ in range(3):
        for name, run_decoder in decoders.items():
            t0 = time.perf_counter()
            run_decoder()
            best[name] = max(best[name], len(sample) / (time.perf_counter() - t0))
    fast, lean, rows, poll = best["fast"], best["lean"], best["rows"], best["poll"]
    print(f"baseline decode: CloudEvents SDK {sdk:,.0f} msg/s, fast path {fast:,.0f} msg/s, lean path "
          f"{lean:,.0f} msg/s, the batch consumer's rows {rows:,.0f} msg/s a message at a time, "
          f"{poll:,.0f} msg/s a poll at once (as it decodes them)", flush=True)
    # The bare reference decodes as the consumers did before the lean path (decode_fast): a yardstick that
    # stays the same from one version of scoring to the next, so the replay's ratio to it can be compared.
    bare = IdempotentConsumer(name="bench-bare", sessions=runtime.sessions, table=runtime.processed, handlers={})
    busy = cpu = 0.0
    for chunk in Feed(city, seed=2, new_id=new_id).batches(bare_events, batch):
        t0, c0 = time.perf_counter(), time.process_time()
        await bare.batch(chunk)
        busy += time.perf_counter() - t0
        cpu += time.process_time() - c0
    bare_rate = bare_events / busy
    print(f"baseline decode + record ids (no read model): {bare_rate:,.0f} events/s over {bare_events:,} "
          f"({bare_events / cpu:,.0f} per CPU second of this process)", flush=True)

    table = consumers.handlers(city)
    # The live path before batching: the SDK's decode and one transaction per event.
    single = IdempotentConsumer(name="bench-single", sessions=runtime.sessions, table=runtime.processed,
                                handlers=table)
    sample = Feed(city, seed=3, new_id=new_id).batch(per_event)
    t0, c0 = time.perf_counter(), time.process_time()
    for m in sample:
        await single.apply(decode(m))
    busy, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"baseline per-event consumer (SDK decode, a transaction per event, the previous live path): "
          f"{per_event / busy:,.0f} events/s over {per_event:,} ({per_event / cpu:,.0f} per CPU second)", flush=True)
    async with runtime.transaction() as session:  # start the replay from an empty read model
        await repository.clear_read_model(session, READ_MODEL)

    live = IdempotentConsumer(name=consumers.CONSUMER, sessions=runtime.sessions, table=runtime.processed,
                              handlers=table, batch_handler=consumers.batch_handler(city, table),
                              decode=consumers.DECODE, decode_batch=consumers.DECODE_BATCH,
                              prepare=consumers.preparer(city, table))
    feed = Feed(city, seed=5, new_id=new_id)
    machine = MachineCpu()
    timers = Steps() if steps else None
    if timers is not None:
        timers.install()
    busy, cpu, done, step, wall, polls = 0.0, 0.0, 0, max(total // 20, batch), time.perf_counter(), 0
    for chunk in feed.batches(total, batch):
        polls += 1
        t0, c0 = time.perf_counter(), time.process_time()
        dead = await live.batch(chunk)
        busy += time.perf_counter() - t0
        cpu += time.process_time() - c0
        assert not dead, dead[:1]
        done += len(chunk)
        if done % step < batch or done == total:
            print(f"  {done:>10,} / {total:,} events, {done / busy:,.0f} events/s so far "
                  f"({time.perf_counter() - wall:.0f} s wall)", flush=True)
    rate = done / busy
    if timers is not None:
        timers.remove()
    print(f"replay: {done:,} events ({live.applied:,} applied, {live.skipped:,} redelivered skipped) in "
          f"{busy:.1f} s = {rate:,.0f} events/s (aim 50,000/s, ratio {rate / 50_000:.2f}; "
          f"{rate / bare_rate:.2f} of the bare decode + record; {done / cpu:,.0f} per CPU second of this "
          f"process{', SQLite included' if backend == 'sqlite' else ', the server not included'})", flush=True)
    if timers is not None:
        timers.report(polls, done)
    spent, _ = machine.spent()
    # The feed is built between the polls, in this process, while the server idles: its CPU is the
    # server's work for the consumer's statements alone.
    print(f"  CPU an event: the consumer {cpu / done * 1e6:.1f} us (this process while it applied polls)"
          + (f", the PostgreSQL server {spent['postgres'] / done * 1e6:.1f} us" if backend == "postgresql" else ""),
          flush=True)
    if backend == "postgresql":
        # What the ids' order does to the index that records them (decision 0015).
        async with runtime.engine.connect() as conn:
            rows, size = (await conn.execute(text(
                "SELECT count(*), pg_indexes_size('processed_events') FROM processed_events"))).one()
        print(f"processed_events: {rows:,} ids, its index {size / 2**20:,.1f} MiB "
              f"({size / max(rows, 1):.0f} bytes an id)", flush=True)

    t0 = time.perf_counter()
    await service.refresh(runtime)
    first = (time.perf_counter() - t0) * 1000
    async with runtime.transaction() as session:
        await repository.touch_year(session, YEAR)
    t0 = time.perf_counter()
    await service.refresh(runtime)
    again = (time.perf_counter() - t0) * 1000
    print(f"recompute of the whole year from the full read model: {again:.1f} ms "
          f"({len(city.units)} units; first pass {first:.1f} ms)", flush=True)

    wake = asyncio.Event()
    loop = asyncio.create_task(service.refresher(runtime, wake, min_gap_s=settings.recompute_gap_s,
                                                 poll_s=settings.recompute_poll_s))
    try:
        unit = sorted(city.unit_ids)[0]
        group = city.unit(unit).group

        async def timed(read: object) -> list[float]:
            samples = []
            for i in range(reads):
                if i % 50 == 0:  # an event arrives: the loop recomputes the year in the background
                    await live.batch(feed.batch(1))
                    wake.set()
                t0 = time.perf_counter()
                await read()  # type: ignore[operator]
                samples.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.002)  # requests arrive over time, not back to back
            return samples

        one = await timed(lambda: service.scorecard(runtime=runtime, unit_id=unit, year=YEAR))
        rank = await timed(lambda: service.ranking(runtime=runtime, year=YEAR, group=group))
        lags = await freshness(runtime, live, feed, wake, seconds=fresh_s)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    if lags:
        q = statistics.quantiles(lags, n=100)
        print(f"freshness (a batch of {FRESH_BATCH} every {FRESH_EVERY_S * 1000:.0f} ms for {fresh_s:g} s, the "
              f"recompute loop as in the service): applied -> in the stored scorecards p50 "
              f"{statistics.median(lags):.0f} ms, p95 {q[94]:.0f} ms, max {max(lags):.0f} ms over {len(lags)} "
              f"batches", flush=True)
    print(f"scorecard of one unit: {percentiles(one)} over {reads} reads", flush=True)
    print(f"ranking of a group:    {percentiles(rank)} over {reads} reads", flush=True)
    # The figure the reads used to pay on a change: a year's scorecards from the aggregates, per request.
    t0 = time.perf_counter()
    async with runtime.sessions() as session:
        inputs = await service.load_inputs(session, YEAR, service.today(runtime))
    service.compute(service.groups_of(runtime), inputs)
    print(f"(for comparison, computing a year per request as reads did before: "
          f"{(time.perf_counter() - t0) * 1000:.1f} ms)", flush=True)


FRESH_BATCH = 50
FRESH_EVERY_S = 0.05


async def freshness(runtime: ServiceRuntime, live: IdempotentConsumer, feed: Feed, wake: asyncio.Event, *,
                    seconds: float) -> list[float]:
    """Batches at a steady rate, as the Kafka consumer applies them; for each, the time from its commit
    until a recompute pass stored scorecards of at least the year's version it left (polled every 5 ms)."""
    loop = asyncio.get_running_loop()
    waiting: list[tuple[int, float]] = []
    lags: list[float] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not (done.is_set() and not waiting):
            async with runtime.sessions() as session:
                row = await repository.year_row(session, YEAR)
            computed = int(row["computed_version"]) if row else 0
            now = loop.time()
            while waiting and waiting[0][0] <= computed:
                lags.append((now - waiting.pop(0)[1]) * 1000)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        start = loop.time()
        n = 0
        while loop.time() - start < seconds:
            n += 1
            await live.batch(feed.batch(FRESH_BATCH))
            at = loop.time()
            wake.set()  # as the service's after_commit does
            async with runtime.sessions() as session:
                row = await repository.year_row(session, YEAR)
            assert row is not None
            waiting.append((int(row["version"]), at))
            await asyncio.sleep(max(0.0, start + n * FRESH_EVERY_S - loop.time()))
        done.set()
        await asyncio.wait_for(watcher, timeout=30)
    finally:
        watcher.cancel()
    return lags


async def main(args: argparse.Namespace) -> None:
    if args.gc == "service":
        tune_gc()  # as a serving process does once it has started
    for backend in args.backends.split(","):
        await bench(backend, args.events, args.batch, args.reads, min(args.bare, args.events),
                    min(args.per_event, args.events), args.fresh, EVENT_IDS[args.ids], args.steps)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=consumers.POLL_SIZE,
                        help="messages per poll (scoring's consumer polls up to consumers.POLL_SIZE)")
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--bare", type=int, default=200_000, help="events for the decode + record baseline")
    parser.add_argument("--per-event", type=int, default=3000, help="events for the per-event consumer baseline")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--gc", choices=["service", "default"], default="service",
                        help="the collector as a serving process sets it (runner.tune_gc), or CPython's default")
    parser.add_argument("--ids", choices=sorted(EVENT_IDS), default="v7",
                        help="event ids as the producers make them (v7), or random as they made them before (v4)")
    parser.add_argument("--steps", action="store_true",
                        help="time the consumer's steps during the replay (timers wrapped around them)")
    parser.add_argument("--fresh", type=float, default=10.0,
                        help="seconds of the freshness phase (a batch of 50 every 50 ms: 1,000 events/s)")
    asyncio.run(main(parser.parse_args()))
