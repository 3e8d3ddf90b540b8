"""Benchmark of feedback-intake over HTTP into PostgreSQL + Kafka, beside a bare FastAPI endpoint.

Run: .venv/bin/python bench/intake.py [--seconds 10] [--concurrency 32] [--only ratings,feedback,survey] [--profile]
                                      [--instances N] [--feedback-rates 300,500]
Needs Kafka (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:19092) and PostgreSQL
(YARDSTICK_TEST_PG_ADMIN_URL, default postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres).
The service runs as a real `yardstick serve` process on a fresh database and topic prefix; the bare
endpoint (same body model, no database) runs as its own uvicorn process: the framework's ceiling.
With --instances N, N intake processes share the database and the topics (as pods behind a Service do)
and the clients are spread over them; the server CPU figures are their sum.
After each phase, the machine's CPU a request, by who spent it (the intake processes, PostgreSQL,
Kafka's broker, this load generator, the rest) and the requests/s the machine's cores would allow
at that cost: on a machine where everything shares two cores, the ceiling the service works under.
The closed loops measure throughput (their latency is their own clients' queue); feedback posts are
then also sent at fixed rates (--feedback-rates, open loop): the latency a post sees at that load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from yardstick import auth
from yardstick.bus.kafka import delete_topics_with_prefix
from yardstick.city import default_city_path, load_city
from yardstick.db import scratch_database_sync

# bench/ is not on the path: `make bench` runs each script with -P (bench/scoring.py would hide the
# scoring package). The end-to-end bench's bare endpoint and profiler are taken from beside this file.
sys.path.append(str(Path(__file__).resolve().parent))
from e2e import BARE_APP, MachineCpu, percentile, profile_report, profile_start

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICE_PORT, BARE_PORT = 18291, 18292
CITY = load_city(default_city_path())



async def post(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], host: str, path: str,
               request: dict[str, Any]) -> tuple[int, bytes]:
    """One POST on a kept-alive HTTP/1.1 connection: (status, body).

    By hand, not httpx: httpx spent more CPU per request than the bare endpoint it measured (on this
    2-core machine the generator shares the cores with the server), so it capped both figures.
    """
    reader, writer = conn
    body = request["content"].encode() if "content" in request else json.dumps(request["json"]).encode()
    headers = {"Content-Type": "application/json"} | request.get("headers", {})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
                 + body)
    lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = next(int(v) for k, _, v in (line.partition(b":") for line in lines[1:]) if k.lower() == b"content-length")
    return status, await reader.readexactly(length)


_STEPS = [timedelta(seconds=10 * j) for j in range(100)]


def kiosk_body(window_id: str, base: datetime) -> str:
    """A kiosk's batch of 100 presses 10 s apart from `base`, as the JSON text a kiosk sends.

    Written as text: json.dumps of a hundred dicts and a uuid4() each cost the generator, which shares
    the two cores with the service, about 0.4 ms more a batch (`tests/deploy/test_bench_intake_body.py`
    holds it to the request model).
    """
    window = json.dumps(window_id)
    return '{"ratings":[' + ",".join(
        f'{{"id":"{rating_id}","window_id":{window},"level":{1 + j % 5},"rated_at":"{(base + _STEPS[j]).isoformat()}"}}'
        for j, rating_id in enumerate(random_uuids(100))) + "]}"


def random_uuids(n: int) -> list[str]:
    """n random (version 4) UUIDs from one read of the system's random source, as str(uuid.uuid4()) writes them."""
    raw = os.urandom(16 * n).hex()
    return [f"{raw[k:k + 8]}-{raw[k + 8:k + 12]}-4{raw[k + 13:k + 16]}-{'89ab'[int(raw[k + 16], 16) & 3]}"
            f"{raw[k + 17:k + 20]}-{raw[k + 20:k + 32]}" for k in range(0, 32 * n, 32)]


async def load(url: str | list[str], make: Callable[[int], dict[str, Any]], *, seconds: float, concurrency: int,
               expect: int) -> tuple[int, float, list[float]]:
    """Requests made by `make(i)` from `concurrency` workers for `seconds`: (requests, elapsed, latencies).

    Given several URLs (instances of one service), worker k keeps a connection to URL k modulo their number.
    """
    latencies: list[float] = []
    counter = 0
    targets = [httpx.URL(u) for u in ([url] if isinstance(url, str) else url)]
    stop = time.perf_counter() + seconds

    async def worker(target: httpx.URL) -> None:
        nonlocal counter
        conn = await asyncio.open_connection(target.host, target.port)
        try:
            while time.perf_counter() < stop:
                counter += 1
                request = make(counter)
                started = time.perf_counter()
                status, body = await post(conn, f"{target.host}:{target.port}", target.raw_path.decode(), request)
                latencies.append(time.perf_counter() - started)
                if status != expect:
                    raise RuntimeError(f"{url}: {status} {body[:300]!r}")
        finally:
            conn[1].close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(targets[k % len(targets)]) for k in range(concurrency)))
    return len(latencies), time.perf_counter() - began, latencies


