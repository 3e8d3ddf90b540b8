"""A kiosk batch's insert: `db.bulk_insert`'s per-column arrays against one JSON parameter, on PostgreSQL.

Run: .venv/bin/python -P bench/bulk_insert.py [--batches 300] [--rounds 6]
Needs PostgreSQL (YARDSTICK_TEST_PG_ADMIN_URL, default
postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres) on this machine (the server's CPU is
read from /proc); works in a scratch database.

Intake stores a kiosk batch of 100 ratings with one statement (`db.bulk_insert`: one array a column
through `unnest`, ON CONFLICT DO NOTHING, RETURNING the ids inserted). Under kiosk load a profile put
about a quarter of intake's busy samples in asyncpg encoding those arrays. The alternative measured here
sends the rows as one JSON text expanded by `json_populate_recordset`, the same statement otherwise,
through the same session and engine as the services use. For each way: the CPU of this process and of
the connection's PostgreSQL backend per batch, rounds in alternating order, medians, and the ratios to
the arrays (what the services do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from feedback_intake.models import metadata, ratings
from yardstick import db

ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                       "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")
COLUMNS = ("id", "window_id", "unit_id", "device", "level", "rated_at", "year", "reasons", "status")
AS_JSON = text(f"INSERT INTO ratings ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} "
               "FROM json_populate_recordset(NULL::ratings, CAST(:rows AS json)) "
               "ON CONFLICT DO NOTHING RETURNING id")


def batch(start: datetime) -> list[dict[str, Any]]:
    """100 rows as post_ratings builds them."""
    return [{"id": str(uuid.uuid4()), "window_id": f"w-{i % 40}", "unit_id": f"unit-{i % 20}",
             "device": "kiosk-bench", "level": 1 + i % 5, "rated_at": start + timedelta(seconds=10 * i),
             "year": start.year, "reasons": ["slow", "unclear"][: i % 3], "status": "counted"} for i in range(100)]


def backend_cpu(pid: int) -> float | None:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None  # PostgreSQL on another machine
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench(batches: int, rounds: int) -> None:
    async with db.scratch_database(ADMIN, "bench_bulk") as url:
        engine = db.make_engine(url, pool_size=1)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await conn.commit()
            session = AsyncSession(bind=conn)

            async def arrays(rows: list[dict[str, Any]]) -> int:
                return len(await db.bulk_insert(session, ratings, rows, skip_conflicts=True, returning=ratings.c.id))

            async def one_json(rows: list[dict[str, Any]]) -> int:
                payload = json.dumps([row | {"rated_at": row["rated_at"].isoformat()} for row in rows])
                return len((await session.execute(AS_JSON, {"rows": payload})).all())

            ways: dict[str, Callable[[list[dict[str, Any]]], Awaitable[int]]] = {
                "arrays through unnest (bulk_insert)": arrays, "one JSON parameter": one_json}
            client: dict[str, list[float]] = {name: [] for name in ways}
            server: dict[str, list[float]] = {name: [] for name in ways}
            start = datetime(2026, 3, 1, tzinfo=UTC)
            names = list(ways)
            for r in range(rounds + 1):  # round 0 warms (statements prepared) and is not counted
                for name in names if r % 2 else names[::-1]:
                    work = [batch(start + timedelta(days=r, hours=k)) for k in range(batches if r else 20)]
                    c0, s0 = time.process_time(), backend_cpu(pid)
                    for rows in work:
                        inserted = await ways[name](rows)
                        await session.commit()
                        if inserted != len(rows):
                            raise SystemExit(f"{name}: {inserted} of {len(rows)} rows inserted")
                    s1 = backend_cpu(pid)
                    if r:
                        client[name].append((time.process_time() - c0) / batches * 1000)
                        if s0 is not None and s1 is not None:
                            server[name].append((s1 - s0) / batches * 1000)
                    start += timedelta(days=1)
                if r:
                    print(f"  round {r}/{rounds} done", flush=True)
            await session.close()
        await engine.dispose()
    base_c = statistics.median(client[names[0]])
    base_s = statistics.median(server[names[0]]) if server[names[0]] else None
    print(f"a kiosk batch's insert (100 rows, one transaction each), {batches:,} batches a round, "
          f"median of {rounds} rounds:")
    for name in names:
        c = statistics.median(client[name])
        line = f"  {name:<36} client {c:6.3f} ms ({min(client[name]):.3f}-{max(client[name]):.3f})"
        if base_s and server[name]:
            s = statistics.median(server[name])
            line += (f"   postgres {s:6.3f} ms ({min(server[name]):.3f}-{max(server[name]):.3f})   both {c + s:6.3f} ms"
                     f"   ratio to arrays: client {c / base_c:4.2f}, both {(c + s) / (base_c + base_s):4.2f}")
        else:
            line += f"   ratio to arrays: client {c / base_c:4.2f} (PostgreSQL's CPU not readable here)"
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=300, help="batches of 100 ratings a round, per way")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(bench(args.batches, args.rounds))
