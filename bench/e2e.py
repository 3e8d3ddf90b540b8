"""End-to-end benchmark: kiosk ratings from their 202 to the scorecard API, beside Kafka's and FastAPI's ceilings.

Run: .venv/bin/python -P bench/e2e.py [--rate 1000] [--seconds 60] [--batch 100] [--quick] [--profile]
Needs Kafka (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:19092), PostgreSQL (YARDSTICK_TEST_PG_ADMIN_URL, default
postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres) and a JDK for the Kafka ceiling.

The four services run as `yardstick serve` processes on fresh databases and a fresh topic prefix (all dropped at
the end). Kiosks of every window post batches at a fixed rate from an open-loop scheduler: a batch leaves at its
scheduled time whatever happened to the ones before, and its request latency counts from that time, so a slow
system is measured as a fleet of kiosks would see it. For every batch the time from its 202 to its ratings in
`GET /v1/scorecards/{unit}` is measured; consumer lag of scoring and notices is sampled every second. Then the
same generator saturates intake (closed loop) to measure the system's capacity. Ceilings in the same run:
Kafka's own ProducerPerformance (kafka-tools of the broker's version, fetched once from Maven Central into
.cache/kafka/tools) with records the size of a rating event, acks=all and idempotence on; and a bare FastAPI
endpoint (same body model, no database) in its own uvicorn process, driven by the same generator and bodies.
Aims (2 cores, everything co-located): end-to-end p95 < 1 s at 1,000 ratings/s; intake >= 20,000 ratings/s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from yardstick import auth, events
from yardstick.bus.codec import encode
from yardstick.bus.kafka import delete_topics_with_prefix
from yardstick.city import default_city_path, load_city

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CITY = load_city(default_city_path())
SERVICES = {"feedback-intake": "INTAKE", "target-tracker": "TARGETS", "scoring": "SCORING", "notices": "NOTICES"}
GROUPS = ("scoring", "notices")  # the consumer groups that read feedback.v1, as the services name them
PRESS_SPACING = timedelta(seconds=6)  # one kiosk's presses this far apart by rated_at: none is suppressed (5 s)
KAFKA_LIBS = REPO / ".cache" / "kafka" / "libs"
KAFKA_TOOLS = REPO / ".cache" / "kafka" / "tools"

# The framework's ceiling: the same bodies parsed and validated, nothing stored (bench/intake.py uses it too).
BARE_APP = textwrap.dedent('''
    import uuid
    from typing import Any
    from fastapi import FastAPI
    from pydantic import ValidationError
    from feedback_intake.schemas import FeedbackIn, FeedbackReceipt, RatingBatch, RatingItem
    app = FastAPI()

    @app.post("/v1/feedback", status_code=201, response_model=FeedbackReceipt)
    async def feedback(body: FeedbackIn) -> FeedbackReceipt:
        return FeedbackReceipt(id=str(uuid.uuid4()), tracking_code="BENCH0000000", unit_id=body.unit_id,
                               category_id="uncategorised")

    @app.post("/v1/ratings", status_code=202)
    async def ratings(body: RatingBatch) -> dict[str, Any]:
        accepted = 0
        for raw in body.ratings:
            try:
                RatingItem.model_validate(raw)
                accepted += 1
            except ValidationError:
                pass
        return {"accepted": accepted, "duplicates": 0, "suppressed": 0, "rejected": []}
''')


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if math.isfinite(seconds) else "never ms"


def say(line: str) -> None:
    print(line, flush=True)


# --- the kiosks ------------------------------------------------------------------------------


@dataclass
class Batch:
    unit: str
    body: bytes
    headers: dict[str, str]
    size: int
    scheduled: float = 0.0  # perf_counter when it should leave (open loop) or left (closed loop)
    answered: float | None = None  # its 202
    visible: float | None = None  # the first scorecard answer that counts it
    accepted: int = 0
    target: int = 0  # the unit's cumulative accepted ratings up to this batch, in 202 order
    error: str | None = None  # no answer (a client timeout)


class Fleet:
    """Kiosks at every window: batch i comes from kiosk i mod K, whose presses are 6 s apart by rated_at."""

    def __init__(self, secret: str, batch: int, max_batches: int) -> None:
        now = datetime.now(UTC)
        tz = CITY.timezone
        year_start = datetime(now.astimezone(tz).year, 1, 1, tzinfo=tz).astimezone(UTC)
        # Inside intake's 30-day horizon and inside this city-year, so one scorecard year counts them all.
        self.t0 = max(now - timedelta(days=29), year_start + timedelta(minutes=1))
        self.year = self.t0.astimezone(tz).year
        per_kiosk = int((now - self.t0) / (PRESS_SPACING * batch))  # batches one kiosk can post before `now`
        windows = list(CITY.windows)
        copies = max(1, math.ceil(max_batches / max(1, per_kiosk * len(windows))))
        if per_kiosk < 1:
            raise SystemExit("bench: too close to the start of the city's year to place the presses; retry later")
        self.kiosks = [(w, f"bench-kiosk-{c}-{w.id}") for c in range(copies) for w in windows]
        self.tokens = [auth.issue(secret, role="kiosk", window_id=w.id, subject=s)[0] for w, s in self.kiosks]
        self.batch = batch
        self.next = 0

    def take(self) -> Batch:
        i, self.next = self.next, self.next + 1
        k = i % len(self.kiosks)
        window = self.kiosks[k][0]
        first = self.t0 + PRESS_SPACING * ((i // len(self.kiosks)) * self.batch)
        body = {"ratings": [{"id": str(uuid.uuid4()), "window_id": window.id, "level": 1 + (i + j) % 5,
                             "rated_at": (first + PRESS_SPACING * j).isoformat()} for j in range(self.batch)]}
        return Batch(unit=window.unit, body=json.dumps(body).encode(), size=self.batch,
                     headers={"Authorization": f"Bearer {self.tokens[k]}", "Content-Type": "application/json"})


# --- visibility in the scorecard API ---------------------------------------------------------


class Visibility:
    """When each batch shows in its unit's scorecard.

    Per unit, batches are queued in the order of their 202s with the unit's cumulative accepted count; a
    batch is visible at the first scorecard answer whose `public.channels.window.n` reaches its count. Only
    units with batches waiting are polled, the longest waiting first, at most `inflight` requests at a time
    (every read after a new event recomputes the year's scorecards: polling harder would load the system
    it measures). The time taken is the answer's arrival, so a figure is at most one poll late.
    """

    def __init__(self, client: httpx.AsyncClient, url: str, token: str, year: int, interval: float,
                 inflight: int) -> None:
        self.client, self.url, self.year, self.interval, self.cap = client, url, year, interval, inflight
        self.headers = {"Authorization": f"Bearer {token}"}
        self.pending: dict[str, collections.deque[Batch]] = collections.defaultdict(collections.deque)
        self.accepted: collections.Counter[str] = collections.Counter()
        self.inflight: set[str] = set()
        self.polls: list[float] = []
        self.visible_ratings = 0

    def answered(self, batch: Batch) -> None:
        self.accepted[batch.unit] += batch.accepted
        batch.target = self.accepted[batch.unit]
        self.pending[batch.unit].append(batch)

    def waiting(self) -> int:
        return sum(len(q) for q in self.pending.values())

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while True:
            waiting = sorted((q[0].answered or 0.0, u) for u, q in self.pending.items()
                             if q and u not in self.inflight)
            for _, unit in waiting[:max(0, self.cap - len(self.inflight))]:
                self.inflight.add(unit)
                task = asyncio.create_task(self._poll(unit))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(self.interval)

    async def _poll(self, unit: str) -> None:
        try:
            began = time.perf_counter()
            response = await self.client.get(f"{self.url}/v1/scorecards/{unit}", params={"year": self.year},
                                             headers=self.headers)
            now = time.perf_counter()
            response.raise_for_status()
            self.polls.append(now - began)
            n = response.json()["public"]["channels"]["window"]["n"]
            queue = self.pending[unit]
            while queue and queue[0].target <= n:
                batch = queue.popleft()
                batch.visible = now
                self.visible_ratings += batch.accepted
        finally:
            self.inflight.discard(unit)


# --- consumer lag ----------------------------------------------------------------------------


class Lag:
    """Consumer lag of scoring's and notices' groups on feedback.v1 (end offsets minus committed offsets),
    and intake's outbox backlog (rows not yet sent: lag before Kafka, which consumer lag cannot see)."""

    def __init__(self, bootstrap: str, prefix: str, intake_db: str) -> None:
        self.bootstrap, self.prefix, self.intake_db = bootstrap, prefix, intake_db
        self.topic = prefix + events.FEEDBACK
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        self.db = await asyncpg.connect(self.intake_db.replace("postgresql+asyncpg", "postgresql"))
        await self.admin.start()
        await self.consumer.start()
        described = await self.admin.describe_topics([self.topic])
        self.partitions = sorted(TopicPartition(self.topic, p["partition"]) for p in described[0]["partitions"])
        if not self.partitions:
            raise RuntimeError(f"{self.topic} has no partitions: did feedback-intake create its topics?")

    async def stop(self) -> None:
        await self.db.close()
        await self.consumer.stop()
        await self.admin.close()

    async def sample(self) -> dict[str, int]:
        ends = await self.consumer.end_offsets(self.partitions)
        lag = {"outbox": int(await self.db.fetchval(
            "SELECT coalesce(sum(events), 0) FROM outbox WHERE sent_at IS NULL"))}
        for group in GROUPS:
            committed = await self.admin.list_consumer_group_offsets(self.prefix + group)
            lag[group] = sum(max(0, ends[tp] - max(0, committed[tp].offset if tp in committed else 0))
                             for tp in self.partitions)
        self.samples.append((time.perf_counter(), lag))
        return lag

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a sample lost to a busy broker is not a reason to stop the run
                say(f"  (lag sample failed: {exc!r})")
            await asyncio.sleep(1.0)

    def latest(self) -> dict[str, int]:
        return self.samples[-1][1] if self.samples else {g: 0 for g in ("outbox", *GROUPS)}

    def max_between(self, start: float, end: float) -> dict[str, int]:
        chosen = [lag for t, lag in self.samples if start <= t <= end] or [self.latest()]
        return {g: max(lag[g] for lag in chosen) for g in ("outbox", *GROUPS)}


