"""`events.prepare` (the hot paths' events without pydantic) against the models, and the pooled event ids."""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from yardstick import events
from yardstick.outbox import add, outbox_table

_text = st.text(min_size=1, max_size=40)
_floats = st.floats(allow_nan=True, allow_infinity=True)
_moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]))
_statuses = st.sampled_from(["on_track", "at_risk", "off_track", "no_data"])

_received = st.fixed_dictionaries(
    {"feedback_id": _text, "unit_id": _text, "channel": st.sampled_from(["window", "web", "mobile", "social"]),
     "occurred_at": _moments, "year": st.integers(2000, 2100)},
    optional={"level": st.integers(1, 5), "window_id": _text, "category_id": _text, "district_id": _text,
              "reasons": st.lists(_text, max_size=3), "has_text": st.booleans(), "device": _text})
_progress = st.fixed_dictionaries(
    {"target_id": _text, "unit_id": _text, "year": st.integers(2000, 2100), "date": st.dates(),
     # The model writes a value that is not finite as null and then refuses it: finite ones only here.
     "value": st.floats(allow_nan=False, allow_infinity=False),
     "attainment": st.floats(allow_nan=False, allow_infinity=False), "status": _statuses},
    optional={"correction": st.booleans(), "late": st.booleans(),
              "projection": st.fixed_dictionaries({"value": st.none() | _floats, "low": st.none() | _floats,
                                                   "high": st.none() | _floats})})
_status_changed = st.fixed_dictionaries(
    {"target_id": _text, "unit_id": _text, "year": st.integers(2000, 2100), "previous": st.none() | _statuses,
     "status": _statuses, "as_of": st.dates()})


def _same_as_the_model(model: type[Any], fields: dict[str, Any]) -> None:
    prepared = events.prepare(model, source="svc", key="k", time="2026-11-29T10:00:00Z", **fields)
    expected = model(**fields)
    # The same JSON value as the model writes (floats may be spelt differently: 1e-07 and 1e-7)...
    assert json.loads(prepared.payload) == json.loads(expected.model_dump_json())
    # ...which every consumer reads back into the same event.
    assert model.model_validate_json(prepared.payload) == model.model_validate_json(expected.model_dump_json())
    assert (prepared.type, prepared.topic) == (model.__event_type__, model.__topic__)


@settings(max_examples=300, deadline=None)
@given(_received)
def test_a_prepared_feedback_event_is_the_models_json(fields: dict[str, Any]) -> None:
    _same_as_the_model(events.FeedbackReceived, fields)


@settings(max_examples=300, deadline=None)
@given(_progress)
def test_a_prepared_progress_event_is_the_models_json(fields: dict[str, Any]) -> None:
    _same_as_the_model(events.TargetProgress, fields)


@settings(max_examples=100, deadline=None)
@given(_status_changed)
def test_a_prepared_status_change_is_the_models_json(fields: dict[str, Any]) -> None:
    _same_as_the_model(events.TargetStatusChanged, fields)


def test_a_float_json_cannot_hold_is_null_as_the_model_writes_it() -> None:
    prepared = events.prepare(events.TargetProgress, source="svc", key="k", time="t", target_id="t", unit_id="u",
                              year=2026, date=date(2026, 1, 1), value=math.inf, attainment=0.5, status="on_track")
    assert json.loads(prepared.payload)["value"] is None


def test_a_utc_time_is_written_with_z_and_an_offset_is_kept() -> None:
    at = datetime(2026, 3, 4, 9, 30, 15, 250000, tzinfo=UTC)
    common = {"feedback_id": "f", "unit_id": "u", "channel": "window", "year": 2026}
    utc = events.prepare(events.FeedbackReceived, source="s", key="k", time="t", occurred_at=at, **common)
    cst = events.prepare(events.FeedbackReceived, source="s", key="k", time="t",
                         occurred_at=at.astimezone(timezone(timedelta(hours=8))), **common)
    assert json.loads(utc.payload)["occurred_at"] == "2026-03-04T09:30:15.250000Z"
    assert json.loads(cst.payload)["occurred_at"] == "2026-03-04T17:30:15.250000+08:00"


