"""Where a feedback post's CPU goes inside intake, by taking its parts away one at a time.

Run: .venv/bin/python -P bench/post_cost.py [--posts 4000] [--rounds 5] [--concurrency 32]
Needs Kafka (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:19092) and PostgreSQL (YARDSTICK_TEST_PG_ADMIN_URL,
default postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres); works in a scratch database
and a fresh topic prefix.

`bench/intake.py` measures posts over HTTP against a served process. This one builds intake's app in
this process (the same `create_app`, its writer, relay and Kafka producer running) and calls it as
ASGI, with no sockets, `--concurrency` posts in flight, the CPU of this process a post. Each variant
takes one part away, and the differences to the whole say what that part costs:

- as served: the whole post (framework, middleware, validation, classification, the writer's
  transaction, the relay's round and Kafka's producer);
- without classification: the classifier answers at once (keyword-free, no model);
- without the store: the writer answers at once (no transaction, no event, nothing for the relay);
- route only: the use case answers at once (what is left is the framework, the middleware, the
  body's validation, the rate limit and the receipt);
- bare FastAPI: an app of one route with the same body model and nothing else: the framework's floor.

Not counted: uvicorn and the socket (a quarter to half a millisecond a post over HTTP on the
reference machine, `bench/intake.py` against this), and PostgreSQL's and Kafka's own processes.
A variant's CPU is counted until the relay has published the last event of its posts, so its work
does not fall into the next variant's. The variants' order rotates from round to round, so a loaded
machine weighs on each alike; the figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest.mock import patch

from fastapi import FastAPI
from sqlalchemy import func, select

from feedback_intake.schemas import FeedbackIn

# bench/ is not on the path (`make bench` runs each script with -P): the end-to-end bench's topic helper
# is taken from beside this file.
sys.path.append(str(Path(__file__).resolve().parent))
from e2e import topics

ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                       "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
TEXT = "公交车总是不准点，等了四十分钟"


async def call(app: Any, path: bytes, body: bytes) -> int:
    """One POST through the app's ASGI interface, as uvicorn would hand it over; its status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path.decode(), "raw_path": path, "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80), "state": {}}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # a client that stays: only a disconnect would come
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/feedback", status_code=201)
    async def feedback(body: FeedbackIn) -> dict[str, str]:
        return {"id": "x", "tracking_code": "ABCDEFGHJKMN", "status": "received"}

    return app


async def bench(posts: int, rounds: int, concurrency: int) -> None:
    from feedback_intake.app import create_app
    from feedback_intake.settings import IntakeSettings
    from yardstick import db

    prefix = f"bench{secrets.token_hex(3)}."
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    async with db.scratch_database(ADMIN, "bench_post_cost") as url:
        with settings_from({
                "YARDSTICK_BUS": "kafka", "YARDSTICK_TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "YARDSTICK_AUTH_SECRET": secrets.token_urlsafe(32), "YARDSTICK_LOG_LEVEL": "WARNING",
                "YARDSTICK_AUTH_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "YARDSTICK_INTAKE_DATABASE_URL": url,
                # One client: the per-client limits would measure themselves.
                "YARDSTICK_INTAKE_RATE_PER_S": "1000000", "YARDSTICK_INTAKE_RATE_BURST": "1000000"}):
            try:
                await measure(create_app(IntakeSettings()), bare_app(), posts, rounds, concurrency)
            finally:
                await topics(bootstrap, delete_prefix=prefix)  # the run's topics: nothing else reads them


