"""Benchmark of target-tracker: a year of daily progress for 45 units x 10 targets through the API, and reads.

Run: .venv/bin/python bench/targets.py [--database both|postgres|sqlite] [--batch-days 365] [--reads 2000]
Each database gets a real `yardstick serve target-tracker` process: PostgreSQL on a fresh database with
Kafka on a fresh topic prefix (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:19092; YARDSTICK_TEST_PG_ADMIN_URL,
default postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres), SQLite with the in-process bus.
It imports 450 targets in one CSV, loads 45 x 10 x 365 reports through POST /v1/units/{unit}/progress:batch
(each unit's reports in batches of --batch-days days, in date order), waits for the outbox to drain, and
times a unit's targets with status. For comparison it posts --single-days days of reports one request
each through POST /v1/targets/{id}/progress on the previous year's copy of the targets.
--profile N profiles N batched reports in-process (SQLite) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import csv
import io
import os
import pstats
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# This script is named like nothing it imports, but keep its folder off the path like the others.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from target_tracker import forecast  # noqa: E402
from yardstick import auth  # noqa: E402
from yardstick.bus.kafka import delete_topics_with_prefix  # noqa: E402
from yardstick.city import default_city_path, load_city  # noqa: E402
from yardstick.db import scratch_database_sync  # noqa: E402
from yardstick.runner import tune_gc  # noqa: E402

UNITS, PER_UNIT, DAYS = 45, 10, 365
BIN = Path(sys.executable).parent
CITY = load_city(default_city_path())
YEAR = datetime.now(UTC).astimezone(CITY.timezone).year - 1  # a whole past year can be reported
ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL", "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def year_csv(units: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["unit_id", "code", "title", "unit_of_measure", "direction", "baseline", "target", "weight",
                     "cadence", "valid_min", "valid_max"])
    for unit in units:
        for i in range(PER_UNIT):
            writer.writerow([unit, f"t{i}", f"Indicator {i}", "%", "increase", 50, 80, 1 + i % 3, "daily", 0, 100])
    return out.getvalue()


def value_of(target: int, day: int, noise: np.ndarray) -> float:
    """A climbing series with noise: some targets on track, some behind."""
    pace = 30 * (0.7 + 0.06 * (target % 10)) / 365
    return float(round(50 + pace * day + noise[target, day], 3))


def on(year: int, day: int) -> str:
    return (date(year, 1, 1) + timedelta(days=day)).isoformat()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def post_batches(client: httpx.AsyncClient, headers: dict[str, str], units: list[str],
                       ids: dict[str, list[str]], batch_days: int, concurrency: int,
                       noise: np.ndarray, days: int = DAYS) -> tuple[float, list[float]]:
    """Every unit's days in batches of batch_days days (date order); returns the wall time and latencies."""
    jobs = [(u, d0) for d0 in range(0, days, batch_days) for u in range(len(units))]
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    done = 0
    total = len(units) * PER_UNIT * days
    reported = 0
    start = time.perf_counter()
    last_print = start

    async def one(u: int, d0: int) -> None:
        nonlocal done, reported, last_print
        unit = units[u]
        async with sem:
            # Built when sent: building every batch up front holds the loop for seconds, long enough for
            # the server to close the idle keep-alive connection under the client's feet.
            reports = [{"target_id": ids[unit][i], "date": on(YEAR, d), "value": value_of(u * PER_UNIT + i, d, noise)}
                       for d in range(d0, min(days, d0 + batch_days)) for i in range(PER_UNIT)]
            began = time.perf_counter()
            r = await client.post(f"/v1/units/{unit}/progress:batch", json={"reports": reports}, headers=headers)
            latencies.append(time.perf_counter() - began)
        if r.status_code != 200 or r.json()["accepted"] != len(reports):
            raise SystemExit(f"batch of {unit} from day {d0}: {r.status_code} {r.text[:300]}")
        done += 1
        reported += len(reports)
        now = time.perf_counter()
        if now - last_print > 2 or done == len(jobs):
            last_print = now
            print(f"  {done}/{len(jobs)} batches, {reported}/{total} reports, {now - start:.1f} s, "
                  f"{reported / (now - start):.0f} reports/s", flush=True)

    await asyncio.gather(*(one(u, d0) for u, d0 in jobs))
    return time.perf_counter() - start, latencies


