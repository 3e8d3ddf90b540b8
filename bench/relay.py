"""Outbox relay throughput on PostgreSQL + Kafka, against a bare idempotent producer in the same run.

Usage (Kafka and PostgreSQL running, e.g. after `make up` or under `make test`'s scripts):
    .venv/bin/python bench/relay.py [--events 50000]
Prints events/s for both and the ratio relay / bare producer. The relay publishes as in the
services: on the connection that holds its advisory lock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from yardstick import events
from yardstick.bus.codec import encode
from yardstick.bus.kafka import KafkaBus
from yardstick.db import bulk_insert, make_engine, new_metadata, scratch_database, session_factory
from yardstick.outbox import ROW_EVENTS, Relay, outbox_table, rows

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL",
                       "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/postgres")


def envelopes(n: int) -> list[events.Envelope]:
    now = datetime.now(UTC)
    units = [f"unit-{i}" for i in range(60)]
    return [events.Envelope.of(
        events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=units[i % 60], channel="window",
                                occurred_at=now, year=now.year, level=1 + i % 5, window_id=f"w-{i % 120}"),
        source="bench", key=units[i % 60]) for i in range(n)]


async def bare_producer(prefix: str, batch: list[events.Envelope]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", linger_ms=5,
                                max_batch_size=1024 * 1024)
    bus = KafkaBus(BOOTSTRAP, client_id="bench", prefix=prefix)
    await bus.ensure_topics()
    await producer.start()
    messages = [encode(e) for e in batch]  # the relay encodes too: count it on both sides
    start = time.perf_counter()
    try:
        for i in range(0, len(messages), 500):
            futures = [await producer.send(prefix + m.topic, value=m.value, key=m.key, headers=list(m.headers))
                       for m in messages[i:i + 500]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - start


async def relay(prefix: str, batch: list[events.Envelope], db_url: str, per_row: int) -> float:
    engine = make_engine(db_url)
    metadata = new_metadata()
    table = outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    # Stored as the services store them (outbox.rows: the CloudEvents time as written, the data's JSON),
    # one event a row (a feedback post's) or a request's events sharing rows (a kiosk batch's).
    sessions = session_factory(engine)
    for i in range(0, len(batch), 5000):
        async with sessions() as session, session.begin():
            await bulk_insert(session, table, rows(batch[i:i + 5000], per_row=per_row))
    bus = KafkaBus(BOOTSTRAP, client_id="bench-relay", prefix=prefix)
    relay = Relay(engine=engine, table=table, bus=bus, service="bench")
    # As the services run it: its rounds on the connection that holds its advisory lock (decision 0017).
    try:
        if not await relay._acquire_lock():
            raise SystemExit("relay bench: another relay holds the lock of service 'bench' on this database")
        start = time.perf_counter()
        while await relay.publish_once():
            pass
        elapsed = time.perf_counter() - start
        if relay.published != len(batch):
            raise SystemExit(f"relay bench: published {relay.published} of {len(batch)} events")
    finally:
        await relay.stop()  # lets go of the lock
    await bus.stop()
    await engine.dispose()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    async with scratch_database(ADMIN, "bench_relay") as url:
        batch = envelopes(args.events)
        prefix = f"bench{secrets.token_hex(3)}."
        bare = await bare_producer(prefix, batch)
        print(f"events: {args.events}")
        print(f"bare idempotent producer: {args.events / bare:10.0f} events/s ({bare:.2f} s)")
        for per_row, what in ((1, "one event a row"), (ROW_EVENTS, f"{ROW_EVENTS} events a row")):
            relayed = await relay(prefix, batch, url, per_row)
            print(f"outbox relay (PG -> Kafka), {what}: {args.events / relayed:8.0f} events/s ({relayed:.2f} s), "
                  f"ratio to the bare producer {bare / relayed:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
