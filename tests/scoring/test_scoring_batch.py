"""scoring's live consumer as it runs (decode_lean, a poll at a time): the aggregates one event at a time gives.

Runs on SQLite, and on PostgreSQL too when YARDSTICK_TEST_PG_ADMIN_URL names a server (the two take
different statements: executemany against one upsert of unnest arrays, built once per table).
"""

from __future__ import annotations

import functools
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import consumers
from scoring.app import MIGRATIONS
from scoring.method import CHANNEL_OF
from scoring.models import channel_days, channel_years, complaint_weeks, feedback_months, processed_events
from yardstick import db, events
from yardstick.bus import DeadLetter, Message
from yardstick.bus.codec import encode_stored
from yardstick.city import CityProfile, default_city_path, load_city
from yardstick.consumer import OVERLAP_MIN, Decoded, IdempotentConsumer, NotFound, PreparedBatch, Row, decode_fast

AGGREGATES: tuple[Table, ...] = (channel_days, channel_years, complaint_weeks, feedback_months)
START = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(backend: str,
                   scratch_engine: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with scratch_engine(backend, MIGRATIONS, "yt_scoring_batch") as engine:
        yield db.session_factory(engine)


def _relayed(data: events.Event, key: str, n: int) -> Message:
    """The event as the outbox relay sends it (events.prepare-style JSON, the relay's headers)."""
    return encode_stored(event_id=f"ev-{n:05d}", source="feedback-intake", event_type=data.__event_type__,
                         time="2026-09-01T01:00:00Z", key=key, value=data.model_dump_json().encode(),
                         topic=data.__topic__)


def stream(city: CityProfile, n: int, seed: int) -> list[events.Event]:
    """Kiosk presses, web and mobile items with a category (some without a level), follow-ups, moved items."""
    rng = random.Random(seed)
    windows = [(w.id, w.unit) for w in city.windows[:8]]
    cells = [(c.unit, c.id) for c in city.categories[:6]]
    units = sorted({u for u, _ in cells})
    out: list[events.Event] = []
    for i in range(n):
        moment = START + timedelta(hours=i * 0.3)  # over several local days and two weeks
        roll = rng.random()
        if roll < 0.5:
            window, unit = rng.choice(windows)
            out.append(events.FeedbackReceived(feedback_id=f"k{i}", unit_id=unit, channel="window",
                                               occurred_at=moment, year=2026, level=rng.randint(1, 5),
                                               window_id=window, device="kiosk-1"))
        elif roll < 0.85:
            unit, category = rng.choice(cells)
            level = rng.choice([None, 1, 2, 3, 4, 5])
            out.append(events.FeedbackReceived(feedback_id=f"o{i}", unit_id=unit, channel=rng.choice(["web", "mobile"]),
                                               occurred_at=moment, year=2026, level=level, category_id=category,
                                               has_text=True))
            if roll > 0.75:
                to = rng.choice([u for u in units if u != unit])
                out.append(events.FeedbackReassigned(feedback_id=f"o{i}", from_unit_id=unit, unit_id=to,
                                                     channel="web", occurred_at=moment, year=2026, level=level,
                                                     category_id=category))
        else:
            unit, category = rng.choice(cells)
            out.append(events.FeedbackFollowUp(feedback_id=f"o{i}", unit_id=unit, level=rng.randint(1, 5),
                                               occurred_at=moment, year=2026, category_id=category))
    return out


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[tuple[Any, ...]]]:
    # Sums of satisfaction added in another order differ in the last bits: compared to 9 places.
    async with sessions() as session:
        return {t.name: sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in r)
                               for r in (await session.execute(select(t))).all()) for t in AGGREGATES}


