"""The idempotent consumer's batch path (on SQLite, large polls on PostgreSQL too) and its fast decoder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from yardstick import consumer as consumer_module
from yardstick import db, events
from yardstick.bus import DeadLetter, Message, Subscription, dlq_topic
from yardstick.bus.codec import are_event_ids, decode, encode, is_event_id
from yardstick.bus.memory import MemoryBus
from yardstick.consumer import (
    OVERLAP_MIN,
    IdempotentConsumer,
    NotFound,
    Row,
    RowDecoder,
    _record_statement,
    _split,
    decode_fast,
    processed_table,
    record_new,
)
from yardstick.observability import CONSUMED

metadata = MetaData()
processed = processed_table(metadata)
tallies = Table(
    "batch_tallies", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("n", Integer, nullable=False),
)


@dataclass
class Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Db]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'consumer.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield Db(engine=engine, sessions=db.session_factory(engine))
    finally:
        await engine.dispose()


def _message(n: int, unit: str = "finance") -> Message:
    return encode(events.Envelope.of(
        events.FeedbackReceived(feedback_id=f"f-{n}", unit_id=unit, channel="window",
                                occurred_at=datetime(2026, 3, 1, 9, 0, n % 60, tzinfo=UTC), year=2026, level=4),
        source="feedback-intake", key=unit, event_id=f"batch-{n:06d}"))


async def _count(session: AsyncSession, envelope: events.Envelope) -> None:
    data = envelope.data
    assert isinstance(data, events.FeedbackReceived)
    if data.unit_id == "nowhere":
        raise NotFound("unit 'nowhere' is not in the city profile")
    current = (await session.execute(select(tallies.c.n).where(tallies.c.unit_id == data.unit_id))).scalar()
    if current is None:
        await session.execute(tallies.insert().values(unit_id=data.unit_id, n=1))
    else:
        await session.execute(tallies.update().where(tallies.c.unit_id == data.unit_id).values(n=current + 1))


async def _tallies(database: Db) -> dict[str, int]:
    async with database.sessions() as session:
        return {u: n for u, n in await session.execute(select(tallies.c.unit_id, tallies.c.n))}


async def _processed(database: Db) -> int:
    async with database.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(processed))).scalar_one())


def _consumer(database: Db, **kwargs: object) -> IdempotentConsumer:
    return IdempotentConsumer(name="test", sessions=database.sessions, table=processed,
                              handlers={"feedback.received": _count}, **kwargs)  # type: ignore[arg-type]


async def test_a_redelivered_batch_is_applied_once(database: Db) -> None:
    after: list[str] = []

    async def after_commit(envelope: events.Envelope) -> None:
        after.append(envelope.id)

    consumer = _consumer(database, after_commit=after_commit)
    first = [_message(n) for n in range(5)]
    assert await consumer.batch([*first, first[2]]) == []  # the same event twice in one poll too
    # A crash after the commit and before the offset commit: the poll comes again, with more behind it.
    assert await consumer.batch([*first, _message(5), _message(6, "transport")]) == []
    assert await _tallies(database) == {"finance": 6, "transport": 1}
    assert await _processed(database) == 7
    assert consumer.applied == 7 and consumer.skipped == 6
    assert after == [f"batch-{n:06d}" for n in range(7)]
    # The per-event path sees what the batch path recorded.
    await consumer(first[0])
    assert await _tallies(database) == {"finance": 6, "transport": 1}


def test_a_batch_decoder_that_may_give_rows_needs_a_batch_handler(database: Db) -> None:
    decode_rows = RowDecoder(["feedback.received"])
    with pytest.raises(ValueError, match="batch_handler"):
        _consumer(database, decode_batch=decode_rows)
    assert _consumer(database, decode_batch=decode_rows, batch_handler=FailsOnce()).decode_batch is decode_rows


async def test_a_row_its_envelope_decoder_refuses_is_dead_lettered_when_a_poll_goes_in_halves(database: Db) -> None:
    messages = [_message(n) for n in range(4)]

    def picky(message: Message) -> events.Envelope:
        if message is messages[2]:
            raise DeadLetter("refused by the per-event decoder")
        return decode_fast(message)

    async def fails(session: AsyncSession, batch: Sequence[object]) -> None:
        raise NotFound("the poll fails: applied in halves")

    consumer = _consumer(database, decode=picky, decode_batch=RowDecoder(["feedback.received"]),
                         batch_handler=fails)
    assert await consumer.batch(messages) == [(messages[2], "refused by the per-event decoder")]
    assert await _tallies(database) == {"finance": 3}


@pytest.mark.parametrize("where", [0, 37, 99])
async def test_a_failed_poll_is_applied_in_halves_down_to_its_poison_event(database: Db, where: int,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = _consumer(database)
    messages = [_message(n) for n in range(100)]
    messages[where] = _message(where, "nowhere")
    transactions: list[int] = []
    single: list[str] = []
    together, apply = consumer._apply_together, consumer.apply

    async def counted_together(events_: Sequence[Any]) -> Any:
        transactions.append(len(events_))
        return await together(events_)

    async def counted_apply(envelope: events.Envelope) -> bool:
        single.append(envelope.id)
        return await apply(envelope)

    monkeypatch.setattr(consumer, "_apply_together", counted_together)
    monkeypatch.setattr(consumer, "apply", counted_apply)
    consumer.batch_handler = _tally_all  # a batch handler, so the poll is one transaction when it can be
    dead = await consumer.batch(messages)
    reason = f"feedback.received batch-{where:06d}: unit 'nowhere' is not in the city profile"
    assert dead == [(messages[where], reason)]
    assert await _tallies(database) == {"finance": 99}
    assert await _processed(database) == 99
    # Only the poison event went alone, with the event it last shared a half with at most.
    assert f"batch-{where:06d}" in single and len(single) <= 2
    # After the poll's own transaction (decoded in the thread: len >= OVERLAP_MIN), two halves at each of seven
    # levels at most: 14 transactions where one a message made 100.
    assert len(transactions) <= 2 * 7 and transactions[0] == 50 and len(messages) >= OVERLAP_MIN


async def _tally_all(session: AsyncSession, envelopes: Sequence[events.Envelope]) -> None:
    for envelope in envelopes:
        await _count(session, envelope)


async def test_a_poison_message_is_dead_lettered_alone(database: Db) -> None:
    consumer = _consumer(database)
    garbage = Message(topic=events.FEEDBACK, key=b"finance", value=b"garbage")
    bad = _message(3, "nowhere")
    dead = await consumer.batch([_message(1), garbage, _message(2), bad, _message(4)])
    assert [m for m, _reason in dead] == [garbage, bad]
    assert "nowhere" in dead[1][1] and "CloudEvents" in dead[0][1]
    assert await _tallies(database) == {"finance": 3}
    assert await _processed(database) == 3  # the dead letters are not recorded: a fixed handler may take them
    assert await consumer.batch([_message(1), _message(2), _message(4)]) == []
    assert await _tallies(database) == {"finance": 3}


class FailsOnce:
    """A batch handler that counts its events, then fails its first call as a lost connection would."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, session: AsyncSession, envelopes: Sequence[events.Envelope]) -> None:
        self.calls += 1
        for envelope in envelopes:
            await _count(session, envelope)
        if self.calls == 1:
            raise OperationalError("INSERT", {}, ConnectionError("database went away"))


