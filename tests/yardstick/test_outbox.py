"""Tests of the transactional outbox, its relay (on SQLite and PostgreSQL) and the idempotent consumer (SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, func, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from yardstick import db, events
from yardstick.bus import BusUnavailable, DeadLetter, Message, Subscription
from yardstick.bus.codec import decode, encode
from yardstick.bus.memory import MemoryBus
from yardstick.consumer import IdempotentConsumer, NotFound, processed_table
from yardstick.outbox import PENDING_COUNT_EVERY_S, ROW_EVENTS, Relay, add, outbox_table
from yardstick.runtime import ServiceRuntime
from yardstick.settings import ServiceSettings
from yardstick.tasks import stop_task

metadata = MetaData()
outbox = outbox_table(metadata)
processed = processed_table(metadata)
tallies = Table(
    "tallies", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("n", Integer, nullable=False),
)


@dataclass
class Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Db]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield Db(engine=engine, sessions=db.session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture
async def backend_database(backend: str, scratch_engine: Any) -> AsyncIterator[Db]:
    """The relay's statements on each backend: SQLite, and PostgreSQL when the cluster is there."""
    async with scratch_engine(backend, metadata, "yt_outbox") as engine:
        yield Db(engine=engine, sessions=db.session_factory(engine))


def _event(n: int, unit: str = "finance") -> events.Envelope:
    return events.Envelope.of(
        events.FeedbackReceived(feedback_id=f"f-{n}", unit_id=unit, channel="window",
                                occurred_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(seconds=n), year=2026,
                                level=4, window_id=f"{unit}-w1"),
        source="feedback-intake", key=unit, event_id=f"00000000-0000-0000-0000-{n:012d}",
        time=datetime(2026, 3, 1, 9, 0, 0, 500, tzinfo=UTC) + timedelta(seconds=n))


async def _rows(database: Db) -> list[Any]:
    async with database.engine.connect() as conn:
        return list((await conn.execute(
            select(outbox.c.id, outbox.c.event_id, outbox.c.sent_at).order_by(outbox.c.id))).all())


def _relay(database: Db, bus: Any, batch: int = 500) -> Relay:
    return Relay(engine=database.engine, table=outbox, bus=bus, service="test", batch=batch)


class FlakyBus:
    """A bus whose broker is down until `up` is set; records what it took."""

    backend = "flaky"

    def __init__(self) -> None:
        self.up = False
        self.published: list[Message] = []
        self.calls = 0

    async def publish(self, messages: Sequence[Message]) -> None:
        self.calls += 1
        if not self.up:
            raise BusUnavailable("broker unreachable")
        self.published.extend(messages)


# the outbox and its relay ------------------------------------------------------------


async def test_events_of_a_rolled_back_transaction_are_never_published(database: Db) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.transaction(database.sessions) as session:
            await session.execute(tallies.insert().values(unit_id="finance", n=1))
            await add(session, outbox, [_event(1)])
            raise Boom
    assert await _rows(database) == []
    bus = MemoryBus()
    assert await _relay(database, bus).publish_once() is False
    assert bus.logs[events.FEEDBACK] == []


async def test_committed_events_are_published_in_id_order_and_then_deleted(backend_database: Db) -> None:
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(3, "commerce"), _event(1)])
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(2)])
    bus = MemoryBus()
    relay = _relay(backend_database, bus)
    assert await relay.publish_once() is False  # not a full batch: nothing more waits
    published = [decode(m) for m in bus.logs[events.FEEDBACK]]
    assert [e.data.feedback_id for e in published] == ["f-3", "f-1", "f-2"]  # type: ignore[attr-defined]
    assert [e.key for e in published] == ["commerce", "finance", "finance"]
    assert published[0] == _event(3, "commerce")
    assert await _rows(backend_database) == []  # the topic is their record now
    assert relay.published == 3
    # A second pass finds nothing to send.
    assert await relay.publish_once() is False
    assert len(bus.logs[events.FEEDBACK]) == 3


