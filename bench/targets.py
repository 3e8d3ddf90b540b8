"""Benchmark of target-tracker: a year of daily progress for 45 units x 10 targets through the API, and reads.

Run: .venv/bin/python bench/targets.py [--days 365] [--concurrency 32] [--database-url URL] [--profile N].
Starts `yardstick serve target-tracker` (in-process bus; SQLite unless --database-url), imports 450
targets in one CSV, posts one report per target and day, then times a unit's targets with status.
Baselines measured in the same run: GET /healthz at the same concurrency (the HTTP floor) and the pure
forecast per report (the math floor). --profile N profiles N reports in-process and prints the top calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import csv
import io
import os
import pstats
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

# This script is named like nothing it imports, but keep its folder off the path like the others.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from target_tracker import forecast  # noqa: E402
from yardstick import auth  # noqa: E402
from yardstick.city import default_city_path, load_city  # noqa: E402

UNITS, PER_UNIT = 45, 10
BIN = Path(sys.executable).parent
CITY = load_city(default_city_path())
YEAR = datetime.now(UTC).astimezone(CITY.timezone).year - 1  # a whole past year can be reported


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


def value_of(target: int, day: int, rng_table: np.ndarray) -> float:
    """A climbing series with noise: some targets on track, some behind."""
    pace = 30 * (0.7 + 0.06 * (target % 10)) / 365
    return float(round(50 + pace * day + rng_table[target, day], 3))


async def post_reports(client: httpx.AsyncClient, headers: dict[str, str], ids: list[str], days: int,
                       concurrency: int, noise: np.ndarray) -> tuple[float, list[float]]:
    """One report per target and day, day by day; returns the wall time and each request's latency."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failures: list[str] = []

    async def one(t: int, d: int) -> None:
        body = {"date": (date(YEAR, 1, 1) + timedelta(days=d)).isoformat(), "value": value_of(t, d, noise)}
        async with sem:
            start = time.perf_counter()
            r = await client.post(f"/v1/targets/{ids[t]}/progress", json=body, headers=headers)
            latencies.append(time.perf_counter() - start)
        if r.status_code != 201:
            failures.append(r.text[:200])

    start = time.perf_counter()
    # Day by day, so each target's reports arrive in date order as a coordinator's would.
    for d in range(days):
        await asyncio.gather(*(one(t, d) for t in range(len(ids))))
    wall = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} reports failed, e.g. {failures[0]}")
    return wall, latencies