async def test_a_transient_failure_keeps_nothing_and_the_retry_applies_once(database: Db) -> None:
    flaky = FailsOnce()
    consumer = _consumer(database, batch_handler=flaky)
    poll = [_message(n) for n in range(4)]
    with pytest.raises(OperationalError):
        await consumer.batch(poll)
    assert await _tallies(database) == {} and await _processed(database) == 0
    assert await consumer.batch(poll) == []
    assert await _tallies(database) == {"finance": 4}
    assert await consumer.batch(poll) == []  # and once more: all seen
    assert await _tallies(database) == {"finance": 4} and flaky.calls == 2


@pytest.fixture
async def backend_database(backend: str, scratch_engine: Any) -> AsyncIterator[Db]:
    """The batch path on each backend: SQLite, and PostgreSQL when the cluster is there."""
    async with scratch_engine(backend, metadata, "yt_consumer") as engine:
        yield Db(engine=engine, sessions=db.session_factory(engine))


async def _processed_ids(database: Db) -> set[str]:
    async with database.sessions() as session:
        return set((await session.execute(select(processed.c.event_id))).scalars())


def _threads_of(decoder: Any, threads: list[int]) -> Any:
    def decode_noting_the_thread(message: Message) -> events.Envelope:
        threads.append(threading.get_ident())
        return decoder(message)
    return decode_noting_the_thread