async def test_rows_an_earlier_release_marked_sent_are_not_published_again(backend_database: Db) -> None:
    """Before decision 0012 published rows stayed, with sent_at set: the relay leaves them alone."""
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(1)])
        await add(session, outbox, [_event(2)])
        await session.execute(update(outbox).where(outbox.c.event_id == _event(1).id)
                              .values(sent_at=datetime(2026, 3, 1, 10, tzinfo=UTC)))
    bus = MemoryBus()
    assert await _relay(backend_database, bus).publish_once() is False
    assert [decode(m).id for m in bus.logs[events.FEEDBACK]] == [_event(2).id]
    assert [r.event_id for r in await _rows(backend_database)] == [_event(1).id]


async def test_a_full_batch_says_there_may_be_more(backend_database: Db) -> None:
    for n in range(5):
        async with db.transaction(backend_database.sessions) as session:
            await add(session, outbox, [_event(n)])
    bus = MemoryBus()
    relay = Relay(engine=backend_database.engine, table=outbox, bus=bus, service="test", batch=2, max_batch=2)
    assert await relay.publish_once() is True
    assert await relay.publish_once() is True
    assert await relay.publish_once() is False
    assert [decode(m).id for m in bus.logs[events.FEEDBACK]] == [_event(n).id for n in range(5)]


async def test_a_backlog_doubles_the_rounds_up_to_their_cap_and_a_drained_outbox_resets_them(
        backend_database: Db) -> None:
    """In a busy process a round costs about the same whatever its size: under a backlog they grow."""
    for n in range(100):
        async with db.transaction(backend_database.sessions) as session:
            await add(session, outbox, [_event(n)])
    bus = MemoryBus()
    relay = Relay(engine=backend_database.engine, table=outbox, bus=bus, service="test", batch=10, max_batch=40)
    sizes = []
    while True:
        before = len(bus.logs[events.FEEDBACK])
        more = await relay.publish_once()
        sizes.append(len(bus.logs[events.FEEDBACK]) - before)
        if not more:
            break
    assert sizes == [10, 20, 40, 30]  # the last round was not full: the backlog is gone
    assert relay.round == 10
    assert [decode(m).id for m in bus.logs[events.FEEDBACK]] == [_event(n).id for n in range(100)]
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(n) for n in range(100, 125)])  # one shared row of 25
    assert await relay.publish_once() is True  # a row is taken whole, past the round's 10
    assert len(bus.logs[events.FEEDBACK]) == 125 and relay.round == 20


async def test_a_requests_events_share_rows_and_go_out_in_order(backend_database: Db) -> None:
    """events.md: a request's events may share one outbox row; ROW_EVENTS at most, in the order given."""
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(0, "commerce")])
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(n, "finance" if n % 3 else "commerce") for n in range(1, 251)])
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(251), _event(252)])
    async with backend_database.engine.connect() as conn:
        shares = (await conn.execute(select(outbox.c.event_id, outbox.c.events).order_by(outbox.c.id))).all()
    assert [tuple(r) for r in shares] == [(_event(0).id, 1), (_event(1).id, ROW_EVENTS), (_event(101).id, ROW_EVENTS),
                                          (_event(201).id, 50), (_event(251).id, 2)]
    bus = MemoryBus()
    relay = _relay(backend_database, bus, batch=150)
    assert await relay.pending() == 253
    # At most `batch` events a round, a row whole: the rows of 1 and 100 (101), then the next
    # row would pass 150 only after it started below it (201)...
    assert await relay.publish_once() is True
    assert len(bus.logs[events.FEEDBACK]) == 201
    assert await relay.pending() == 52
    # ...then the rest, which is no full batch.
    assert await relay.publish_once() is False
    published = [decode(m) for m in bus.logs[events.FEEDBACK]]
    assert published == [_event(0, "commerce")] + [_event(n, "finance" if n % 3 else "commerce")
                                                  for n in range(1, 251)] + [_event(251), _event(252)]
    assert relay.published == 253
    assert await _rows(backend_database) == []
    assert await relay.pending() == 0


