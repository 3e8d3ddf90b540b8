"""The relay on real Kafka and PostgreSQL when the broker refuses an event for good (decision 0025): the
event goes to its dead-letter topic shortened, the events after it are published in order, and the
outbox empties instead of waiting for ever."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from kafka_tools import bootstrap, read_all
from sqlalchemy import MetaData, func, select

from yardstick import db, events, outbox
from yardstick.bus.kafka import SHORT_VALUE_BYTES, KafkaBus

metadata = MetaData()
table = outbox.outbox_table(metadata)


def _event(n: int, *, pad: int = 0) -> events.Envelope:
    # A level's reason tags stand in for a payload too large for the broker (1 MiB): no request makes one.
    reasons = ["x" * 1000] * pad
    return events.Envelope.of(
        events.FeedbackReceived(feedback_id=f"f-{n}", unit_id="finance", channel="window", year=2026, level=4,
                                occurred_at=datetime(2026, 3, 1, 9, 0, n, tzinfo=UTC), window_id="finance-w1",
                                reasons=reasons),
        source="feedback-intake", key="finance", event_id=f"00000000-0000-7000-8000-{n:012d}")


async def test_an_event_the_broker_refuses_is_dead_lettered_and_the_rest_go_out(scratch_engine: Any) -> None:
    prefix = f"tr{secrets.token_hex(3)}."
    bus = KafkaBus(bootstrap(), client_id="test-relay-refused", partitions=2, prefix=prefix, retry_max_s=1.0)
    async with scratch_engine("postgresql", metadata, "yt_relay_refused") as engine:
        big = _event(2, pad=1100)  # about 1.1 MB of JSON
        async with db.session_factory(engine).begin() as session:
            # One event a row, as a deployment that turned shared rows off writes them: the big one alone.
            for envelope in (_event(1), big, _event(3)):
                await outbox.add(session, table, [envelope], per_row=1)
        relay = outbox.Relay(engine=engine, table=table, bus=bus, service="test")
        try:
            await relay.publish_once()
        finally:
            await bus.stop()
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(table))).scalar_one() == 0
    published = await read_all(prefix + events.FEEDBACK)
    assert [m.header("ce_id") for m in sorted(published, key=lambda m: m.offset)] == [
        _event(1).id.encode(), _event(3).id.encode()]
    [dead] = await read_all(prefix + events.FEEDBACK + ".dlq")
    assert dead.header("ce_id") == big.id.encode() and dead.header("x-consumer") == b"relay:test"
    assert dead.header("x-truncated") == b"MessageSizeTooLargeError"
    original = int(dead.header("x-original-bytes") or 0)
    assert original > 1_048_588 and len(dead.value) == SHORT_VALUE_BYTES