async def fixed_rate(urls: list[str], make: Callable[[int], dict[str, Any]], *, rate: float, seconds: float,
                     expect: int, connections: int = 64) -> tuple[int, float, list[float], float]:
    """Requests leave at `rate` a second whatever happened to the earlier ones (open loop), each on a free
    kept-alive connection of a pool spread over the URLs; latency counts from the scheduled send, so
    waiting for a connection counts. Returns (requests, elapsed, latencies, worst delay of a send).
    The first failure stops the schedule; the requests in flight are awaited, then it is raised."""
    targets = [httpx.URL(u) for u in urls]
    Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
    pool: asyncio.Queue[tuple[httpx.URL, Conn]] = asyncio.Queue()
    opened: list[Conn] = []

    async def connect(target: httpx.URL) -> None:
        conn = await asyncio.open_connection(target.host, target.port)
        opened.append(conn)
        pool.put_nowait((target, conn))

    for k in range(connections):
        await connect(targets[k % len(targets)])
    latencies: list[float] = []
    failures: list[BaseException] = []
    behind = 0.0

    async def one(i: int, scheduled: float) -> None:
        target, conn = await pool.get()
        try:
            status, body = await post(conn, f"{target.host}:{target.port}", target.raw_path.decode(), make(i))
        except Exception as exc:
            # A connection that failed mid-answer would hand the next request this one's bytes.
            conn[1].close()
            failures.append(exc)
            await connect(target)
            return
        pool.put_nowait((target, conn))
        latencies.append(time.perf_counter() - scheduled)
        if status != expect:
            failures.append(RuntimeError(f"{target}: {status} {body[:300]!r}"))

    start = time.perf_counter() + 0.05
    tasks = []
    try:
        for i in range(int(rate * seconds)):
            if failures:
                break
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            behind = max(behind, time.perf_counter() - scheduled)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
    finally:
        for _, writer in opened:
            writer.close()
    if failures:
        raise failures[0]
    return len(latencies), time.perf_counter() - start, latencies, behind


def report(name: str, requests: int, elapsed: float, latencies: list[float], per_request: int = 1) -> float:
    rate = requests * per_request / elapsed
    print(f"{name:<34} {rate:>10.0f} /s   requests {requests:>6}   p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
          f"   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms")
    return rate


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def main(seconds: float, concurrency: int, households: int, only: set[str], profile: bool, instances: int,
         rates: list[float]) -> None:
    admin = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                           "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
    with scratch_database_sync(admin, "bench_intake") as url:
        serve_and_measure(url, seconds, concurrency, households, only, profile, instances, rates)