async def test_a_backlog_is_counted_for_its_gauge_at_most_once_in_its_interval(backend_database: Db) -> None:
    """The pending gauge: a round that leaves a backlog counts it (a pass over the table), at most once in
    `count_every_s` (a second by default); a round that takes the whole backlog knows its size without counting."""

    async def backlog() -> None:  # ten requests of 100 events, a row each
        for n in range(10):
            async with db.transaction(backend_database.sessions) as session:
                await add(session, outbox, [_event(100 * n + k) for k in range(100)])

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("yardstick_outbox_pending", {"service": "test"})

    assert PENDING_COUNT_EVERY_S == 1.0
    await backlog()
    relay = Relay(engine=backend_database.engine, table=outbox, bus=MemoryBus(), service="test", batch=100,
                  count_every_s=3600)
    assert await relay.publish_once() is True  # 100 out, a backlog left: counted
    assert gauge() == 900
    assert await relay.publish_once() is True  # 200 more within the interval: not counted again
    assert gauge() == 900
    assert await relay.publish_once() is True  # 400 more: still not
    assert gauge() == 900
    assert await relay.publish_once() is False  # the rest fits in the round (800): its size, no count
    assert gauge() == 300 and relay.published == 1000
    assert await relay.publish_once() is False
    assert gauge() == 0
    # Once the interval has passed, a round counts again: with none, every round that leaves a backlog.
    await backlog()
    every = Relay(engine=backend_database.engine, table=outbox, bus=MemoryBus(), service="test", batch=100,
                  count_every_s=0)
    assert await every.publish_once() is True
    assert gauge() == 900
    assert await every.publish_once() is True
    assert gauge() == 700
    assert await every.publish_once() is True
    assert gauge() == 300


@pytest.mark.parametrize("spelling", ["as written", "the standard library's default", "spaced, ASCII escapes"])
async def test_a_shared_row_goes_out_the_same_whatever_spelt_its_json(backend_database: Db, spelling: str) -> None:
    """The relay reads a shared row's JSON as JSON: this release writes it with pydantic's serialiser,
    an earlier one with the standard library's, and a row may come back with other spacing or escapes."""
    requested = [_event(n, "西湖区" if n % 2 else "finance") for n in range(5)]
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, requested)
    async with backend_database.engine.begin() as conn:
        (row_id, stored), = (await conn.execute(select(outbox.c.id, outbox.c.payload))).all()
        assert isinstance(stored, list) and len(stored) == len(requested)
        text_ = {"as written": None, "the standard library's default": json.dumps(stored),
                 "spaced, ASCII escapes": json.dumps(stored, indent=1, ensure_ascii=True)}[spelling]
        if text_ is not None:
            cast = "CAST(:p AS json)" if conn.dialect.name == "postgresql" else ":p"
            await conn.execute(sql_text(f"UPDATE outbox SET payload = {cast} WHERE id = :id"),
                               {"p": text_, "id": row_id})
    bus = MemoryBus()
    assert await _relay(backend_database, bus).publish_once() is False
    assert [decode(m) for m in bus.logs[events.FEEDBACK]] == requested
    assert [m.key for m in bus.logs[events.FEEDBACK]] == [e.key.encode() for e in requested]


async def test_a_broker_outage_delays_events_without_losing_or_doubling_them(backend_database: Db) -> None:
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(1), _event(2)])
    bus = FlakyBus()
    relay = _relay(backend_database, bus)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(BusUnavailable):
            await relay.publish_once()
    assert [r.event_id for r in await _rows(backend_database)] == [_event(1).id]  # kept, unsent: the two share a row
    assert await relay.pending() == 2
    async with db.transaction(backend_database.sessions) as session:
        await add(session, outbox, [_event(3)])
    bus.up = True
    assert await relay.publish_once() is False
    assert [decode(m).id for m in bus.published] == [_event(n).id for n in (1, 2, 3)]
    assert await relay.publish_once() is False
    assert len(bus.published) == 3
    assert await _rows(backend_database) == []