async def test_a_large_poll_is_decoded_while_its_ids_are_recorded_with_the_same_outcome(
        backend_database: Db) -> None:
    """decision 0014: from OVERLAP_MIN messages the decoding runs in a thread beside the ids' statement;
    what is applied, recorded and dead-lettered is what decoding first gave."""
    database = backend_database
    threads: list[int] = []
    consumer = _consumer(database, decode=_threads_of(decode_fast, threads))
    units = ("finance", "transport")
    assert await consumer.batch([_message(n, units[n % 2]) for n in range(10)]) == []  # small: decoded in line
    assert set(threads) == {threading.get_ident()}
    threads.clear()
    garbage = Message(topic=events.FEEDBACK, key=b"finance", value=b"garbage", headers=_message(200).headers)
    # Two ce_id headers: the decoder reads the last one, the early recording the first.
    twice = replace(_message(300), headers=(*_message(300).headers, ("ce_id", b"batch-000301")))
    poll = [_message(n, units[n % 2]) for n in range(100)] + [garbage, _message(5, "transport"), twice]
    assert len(poll) >= OVERLAP_MIN
    dead = await consumer.batch(poll)
    assert threading.get_ident() not in set(threads) and len(threads) == len(poll)
    with pytest.raises(DeadLetter) as refused:
        decode(garbage)
    assert dead == [(garbage, str(refused.value))]
    assert await _tallies(database) == {"finance": 50 + 1, "transport": 50}  # batch-000301 is finance's
    # Recorded: every applied id; not the dead letter's, nor the header id no envelope carried.
    assert await _processed_ids(database) == {f"batch-{n:06d}" for n in range(100)} | {"batch-000301"}
    assert consumer.applied == 10 + 91 and consumer.skipped == 10 + 1
    # Redelivered: the dead letter is dead-lettered again (its id was taken back), nothing applied twice.
    again = await consumer.batch(poll)
    assert [(m, r) for m, r in again] == dead
    assert await _tallies(database) == {"finance": 51, "transport": 50}
    assert consumer.applied == 101


async def test_a_transient_failure_of_a_large_poll_keeps_nothing_and_the_retry_applies_once(
        backend_database: Db) -> None:
    database = backend_database
    flaky = FailsOnce()
    consumer = _consumer(database, batch_handler=flaky)
    garbage = Message(topic=events.FEEDBACK, key=b"finance", value=b"garbage", headers=_message(999).headers)
    poll = [_message(n) for n in range(OVERLAP_MIN)] + [garbage]
    with pytest.raises(OperationalError):
        await consumer.batch(poll)
    assert await _tallies(database) == {} and await _processed_ids(database) == set()  # the ids rolled back too
    dead = await consumer.batch(poll)
    assert [m for m, _ in dead] == [garbage]
    assert await _tallies(database) == {"finance": OVERLAP_MIN} and flaky.calls == 2
    assert await _processed_ids(database) == {f"batch-{n:06d}" for n in range(OVERLAP_MIN)}
    assert await consumer.batch(poll) == dead and flaky.calls == 2  # all seen; the dead letter again


