"""`yardstick scoring verify YEAR` and `yardstick scoring rebuild`: check final years and the read model."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from scoring import consumers, repository, service
from scoring.app import MIGRATIONS
from scoring.models import adjustments, assessments, configs, leader_grades, metadata, projects
from scoring.settings import ScoringSettings
from yardstick import db
from yardstick.bus import DeadLetter, Message
from yardstick.consumer import Decoded
from yardstick.runtime import ServiceRuntime

BATCH = consumers.POLL_SIZE
# The commission's own inputs are not on any topic: a rebuild takes them from the live database.
COMMISSION_TABLES = (configs, leader_grades, projects, assessments, adjustments)


def _runtime(settings: ScoringSettings | None = None) -> ServiceRuntime:
    settings = settings or ScoringSettings()
    return ServiceRuntime(settings, metadata, migrations=MIGRATIONS)


def verify(year: int) -> int:
    """Recompute a final year from its stored inputs: 0 when it matches, 1 (and the differences) when it
    does not, 2 when the year is not finalized (there is nothing to verify)."""

    async def run() -> list[str] | None:
        runtime = _runtime()
        try:
            async with runtime.sessions() as session:
                row = await repository.year_row(session, year)
            if row is None or row["status"] != "final":
                return None
            return await service.verify(runtime, year)
        finally:
            await runtime.engine.dispose()

    problems = asyncio.run(run())
    if problems is None:
        print(f"{year}: not finalized, nothing to verify")
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{year}: {'verified' if not problems else f'{len(problems)} difference(s)'}")
    return 0 if not problems else 1


def rebuild() -> int:
    """Replay the topics from the beginning into an empty read model and compare with the live one."""

    async def run() -> list[str]:
        settings = ScoringSettings()
        runtime = _runtime(settings)
        try:
            return await rebuild_and_compare(runtime, _kafka_messages(settings))
        finally:
            await runtime.engine.dispose()

    problems = asyncio.run(run())
    for problem in problems:
        print(problem, file=sys.stderr)
    print("rebuild equals the live read model" if not problems else f"{len(problems)} difference(s)")
    return 0 if not problems else 1


async def _kafka_messages(settings: ScoringSettings) -> AsyncIterator[Message]:
    """Every message of the consumed topics, from the beginning up to the end offsets found at start."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        physical = {settings.topic_prefix + t: t for t in consumers.TOPICS}
        parts = [TopicPartition(t, p) for t in physical for p in (consumer.partitions_for_topic(t) or ())]
        if not parts:
            return
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        left = {tp for tp in parts if ends[tp] > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000, max_records=BATCH)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield Message(topic=physical[r.topic], key=r.key, value=r.value,
                                      headers=tuple(r.headers or ()), partition=r.partition, offset=r.offset)
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()


async def _as_async(messages: Iterable[Message]) -> AsyncIterator[Message]:
    for m in messages:
        yield m


async def replay(runtime: ServiceRuntime, sessions: Any, messages: AsyncIterator[Message] | Iterable[Message]) -> int:
    """Apply messages in batches through the live handlers; undecodable ones are skipped as the DLQ took them."""
    stream = messages if isinstance(messages, AsyncIterator) else _as_async(messages)
    table = consumers.handlers(runtime.city)
    applied = 0
    pending: list[Decoded] = []

    async def flush() -> None:
        nonlocal applied
        if pending:
            async with db.transaction(sessions) as session:
                applied += await consumers.apply_batch(session, pending, runtime.city, table)
            pending.clear()

    async for message in stream:
        try:
            pending.append(consumers.DECODE_BATCH(message))  # as the live consumer decodes a poll
        except DeadLetter:
            continue
        if len(pending) >= BATCH:
            await flush()
    await flush()
    return applied


async def rebuild_and_compare(runtime: ServiceRuntime,
                              messages: AsyncIterator[Message] | Iterable[Message]) -> list[str]:
    """Replay into a scratch database and compare every live year's scorecards with the live read model."""
    with tempfile.TemporaryDirectory(prefix="scoring-rebuild-") as scratch:
        engine = db.make_engine(f"sqlite+aiosqlite:///{Path(scratch) / 'rebuild.db'}")
        try:
            await db.migrate(engine, MIGRATIONS)
            sessions = db.session_factory(engine)
            async with runtime.sessions() as live, db.transaction(sessions) as fresh:
                for table in COMMISSION_TABLES:
                    rows = [dict(r) for r in (await live.execute(select(table))).mappings()]
                    if rows:
                        await fresh.execute(table.insert(), rows)
            await replay(runtime, sessions, messages)
            problems: list[str] = []
            async with runtime.sessions() as live, sessions() as fresh:
                years = {y: status for y, _v, _e, status in await repository.year_versions(live)}
                years |= {y: years.get(y, "live") for y, *_ in await repository.year_versions(fresh)}
                as_of = service.today(runtime)
                for year, status in sorted(years.items()):
                    if status == "final":
                        continue  # frozen: `verify` checks those against their digest
                    groups = service.groups_of(runtime)
                    want = service.compute(groups, await service.load_inputs(live, year, as_of))
                    got = service.compute(groups, await service.load_inputs(fresh, year, as_of))
                    for unit_id in sorted(want):
                        if json.dumps(want[unit_id], sort_keys=True) != json.dumps(got[unit_id], sort_keys=True):
                            problems.append(f"{year} {unit_id}: live total {want[unit_id]['total']!r}, "
                                            f"rebuilt {got[unit_id]['total']!r}")
            return problems
        finally:
            await engine.dispose()