# --- load ------------------------------------------------------------------------------------


async def send(client: httpx.AsyncClient, url: str, batch: Batch, on_answer: Callable[[Batch], None]) -> None:
    try:
        response = await client.post(url, content=batch.body, headers=batch.headers)
    except httpx.HTTPError as exc:  # a timeout under overload is a figure of the run, not the end of it
        batch.error = type(exc).__name__
        return
    if response.status_code != 202:  # e.g. 500 when the connection pool times out under overload
        batch.error = f"HTTP {response.status_code}"
        return
    batch.answered = time.perf_counter()
    answer = response.json()
    batch.accepted = answer["accepted"]
    if batch.accepted != batch.size:
        raise RuntimeError(f"{url}: expected every rating accepted, got {answer}")
    on_answer(batch)


async def open_loop(client: httpx.AsyncClient, url: str, batches: list[Batch], rate: float,
                    on_answer: Callable[[Batch], None]) -> float:
    """Each batch leaves at its scheduled time, whatever happened to the earlier ones; returns the worst delay."""
    start = time.perf_counter() + 0.1
    tasks = []
    behind = 0.0
    for i, batch in enumerate(batches):
        batch.scheduled = start + i * batch.size / rate
        delay = batch.scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        behind = max(behind, time.perf_counter() - batch.scheduled)
        tasks.append(asyncio.create_task(send(client, url, batch, on_answer)))
    await asyncio.gather(*tasks)
    return behind