async def clear(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for t in (*AGGREGATES, processed_events):
            await session.execute(delete(t))


def _counted(prepare: Callable[[Sequence[Decoded]], PreparedBatch[Decoded]], calls: Counter[str]) -> Callable[
        [Sequence[Decoded]], PreparedBatch[Decoded]]:
    """consumers.preparer's prepare, counting what became of each poll it prepared."""

    def counting(envelopes: Sequence[Decoded]) -> PreparedBatch[Decoded]:
        try:
            write = prepare(envelopes)
        except NotFound:
            calls["raised"] += 1
            raise

        async def counted(session: AsyncSession, fresh: Sequence[Decoded], stale: Sequence[Decoded]) -> None:
            calls["whole" if len(fresh) == len(envelopes) else "less the events applied before"] += 1
            await write(session, fresh, stale)

        return counted

    return counting


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared in the decoding thread", "batch handler"])
async def test_the_live_consumers_polls_give_what_one_event_at_a_time_gives_each_event_once(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile, prepared: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    log = stream(city, 600, seed=5)
    messages = [_relayed(d, getattr(d, "unit_id", "k"), i) for i, d in enumerate(log)]
    broken = replace(messages[7], value=messages[7].value.replace(b'"year":2026', b'"year":"next"'), headers=tuple(
        (k, b"ev-broken" if k == "ce_id" else v) for k, v in messages[7].headers))
    with pytest.raises(DeadLetter) as letter:
        decode_fast(broken)
    table = consumers.handlers(city)

    calls: Counter[str] = Counter()
    one = IdempotentConsumer(name=consumers.CONSUMER, sessions=sessions, table=processed_events, handlers=table)
    for m in messages:
        assert await one.apply(decode_fast(m))
    by_event = await snapshot(sessions)
    await clear(sessions)

    live = IdempotentConsumer(name=consumers.CONSUMER, sessions=sessions, table=processed_events, handlers=table,
                              batch_handler=consumers.batch_handler(city, table), decode=consumers.DECODE,
                              decode_batch=consumers.DECODE_BATCH,
                              prepare=_counted(consumers.preparer(city, table), calls) if prepared else None)
    # A well-formed event for a unit the city does not have: its poll fails in the batch handler and is
    # applied again in halves down to that event, decoded again into an envelope for the per-event handlers.
    nowhere = _relayed(events.FeedbackReceived(feedback_id="x", unit_id="nowhere", channel="web", level=3,
                                               occurred_at=START, year=2026), "nowhere", 99_999)
    assert isinstance(consumers.DECODE_BATCH(nowhere), Row)
    polls = [messages[i:i + 100] for i in range(0, 600, 100)]
    polls[-1] += messages[600:]  # the moved items' events make the stream longer than 600
    polls[1] = [*polls[1][:40], broken, *polls[1][40:], *polls[1][:5]]  # a poison message; events twice in a poll
    polls[2] = [*polls[2][:30], nowhere, *polls[2][30:]]
    polls.insert(3, polls[0] + polls[2][:10])  # whole polls again, after they committed
    # Polls partly applied before (in the thread, a summary taken away from): 40 events of one, then 50 of the next.
    polls.insert(5, polls[4][60:] + polls[5][:50])
    polls.append([nowhere, *polls[0][:70]])  # the unknown unit again, with events applied before
    assert all(len(p) >= OVERLAP_MIN for p in polls)  # decoded (and prepared) in the thread
    dead: list[tuple[Message, str]] = []
    caplog.set_level(logging.WARNING, logger="yardstick.consumer")
    for poll in polls:
        dead += await live.batch(poll)
    # Dead-lettered alone, each with the per-event path's reason.
    lost = "feedback.received ev-99999: unit 'nowhere' is not in the city profile"
    assert dead == [(broken, str(letter.value)), (nowhere, lost), (nowhere, lost)]
    assert (live.applied, live.skipped) == (len(log), 5 + len(polls[3]) + 40 + 50 + 70)
    # Only the two polls with the unknown unit were applied in halves; prepared, the others were
    # written as the thread summed them, less the events applied before where a poll held some.
    assert [r.getMessage() for r in caplog.records].count("batch failed; applying its events in halves") == 2
    if prepared:
        assert calls == {"whole": 4, "less the events applied before": 2, "raised": 2}
    by_poll = await snapshot(sessions)
    assert by_poll == by_event

    # Against what the events say, counted here: a moved item's rating leaves its old unit for the new one.
    expected: Counter[tuple[str, str]] = Counter()
    for d in log:
        if isinstance(d, events.FeedbackFollowUp):
            expected[(d.unit_id, "online")] += 1
        elif isinstance(d, events.FeedbackReceived | events.FeedbackReassigned) and d.level is not None:
            channel = CHANNEL_OF[d.channel]
            expected[(d.unit_id, channel)] += 1
            if isinstance(d, events.FeedbackReassigned):
                expected[(d.from_unit_id, channel)] -= 1
    stored = Counter({(unit, channel): n for unit, channel, _year, n, _s, _s2 in by_poll["channel_years"]})
    assert +stored == +expected and sum(expected.values()) > 300
    assert any(isinstance(d, events.FeedbackReassigned) and d.level is not None for d in log)


@functools.cache
def _city() -> CityProfile:
    return load_city(default_city_path())


def _summed(summary: consumers.Summary) -> tuple[Any, ...]:
    return (summary.ratings.cells, summary.complaints.cells, summary.complaints.months, summary.late,
            [id(e) for e in summary.others])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 1), st.sampled_from(["models", "rows"]))
def test_a_summary_less_some_of_its_events_is_the_summary_of_the_others(seed: int, share: float, form: str) -> None:
    """What the consumer's thread prepared, less the events applied before, is what the new ones alone make."""
    city = _city()
    log = stream(city, 120, seed)
    survey = events.SurveyDefined(survey_id="s", year=2026, title="t", strata=[events.Stratum(id="a", population=9)])
    made = [*log[:50], survey, *log[50:]]
    messages = [_relayed(d, getattr(d, "unit_id", "k"), i) for i, d in enumerate(made)]
    decoded = [consumers.DECODE_BATCH(m) if form == "rows" else decode_fast(m) for m in messages]
    rng = random.Random(seed)
    stale = {i for i in range(len(decoded)) if rng.random() < share}
    table = consumers.handlers(city)
    summary = consumers.summarise(decoded, city, table)
    summary.subtract(consumers.summarise([e for i, e in enumerate(decoded) if i in stale], city, table))
    assert _summed(summary) == _summed(consumers.summarise([e for i, e in enumerate(decoded) if i not in stale],
                                                           city, table))