@pytest.fixture(params=["plain insert", "on conflict"])
def record_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """record_new's two ways on PostgreSQL, whatever the number of ids: looked up and inserted plainly, or by
    ON CONFLICT DO NOTHING (fewer than PLAIN_INSERT_MIN)."""
    monkeypatch.setattr(consumer_module, "PLAIN_INSERT_MIN", 1 if request.param == "plain insert" else 10**9)
    return str(request.param)


async def test_ids_are_recorded_once_whatever_they_hold_and_the_new_ones_said(backend_database: Db,
                                                                              record_path: str) -> None:
    """record_new sends ids as lines of one text on PostgreSQL (an array when one holds a line break)."""
    plain = [f"id-{n}" for n in range(300)]
    odd = ["with\nbreak", "", " spaced ", "comma,id", "e'quote", "back\\slash"]
    async with db.transaction(backend_database.sessions) as session:
        assert await record_new(session, processed, "c", plain[:200]) == set(plain[:200])
    async with db.transaction(backend_database.sessions) as session:
        assert await record_new(session, processed, "c", plain[100:]) == set(plain[200:])
        assert await record_new(session, processed, "c", [*plain[250:], *odd[1:]]) == set(odd[1:])
        assert await record_new(session, processed, "c", odd) == {odd[0]}
        assert await record_new(session, processed, "other", plain[:2]) == set(plain[:2])
    async with backend_database.sessions() as session:
        stored = set((await session.execute(select(processed.c.consumer, processed.c.event_id))).all())
    assert stored == {("c", i) for i in [*plain, *odd]} | {("other", i) for i in plain[:2]}


async def test_an_id_given_twice_in_one_call_is_recorded_once(backend_database: Db, record_path: str) -> None:
    """On PostgreSQL the plain insert meets the second copy as a unique violation: ON CONFLICT then takes it."""
    async with db.transaction(backend_database.sessions) as session:
        assert await record_new(session, processed, "c", ["a", "b", "a"]) == {"a", "b"}
        assert await record_new(session, processed, "c", ["c", "c", "b"]) == {"c"}
    assert await _processed_ids(backend_database) == {"a", "b", "c"}


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["postgresql"])  # backend_database on PostgreSQL alone
async def test_the_ids_are_looked_up_one_by_one_in_the_index_whatever_the_statistics_say(
        backend_database: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table that grew faster than autovacuum analyses it (a replay into an empty read model) is thought
    empty by the planner, which would read all of it into a hash table for every poll: the look-up is a
    subquery it cannot turn into a join (OFFSET 0), so each id is one probe of the primary key."""
    async with backend_database.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {processed.name} SET (autovacuum_enabled = false)"))
        await conn.execute(text(f"INSERT INTO {processed.name} (consumer, event_id) "
                                "SELECT 'c', 'old-' || n FROM generate_series(1, 50000) AS n"))
        assert (await conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = :t"),
                                   {"t": processed.name})).scalar_one() < 0  # never analysed
    statement = _record_statement(processed.name, lines=True, plain=True)
    explain = text(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.text}").bindparams(
        bindparam("ids", type_=String), bindparam("consumer", type_=String))
    ids = [f"new-{n}" for n in range(500)] + [f"old-{n}" for n in range(1, 6)]
    async with backend_database.sessions() as session, session.begin():
        plan = (await session.execute(explain, {"consumer": "c", "ids": "\n".join(ids)})).scalar_one()
        await session.rollback()

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]

    reads = [n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == processed.name
             and n["Node Type"] != "ModifyTable"]
    assert [(n["Node Type"], n["Index Name"], n["Actual Loops"]) for n in reads] == [
        ("Index Only Scan", f"{processed.name}_pkey", len(ids))]
    assert not any(n["Node Type"] in {"Hash Join", "Merge Join", "Seq Scan", "Bitmap Heap Scan"}
                   for n in nodes(plan[0]["Plan"]))
    monkeypatch.setattr(consumer_module, "PLAIN_INSERT_MIN", len(ids))  # this statement, as record_new runs it
    async with backend_database.sessions() as session, session.begin():
        assert await record_new(session, processed, "c", ids) == set(ids[:500])


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("first_commits", [True, False])
async def test_ids_another_transaction_records_meanwhile_are_new_to_one_of_them(
        backend_database: Db, first_commits: bool, record_path: str) -> None:
    """Two instances recording the same ids at once (a rebalance): the second one's look-up does not see the
    first one's uncommitted ids, so its plain insert waits for them; once the first commits, they are the
    first's alone (the second's insert fails on them and ON CONFLICT answers, in the same transaction); if it
    rolls back, they are the second's."""
    first_ids, second_ids = ["x-1", "x-2", "x-3"], ["x-2", "x-3", "y-1", "y-2"]
    async with backend_database.sessions() as first, backend_database.sessions() as second:
        await first.begin()
        assert await record_new(first, processed, "c", first_ids) == set(first_ids)
        await second.begin()
        recording = asyncio.ensure_future(record_new(second, processed, "c", second_ids))
        await asyncio.sleep(0.3)
        assert not recording.done()  # waiting on the first transaction's rows
        if first_commits:
            await first.commit()
        else:
            await first.rollback()
        new = await asyncio.wait_for(recording, 10)
        assert new == ({"y-1", "y-2"} if first_commits else set(second_ids))
        await second.commit()
    assert await _processed_ids(backend_database) == set(first_ids if first_commits else []) | set(second_ids)