async def closed_loop(client: httpx.AsyncClient, url: str, take: Callable[[], Batch], *, seconds: float,
                      concurrency: int, on_answer: Callable[[Batch], None]) -> tuple[list[Batch], float]:
    """`concurrency` clients, each posting its next batch when the last is answered, for `seconds`."""
    done: list[Batch] = []
    stop = time.perf_counter() + seconds

    async def client_loop() -> None:
        while time.perf_counter() < stop:
            batch = take()
            batch.scheduled = time.perf_counter()
            await send(client, url, batch, on_answer)
            done.append(batch)

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return done, time.perf_counter() - began


async def progress(label: str, every: float, line: Callable[[], str]) -> None:
    began = time.perf_counter()
    while True:
        await asyncio.sleep(every)
        say(f"  {label} {time.perf_counter() - began:5.0f} s  {line()}")


async def drain(vis: Visibility, lag: Lag, within: float) -> bool:
    """Wait until every answered batch shows in the scorecards; False on timeout."""
    deadline = time.perf_counter() + within
    last = 0.0
    while vis.waiting():
        if time.perf_counter() > deadline:
            return False
        if time.perf_counter() - last >= 5:
            last = time.perf_counter()
            say(f"  draining: {vis.waiting()} batches not yet visible; lag {lag.latest()}")
        await asyncio.sleep(0.1)
    return True


# --- the Kafka ceiling -----------------------------------------------------------------------


def kafka_version() -> str:
    jars = sorted(KAFKA_LIBS.glob("kafka-clients-*.jar"))
    if not jars:
        raise SystemExit(f"bench: no Kafka jars in {KAFKA_LIBS}: run `bash deploy/kafka.sh fetch` first")
    return jars[0].name.removeprefix("kafka-clients-").removesuffix(".jar")


def tools_jar() -> Path:
    """kafka-tools (ProducerPerformance) of the broker's version; the broker's jars do not include it."""
    version = kafka_version()
    jar = KAFKA_TOOLS / f"kafka-tools-{version}.jar"
    if jar.exists():
        return jar
    if not shutil.which("mvn"):
        raise SystemExit("bench: need Maven (apt-get install -y maven) to fetch kafka-tools once")
    say(f"fetching org.apache.kafka:kafka-tools:{version} from Maven Central into {KAFKA_TOOLS} (once) ...")
    KAFKA_TOOLS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mvn", "-B", "-q", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                    f"-Dartifact=org.apache.kafka:kafka-tools:{version}", f"-DoutputDirectory={KAFKA_TOOLS}"],
                   check=True, stdout=subprocess.DEVNULL)
    return jar


def event_size() -> int:
    """Bytes of one rating event as the relay sends it: value, key and headers."""
    now = datetime.now(UTC)
    envelope = events.Envelope.of(events.FeedbackReceived(
        feedback_id=str(uuid.uuid4()), unit_id=CITY.windows[0].unit, channel="window", occurred_at=now,
        year=now.year, level=4, window_id=CITY.windows[0].id), source="feedback-intake", key=CITY.windows[0].unit)
    message = encode(envelope)
    return len(message.value) + len(message.key or b"") + sum(len(k) + len(v) for k, v in message.headers)