async def post_singles(client: httpx.AsyncClient, headers: dict[str, str], ids: list[str], days: int,
                       concurrency: int, noise: np.ndarray) -> tuple[float, list[float]]:
    """One request per report, day by day (each target's reports in date order), for the comparison."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failures: list[str] = []

    async def one(t: int, d: int) -> None:
        body = {"date": on(YEAR - 1, d), "value": value_of(t, d, noise)}
        async with sem:
            began = time.perf_counter()
            r = await client.post(f"/v1/targets/{ids[t]}/progress", json=body, headers=headers)
            latencies.append(time.perf_counter() - began)
        if r.status_code != 201:
            failures.append(r.text[:200])

    start = time.perf_counter()
    for d in range(days):
        await asyncio.gather(*(one(t, d) for t in range(len(ids))))
        print(f"  day {d + 1}/{days}: {len(latencies)} reports, {time.perf_counter() - start:.1f} s", flush=True)
    if failures:
        raise SystemExit(f"{len(failures)} single reports failed, e.g. {failures[0]}")
    return time.perf_counter() - start, latencies


async def outbox_drained(client: httpx.AsyncClient, timeout_s: float = 900) -> float:
    """Seconds until the outbox gauge reads 0 twice in a row (every event handed to the bus)."""
    start = time.perf_counter()
    zeros = 0
    pattern = re.compile(r'^yardstick_outbox_pending\{service="target-tracker"\} (\S+)$', re.M)
    while time.perf_counter() - start < timeout_s:
        match = pattern.search((await client.get("/metrics")).text)
        pending = float(match.group(1)) if match else -1
        zeros = zeros + 1 if pending == 0 else 0
        if zeros == 2:
            return time.perf_counter() - start
        await asyncio.sleep(0.5)
    raise SystemExit(f"the outbox did not drain in {timeout_s:.0f} s")


async def unit_reads(client: httpx.AsyncClient, headers: dict[str, str], units: list[str], n: int) -> list[float]:
    times = []
    for i in range(n):
        began = time.perf_counter()
        r = await client.get(f"/v1/units/{units[i % len(units)]}/targets?year={YEAR}", headers=headers)
        times.append(time.perf_counter() - began)
        r.raise_for_status()
        items = r.json()["items"]
        assert len(items) == PER_UNIT and all(t["latest"] for t in items)
    return times


def pure_forecast_cost(noise: np.ndarray) -> float:
    """Seconds per report of the math alone: project + status after each report of one target's year."""
    spec = forecast.Spec(kind="numeric", direction="increase", baseline=50, target=80, year=YEAR)
    series = [(date(YEAR, 1, 1) + timedelta(days=d), value_of(3, d, noise)) for d in range(DAYS)]
    params: forecast.HoltParams | None = None
    forecast.fit_holt([v for _, v in series[:forecast.HOLT_MIN_REPORTS]])  # statsmodels' import, off the clock
    start = time.perf_counter()
    for n in range(1, DAYS + 1):
        if n >= forecast.HOLT_MIN_REPORTS and params is None:
            params = forecast.fit_holt([v for _, v in series[:n]])  # once, as a batch does
        p = forecast.project(spec, series[max(0, n - forecast.HOLT_WINDOW):n], params)
        forecast.status(spec, latest=series[n - 1], projection=p, today=date(YEAR, 12, 31), stale_days=10,
                        thresholds=forecast.Thresholds())
    return (time.perf_counter() - start) / DAYS


def start_server(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(BIN / "yardstick"), "serve", "target-tracker"], env=env, stdout=log,
                                stderr=log)


async def run(name: str, env: dict[str, str], port: int, secret: str, args: argparse.Namespace,
              server: subprocess.Popen[bytes]) -> None:
    units = sorted(CITY.unit_ids)[:UNITS]
    token = auth.issue(secret, role="commission", subject="bench")[0]
    headers = {"Authorization": f"Bearer {token}"}
    noise = np.random.default_rng(1).normal(0, 0.4, size=(UNITS * PER_UNIT, 366))
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600, limits=limits) as client:
        for _ in range(600):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        print(f"== {name} (load average {load_average()})")
        ids: dict[str, list[str]] = {}
        for year in (YEAR - 1, YEAR):
            began = time.perf_counter()
            r = await client.post(f"/v1/targets:import?year={year}", content=year_csv(units),
                                  headers={**headers, "Content-Type": "text/csv"})
            r.raise_for_status()
            if year == YEAR:
                flat = r.json()["ids"]
                ids = {u: flat[k * PER_UNIT:(k + 1) * PER_UNIT] for k, u in enumerate(units)}
            else:
                single_ids = r.json()["ids"]
            print(f"import {year}: {UNITS * PER_UNIT} targets of {UNITS} units in one CSV: "
                  f"{time.perf_counter() - began:.2f} s")

        if args.single_days:
            print(f"single route, {args.single_days} days x {len(single_ids)} targets of {YEAR - 1}, "
                  f"concurrency {args.concurrency}:")
            wall, lat = await post_singles(client, headers, single_ids, args.single_days, args.concurrency, noise)
            rate = len(lat) / wall
            print(f"single route: {len(lat)} reports in {wall:.1f} s: {rate:.0f} reports/s, p50 {pct(lat, 50):.1f} ms, "
                  f"p99 {pct(lat, 99):.1f} ms; a full year ({UNITS * PER_UNIT * DAYS}) at this rate: "
                  f"{UNITS * PER_UNIT * DAYS / rate:.0f} s")
            await outbox_drained(client)

        print(f"batch route, {UNITS} units x {PER_UNIT} targets x {DAYS} days in batches of {args.batch_days} days "
              f"({args.batch_days * PER_UNIT} reports), {args.batch_concurrency} at a time:")
        wall, lat = await post_batches(client, headers, units, ids, args.batch_days, args.batch_concurrency, noise)
        total = UNITS * PER_UNIT * DAYS
        print(f"batch route: {total} reports in {wall:.1f} s (aim < 60 s): {total / wall:.0f} reports/s; "
              f"{len(lat)} requests, p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms")
        drained = await outbox_drained(client)
        print(f"  every event handed to the bus {drained:.1f} s after the last batch "
              f"({'Kafka' if env.get('YARDSTICK_BUS') == 'kafka' else 'in-process bus'})")
        print(f"  pure forecast per report (the math alone): {pure_forecast_cost(noise) * 1e6:.0f} us")

        reads = await unit_reads(client, headers, units, args.reads)
        health = []
        for _ in range(args.reads):
            began = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            health.append(time.perf_counter() - began)
        print(f"a unit's targets with status ({PER_UNIT} targets, a year of history), {len(reads)} sequential reads: "
              f"p50 {pct(reads, 50):.2f} ms, p99 {pct(reads, 99):.2f} ms (aim p99 < 20 ms); "
              f"GET /healthz p50 {pct(health, 50):.2f} ms, p99 {pct(health, 99):.2f} ms")
        print(f"== {name} done (load average {load_average()})")