async def test_a_poison_event_in_a_large_poll_is_dead_lettered_alone(backend_database: Db) -> None:
    database = backend_database
    consumer = _consumer(database)
    bad = _message(500, "nowhere")
    poll = [_message(n) for n in range(80)] + [bad] + [_message(n) for n in range(80, 90)]
    dead = await consumer.batch(poll)
    assert [m for m, _ in dead] == [bad] and "nowhere" in dead[0][1]
    assert await _tallies(database) == {"finance": 90}
    assert await _processed_ids(database) == {f"batch-{n:06d}" for n in range(90)}
    assert await consumer.batch(poll) == [(bad, dead[0][1])]
    assert await _tallies(database) == {"finance": 90}


async def test_the_batch_handler_gets_only_new_events_in_order(database: Db) -> None:
    seen: list[list[str]] = []

    async def together(session: AsyncSession, envelopes: Sequence[events.Envelope]) -> None:
        seen.append([e.id for e in envelopes])
        for envelope in envelopes:
            await _count(session, envelope)

    consumer = _consumer(database, batch_handler=together)
    await consumer.batch([_message(1), _message(2)])
    await consumer.batch([_message(2), _message(3), _message(1), _message(4)])
    assert seen == [["batch-000001", "batch-000002"], ["batch-000003", "batch-000004"]]


@pytest.mark.parametrize("poll_size", [None, 4])
async def test_the_memory_bus_hands_batches_over_and_dead_letters_what_they_return(
        database: Db, poll_size: int | None) -> None:
    bus = MemoryBus(retry_s=0.01, batch=3)
    consumer = _consumer(database)
    sizes: list[int] = []

    async def handler(messages: Sequence[Message]) -> Sequence[tuple[Message, str]]:
        sizes.append(len(messages))
        return await consumer.batch(messages)

    bus.subscribe(Subscription(group="test", topics=[events.FEEDBACK], handler=consumer, batch_handler=handler,
                               poll_size=poll_size))
    await bus.publish([_message(n) for n in range(7)] + [_message(7, "nowhere"), _message(3)])
    await bus.start()
    try:
        for _ in range(200):
            if bus.lag("test") == 0:
                break
            await asyncio.sleep(0.01)
    finally:
        await bus.stop()
    # The bus's own batch, or the subscription's poll size.
    assert bus.lag("test") == 0 and sizes == ([3, 3, 3] if poll_size is None else [4, 4, 1])
    assert await _tallies(database) == {"finance": 7}
    assert [decode(m).id for m in bus.logs[dlq_topic(events.FEEDBACK)]] == ["batch-000007"]