@dataclass
class ProducerCeiling:
    records: int
    per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    record_size: int


def producer_performance(bootstrap: str, topic: str, records: int) -> ProducerCeiling:
    size = event_size()
    command = ["java", "-Xmx512m", "-cp", f"{KAFKA_LIBS}/*:{tools_jar()}", "org.apache.kafka.tools.ProducerPerformance",
               "--topic", topic, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
               # as our relay's producer: acks=all, idempotent, linger 5 ms, batches up to 1 MiB
               "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", "enable.idempotence=true",
               "linger.ms=5", "batch.size=1048576"]
    say(f"$ {' '.join(command)}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    summary = [line for line in result.stdout.splitlines() if "99th" in line]
    if result.returncode != 0 or not summary:
        raise RuntimeError(f"ProducerPerformance failed ({result.returncode}): {result.stderr[-2000:]}")
    m = re.search(r"(\d+) records sent, ([\d.]+) records/sec .*?, ([\d.]+) ms 50th, ([\d.]+) ms 95th, "
                  r"([\d.]+) ms 99th", summary[-1])
    if m is None:
        raise RuntimeError(f"cannot read ProducerPerformance's summary: {summary[-1]}")
    return ProducerCeiling(int(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5]), size)


# --- processes -------------------------------------------------------------------------------


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(900):
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}; log {log}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up; log {log}")


async def databases(admin: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg", "postgresql"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def topics(bootstrap: str, *, create: tuple[str, ...] = (), delete_prefix: str = "") -> None:
    if create:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, num_partitions=6, replication_factor=1) for t in create])
        finally:
            await admin.close()
    if delete_prefix:
        await delete_topics_with_prefix(bootstrap, delete_prefix)


@dataclass
class Run:
    args: argparse.Namespace
    bootstrap: str
    admin: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"bench{self.run_id}."

    def port(self, service: str) -> int:
        return int(self.args.port_base) + 1 + [*SERVICES, "bare"].index(service)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    def db_url(self, name: str) -> str:
        return f"{self.admin.rsplit('/', 1)[0]}/{self.names()[name]}"

    def names(self) -> dict[str, str]:
        return {svc: f"bench_e2e_{self.run_id}_{p.lower()}" for svc, p in SERVICES.items()} | {
            "auth": f"bench_e2e_{self.run_id}_auth"}


def start(run: Run, tmp: Path) -> None:
    base = run.admin.rsplit("/", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")} | {
        "YARDSTICK_BUS": "kafka", "KAFKA_BOOTSTRAP_SERVERS": run.bootstrap, "YARDSTICK_TOPIC_PREFIX": run.prefix,
        "YARDSTICK_AUTH_SECRET": run.secret, "YARDSTICK_LOG_LEVEL": "WARNING", "YARDSTICK_DATA_DIR": str(tmp),
        "YARDSTICK_AUTH_DATABASE_URL": f"{base}/{run.names()['auth']}",
        # The load comes from one address: per-client limits would measure themselves, not the system.
        "YARDSTICK_INTAKE_RATE_PER_S": "1000000", "YARDSTICK_INTAKE_RATE_BURST": "1000000",
    }
    for svc, p in SERVICES.items():
        env[f"YARDSTICK_{p}_DATABASE_URL"] = f"{base}/{run.names()[svc]}"
        env[f"YARDSTICK_{p}_PORT"] = str(run.port(svc))
    bare_file = tmp / "bench_e2e_bare.py"
    bare_file.write_text(BARE_APP)
    commands = {svc: [str(BIN / "yardstick"), "serve", svc] for svc in SERVICES} | {
        "bare": [str(BIN / "uvicorn"), "--app-dir", str(tmp), "bench_e2e_bare:app", "--port", str(run.port("bare")),
                 "--log-level", "warning", "--no-access-log",
                 # as `yardstick serve`: uvloop (runner._loop_factory), httptools
                 "--loop", "uvloop", "--http", "httptools"]}
    for name, command in commands.items():
        log = open(tmp / f"{name}.log", "ab")  # the process writes it until it stops
        run.procs[name] = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=log)
    for name, proc in run.procs.items():
        wait_ready(f"{run.url(name)}/{'docs' if name == 'bare' else 'readyz'}", proc, tmp / f"{name}.log")
        say(f"  {name} ready on {run.url(name)} (pid {proc.pid})")


def stop(run: Run) -> None:
    for proc in run.procs.values():
        proc.terminate()
    for proc in run.procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- profiling -------------------------------------------------------------------------------


