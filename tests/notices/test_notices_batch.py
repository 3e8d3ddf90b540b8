"""notices' batch consumer path: a poll's counts summed per row, written at once, each event counted once.

Runs on SQLite, and on PostgreSQL too when YARDSTICK_TEST_PG_ADMIN_URL names a server (as `make test`
sets it): the two databases take different statements (executemany against unnest arrays).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notices import consumers
from notices.app import MIGRATIONS
from notices.models import (
    category_days,
    negative_days,
    negative_items,
    processed_events,
    rating_days,
    target_reports,
    target_states,
)
from yardstick import db, events
from yardstick.bus import Message
from yardstick.bus.codec import encode
from yardstick.city import CityProfile
from yardstick.consumer import IdempotentConsumer
from yardstick.events import Envelope

STATE: tuple[Table, ...] = (rating_days, negative_days, category_days, negative_items, target_states, target_reports)
START = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(backend: str,
                   scratch_engine: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with scratch_engine(backend, MIGRATIONS, "yt_notices_batch") as engine:
        yield db.session_factory(engine)


def envelope(data: events.Event, key: str) -> Envelope:
    return Envelope.of(data, source="test", key=key)


def stream(city: CityProfile, n: int, seed: int) -> tuple[list[Envelope], dict[str, str]]:
    """Kiosk ratings, online items and level-less complaints with a category, reassignments (some read
    before their item or before an earlier move, some back to where the item was) and target reports.

    Also returns, for every negative item, the unit it ends with: its highest revision's.
    """
    rng = random.Random(seed)
    windows = [(w.id, w.unit) for w in city.windows[:6]]
    cells = [(c.unit, c.id) for c in city.categories[:5]]
    units = sorted({u for u, _ in cells} | {"xihu-district"})
    out: list[Envelope] = []
    moves: list[Envelope] = []
    last_unit: dict[str, str] = {}
    for i in range(n):
        moment = START + timedelta(hours=i * 0.2)  # over several local days
        roll = rng.random()
        if roll < 0.5:
            window, unit = rng.choice(windows)
            out.append(envelope(events.FeedbackReceived(
                feedback_id=f"k{i}", unit_id=unit, channel="window", occurred_at=moment, year=2026,
                level=rng.randint(1, 5), window_id=window), unit))
        elif roll < 0.85:
            unit, category = rng.choice(cells)
            level = rng.choice([None, 1, 2, 3, 5]) if roll < 0.6 else rng.choice([1, 2, 4])
            fid = f"o{i}"
            out.append(envelope(events.FeedbackReceived(
                feedback_id=fid, unit_id=unit, channel="web", occurred_at=moment, year=2026, level=level,
                category_id=category, has_text=True), unit))
            if events.is_negative(level, True):
                last_unit[fid] = unit
            if roll > 0.75:  # moved twice, the second time maybe back where it came from
                first = rng.choice([u for u in units if u != unit])
                second = rng.choice([u for u in units if u != first])
                for revision, (a, b) in enumerate(((unit, first), (first, second)), start=1):
                    moves.append(envelope(events.FeedbackReassigned(
                        feedback_id=fid, from_unit_id=a, unit_id=b, channel="web", occurred_at=moment,
                        year=2026, level=level, category_id=category, revision=revision), b))
                if events.is_negative(level, True):
                    last_unit[fid] = second
        else:
            unit = rng.choice(units)
            out.append(envelope(events.TargetProgress(
                target_id=f"t{i % 3}", unit_id=unit, year=2026, date=date(2026, 1, 1) + timedelta(days=i % 4),
                value=1.0, attainment=0.5, status=rng.choice(["on_track", "at_risk", "off_track"])), unit))
    # Moves land anywhere in the log: before their item, and the later one before the earlier.
    for move in moves:
        out.insert(rng.randrange(len(out) + 1), move)
    return out, last_unit


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[tuple[Any, ...]]]:
    async with sessions() as session:
        return {t.name: sorted(tuple(r) for r in (await session.execute(select(t))).all()) for t in STATE}


async def clear(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for t in (*STATE, processed_events):
            await session.execute(delete(t))


async def test_a_poll_at_once_counts_what_one_event_at_a_time_counts_and_each_event_once(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    log, last_unit = stream(city, 400, seed=3)
    messages = [encode(e) for e in log]
    table = consumers.handlers(city)

    one = IdempotentConsumer(name="notices", sessions=sessions, table=processed_events, handlers=table)
    for e in log:
        assert await one.apply(e)
    by_event = await snapshot(sessions)
    await clear(sessions)

    live = IdempotentConsumer(name="notices", sessions=sessions, table=processed_events, handlers=table,
                              batch_handler=consumers.batch_handler(city))
    polls = [messages[i:i + 70] for i in range(0, len(messages), 70)]
    polls[1] = polls[1] + polls[1][:5]  # the same events twice in one poll
    polls.insert(3, polls[0] + polls[2][:10])  # whole polls again, after they committed
    for poll in polls:
        assert await live.batch(poll) == []
    assert (live.applied, live.skipped) == (len(log), 5 + len(polls[3]))
    by_batch = await snapshot(sessions)
    assert by_batch == by_event

    # And against what the events say, counted here independently.
    ratings = Counter(e.data.window_id for e in log  # type: ignore[union-attr]
                      if isinstance(e.data, events.FeedbackReceived) and e.data.channel == "window")
    stored: Counter[str] = Counter()
    for kind, subject, _, _, n, _ in by_batch["rating_days"]:
        if kind == "window":
            stored[subject] += n
    assert stored == ratings and sum(ratings.values()) > 100
    assert {r[0]: r[1] for r in by_batch["negative_items"]} == last_unit
    negative = Counter(last_unit.values())
    per_unit: Counter[str] = Counter()
    for unit, _, _, count in by_batch["negative_days"]:
        per_unit[unit] += count
    assert +per_unit == negative and len(last_unit) > 20
    assert any(r[3] == 0 for r in by_batch["negative_days"]), "a move out and back leaves a row at 0, as before"


async def test_an_event_for_an_unknown_unit_is_dead_lettered_alone(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    window = city.windows[0]
    good = [envelope(events.FeedbackReceived(feedback_id=f"k{i}", unit_id=window.unit, channel="window",
                                             occurred_at=START, year=2026, level=5, window_id=window.id),
                     window.unit) for i in range(20)]
    bad = envelope(events.FeedbackReceived(feedback_id="x", unit_id="no-such-unit", channel="web",
                                           occurred_at=START, year=2026, level=1, category_id="noise",
                                           has_text=True), "no-such-unit")
    poll: list[Message] = [encode(e) for e in [*good[:10], bad, *good[10:]]]
    live = IdempotentConsumer(name="notices", sessions=sessions, table=processed_events,
                              handlers=consumers.handlers(city), batch_handler=consumers.batch_handler(city))
    dead = await live.batch(poll)
    assert [m.header("ce_id") for m, _ in dead] == [bad.id.encode()]
    assert "no-such-unit" in dead[0][1]
    assert await live.batch(poll[:5]) == []  # redelivered: nothing more
    state = await snapshot(sessions)
    assert state["rating_days"] == [("window", window.id, date(2026, 9, 1), window.unit, 20, 20)]
    assert state["negative_days"] == [] and state["negative_items"] == []