def bench(name: str, args: argparse.Namespace) -> None:
    """Processes and databases are made and removed here, outside the event loop that drives the load."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_targets_"))
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env.update({"YARDSTICK_AUTH_SECRET": secret, "YARDSTICK_DATA_DIR": str(tmp), "YARDSTICK_TARGETS_PORT": str(port),
                "YARDSTICK_LOG_LEVEL": "WARNING", "YARDSTICK_AUTH_DATABASE_URL": "sqlite+aiosqlite:///:memory:"})
    with contextlib.ExitStack() as stack:
        if name == "postgres":
            env.update({"YARDSTICK_BUS": "kafka", "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
                        "YARDSTICK_TOPIC_PREFIX": stack.enter_context(run_topics(f"bench{secrets.token_hex(3)}.")),
                        "YARDSTICK_TARGETS_DATABASE_URL": stack.enter_context(
                            scratch_database_sync(ADMIN, "bench_targets"))})
        else:
            env["YARDSTICK_BUS"] = "memory"
        server = start_server(env, tmp / "server.log")
        try:
            asyncio.run(run(name, env, port, secret, args, server))
        except BaseException:
            print(f"the server's log: {tmp / 'server.log'}")
            raise
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextlib.contextmanager
def run_topics(prefix: str) -> Iterator[str]:
    """The run's topic prefix; its topics are deleted at the end (else each run adds 72 partitions)."""
    try:
        yield prefix
    finally:
        asyncio.run(delete_topics_with_prefix(KAFKA, prefix))


async def profile(n: int) -> None:
    """N batched reports through the app in-process (no sockets) under cProfile: where a report's time goes."""
    from target_tracker.app import create_app
    from target_tracker.settings import TargetsSettings

    units = sorted(CITY.unit_ids)[:UNITS]
    tmp = Path(tempfile.mkdtemp(prefix="bench_targets_"))
    secret = secrets.token_urlsafe(32)
    app = create_app(TargetsSettings(data_dir=tmp, bus="memory", auth_secret=secret))
    token = auth.issue(secret, role="commission", subject="bench")[0]
    headers = {"Authorization": f"Bearer {token}"}
    noise = np.random.default_rng(1).normal(0, 0.4, size=(UNITS * PER_UNIT, 366))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600) as client:
        r = await client.post(f"/v1/targets:import?year={YEAR}", content=year_csv(units[:1]),
                              headers={**headers, "Content-Type": "text/csv"})
        ids = {units[0]: r.json()["ids"]}
        days = min(DAYS, max(1, n // PER_UNIT))
        tune_gc()  # as a serving process does once it listens
        profiler = cProfile.Profile()
        cpu = time.process_time()
        profiler.enable()
        wall, _ = await post_batches(client, headers, units[:1], ids, days, 1, noise, days)
        profiler.disable()
        cpu = time.process_time() - cpu
    count = days * PER_UNIT
    print(f"\nprofile: {count} reports in one batch in-process: {wall * 1000 / count:.3f} ms each "
          f"(CPU {cpu * 1000 / count:.3f} ms each, all threads)")
    stats: Any = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("both", "postgres", "sqlite"), default="both")
    parser.add_argument("--batch-days", type=int, default=DAYS, help="days per batch (x 10 reports)")
    parser.add_argument("--batch-concurrency", type=int, default=2)
    parser.add_argument("--single-days", type=int, default=2, help="days of single reports for the comparison")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent single reports")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    arguments = parser.parse_args()
    if arguments.profile:
        asyncio.run(profile(arguments.profile))
    else:
        for which in (("postgres", "sqlite") if arguments.database == "both" else (arguments.database,)):
            bench(which, arguments)