# Where a benchmark's CPU went on the whole machine. Everything shares two cores here: the CPU a
# request (or an event) costs the machine, and who spent it, say what ceiling a service works under
# and what would have to shrink.
class MachineCpu:
    """Every process's CPU from here to `report`, grouped by who spent it, against the machine's total.

    A process started meanwhile counts from zero. One that ended meanwhile counts in "other" (the
    machine's total holds it), except PostgreSQL's: the server reaps its backends and autovacuum
    workers, whose CPU it then carries as its children's (a backend alive at the start and ended
    before the end counts whole). A reused pid is another process (keyed by its start time).
    """

    def __init__(self, service_pids: list[int] | None = None) -> None:
        # Without service processes, this process is the service (a consumer driven in-process).
        self.service = set(service_pids) if service_pids is not None else {os.getpid()}
        self.start = self._processes()
        self.busy = self._machine_busy()

    @staticmethod
    def _processes() -> dict[tuple[int, int], tuple[int, str, float]]:
        """(pid, start time) -> (pid, role name, CPU seconds so far)."""
        found: dict[tuple[int, int], tuple[int, str, float]] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # The name sits in parentheses and may hold any character: split at the last one.
                head, _, rest = (entry / "stat").read_text().rpartition(")")
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            fields = rest.split()  # fields[0] is the state: utime, stime, cutime, cstime at 11-14
            name = "kafka" if b"kafka" in cmdline else head.split("(", 1)[1]
            cpu = int(fields[11]) + int(fields[12])
            if name == "postgres":
                cpu += int(fields[13]) + int(fields[14])  # the backends it reaped
            pid = int(entry.name)
            found[(pid, int(fields[19]))] = (pid, name, cpu / tick)
        return found

    @staticmethod
    def _machine_busy() -> float:
        """CPU seconds this machine's cores spent on anything but idling and waiting for I/O (/proc/stat);
        time the hypervisor gave other guests (steal) is not this machine's."""
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq = values[:7]
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")

    def spent(self) -> tuple[dict[str, float], float]:
        """CPU seconds by role since the start (service, postgres, kafka, generator, other), and the machine's."""
        end, busy = self._processes(), self._machine_busy() - self.busy
        shares: dict[str, float] = {"service": 0.0, "postgres": 0.0, "kafka": 0.0, "generator": 0.0}
        for key, (pid, name, cpu) in end.items():
            role = ("service" if pid in self.service else "generator" if pid == os.getpid()
                    else name if name in ("postgres", "kafka") else None)
            if role is not None:
                shares[role] += cpu - self.start.get(key, (pid, name, 0.0))[2]
        # Not clamped: a little below zero says the two clocks' ticks disagree, no more.
        shares["other"] = busy - sum(shares.values())
        return shares, busy

    def report(self, requests: int, what: str = "request") -> str:
        return self.describe(*self.spent(), requests, what)

    @staticmethod
    def describe(shares: dict[str, float], busy: float, requests: int, what: str = "request") -> str:
        """`spent()`'s figures a request (or an event) and what the cores allow at that cost."""
        per = {k: v / max(requests, 1) * 1000 for k, v in shares.items()}
        cores = len(os.sched_getaffinity(0))
        total = busy / max(requests, 1) * 1000
        return (f"machine CPU {total:5.2f} ms a {what} (" + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
                + f"): {cores} cores allow {cores * 1000 / total:,.0f} {what}s/s at this cost")


def profile_start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = BIN / "py-spy"
    if not spy.exists():
        say("  (no py-spy in the venv: `.venv/bin/pip install py-spy` to profile)")
        return None
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                             "--rate", "100", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_report(name: str, out: Path, seconds: float, top: int = 12) -> None:
    """Where the samples were: by leaf function (self) and by our own functions on the stack (inclusive)."""
    if not out.exists():
        say(f"  {name}: no profile written")
        return
    leaf: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if frames[-1].startswith(("EpollSelector.select", "select (selectors")):
            idle += n  # the event loop waiting for I/O
            continue
        leaf[short(frames[-1])] += n
        for frame in {short(f) for f in frames if re.search(r"\((yardstick|feedback_intake|scoring|notices|"
                                                            r"target_tracker)/", f)
                      and not re.search(r"\(yardstick/(cli|runner)\.py", f)}:
            ours[frame] += n
    busy = max(1, total - idle)
    # py-spy leaves out samples of a thread the OS reports idle; on a loaded machine a runnable thread
    # waiting for a CPU counts as busy, and a leaf that is a system call is often where it was preempted.
    say(f"  {name}: {busy} busy samples at 100 Hz over {seconds:.0f} s (busy {busy / (seconds * 100):.0%} of the "
        f"time); shares below are of the busy samples")
    say("    self (leaf frame):")
    for frame, n in leaf.most_common(top):
        say(f"      {n / busy:6.1%}  {frame}")
    say("    inclusive, the project's own functions:")
    for frame, n in ours.most_common(top):
        say(f"      {n / busy:6.1%}  {frame}")


