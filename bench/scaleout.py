"""Scale-out of scoring's and notices' consumers: throughput with one and with two instances in the group.

Run: .venv/bin/python -P bench/scaleout.py [--events 20000] [--instances 1 2] [--quick]
Needs Kafka (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:19092) and PostgreSQL
(YARDSTICK_TEST_PG_ADMIN_URL, default postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres).
For each service and each instance count: a fresh database and topic prefix, K `yardstick serve` processes
of the service sharing its consumer group, a warm-up (untimed) until the group has consumed a few events,
then N feedback.received events (kiosk ratings over every unit, so every partition has work) published at
once; the time is from the first publish until the group has committed every offset (lag zero). Each
service runs alone, so the instances do not share the CPU with the other service's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from yardstick import events
from yardstick.bus.codec import encode
from yardstick.bus.kafka import KafkaBus, delete_topics_with_prefix
from yardstick.city import default_city_path, load_city
from yardstick.db import scratch_database_sync

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASE_PORT = 18380
CITY = load_city(default_city_path())
PREFIX_OF = {"scoring": "SCORING", "notices": "NOTICES"}
TOPICS_OF = {"scoring": [events.FEEDBACK, events.SURVEY, events.TARGETS, events.NOTICES],
             "notices": [events.FEEDBACK, events.TARGETS]}


def bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def admin_url() -> str:
    return os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                          "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")


def ratings(n: int, seed: int) -> list[events.Envelope]:
    rng = random.Random(seed)
    windows = sorted(CITY.windows_by_id.values(), key=lambda w: w.id)
    start = datetime.now(UTC) - timedelta(hours=6)
    out = []
    for i in range(n):
        w = rng.choice(windows)
        moment = start + timedelta(seconds=i)
        out.append(events.Envelope.of(
            events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=w.unit, channel="window",
                                    occurred_at=moment, year=moment.astimezone(CITY.timezone).year,
                                    level=rng.randint(1, 5), window_id=w.id),
            source="bench", key=w.unit))
    return out


async def lag(group: str, topics: list[str]) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if len(tps) < len(topics):
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(tps)
        left = 0
        for tp in tps:
            left += ends[tp] - ((await consumer.committed(tp)) or 0)
        return left
    finally:
        await consumer.stop()


def run_one(service: str, instances: int, n: int, logs: Path) -> float:
    """Seconds from the first publish of n events until `instances` processes of `service` committed them."""
    with scratch_database_sync(admin_url(), f"bench_{service.replace('-', '_')}") as url:
        return _run_one(url, service, instances, n, logs)


def _run_one(url: str, service: str, instances: int, n: int, logs: Path) -> float:
    run = secrets.token_hex(4)
    prefix = f"b{run}."
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env.update({"YARDSTICK_BUS": "kafka", "KAFKA_BOOTSTRAP_SERVERS": bootstrap(), "YARDSTICK_TOPIC_PREFIX": prefix,
                "YARDSTICK_AUTH_SECRET": secrets.token_urlsafe(32), "YARDSTICK_LOG_LEVEL": "WARNING",
                f"YARDSTICK_{PREFIX_OF[service]}_DATABASE_URL": url})
    procs = []
    try:
        for i in range(instances):
            port = BASE_PORT + i
            log = open(logs / f"{service}-{instances}-{i}.log", "wb")
            procs.append(subprocess.Popen([str(BIN / "yardstick"), "serve", service], cwd=REPO, stdout=log,
                                          stderr=subprocess.STDOUT,
                                          env={**env, f"YARDSTICK_{PREFIX_OF[service]}_PORT": str(port)}))
        for i in range(instances):
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{BASE_PORT + i}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or procs[i].poll() is not None:
                    raise SystemExit(f"{service} instance {i} did not start (log {logs})")
                time.sleep(0.5)
        messages = [encode(e) for e in ratings(n, seed=instances)]
        bus = KafkaBus(bootstrap(), client_id="bench", prefix=prefix)
        topics = [prefix + t for t in TOPICS_OF[service]]

        async def publish_and_wait() -> float:
            # Untimed warm-up, two events a unit on average: every instance has joined the group, holds
            # its partitions and has its connections open before the clock starts.
            await bus.publish([encode(e) for e in ratings(len(CITY.unit_ids) * 2, seed=-instances)])
            while True:
                if await lag(prefix + service, topics) == 0:
                    break
                await asyncio.sleep(0.5)
            started = time.perf_counter()
            for i in range(0, len(messages), 500):
                await bus.publish(messages[i:i + 500])
            await bus.stop()
            next_note = time.perf_counter() + 10
            while (left := await lag(prefix + service, topics)) > 0:
                if time.perf_counter() > next_note:
                    print(f"  {service} x{instances}: {left} events to go ({time.perf_counter() - started:.0f}s)",
                          flush=True)
                    next_note += 10
                await asyncio.sleep(0.1)
            return time.perf_counter() - started

        return asyncio.run(publish_and_wait())
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        asyncio.run(delete_topics_with_prefix(bootstrap(), prefix))  # else each run adds 72 partitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="2000 events: a smoke run")
    args = parser.parse_args()
    n = 2000 if args.quick else args.events
    logs = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    print(f"scale-out: {n} feedback.received events per run, Kafka {bootstrap()}, logs {logs}", flush=True)
    results: dict[str, dict[int, float]] = {}
    for service in ("scoring", "notices"):
        for k in args.instances:
            seconds = run_one(service, k, n, logs)
            results.setdefault(service, {})[k] = seconds
            print(f"{service:8} x{k}: {n} events in {seconds:6.1f}s = {n / seconds:7.1f} events/s", flush=True)
    for service, by_k in results.items():
        if 1 in by_k and 2 in by_k:
            print(f"{service:8} two instances / one: {by_k[1] / by_k[2]:.2f}x the throughput")


if __name__ == "__main__":
    main()