async def test_the_running_relay_rides_out_an_outage(database: Db, eventually: Any) -> None:
    bus = FlakyBus()
    relay = Relay(engine=database.engine, table=outbox, bus=bus, service="test",  # type: ignore[arg-type]
                  interval_s=0.02, retry_max_s=0.05)
    await relay.start()
    try:
        async with db.transaction(database.sessions) as session:
            await add(session, outbox, [_event(1)])
        relay.wake()
        await eventually(lambda: bus.calls >= 2)
        assert bus.published == []
        bus.up = True
        await eventually(lambda: len(bus.published) == 1)
    finally:
        await relay.stop()
    assert [decode(m).id for m in bus.published] == [_event(1).id]


async def test_stopping_ends_a_loop_that_swallowed_the_cancellation() -> None:
    """Python 3.11's wait_for (and some libraries) can lose a cancel: the loop would go on while its
    owner waited for it to end (a CI run hung in a relay's stop)."""
    laps = 0

    async def loop() -> None:
        nonlocal laps
        swallowed = False
        while True:
            laps += 1
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True  # as wait_for does when its inner wait completed at the same time

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    await asyncio.wait_for(stop_task(task), 10)
    assert task.cancelled()
    ended_at = laps
    await asyncio.sleep(0.05)
    assert laps == ended_at


async def test_a_relay_stops_at_any_moment_of_its_loop(database: Db) -> None:
    bus = FlakyBus()
    bus.up = True
    for i in range(40):
        relay = Relay(engine=database.engine, table=outbox, bus=bus, service="test",  # type: ignore[arg-type]
                      interval_s=0.005, retry_max_s=0.01)
        async with db.transaction(database.sessions) as session:
            await add(session, outbox, [_event(i)])
        await relay.start()
        relay.wake()
        await asyncio.sleep((i % 7) * 0.003)
        await asyncio.wait_for(relay.stop(), 10)
    # Stopped between publishing and marking, a relay leaves rows its successor sends again
    # (consumers skip them by id); none is lost.
    await _relay(database, bus).publish_once()
    assert {decode(m).id for m in bus.published} == {_event(i).id for i in range(40)}


# the idempotent consumer -------------------------------------------------------------


async def _count_tally(session: AsyncSession, envelope: events.Envelope) -> None:
    data = envelope.data
    assert isinstance(data, events.FeedbackReceived)
    if data.unit_id == "nowhere":
        raise NotFound("unit 'nowhere' is not in the city profile")
    current = (await session.execute(select(tallies.c.n).where(tallies.c.unit_id == data.unit_id))).scalar()
    if current is None:
        await session.execute(tallies.insert().values(unit_id=data.unit_id, n=1))
    else:
        await session.execute(tallies.update().where(tallies.c.unit_id == data.unit_id).values(n=current + 1))


async def _tally(database: Db, unit: str = "finance") -> int | None:
    async with database.sessions() as session:
        return (await session.execute(select(tallies.c.n).where(tallies.c.unit_id == unit))).scalar()


async def _processed_count(database: Db) -> int:
    async with database.sessions() as session:
        return (await session.execute(select(func.count()).select_from(processed))).scalar_one()


def _consumer(database: Db, handler: Any = _count_tally, **kwargs: Any) -> IdempotentConsumer:
    return IdempotentConsumer(name="test", sessions=database.sessions, table=processed,
                              handlers={"feedback.received": handler}, **kwargs)


async def test_a_redelivered_event_is_applied_once(database: Db) -> None:
    after: list[str] = []

    async def after_commit(envelope: events.Envelope) -> None:
        after.append(envelope.id)

    consumer = _consumer(database, after_commit=after_commit)
    message = encode(_event(1))
    await consumer(message)
    await consumer(message)
    await consumer(encode(_event(2)))
    await consumer(message)
    assert await _tally(database) == 2
    assert consumer.applied == 2
    assert consumer.skipped == 2
    assert after == [_event(1).id, _event(2).id]
    assert await _processed_count(database) == 2