def short(frame: str) -> str:
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if m is None:
        return frame
    path = m[2]
    for marker in ("site-packages/", "/shared/", "/services/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m[1]} ({path})"


# --- the run ---------------------------------------------------------------------------------


async def measure(run: Run, tmp: Path) -> dict[str, Any]:
    a = run.args
    phase_batches = max(1, round(a.rate * a.seconds / a.batch))
    fleet = Fleet(run.secret, a.batch, phase_batches + 2_000_000 // a.batch)
    figures: dict[str, Any] = {"kiosks": len(fleet.kiosks)}
    commission = auth.issue(run.secret, role="commission", subject="bench")[0]
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        # 1. The framework's ceiling: the bare endpoint, closed loop, same generator and bodies.
        say(f"\n[2/5] bare FastAPI ceiling: {a.concurrency} clients, {a.ceiling_seconds:.0f} s, batches of {a.batch}")
        bare, elapsed = await closed_loop(client, f"{run.url('bare')}/v1/ratings", fleet.take,
                                          seconds=a.ceiling_seconds, concurrency=a.concurrency,
                                          on_answer=lambda b: None)
        bare = [b for b in bare if b.answered]
        figures["bare_requests_per_s"] = len(bare) / elapsed
        figures["bare_ratings_per_s"] = sum(b.accepted for b in bare) / elapsed
        figures["bare_p50"] = percentile([b.answered - b.scheduled for b in bare if b.answered], 0.5)
        say(f"  {figures['bare_requests_per_s']:,.0f} requests/s = {figures['bare_ratings_per_s']:,.0f} ratings/s")

        lag = Lag(run.bootstrap, run.prefix, run.db_url("feedback-intake"))
        await lag.start()
        vis = Visibility(client, run.url("scoring"), commission, fleet.year, a.poll_interval, a.poll_inflight)
        background = [asyncio.create_task(vis.run()), asyncio.create_task(lag.run())]
        try:
            # 2. The fixed rate, open loop.
            batches = [fleet.take() for _ in range(phase_batches)]  # generated before the clock starts
            say(f"\n[3/5] fixed rate: {a.rate:,.0f} ratings/s for {a.seconds:.0f} s = {len(batches)} batches of "
                f"{a.batch} from {len(fleet.kiosks)} kiosks at {len(CITY.windows)} windows of {len(CITY.units)} units")

            def sent() -> int:
                return sum(1 for b in batches if b.scheduled and b.scheduled <= time.perf_counter())

            ticker = asyncio.create_task(progress("fixed rate", a.progress, lambda: (
                f"sent {sent() * a.batch:,}  answered {sum(1 for b in batches if b.answered) * a.batch:,}  "
                f"visible {vis.visible_ratings:,} ratings  lag {lag.latest()}")))
            began = time.perf_counter()
            spy = profile_start(run.procs["feedback-intake"].pid, a.seconds, tmp / "intake-fixed.txt") \
                if a.profile else None
            behind = await open_loop(client, f"{run.url('feedback-intake')}/v1/ratings", batches, a.rate, vis.answered)
            load_end = time.perf_counter()
            ticker.cancel()
            drained = await drain(vis, lag, a.drain_timeout)
            end = time.perf_counter()
            if spy:
                spy.wait()
            if not drained:
                say(f"  {vis.waiting()} batches still not visible {a.drain_timeout:.0f} s after the load: "
                    "counted as never")
            # A batch that never showed counts as infinitely late, so the percentiles cannot flatter.
            e2e = [(b.visible or math.inf) - b.answered for b in batches if b.answered]
            full = [(b.visible or math.inf) - b.scheduled for b in batches if b.answered]
            request = [b.answered - b.scheduled for b in batches if b.answered]
            first = min(b.scheduled for b in batches)
            figures |= {
                "offered": a.rate, "batches": len(batches),
                "errors": dict(collections.Counter(b.error for b in batches if b.error)),
                "unseen": sum(1 for b in batches if b.answered and not b.visible),
                # Answered ratings over the schedule's length, or until the last answer if that came later.
                "achieved": len(request) * a.batch / max(a.seconds, max(b.answered or 0.0 for b in batches) - first),
                "e2e": {q: percentile(e2e, q) for q in (0.5, 0.95, 0.99, 1.0)},
                "full": {q: percentile(full, q) for q in (0.5, 0.95, 0.99)},
                "request": {q: percentile(request, q) for q in (0.5, 0.95, 0.99)},
                "behind": behind, "polls": percentile(vis.polls, 0.5), "load_s": load_end - began,
                "lag_max": lag.max_between(began, end), "lag_at_load_end": lag.max_between(load_end - 1.5, load_end),
                "lag_end": await lag.sample(), "drain_s": end - load_end,
                "lag_series": [(round(t - began), sample) for t, sample in lag.samples if began <= t <= end],
            }

            # 3. Capacity: intake saturated by the same generator, closed loop, then the pipeline drained.
            say(f"\n[4/5] capacity: intake saturated by {a.concurrency} clients for {a.saturate_seconds:.0f} s")
            done_before = vis.visible_ratings
            spies = {svc: profile_start(run.procs[svc].pid, a.saturate_seconds, tmp / f"{svc}-saturated.txt")
                     for svc in ("feedback-intake", "scoring")} if a.profile else {}
            answered: list[Batch] = []
            ticker = asyncio.create_task(progress("capacity", a.progress, lambda: (
                f"answered {len(answered) * a.batch:,}  visible {vis.visible_ratings - done_before:,} ratings  "
                f"lag {lag.latest()}")))
            began = time.perf_counter()

            def counted(batch: Batch) -> None:
                answered.append(batch)
                vis.answered(batch)

            saturated, elapsed = await closed_loop(client, f"{run.url('feedback-intake')}/v1/ratings", fleet.take,
                                                   seconds=a.saturate_seconds, concurrency=a.concurrency,
                                                   on_answer=counted)
            ticker.cancel()
            if not await drain(vis, lag, a.drain_timeout * 3):
                raise RuntimeError(f"{vis.waiting()} batches still not visible {a.drain_timeout * 3:.0f} s after "
                                   "the capacity run")
            for spy in spies.values():
                if spy:
                    spy.wait()
            failed = dict(collections.Counter(b.error for b in saturated if b.error))
            saturated = [b for b in saturated if b.answered]
            ratings = sum(b.accepted for b in saturated)
            last_visible = max(b.visible or 0 for b in saturated)
            figures |= {
                "intake_ratings_per_s": ratings / elapsed, "intake_requests_per_s": len(saturated) / elapsed,
                "capacity_errors": failed,
                "intake_p50": percentile([b.answered - b.scheduled for b in saturated if b.answered], 0.5),
                "pipeline_ratings_per_s": ratings / (last_visible - began),
                "capacity_lag_max": lag.max_between(began, time.perf_counter()),
                "capacity_e2e_p95": percentile([b.visible - b.answered for b in saturated
                                                if b.visible and b.answered], 0.95),
            }
        finally:
            for task in background:
                task.cancel()
            await lag.stop()
    return figures


def report(run: Run, f: dict[str, Any], kafka: ProducerCeiling, tmp: Path) -> None:
    a = run.args
    say("\n[5/5] results" + (" (quick mode: too short to mean much)" if a.quick else ""))
    say("method: each batch's end-to-end time runs from its 202 to the first answer of GET /v1/scorecards/{unit} "
        "whose public.channels.window.n reaches the unit's cumulative accepted count through that batch (batches "
        f"ordered by their 202s); only units with batches waiting are polled, longest waiting first, every "
        f"{a.poll_interval * 1000:.0f} ms with at most {a.poll_inflight} reads in flight (median read "
        f"{ms(f['polls'])}), so a figure is at most one poll late.")
    say(f"fixed rate: offered {f['offered']:,.0f} ratings/s, achieved {f['achieved']:,.0f} ratings/s "
        f"({f['batches']} batches of {a.batch} from {f['kiosks']} kiosks, open loop; the generator ran at most "
        f"{ms(f['behind'])} behind its schedule); requests without a 202: {f['errors'] or 0}; answered batches "
        f"never visible: {f['unseen']}")
    e2e, req, full = f["e2e"], f["request"], f["full"]
    say(f"  end to end, 202 -> scorecard: p50 {ms(e2e[0.5])}  p95 {ms(e2e[0.95])}  p99 {ms(e2e[0.99])}  "
        f"max {ms(e2e[1.0])}   (aim p95 < 1,000 ms; ratio {e2e[0.95] / 1.0:.2f})")
    say(f"  request (scheduled send -> 202): p50 {ms(req[0.5])}  p95 {ms(req[0.95])}  p99 {ms(req[0.99])}")
    say(f"  kiosk press -> scorecard (scheduled send -> visible): p50 {ms(full[0.5])}  p95 {ms(full[0.95])}  "
        f"p99 {ms(full[0.99])}")
    say(f"  backlog in events (intake's unsent outbox events; consumer lag on feedback.v1): max {f['lag_max']}, "
        f"when the load stopped {f['lag_at_load_end']}, after draining {f['lag_end']} ({f['drain_s']:.1f} s "
        "from the end of the load until every batch showed)")
    series = "  ".join(f"{t}s:{s['outbox']}/{s['scoring']}/{s['notices']}" for t, s in f["lag_series"][::max(
        1, len(f["lag_series"]) // 12)])
    say(f"  over time (outbox/scoring/notices): {series}")
    say(f"capacity (closed loop, {a.concurrency} clients, {a.saturate_seconds:.0f} s): intake "
        f"{f['intake_ratings_per_s']:,.0f} ratings/s = {f['intake_requests_per_s']:,.0f} requests/s "
        f"(p50 {ms(f['intake_p50'])}; aim 20,000 ratings/s, ratio {f['intake_ratings_per_s'] / 20_000:.2f}); "
        f"requests without a 202: {f['capacity_errors'] or 0}")
    say(f"  end to end (accepted ratings / time until the last showed in the scorecards): "
        f"{f['pipeline_ratings_per_s']:,.0f} ratings/s; e2e p95 under saturation {ms(f['capacity_e2e_p95'])}; "
        f"max lag {f['capacity_lag_max']}")
    say(f"ceilings: bare FastAPI {f['bare_ratings_per_s']:,.0f} ratings/s = {f['bare_requests_per_s']:,.0f} "
        f"requests/s (p50 {ms(f['bare_p50'])}); Kafka ProducerPerformance {kafka.per_s:,.0f} records/s of "
        f"{kafka.record_size} B, acks=all, idempotent ({kafka.records:,} records; p50 {kafka.p50_ms:.0f} ms, "
        f"p95 {kafka.p95_ms:.0f} ms, p99 {kafka.p99_ms:.0f} ms)")
    say("ratios:")
    say(f"  intake capacity / bare FastAPI            {f['intake_ratings_per_s'] / f['bare_ratings_per_s']:6.2f}")
    say(f"  intake capacity / Kafka producer          {f['intake_ratings_per_s'] / kafka.per_s:6.2f}")
    say(f"  end-to-end capacity / Kafka producer      {f['pipeline_ratings_per_s'] / kafka.per_s:6.2f}")
    say(f"  end-to-end capacity / bare FastAPI        {f['pipeline_ratings_per_s'] / f['bare_ratings_per_s']:6.2f}")
    say(f"  fixed rate offered / end-to-end capacity  {f['offered'] / f['pipeline_ratings_per_s']:6.2f}"
        "   (above 1: the offered load is more than the system carries end to end)")
    say(f"  fixed rate achieved / end-to-end capacity {f['achieved'] / f['pipeline_ratings_per_s']:6.2f}")
    if a.profile:
        say("where time goes (py-spy, 100 Hz, --nonblocking):")
        for name, file, seconds in (("intake at the fixed rate", "intake-fixed.txt", a.seconds),
                                    ("intake saturated", "feedback-intake-saturated.txt", a.saturate_seconds),
                                    ("scoring while intake is saturated", "scoring-saturated.txt",
                                     a.saturate_seconds)):
            profile_report(name, tmp / file, max(1, int(seconds)))
    say(f"summary: e2e p95 {ms(e2e[0.95])} at {f['achieved']:,.0f} ratings/s; intake {f['intake_ratings_per_s']:,.0f} "
        f"ratings/s; end to end {f['pipeline_ratings_per_s']:,.0f} ratings/s; bare FastAPI "
        f"{f['bare_ratings_per_s']:,.0f} ratings/s; Kafka {kafka.per_s:,.0f} records/s; ratios intake/bare "
        f"{f['intake_ratings_per_s'] / f['bare_ratings_per_s']:.2f}, end-to-end/Kafka "
        f"{f['pipeline_ratings_per_s'] / kafka.per_s:.2f}")


def main(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    admin = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                           "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
    run = Run(args=args, bootstrap=bootstrap, admin=admin)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench_e2e_{run.run_id}_"))
    names = list(run.names().values())
    say(f"e2e bench run {run.run_id}: Kafka {bootstrap}, topic prefix {run.prefix}, databases bench_e2e_"
        f"{run.run_id}_*, logs {tmp}")
    ok = False
    try:
        asyncio.run(databases(admin, [f'CREATE DATABASE "{n}"' for n in names]))
        asyncio.run(topics(bootstrap, create=(run.prefix + "ceiling",)))
        say(f"\n[1/5] Kafka ceiling: ProducerPerformance, {args.records:,} records")
        kafka = producer_performance(bootstrap, run.prefix + "ceiling", args.records)
        say(f"  {kafka.per_s:,.0f} records/s of {kafka.record_size} B, p95 {kafka.p95_ms:.0f} ms")
        say("starting the four services and the bare endpoint ...")
        start(run, tmp)
        figures = asyncio.run(measure(run, tmp))
        report(run, figures, kafka, tmp)
        ok = True
    finally:
        stop(run)
        try:
            asyncio.run(databases(admin, [f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names]))
            asyncio.run(topics(bootstrap, delete_prefix=run.prefix))
            say(f"cleaned up: databases bench_e2e_{run.run_id}_* dropped, topics {run.prefix}* deleted")
        except Exception as exc:
            say(f"could not clean up run {run.run_id}: {exc!r}")
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="ratings/s offered in the fixed-rate phase")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the fixed-rate phase")
    parser.add_argument("--batch", type=int, default=100, help="ratings per kiosk batch (1..500)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients in the closed-loop phases")
    parser.add_argument("--ceiling-seconds", type=float, default=10.0, help="the bare FastAPI ceiling's length")
    parser.add_argument("--saturate-seconds", type=float, default=15.0, help="the capacity phase's length")
    parser.add_argument("--records", type=int, default=300_000, help="ProducerPerformance records")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="scorecard polling interval, seconds")
    parser.add_argument("--poll-inflight", type=int, default=2, help="scorecard reads in flight at most")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--progress", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("YARDSTICK_BENCH_PORT_BASE", "18500")),
                        help="services on base+1..4, the bare endpoint on base+5")
    parser.add_argument("--profile", action="store_true", help="py-spy intake and scoring under load")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: every phase, little load")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.seconds, args.ceiling_seconds, args.saturate_seconds = min(args.rate, 200), 5, 2, 3
        args.records, args.concurrency, args.progress = 20_000, 8, 2
    return args


if __name__ == "__main__":
    main(parse())