def test_a_prepared_event_writes_the_models_fields_in_its_order_and_refuses_a_name_it_lacks() -> None:
    at = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
    # The call names fields in another order than the model declares them, and leaves some to their default.
    fields = {"device": "kiosk-7", "reasons": ["wait"], "level": 4, "year": 2026, "occurred_at": at,
              "channel": "window", "unit_id": "u", "feedback_id": "f", "window_id": "w"}
    prepared = events.prepare(events.FeedbackReceived, source="s", key="k", time="t", **fields)
    assert prepared.payload == events.FeedbackReceived(**fields).model_dump_json()  # the same text, key by key
    with pytest.raises(TypeError, match="FeedbackReceived has no field levle"):  # not dropped without a word
        events.prepare(events.FeedbackReceived, source="s", key="k", time="t", levle=4, **fields)


def test_event_ids_are_time_ordered_version_7_uuids_and_distinct() -> None:
    before = time.time_ns() // 1_000_000
    ids = [events.new_event_id() for _ in range(2500)]  # several refills of the pool
    time.sleep(0.003)
    later = [events.new_event_id() for _ in range(2500)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids + later)) == 5000
    for text in ids + later:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
        assert before <= parsed.int >> 80 <= after  # its first 48 bits: the millisecond it was made
    # Ordered by the millisecond: every id made after the pause sorts after every id made before it.
    assert max(ids) < min(later)
    # Random after the time but for the version digit: each of the 18 other positions takes many
    # values, the variant's digit all four it may (8, 9, a, b).
    digits = [{text.replace("-", "")[i] for text in ids + later} for i in range(32)]
    assert [len(d) for i, d in enumerate(digits) if i > 12 and i != 16] == [16] * 18
    assert digits[12] == {"7"} and digits[16] == set("89ab")


def test_a_forked_child_draws_ids_of_its_own() -> None:
    events.new_event_id()  # the pool is full
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without running the parent's clean-up
        os.write(write, events.new_event_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child and child != events.new_event_id()


async def test_the_outbox_stores_a_prepared_event_as_it_stores_the_envelope() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    metadata = MetaData()
    table = outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    fields: dict[str, Any] = {"target_id": "t-1", "unit_id": "finance", "year": 2026, "date": date(2026, 5, 1),
                              "value": 12.5, "attainment": 0.25, "status": "at_risk", "late": True,
                              "projection": {"value": 40.0, "low": 30.0, "high": 50.0}}
    at = datetime(2026, 5, 2, 8, 0, tzinfo=UTC)
    envelope = events.Envelope.of(events.TargetProgress(**fields), source="target-tracker", key="finance",
                                  event_id="e-1", time=at)
    prepared = events.prepare(events.TargetProgress, source="target-tracker", key="finance", event_id="e-2",
                              time=events.ce_time(at), **fields)
    async with AsyncSession(engine) as session, session.begin():
        await add(session, table, [envelope])
        await add(session, table, [prepared])
        await add(session, table, [envelope.model_copy(update={"id": "e-3"}), prepared._replace(id="e-4")])
    async with engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(select(table).order_by(table.c.id))]
    await engine.dispose()
    assert [(r["event_id"], r["events"]) for r in rows] == [("e-1", 1), ("e-2", 1), ("e-3", 2)]  # sharing a row
    columns = ("topic", "key", "type", "source", "time", "payload")
    assert {c: rows[0][c] for c in columns} == {c: rows[1][c] for c in columns}
    assert rows[1]["time"] == "2026-05-02T08:00:00Z"
    # The shared row holds each event's fields, its data as JSON text (read here through the JSON column).
    shared = [{**dict(zip(("event_id", *columns), e, strict=True)), "payload": json.loads(e[-1])}
              for e in rows[2]["payload"]]
    assert shared == [{"event_id": i, **{c: r[c] for c in columns}} for i, r in zip(("e-3", "e-4"), rows, strict=False)]