# --- the fast decoder --------------------------------------------------------------------------

SAMPLES: list[events.Event] = [
    events.FeedbackReceived(feedback_id="f", unit_id="finance", channel="web", year=2026, level=2,
                            occurred_at=datetime(2026, 3, 1, 9, 30, 1, 250, tzinfo=UTC), category_id="parking",
                            reasons=["slow"], has_text=True),
    events.FeedbackReassigned(feedback_id="f", from_unit_id="finance", unit_id="transport", channel="hotline",
                              occurred_at=datetime(2026, 3, 1, tzinfo=UTC), year=2026),
    events.FeedbackFollowUp(feedback_id="f", unit_id="finance", level=5, occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
                            year=2026),
    events.SurveyResponse(survey_id="s", year=2026, respondent_id="r", stratum="x", ratings={"finance": None}),
    events.TargetProgress(target_id="t", unit_id="finance", year=2026, date=date(2026, 3, 1), value=1.5,
                          attainment=0.1, status="on_track"),
]


@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: events.type_of(d))
def test_the_fast_decoder_reads_what_the_sdk_reads(data: events.Event) -> None:
    message = encode(events.Envelope.of(data, source="test", key="k"))
    assert decode_fast(message) == decode(message)
    keyless = replace(message, key=None)
    assert decode_fast(keyless) == decode(keyless)


def test_anything_unusual_takes_the_sdks_path_and_fails_the_same() -> None:
    good = encode(events.Envelope.of(SAMPLES[0], source="test", key="k"))

    def without(name: str) -> Message:
        return replace(good, headers=tuple((k, v) for k, v in good.headers if k != name))

    broken = [
        without("ce_id"), without("ce_time"),
        replace(good, value=b'{"feedback_id": 1}'),
        replace(good, value=b"[1, 2]"),
        replace(good, headers=tuple((k, b"no.such.type" if k == "ce_type" else v) for k, v in good.headers)),
    ]
    for message in broken:
        with pytest.raises(DeadLetter) as fast:
            decode_fast(message)
        with pytest.raises(DeadLetter) as sdk:
            decode(message)
        assert str(fast.value) == str(sdk.value)
    # A CloudEvents extension the fast path does not know: the SDK decodes it.
    extended = replace(good, headers=(*good.headers, ("ce_traceparent", b"00-abc-def-01")))
    assert decode_fast(extended) == decode(extended)


@pytest.mark.parametrize("case", ["key not UTF-8", "header without value", "id too long", "id with a NUL"])
def test_the_fast_decoder_dead_letters_what_the_sdks_path_refuses(case: str) -> None:
    # Each of these once left decode_fast with an error that was not a DeadLetter (or passed an id no
    # consumer can record): the bus took it for a transient failure and retried the poll for ever.
    good = encode(events.Envelope.of(SAMPLES[0], source="test", key="k"))

    def with_header(name: str, value: bytes | None) -> Message:
        return replace(good, headers=tuple((k, value if k == name else v) for k, v in good.headers))  # type: ignore[misc]

    message = {"key not UTF-8": replace(good, key=b"\xff\xfek"),
               "header without value": with_header("ce_type", None),
               "id too long": with_header("ce_id", b"x" * 65),
               "id with a NUL": with_header("ce_id", b"id\x00")}[case]
    with pytest.raises(DeadLetter):
        decode_fast(message)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=40))