def serve_and_measure(url: str, seconds: float, concurrency: int, households: int, only: set[str], profile: bool,
                      instances: int, rates: list[float]) -> None:
    """Processes are started and stopped here, outside the event loop that drives the load."""
    secret = secrets.token_urlsafe(32)
    prefix, bootstrap = f"bench{secrets.token_hex(3)}.", os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")} | {
        "YARDSTICK_BUS": "kafka", "YARDSTICK_TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "YARDSTICK_AUTH_SECRET": secret, "YARDSTICK_LOG_LEVEL": "WARNING",
        "YARDSTICK_INTAKE_DATABASE_URL": url,
        "YARDSTICK_INTAKE_PORT": str(SERVICE_PORT), "YARDSTICK_AUTH_DATABASE_URL": "sqlite+aiosqlite:///:memory:",
        # The benchmark is one client: the per-client limits would measure themselves.
        "YARDSTICK_INTAKE_RATE_PER_S": "1000000", "YARDSTICK_INTAKE_RATE_BURST": "1000000",
    }
    ports = [SERVICE_PORT + 10 * k for k in range(instances)]

    def start(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(BIN / "yardstick"), "serve", "feedback-intake"],
                                env=env | {"YARDSTICK_INTAKE_PORT": str(port)}, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    services = [start(ports[0])]
    bare_file = Path(f"/tmp/bench_intake_bare_{os.getpid()}.py")
    bare_file.write_text(BARE_APP)
    bare = subprocess.Popen([str(BIN / "uvicorn"), "--app-dir", str(bare_file.parent), f"{bare_file.stem}:app",
                             "--port", str(BARE_PORT), "--log-level", "warning", "--no-access-log"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{ports[0]}/readyz", services[0])
        for port in ports[1:]:  # after the first has migrated the database
            services.append(start(port))
            wait_ready(f"http://127.0.0.1:{port}/readyz", services[-1])
        wait_ready(f"http://127.0.0.1:{BARE_PORT}/docs", bare)
        print(f"intake instances: {instances}")
        asyncio.run(measure(secret, seconds, concurrency, households, only, [p.pid for p in services], bare.pid,
                            profile, [f"http://127.0.0.1:{port}" for port in ports], rates))
        print(f"intake process max RSS: {max(rss_mib(p.pid) for p in services):.0f} MiB")
    finally:
        for proc in (*services, bare):
            proc.terminate()
            proc.wait(timeout=30)
        bare_file.unlink(missing_ok=True)
        # The run's topics (72 partitions): left behind, every run would add to what the broker holds.
        asyncio.run(delete_topics_with_prefix(bootstrap, prefix))


async def measure(secret: str, seconds: float, concurrency: int, households: int, only: set[str],
                  service_pids: list[int], bare_pid: int, profile: bool, urls: list[str], rates: list[float]) -> None:
    windows = list(CITY.windows)
    tokens = [auth.issue(secret, role="kiosk", window_id=w.id, subject=f"bench-{w.id}")[0] for w in windows]
    start = datetime.now(UTC) - timedelta(days=20)

    async def phase(name: str, url: str | list[str], make: Callable[[int], dict[str, Any]], expect: int,
                    per_request: int = 1, bare: bool = False) -> float:
        """One closed-loop load; with --profile, py-spy samples the service meanwhile."""
        out = Path(f"/tmp/bench_intake_{os.getpid()}_{len(name)}.txt")
        spy = profile_start(service_pids[0], seconds, out) if profile and not bare else None
        pids = [bare_pid] if bare else service_pids
        machine = MachineCpu(pids)
        n, t, lat = await load(url, make, seconds=seconds, concurrency=concurrency, expect=expect)
        rate = report(name, n, t, lat, per_request)
        shares, busy = machine.spent()
        # CPU the server processes spent per request: what a loaded machine distorts least.
        print(f"{'':<34} server CPU {shares['service'] / n * 1000:6.2f} ms a request")
        print(f"{'':<34} {machine.describe(shares, busy, n)}")
        if spy is not None:
            await asyncio.to_thread(spy.wait)
            await asyncio.to_thread(profile_report, name, out, seconds)
            await asyncio.to_thread(out.unlink, missing_ok=True)
        return rate

    def batch(i: int) -> dict[str, Any]:
        k = i % len(windows)
        # Each kiosk's presses 10 s apart, so none is suppressed.
        body = kiosk_body(windows[k].id, start + timedelta(seconds=1000 * (i // len(windows))))
        return {"content": body, "headers": {"Authorization": f"Bearer {tokens[k]}",
                                             "Content-Type": "application/json"}}

    # Start-up's own work (the classifier's training, the consumers joining, the topics listed) goes on
    # for 10-15 s after the service answers: waited out (a second under a tenth of a core a process, 30 s
    # at most), so that it weighs on no phase and the idle figure is the background loops' alone.
    for _ in range(30):
        probe = MachineCpu(service_pids)
        await asyncio.sleep(1)
        if probe.spent()[0]["service"] < 0.1 * len(service_pids):
            break
    idle = MachineCpu(service_pids)
    await asyncio.sleep(3)
    print(f"service idle: {idle.spent()[0]['service'] / 3:.0%} of a core (background loops)")

    if "ratings" in only:
        print(f"kiosk batches of 100, {concurrency} concurrent clients, {seconds:.0f} s each")
        ceiling = await phase("bare FastAPI (parse + answer)", f"http://127.0.0.1:{BARE_PORT}/v1/ratings", batch,
                              202, 100, bare=True)
        rate = await phase("intake ratings (PG + outbox)", [f"{u}/v1/ratings" for u in urls], batch, 202, 100)
        print(f"{'ratio intake / bare':<34} {rate / ceiling:10.2f}   (aim: 20,000 ratings/s)")

    def feedback(i: int) -> dict[str, Any]:
        return {"json": {"channel": "web", "text": "公交车总是不准点，等了四十分钟", "level": 2,
                         "client_id": str(uuid.uuid4())}}

    unit_ids = [u.id for u in CITY.units]

    def spread(i: int) -> dict[str, Any]:
        # The outbox serialises transactions per event key (the unit): spread, they run in parallel.
        return {"json": {"channel": "web", "text": "公交车总是不准点，等了四十分钟", "level": 2,
                         "unit_id": unit_ids[i % len(unit_ids)], "client_id": str(uuid.uuid4())}}

    if "feedback" in only:
        ceiling = await phase("bare FastAPI feedback (parse + answer)", f"http://127.0.0.1:{BARE_PORT}/v1/feedback",
                              spread, 201, bare=True)
        rate = await phase("feedback posts, one unit", [f"{u}/v1/feedback" for u in urls], feedback, 201)
        print(f"{'ratio one unit / bare':<34} {rate / ceiling:10.2f}")
        rate = await phase("feedback posts, spread over units", [f"{u}/v1/feedback" for u in urls], spread, 201)
        print(f"{'ratio spread / bare':<34} {rate / ceiling:10.2f}")
        print(f"{'':<34} (aim: 1,000 requests/s, p99 < 50 ms)")
        for offered in rates:
            # A closed loop's latency is its clients' queue (32 clients at 600/s wait 53 ms on average
            # by Little's law): at a fixed rate below saturation, the latency a citizen's post sees.
            await asyncio.sleep(3)  # the previous phase's relay backlog drained before the CPU is counted
            machine = MachineCpu(service_pids)
            sent, elapsed, latencies, behind = await fixed_rate([f"{u}/v1/feedback" for u in urls], spread,
                                                                rate=offered, seconds=seconds, expect=201)
            print(f"{f'feedback posts at {offered:,.0f}/s (open loop)':<34} {sent / elapsed:10.0f} /s   "
                  f"requests {sent:>6}   p50 {percentile(latencies, 0.5) * 1000:6.1f} ms   "
                  f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms   (from the scheduled send; the generator "
                  f"at most {behind * 1000:.0f} ms behind)")
            print(f"{'':<34} {machine.report(sent)}")

    if "survey" in only:
        await survey(secret, households)


async def survey(secret: str, households: int) -> None:
    service = f"http://127.0.0.1:{SERVICE_PORT}"
    commission = auth.issue(secret, role="commission")[0]
    headers = {"Authorization": f"Bearer {commission}"}
    async with httpx.AsyncClient(timeout=600) as client:
        created = await client.post(f"{service}/v1/surveys", headers=headers, json={
            "year": 2026, "title": "bench", "strata": [{"id": "urban", "population": 9_000_000},
                                                      {"id": "rural", "population": 3_000_000}]})
        survey_id = created.json()["id"]
        units = [u.id for u in CITY.units][:80]
        lines = "".join(json.dumps({"respondent_id": f"h{i}", "stratum": "urban" if i % 3 else "rural",
                                    "ratings": {u: 1 + (i + j) % 5 for j, u in enumerate(units)}}) + "\n"
                        for i in range(households)).encode()
        began = time.perf_counter()
        upload = await client.post(f"{service}/v1/surveys/{survey_id}/responses",
                                   content=lines, headers={**headers, "Content-Type": "application/x-ndjson"})
        elapsed = time.perf_counter() - began
        body = upload.json()
    print(f"survey upload: {households} households x {len(units)} units, {len(lines) / 2**20:.1f} MiB: "
          f"{elapsed:.1f} s ({body['accepted']} accepted, {len(body['rejected'])} rejected; aim < 30 s)")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--households", type=int, default=12_000)
    parser.add_argument("--only", default="ratings,feedback,survey", help="comma-separated phases to run")
    parser.add_argument("--profile", action="store_true", help="py-spy the service during each load phase")
    parser.add_argument("--instances", type=int, default=1, help="intake processes sharing the database and topics")
    parser.add_argument("--feedback-rates", default="300,500",
                        help="fixed rates (posts/s, comma-separated) for the feedback open-loop phases; empty for none")
    args = parser.parse_args()
    try:
        rates = [float(r) for r in args.feedback_rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--feedback-rates: {args.feedback_rates!r} is not a comma-separated list of numbers")
    if any(r * args.seconds < 1 for r in rates):
        parser.error("--feedback-rates: each rate times --seconds must make at least one post")
    main(args.seconds, args.concurrency, args.households, set(args.only.split(",")), args.profile, args.instances,
         rates)