async def test_the_same_event_in_two_consumers_is_applied_by_each(database: Db) -> None:
    first = _consumer(database)
    second = IdempotentConsumer(name="other", sessions=database.sessions, table=processed,
                                handlers={"feedback.received": _count_tally})
    message = encode(_event(1))
    await first(message)
    await second(message)
    assert await _tally(database) == 2


async def test_events_without_a_handler_are_recorded_and_skipped(database: Db) -> None:
    consumer = IdempotentConsumer(name="test", sessions=database.sessions, table=processed, handlers={})
    await consumer(encode(_event(1)))
    assert await _processed_count(database) == 1
    assert await _tally(database) is None


async def test_an_undecodable_message_is_a_dead_letter(database: Db) -> None:
    consumer = _consumer(database)
    with pytest.raises(DeadLetter):
        await consumer(Message(topic=events.FEEDBACK, key=b"finance", value=b"garbage"))
    assert await _processed_count(database) == 0


async def test_a_handler_bug_is_a_dead_letter_and_nothing_is_kept(database: Db) -> None:
    async def broken(session: AsyncSession, envelope: events.Envelope) -> None:
        await _count_tally(session, envelope)
        raise KeyError("window")

    consumer = _consumer(database, handler=broken)
    with pytest.raises(DeadLetter, match="handler failed"):
        await consumer(encode(_event(1)))
    assert await _tally(database) is None
    assert await _processed_count(database) == 0


async def test_an_event_naming_what_does_not_exist_is_a_dead_letter(database: Db) -> None:
    consumer = _consumer(database)
    with pytest.raises(DeadLetter, match="nowhere"):
        await consumer(encode(_event(1, unit="nowhere")))
    assert await _processed_count(database) == 0


async def test_a_database_outage_propagates_and_a_retry_applies_the_event(database: Db) -> None:
    failures = 2

    async def flaky(session: AsyncSession, envelope: events.Envelope) -> None:
        nonlocal failures
        await _count_tally(session, envelope)
        if failures:
            failures -= 1
            raise OperationalError("UPDATE tallies", {}, Exception("database is locked"))

    consumer = _consumer(database, handler=flaky)
    message = encode(_event(1))
    for _ in range(2):
        with pytest.raises(OperationalError):
            await consumer(message)
        # Rolled back, the event id included: the retry is not taken for a duplicate.
        assert await _tally(database) is None
        assert await _processed_count(database) == 0
    await consumer(message)
    assert await _tally(database) == 1
    await consumer(message)
    assert await _tally(database) == 1


async def test_the_consumer_on_the_memory_bus_dead_letters_and_moves_on(
        database: Db, eventually: Any) -> None:

    bus = MemoryBus(retry_s=0.01)
    consumer = _consumer(database)
    bus.subscribe(Subscription(group="test", topics=[events.FEEDBACK], handler=consumer))
    await bus.start()
    try:
        await bus.publish([encode(_event(1)), encode(_event(2, unit="nowhere")), encode(_event(3)),
                           encode(_event(1))])
        await eventually(lambda: bus.lag("test") == 0)
    finally:
        await bus.stop()
    assert await _tally(database) == 2
    dead = bus.logs[f"{events.FEEDBACK}.dlq"]
    assert len(dead) == 1
    assert dead[0].header("ce_id") == _event(2).id.encode()
    assert dead[0].header("x-consumer") == b"test"


async def test_bulk_insert_on_sqlite_skips_conflicts_and_reads_json_text(database: Db) -> None:
    meta = db.new_metadata()
    table = Table("bulk_items", meta, Column("id", String(10), primary_key=True), Column("n", Integer),
                  Column("doc", JSON))
    async with database.engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    async with db.transaction(database.sessions) as session:
        first = await db.bulk_insert(session, table, [{"id": "a", "n": 1, "doc": db.JsonText('{"y": [2]}')}],
                                  returning=table.c.id)
        second = await db.bulk_insert(session, table, [{"id": "a", "n": 9, "doc": {}}, {"id": "b", "n": 2, "doc": {}}],
                                   skip_conflicts=True, returning=table.c.id)
        rows = {r.id: (r.n, r.doc) for r in (await session.execute(select(table))).all()}
    assert (first, second) == (["a"], ["b"])
    assert rows == {"a": (1, {"y": [2]}), "b": (2, {})}