def test_a_polls_new_and_applied_before_events_are_split_in_order(new_or_not: list[bool]) -> None:
    """_split by places (the consumer's large polls) and by looking at each event give the same two lists."""
    rows = [Row(f"e-{n}", "feedback.received", {}) for n in range(len(new_or_not))]
    new = {row.id for row, is_new in zip(rows, new_or_not, strict=True) if is_new}
    expected = ([r for r in rows if r.id in new], [r for r in rows if r.id not in new])
    origin = {row.id: place for place, row in enumerate(rows)}
    assert tuple(map(list, _split(rows, new, origin))) == expected
    assert tuple(map(list, _split(rows, new))) == expected


_GOOD_IDS = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=64).map(str.encode)
_ODD_IDS = st.binary(max_size=70) | st.none() | st.sampled_from(
    [b"", b"x" * 65, b"e 1", b"e\n1", b"e\x00", b"\x7f", "\u00e9".encode(), b"\xe9"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_GOOD_IDS, st.booleans(), st.booleans()), max_size=12), st.data())
def test_the_header_ids_are_the_recordable_ce_ids_each_once(headers: list[tuple[bytes | None, bool, bool]],
                                                             data: st.DataObject) -> None:
    """The ids recorded before decoding: each message's first ce_id header, when codec.is_event_id takes it,
    in order, once; whether the values are checked together or one at a time (one odd value among good
    ones, or none)."""
    if headers and data.draw(st.booleans()):
        place = data.draw(st.integers(0, len(headers) - 1))
        headers[place] = (data.draw(_ODD_IDS), headers[place][1], True)
    if headers and data.draw(st.booleans()):
        headers.append(headers[0])  # an id twice
    messages = []
    for value, first, has_id in headers:
        others = (("ce_source", b"s"), ("ce_type", b"feedback.received"))
        own = (("ce_id", value),) if has_id else ()
        messages.append(Message(topic=events.FEEDBACK, key=None, value=b"{}",
                                headers=(*own, *others) if first else (*others, *own)))  # type: ignore[arg-type]
    expected: dict[str, None] = {}
    for value, _first, has_id in headers:
        if has_id and is_event_id(value):
            expected[value.decode()] = None  # type: ignore[union-attr]
    assert IdempotentConsumer._header_ids(messages) == list(expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(_GOOD_IDS, max_size=8), st.lists(_ODD_IDS, max_size=2))
def test_ids_checked_together_are_checked_as_one_at_a_time(good: list[bytes], odd: list[bytes | None]) -> None:
    for values in (good, good + odd, odd + good):
        assert are_event_ids(values) == (bool(values) and all(is_event_id(v) for v in values))


@pytest.mark.parametrize("odd", [None, b"", b"x" * 65, b"e\n1", b"e\x00", b"\x7f", "\u00e9".encode(), b"\xe9"])
def test_an_odd_ce_id_among_good_ones_is_left_out(odd: bytes | None) -> None:
    """Checked together, the good ids pass; one odd id sends the check to each value, and only it is left out."""
    values = [b"e-1", odd, b"x" * 64, b"e 2"]
    messages = [Message(topic=events.FEEDBACK, key=None, value=b"{}", headers=(("ce_id", v),))  # type: ignore[arg-type]
                for v in values]
    assert IdempotentConsumer._header_ids(messages) == ["e-1", "x" * 64, "e 2"]


async def test_the_metrics_count_each_type_applied_and_duplicate(database: Db) -> None:
    """A large poll's events counted by type and outcome: the duplicates are those applied before."""
    def counted(kind: str, outcome: str) -> float:
        return CONSUMED.labels(consumer="test", type=kind, outcome=outcome)._value.get()

    consumer = _consumer(database)
    kind = "feedback.received"
    before = counted(kind, "applied"), counted(kind, "duplicate")
    assert await consumer.batch([_message(n) for n in range(10)]) == []
    poll = [_message(n) for n in range(5, 5 + OVERLAP_MIN)]
    assert await consumer.batch(poll) == []
    assert counted(kind, "applied") - before[0] == 10 + OVERLAP_MIN - 5
    assert counted(kind, "duplicate") - before[1] == 5
    assert (consumer.applied, consumer.skipped) == (10 + OVERLAP_MIN - 5, 5)