async def healthz_rate(client: httpx.AsyncClient, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            (await client.get("/healthz")).raise_for_status()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


def pure_forecast_cost(days: int, noise: np.ndarray) -> float:
    """Seconds per report of the math alone: project + status on each prefix of one target's series."""
    spec = forecast.Spec(kind="numeric", direction="increase", baseline=50, target=80, year=YEAR)
    series = [(date(YEAR, 1, 1) + timedelta(days=d), value_of(3, d, noise)) for d in range(days)]
    params: forecast.HoltParams | None = None
    start = time.perf_counter()
    for n in range(1, days + 1):
        if n >= forecast.HOLT_MIN_REPORTS and (params is None or n % 30 == 0):
            params = forecast.fit_holt([v for _, v in series[:n]])
        p = forecast.project(spec, series[max(0, n - 120):n], params)
        forecast.status(spec, latest=series[n - 1], projection=p, today=date(YEAR, 12, 31), stale_days=10,
                        thresholds=forecast.Thresholds())
    return (time.perf_counter() - start) / days


async def unit_reads(client: httpx.AsyncClient, headers: dict[str, str], units: list[str], n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        r = await client.get(f"/v1/units/{units[i % len(units)]}/targets?year={YEAR}", headers=headers)
        times.append(time.perf_counter() - start)
        r.raise_for_status()
        assert len(r.json()["items"]) == PER_UNIT
    return times


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


async def profile(n: int, units: list[str]) -> None:
    """N reports through the app in-process (no sockets) under cProfile: where a report's time goes."""
    from target_tracker.app import create_app
    from target_tracker.settings import TargetsSettings

    tmp = Path(tempfile.mkdtemp())
    secret = secrets.token_urlsafe(32)
    app = create_app(TargetsSettings(data_dir=tmp, bus="memory", auth_secret=secret))
    token = auth.issue(secret, role="commission", subject="bench")[0]
    headers = {"Authorization": f"Bearer {token}"}
    noise = np.random.default_rng(1).normal(0, 0.4, size=(UNITS * PER_UNIT, 366))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        r = await client.post(f"/v1/targets:import?year={YEAR}", content=year_csv(units[:1]),
                              headers={**headers, "Content-Type": "text/csv"})
        ids = r.json()["ids"]
        days = max(1, n // len(ids))
        profiler = cProfile.Profile()
        profiler.enable()
        wall, _ = await post_reports(client, headers, ids, days, 1, noise)
        profiler.disable()
    print(f"\nprofile: {days * len(ids)} reports in-process, {wall / (days * len(ids)) * 1000:.2f} ms each")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def start_server(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(BIN / "yardstick"), "serve", "target-tracker"], env=env, stdout=log,
                                stderr=log)


async def main(args: argparse.Namespace) -> None:
    units = sorted(CITY.unit_ids)[:UNITS]
    if args.profile:
        await profile(args.profile, units)
        return
    tmp = Path(tempfile.mkdtemp())
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env.update({"YARDSTICK_BUS": "memory", "YARDSTICK_AUTH_SECRET": secret, "YARDSTICK_DATA_DIR": str(tmp),
                "YARDSTICK_TARGETS_PORT": str(port), "YARDSTICK_LOG_LEVEL": "WARNING"})
    if args.database_url:
        env["YARDSTICK_TARGETS_DATABASE_URL"] = args.database_url
    server = start_server(env, tmp / "server.log")
    token = auth.issue(secret, role="commission", subject="bench")[0]
    headers = {"Authorization": f"Bearer {token}"}
    noise = np.random.default_rng(1).normal(0, 0.4, size=(UNITS * PER_UNIT, 366))
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            start = time.perf_counter()
            r = await client.post(f"/v1/targets:import?year={YEAR}", content=year_csv(units),
                                  headers={**headers, "Content-Type": "text/csv"})
            r.raise_for_status()
            ids = r.json()["ids"]
            print(f"import: {len(ids)} targets of {UNITS} units in one CSV: {time.perf_counter() - start:.2f} s")

            floor = await healthz_rate(client, 5000, args.concurrency)
            wall, latencies = await post_reports(client, headers, ids, args.days, args.concurrency, noise)
            n = len(latencies)
            rate = n / wall
            full = UNITS * PER_UNIT * 365
            print(f"progress: {n} reports ({args.days} days x {len(ids)} targets), concurrency {args.concurrency}: "
                  f"{wall:.1f} s, {rate:.0f} reports/s; latency p50 {pct(latencies, 50):.1f} ms, "
                  f"p99 {pct(latencies, 99):.1f} ms")
            print(f"  full year ({full} reports) at this rate: {full / rate:.0f} s (aim < 60 s)"
                  + ("" if args.days == 365 else " [extrapolated]"))
            print(f"  HTTP floor, GET /healthz at the same concurrency: {floor:.0f} req/s; "
                  f"reports/s over floor = {rate / floor:.2f}")
            math_s = pure_forecast_cost(args.days, noise)
            print(f"  pure forecast per report (math floor): {math_s * 1000:.2f} ms; "
                  f"wall per report x concurrency / math = {(wall / n) * args.concurrency / math_s:.1f}x")

            reads = await unit_reads(client, headers, units, args.reads)
            print(f"a unit's targets with status ({PER_UNIT} targets, {args.days} days of history): "
                  f"p50 {pct(reads, 50):.2f} ms, p99 {pct(reads, 99):.2f} ms (aim p99 < 20 ms), {len(reads)} reads")
            health = []
            for _ in range(args.reads):
                s = time.perf_counter()
                await client.get("/healthz")
                health.append(time.perf_counter() - s)
            print(f"  baseline GET /healthz sequential: p50 {pct(health, 50):.2f} ms, p99 {pct(health, 99):.2f} ms;"
                  f" read p99 / healthz p99 = {pct(reads, 99) / pct(health, 99):.1f}x")
    except Exception:
        print(f"the server's log: {tmp / 'server.log'}")
        raise
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    asyncio.run(main(parser.parse_args()))