@pytest.mark.parametrize("shared", ["true", "false"])
async def test_the_deployments_setting_turns_shared_rows_off_for_a_rolling_upgrade(
        shared: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """YARDSTICK_OUTBOX_SHARED_ROWS=false (docs/operations.md): a request's events one row each, as a
    relay of an earlier release reads them."""
    monkeypatch.setenv("YARDSTICK_OUTBOX_SHARED_ROWS", shared)
    settings = ServiceSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'service.db'}", bus="memory",
                               data_dir=tmp_path, auth_secret="test")
    runtime = ServiceRuntime(settings, MetaData(), migrations="", bus=MemoryBus())
    try:
        async with runtime.engine.begin() as conn:
            await conn.run_sync(runtime.metadata.create_all)
        async with runtime.transaction() as session:
            await runtime.emit(session, [_event(n) for n in range(3)])
        async with runtime.engine.connect() as conn:
            counts = list((await conn.execute(select(runtime.outbox.c.events).order_by(runtime.outbox.c.id))).scalars())
        assert counts == ([3] if shared == "true" else [1, 1, 1])
    finally:
        await runtime.engine.dispose()


# the relay's own connection on PostgreSQL ------------------------------------------------------


@pytest.fixture
async def pg_database(scratch_engine: Any) -> AsyncIterator[Db]:
    """A scratch PostgreSQL database; the tests using it are marked integration (not in `make unit`)."""
    async with scratch_engine("postgresql", metadata, "yt_relay_lock") as engine:
        yield Db(engine=engine, sessions=db.session_factory(engine))


@pytest.mark.integration
async def test_a_relay_that_lets_go_of_its_lock_frees_it_for_another_instance(pg_database: Db) -> None:
    """After a database error the relay drops its lock connection; the lock must go with it, or
    no instance could publish while the pooled session that holds it lives."""
    first = _relay(pg_database, MemoryBus())
    other_engine = db.make_engine(pg_database.engine.url.render_as_string(hide_password=False))
    other = Relay(engine=other_engine, table=outbox, bus=MemoryBus(), service="test")
    try:
        assert await first._acquire_lock() is True
        assert await other._acquire_lock() is False  # one relay a service at a time
        await first._release_lock()
        assert await other._acquire_lock() is True
        assert await first._acquire_lock() is False  # the first one's next try finds it taken
    finally:
        await first.stop()
        await other.stop()
        await other_engine.dispose()


@pytest.mark.integration
async def test_a_relays_round_on_postgresql_sends_no_begin_or_commit(pg_database: Db) -> None:
    """Each round reads the oldest rows and deletes the published ones, each its own transaction
    (autocommit): no BEGIN and COMMIT round trips around them. (asyncpg's query logger sees the
    statements sent as text, as transaction control is, not the prepared ones.)"""
    async with db.transaction(pg_database.sessions) as session:
        await add(session, outbox, [_event(1), _event(2, "commerce")])
    bus = MemoryBus()
    relay = _relay(pg_database, bus)
    try:
        assert await relay._acquire_lock() is True
        assert relay._lock_conn is not None
        raw = (await relay._lock_conn.get_raw_connection()).driver_connection
        sent: list[str] = []
        raw.add_query_logger(lambda record: sent.append(record.query.strip().split()[0].rstrip(";").upper()))
        await raw.execute("SELECT 1")
        await asyncio.sleep(0)  # asyncpg hands records to the loggers with call_soon
        assert sent == ["SELECT"]  # the logger sees what it should
        sent.clear()
        assert await relay.publish_once() is False
        await asyncio.sleep(0)
        assert not {"BEGIN", "COMMIT", "ROLLBACK"} & set(sent), sent
        assert [decode(m).id for m in bus.logs[events.FEEDBACK]] == [_event(1).id, _event(2).id]
        assert await _rows(pg_database) == []
    finally:
        await relay.stop()
