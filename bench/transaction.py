"""What one small write transaction costs through each layer, on PostgreSQL: the fixed cost of a quiet hour.

Run: .venv/bin/python -P bench/transaction.py [--transactions 2000]
Needs PostgreSQL (YARDSTICK_TEST_PG_ADMIN_URL, default
postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres); works in a scratch database.

The transaction has the shape of a lone feedback post's (the writer's): a per-key advisory lock, an
insert of a row, an insert of its outbox row, then the commit. Sent one after the other, as posts arrive
in a quiet hour, through the services' ORM session (`runtime.transaction()`), a Core connection
(`engine.begin()`), both on an engine as the services make it (`db.make_engine`), and asyncpg alone
on a connection of its own (the driver under both, no pool): the CPU of this process a transaction,
the layers' order rotated from round to round so a loaded machine weighs on each alike, and the
ratios to asyncpg alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from yardstick import db

ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                       "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
SCHEMA = ("CREATE TABLE item (id text PRIMARY KEY, body text NOT NULL)",
          "CREATE TABLE outbox (id bigserial PRIMARY KEY, event_id text NOT NULL, payload text NOT NULL)")
LOCK = "SELECT pg_advisory_xact_lock(hashtext(:k))"
ITEM = "INSERT INTO item (id, body) VALUES (:id, :body)"
EVENT = "INSERT INTO outbox (event_id, payload) VALUES (:e, :p)"


async def bench(transactions: int, rounds: int) -> None:
    async with db.scratch_database(ADMIN, "bench_tx") as url:
        engine = db.make_engine(url, pool_size=2)
        driver = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with engine.begin() as conn:
            for statement in SCHEMA:
                await conn.execute(text(statement))
        lock, item, event = text(LOCK), text(ITEM), text(EVENT)

        async def orm_session() -> None:
            async with sessions() as session, session.begin():
                await session.execute(lock, {"k": "outbox:unit-1"})
                await session.execute(item, {"id": uuid.uuid4().hex, "body": "x" * 200})
                await session.execute(event, {"e": uuid.uuid4().hex, "p": "{}"})

        async def core_connection() -> None:
            async with engine.begin() as conn:
                await conn.execute(lock, {"k": "outbox:unit-1"})
                await conn.execute(item, {"id": uuid.uuid4().hex, "body": "x" * 200})
                await conn.execute(event, {"e": uuid.uuid4().hex, "p": "{}"})

        async def asyncpg_alone() -> None:
            async with driver.transaction():
                await driver.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "outbox:unit-1")
                await driver.execute("INSERT INTO item (id, body) VALUES ($1, $2)", uuid.uuid4().hex, "x" * 200)
                await driver.execute("INSERT INTO outbox (event_id, payload) VALUES ($1, $2)",
                                     uuid.uuid4().hex, "{}")

        layers: dict[str, Callable[[], Awaitable[None]]] = {
            "ORM session (runtime.transaction)": orm_session, "Core connection (engine.begin)": core_connection,
            "asyncpg alone": asyncpg_alone}
        cpu: dict[str, list[float]] = {name: [] for name in layers}
        wall: dict[str, list[float]] = {name: [] for name in layers}
        for run in layers.values():  # warm: statements prepared, pool filled
            for _ in range(100):
                await run()
        names = list(layers)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                run = layers[name]
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(transactions):
                    await run()
                cpu[name].append((time.process_time() - c0) / transactions * 1000)
                wall[name].append((time.perf_counter() - t0) / transactions * 1000)
            print(f"  round {r + 1}/{rounds} done", flush=True)
        await driver.close()
        await engine.dispose()
    base = statistics.median(cpu["asyncpg alone"])
    print(f"a lone write transaction (advisory lock, two inserts, commit), {transactions:,} a round, "
          f"median of {rounds} rounds:")
    for name in layers:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"  {name:<36} {c:6.2f} ms CPU, {w:6.2f} ms wall a transaction   ratio to asyncpg alone {c / base:5.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=2000, help="transactions a round, per layer")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(bench(args.transactions, args.rounds))