@contextmanager
def settings_from(values: dict[str, str]) -> Iterator[None]:
    """The service's settings from these alone (not from the caller's other YARDSTICK_ variables, as
    bench/intake.py gives its process), the caller's environment back afterwards."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("YARDSTICK_")]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def measure(app: Any, bare: FastAPI, posts: int, rounds: int, concurrency: int) -> None:
    from feedback_intake import service
    from feedback_intake.classify import Classification
    from yardstick.runner import tune_gc

    async with app.router.lifespan_context(app):
        intake = app.state.intake
        runtime = intake.runtime
        units = [u.id for u in intake.city.units]
        category = intake.city.categories[0].id

        async def answered(*_: Any, **__: Any) -> bool:
            return True

        async def received(_: Any, item: Any, **__: Any) -> tuple[dict[str, Any], bool]:
            return {"id": "x", "tracking_code": "ABCDEFGHJKMN", "unit_id": item.unit_id,
                    "category_id": category, "status": "received"}, True

        def decided(_: str) -> Classification:
            return Classification(category, "keyword", None)

        variants: dict[str, Callable[[], Any]] = {
            "as served": nullcontext,
            "without classification": lambda: patch.object(intake.classifier, "classify", decided),
            "without the store": lambda: patch.object(intake.writer, "insert", answered),
            "route only": lambda: patch.object(service, "create_feedback", received),
            "bare FastAPI": nullcontext,
        }

        async def drained() -> None:
            """Until the relay has published every event of the load: its work is part of the variant's
            cost, not of the next one's."""
            pending = select(func.count()).select_from(runtime.outbox)
            while True:
                async with runtime.reading() as connection:
                    if not (await connection.execute(pending)).scalar():
                        return
                await asyncio.sleep(0.01)

        async def load(name: str, target: Any, n: int) -> tuple[float, float]:
            bodies = iter([json.dumps({"channel": "web", "text": TEXT, "level": 2,
                                       "unit_id": units[i % len(units)],
                                       "client_id": str(uuid.uuid4())}).encode() for i in range(n)])
            bad: list[int] = []

            async def client() -> None:
                for body in bodies:
                    status = await call(target, b"/v1/feedback", body)
                    if status != 201:
                        bad.append(status)

            c0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            wall = time.perf_counter() - t0
            await drained()
            cpu = time.process_time() - c0
            if bad:
                raise SystemExit(f"{name}: {len(bad)} posts were not answered 201 (first: {bad[0]}): see the "
                                 "service's log above; is PostgreSQL or Kafka down?")
            return cpu / n * 1000, n / wall

        cpu: dict[str, list[float]] = {name: [] for name in variants}
        rate: dict[str, list[float]] = {name: [] for name in variants}
        tune_gc()  # as a serving process does once it listens (runner.py)
        # Warm: statements prepared, topics made, the producer connected, both apps' first calls made.
        await load("warm-up", app, min(posts, 500))
        await load("warm-up", bare, min(posts, 500))
        names = list(variants)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                with variants[name]():
                    c, q = await load(name, bare if name == "bare FastAPI" else app, posts)
                cpu[name].append(c)
                rate[name].append(q)
            print(f"  round {r + 1}/{rounds} done", flush=True)
    report(posts, rounds, concurrency, cpu, rate)


def report(posts: int, rounds: int, concurrency: int, cpu: dict[str, list[float]],
           rate: dict[str, list[float]]) -> None:
    m = {name: statistics.median(values) for name, values in cpu.items()}
    whole = m["as served"]
    print(f"a feedback post in process (ASGI, no sockets), {posts:,} posts a round by {concurrency} clients, "
          f"median of {rounds} rounds:")
    for name in cpu:
        spread = f"{min(cpu[name]):.3f}-{max(cpu[name]):.3f}"
        print(f"  {name:<24} {m[name]:6.3f} ms CPU a post ({spread})  {statistics.median(rate[name]):7,.0f} posts/s"
              f"   ratio to as served {m[name] / whole:5.2f}")
    parts = {"classification": whole - m["without classification"],
             "the store (transaction, event, relay, Kafka)": whole - m["without the store"],
             "the rest of the use case": m["without the store"] - m["route only"]
             - (whole - m["without classification"]),
             "our route, middleware and receipt above bare": m["route only"] - m["bare FastAPI"],
             "bare FastAPI": m["bare FastAPI"]}
    print("  by difference (shares of as served; a negative share is within the noise):")
    for name, ms in parts.items():
        print(f"    {name:<46} {ms:6.3f} ms  {ms / whole:6.1%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=4000, help="posts a round, per variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32, help="posts in flight")
    args = parser.parse_args()
    import uvloop

    uvloop.run(bench(args.posts, args.rounds, args.concurrency))  # the services' loop (runner.py)
