"""Evaluation and the notice lifecycle on a real (SQLite) database with an injected day."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statsmodels.stats.multitest import multipletests

from notices import repository, service
from notices.app import MIGRATIONS
from notices.models import negative_days, notices, outbox, rating_days, target_reports, target_states
from notices.schemas import PlanIn
from notices.settings import NoticesSettings
from notices.workdays import WorkCalendar
from yardstick import db
from yardstick.auth import Principal
from yardstick.city import CityProfile
from yardstick.errors import ApiError

CALENDAR = WorkCalendar(NoticesSettings(auth_secret="x").calendar)
COMMISSION = Principal(token_id="c", role="commission", subject="commission-staff")
HEALTH = Principal(token_id="h", role="coordinator", subject="health-coordinator", unit_id="health-commission")
OTHER = Principal(token_id="o", role="coordinator", subject="other", unit_id="xihu-district")


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'notices.db'}")
    await db.migrate(engine, MIGRATIONS)
    yield db.session_factory(engine)
    await engine.dispose()


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 20, 0, tzinfo=UTC)


def city_background(city: CityProfile, days: int, seed: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Daily negative counts at constant realistic rates for every category's own unit and a few strays."""
    rng = np.random.default_rng(seed)
    cells = [(c.unit, c.id) for c in city.categories]
    units = sorted(city.unit_ids)
    cells += [(units[i % len(units)], city.categories[(i * 7) % len(city.categories)].id) for i in range(40)]
    cells = list(dict.fromkeys(cells))
    rates = np.array([rng.uniform(0.2, 2.5) if i < len(city.categories) else 0.05 for i in range(len(cells))])
    return cells, rng.poisson(rates[:, None], size=(len(cells), days))


async def load_counts(sessions: async_sessionmaker[AsyncSession], cells: list[tuple[str, str]], counts: np.ndarray,
                      first: date) -> None:
    rows = [{"unit_id": u, "category_id": c, "day": first + timedelta(days=d), "count": int(counts[i, d])}
            for i, (u, c) in enumerate(cells) for d in range(counts.shape[1]) if counts[i, d]]
    async with sessions() as session, session.begin():
        await session.execute(negative_days.insert(), rows)


async def run_days(sessions: async_sessionmaker[AsyncSession], city: CityProfile, first: date, last: date
                   ) -> list[service.Evaluation]:
    out = []
    day = first
    while day <= last:
        async with sessions() as session, session.begin():
            out.append(await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day)))
        day += timedelta(days=1)
    return out


async def all_notices(sessions: async_sessionmaker[AsyncSession]) -> list[dict]:  # type: ignore[type-arg]
    async with sessions() as session:
        return [dict(r) for r in (await session.execute(select(notices))).mappings().all()]


def expected_first_day(cells: list[tuple[str, str]], counts: np.ndarray, target: int, days: range
                       ) -> int | None:
    """The first day the rule can see the rise, computed independently (statsmodels' BH)."""
    for d in days:
        w = counts[:, d - 6:d + 1].sum(axis=1)
        b = counts[:, d - 34:d - 6].sum(axis=1)
        tested = np.flatnonzero(w > 0)
        p = binom.sf(w[tested] - 1, w[tested] + b[tested], 0.2)
        q = multipletests(p, method="fdr_bh")[1]
        where = np.flatnonzero(tested == target)
        if where.size and w[target] >= 5 and q[where[0]] <= 0.01:
            return d
    return None


async def test_injected_recurrence_raises_exactly_one_notice_on_the_first_day_it_shows(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    first = date(2026, 3, 1)
    days, start = 120, 80
    cells, counts = city_background(city, days, seed=6)
    target = cells.index(("health-commission", "seeing-a-doctor"))
    base_rate = counts[target, :start].mean()
    rise = np.random.default_rng(66).poisson(2 * base_rate, size=14)  # tripled for two weeks
    counts[target, start:start + 14] += rise
    await load_counts(sessions, cells, counts, first)
    # The sweep runs from the first day the service holds window + baseline = 35 days.
    await run_days(sessions, city, first + timedelta(days=34), first + timedelta(days=days - 1))
    issued = await all_notices(sessions)
    assert len(issued) == 1, [(n["unit_id"], n["subject"], n["issued_on"]) for n in issued]
    notice = issued[0]
    expected = expected_first_day(cells, counts, target, range(34, days))
    assert expected is not None and start <= expected < start + 14
    assert (notice["unit_id"], notice["subject"], notice["rule"]) == ("health-commission", "seeing-a-doctor",
                                                                      "complaint-recurrence")
    assert notice["evidence"]["day"] == (first + timedelta(days=expected)).isoformat()
    ev = notice["evidence"]
    assert ev["window_count"] == int(counts[target, expected - 6:expected + 1].sum())
    assert ev["baseline_count"] == int(counts[target, expected - 34:expected - 6].sum())
    assert ev["q_value"] <= 0.01 and ev["expected_count"] == pytest.approx(
        (ev["window_count"] + ev["baseline_count"]) * 0.2)
    # New evidence while open is attached, not issued again.
    assert notice["evidence_updates"] >= 1


async def seed_notice(sessions: async_sessionmaker[AsyncSession], city: CityProfile, day: date,
                      window: int = 9) -> str:
    """A complaint spike on health-commission / seeing-a-doctor over an otherwise quiet history."""
    rows = [{"unit_id": "health-commission", "category_id": "seeing-a-doctor", "day": day - timedelta(days=d),
             "count": 1} for d in range(10, 60, 3)]
    rows += [{"unit_id": "health-commission", "category_id": "seeing-a-doctor", "day": day - timedelta(days=d % 7),
              "count": 1} for d in range(window)]
    per_day = Counter((row["unit_id"], row["category_id"], row["day"]) for row in rows)
    async with sessions() as session, session.begin():
        await repository.add_negatives(session, [(*k, n) for k, n in sorted(per_day.items())])
        result = await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))
    assert len(result.issued) == 1
    return result.issued[0]


async def step(sessions: async_sessionmaker[AsyncSession], notice_id: str, action: str, principal: Principal,
               today: date, **kw: object) -> dict:  # type: ignore[type-arg]
    async with sessions() as session, session.begin():
        return await service.transition(session, notice_id=notice_id, action=action, principal=principal,
                                        calendar=CALENDAR, today=today, now=at(today), **kw)  # type: ignore[arg-type]


async def sweep_marks(sessions: async_sessionmaker[AsyncSession], today: date) -> None:
    async with sessions() as session, session.begin():
        await service.mark_deadlines(session, calendar=CALENDAR, today=today, now=at(today))


async def test_the_whole_lifecycle_with_working_day_deadlines_and_overdue(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    # Issued on Wednesday 30 September 2026; 1-7 October is the National Day holiday, so the
    # one working day to acknowledge ends on Thursday 8 October.
    issued = date(2026, 9, 30)
    notice_id = await seed_notice(sessions, city, issued)
    async with sessions() as session:
        notice = await repository.get_notice(session, notice_id)
    assert notice is not None and notice["deadline"] == date(2026, 10, 8) and notice["step"] == "acknowledge"
    await sweep_marks(sessions, date(2026, 10, 8))
    async with sessions() as session:
        assert (await repository.get_notice(session, notice_id))["overdue"] is False  # type: ignore[index]
    await sweep_marks(sessions, date(2026, 10, 9))
    async with sessions() as session:
        late = await repository.get_notice(session, notice_id)
        kinds = [r[0] for r in (await session.execute(select(outbox.c.type))).all()]
    assert late is not None and late["overdue"] is True and late["status"] == "issued"
    assert "notice.overdue" in kinds and "notice.issued" in kinds
    # Others may not act; a forbidden transition is 409.
    with pytest.raises(ApiError) as other:
        await step(sessions, notice_id, "acknowledge", OTHER, date(2026, 10, 9))
    assert other.value.status == 403
    with pytest.raises(ApiError) as early:
        await step(sessions, notice_id, "resolve", HEALTH, date(2026, 10, 9), text="done")
    assert early.value.status == 409
    # Acknowledged Friday 9 October: 5 working days from Monday, with Saturday 10 October a make-up day.
    acked = await step(sessions, notice_id, "acknowledge", HEALTH, date(2026, 10, 9))
    assert acked["status"] == "acknowledged" and acked["overdue"] is False
    assert acked["deadline"] == date(2026, 10, 15)
    plan = PlanIn.model_validate({"actions": ["open evening clinics"], "commitment": {
        "metric": "complaints per week", "target": 2, "due": "2026-11-20"}})
    with pytest.raises(ApiError) as too_far:
        await step(sessions, notice_id, "plan", HEALTH, date(2026, 9, 1), plan=plan)
    assert too_far.value.status == 422
    planned = await step(sessions, notice_id, "plan", HEALTH, date(2026, 10, 12), plan=plan)
    assert planned["status"] == "plan_submitted" and planned["deadline"] == date(2026, 11, 20)
    await step(sessions, notice_id, "resolve", HEALTH, date(2026, 10, 20), text="clinics open")
    # Verify while the spike is still in the window: 409 with the current figures.
    with pytest.raises(ApiError) as not_yet:
        await step(sessions, notice_id, "verify", COMMISSION, date(2026, 10, 1))
    assert not_yet.value.status == 409 and not_yet.value.details[0]["window_count"] >= 5
    with pytest.raises(ApiError) as coordinator_verifies:
        await step(sessions, notice_id, "verify", HEALTH, date(2026, 11, 1))
    assert coordinator_verifies.value.status == 403
    reopened = await step(sessions, notice_id, "reopen", COMMISSION, date(2026, 10, 21), text="not convinced")
    assert reopened["status"] == "acknowledged"
    await step(sessions, notice_id, "plan", HEALTH, date(2026, 10, 22), plan=plan)
    await step(sessions, notice_id, "resolve", HEALTH, date(2026, 10, 30), text="clinics open")
    verified = await step(sessions, notice_id, "verify", COMMISSION, date(2026, 11, 2))
    assert verified["status"] == "verified" and verified["open_key"] is None
    async with sessions() as session:
        history = [h["action"] for h in await repository.history(session, notice_id)]
        effect = await service.effect(session, notice=await repository.get_notice(session, notice_id) or {},
                                      today=date(2026, 12, 15), span_days=28)
    assert history == ["issue", "overdue", "acknowledge", "plan", "resolve", "reopen", "plan", "resolve", "verify"]
    assert effect is not None and effect["before"]["negative"] > 0 and effect["after"]["negative"] == 0
    assert effect["complete"] is True


async def test_recurrence_after_a_verified_notice_escalates_and_links(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    first_id = await seed_notice(sessions, city, date(2026, 5, 6))
    for action, who, day in (("acknowledge", HEALTH, date(2026, 5, 7)), ("plan", HEALTH, date(2026, 5, 8))):
        kw = {"plan": PlanIn.model_validate({"actions": ["a"], "commitment": {"metric": "m", "target": 1,
                                                                               "due": "2026-06-01"}})}
        await step(sessions, first_id, action, who, day, **(kw if action == "plan" else {}))
    await step(sessions, first_id, "resolve", HEALTH, date(2026, 5, 20), text="fixed")
    await step(sessions, first_id, "verify", COMMISSION, date(2026, 6, 1))
    second_id = await seed_notice(sessions, city, date(2026, 8, 1))
    async with sessions() as session:
        second = await repository.get_notice(session, second_id)
    assert second is not None and second["severity"] == "escalated" and second["linked_notice_id"] == first_id
    assert second["evidence"]["recurrence"]["earlier_notice_id"] == first_id


async def test_satisfaction_and_target_rules_issue_notices(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    day = date(2026, 7, 15)
    window = city.windows[0]
    async with sessions() as session, session.begin():
        await session.execute(rating_days.insert(), [
            {"subject_kind": "window", "subject_id": window.id, "day": day - timedelta(days=d),
             "unit_id": window.unit, "n": 5, "satisfied": 3} for d in range(14)])
        await session.execute(target_states.insert(), [
            {"target_id": "t-off", "unit_id": "health-commission", "status": "off_track", "as_of": day},
            {"target_id": "t-six", "unit_id": "health-commission", "status": "off_track", "as_of": day},
            {"target_id": "t-none", "unit_id": "xihu-district", "status": "no_data", "as_of": day}])
        await session.execute(target_reports.insert(), [
            {"target_id": t, "day": day - timedelta(days=d), "status": "off_track"}
            for t, k in (("t-off", 7), ("t-six", 6)) for d in range(k)])
        result = await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))
    got = {(n["rule"], n["subject"]) for n in await all_notices(sessions)}
    assert got == {("satisfaction-drop", window.id), ("target-off-track", "t-off"),
                   ("target-off-track", "t-none")}
    assert len(result.issued) == 3
    # A second evaluation of the same day raises nothing new: one open notice per cell.
    async with sessions() as session, session.begin():
        again = await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))
    assert again.issued == [] and again.fired == 3


async def test_a_reminder_goes_out_one_working_day_before_each_deadline_and_only_once(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    from notices.models import deliveries

    async with sessions() as session, session.begin():
        await service.subscribe(session, unit_id="health-commission", webhook_url=None,
                                email="coordinator@health.example", principal=HEALTH, city=city,
                                now=at(date(2026, 9, 1)))

    async def reminders() -> list[str]:
        async with sessions() as session:
            payloads = [r[0] for r in (await session.execute(select(deliveries.c.payload))).all()]
        return [p["deadline"] for p in payloads if p["type"] == "notice.deadline"]

    # Acknowledge is due Thursday 8 October (1-7 October is the National Day holiday).
    notice_id = await seed_notice(sessions, city, date(2026, 9, 30))
    await sweep_marks(sessions, date(2026, 9, 30))  # issued today; 8 October is the next working day
    await sweep_marks(sessions, date(2026, 10, 7))  # still the same deadline: no second reminder
    assert await reminders() == ["2026-10-08"]
    # Acknowledged Thursday the 8th: 5 working days (Saturday the 10th is a make-up working day) put the
    # plan's deadline on Wednesday the 14th. Monday the 12th is two working days ahead: no reminder yet;
    # Tuesday the 13th is one working day ahead.
    acked = await step(sessions, notice_id, "acknowledge", HEALTH, date(2026, 10, 8))
    assert acked["deadline"] == date(2026, 10, 14)
    await sweep_marks(sessions, date(2026, 10, 12))
    assert await reminders() == ["2026-10-08"]
    await sweep_marks(sessions, date(2026, 10, 13))
    await sweep_marks(sessions, date(2026, 10, 13))
    assert await reminders() == ["2026-10-08", "2026-10-14"]


async def test_delivery_holds_no_transaction_while_it_sends(
        sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    """A slow webhook must not block the database: another writer commits during the send."""
    import sqlite3

    import httpx

    from notices import notify
    from notices.models import deliveries, subscriptions

    now = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    async with sessions() as session, session.begin():
        await repository.add_subscription(session, {"id": "s1", "unit_id": None, "webhook_url": "http://hooks.example/a",
                                                    "email": None, "secret": "k", "created_at": now})
        for n in range(2):
            await repository.add_delivery(session, {"subscription_id": "s1", "channel": "webhook",
                                                    "payload": {"type": "notice.issued", "n": n},
                                                    "attempts": 0, "next_attempt_at": now})
    writes_during_send: list[bool] = []

    def hook(request: httpx.Request) -> httpx.Response:
        # A write lock held by the notifier would make this BEGIN IMMEDIATE fail at once.
        other = sqlite3.connect(tmp_path / "notices.db", timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE subscriptions SET secret = secret")
            other.commit()
            writes_during_send.append(True)
        except sqlite3.OperationalError:
            writes_during_send.append(False)
        finally:
            other.close()
        n = json.loads(request.content)["n"]
        return httpx.Response(200 if n == 0 else 500)

    settings = NoticesSettings(auth_secret="x", webhook_allow_private=True, delivery_backoff_s=60)
    async with httpx.AsyncClient(transport=httpx.MockTransport(hook)) as client:
        assert await notify.deliver_due(sessions, settings, client, now=now) == 1
        # The failed one waits for its backoff; nothing is due a second later.
        assert await notify.deliver_due(sessions, settings, client, now=now + timedelta(seconds=1)) == 0
    assert writes_during_send == [True, True]
    async with sessions() as session:
        rows = (await session.execute(select(deliveries).order_by(deliveries.c.id))).mappings().all()
        assert (await session.execute(select(subscriptions.c.id))).scalar_one() == "s1"
    assert [(r["attempts"], r["delivered_at"] is not None) for r in rows] == [(1, True), (1, False)]
    assert db.as_utc(rows[1]["next_attempt_at"]) == now + timedelta(seconds=60)
    assert rows[1]["last_error"].startswith("HTTPStatusError")


async def test_a_reassigned_item_ends_with_its_last_unit_whatever_order_the_moves_arrive_in(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    """Moves published before they were keyed by the item's first unit were keyed by their new unit, and
    a topic may still hold them: such a move can overtake the item or an earlier move."""
    from notices.consumers import handlers
    from notices.models import negative_items
    from yardstick.events import Envelope, FeedbackReassigned, FeedbackReceived

    on = handlers(city)
    moment = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    common = {"feedback_id": "f-1", "channel": "web", "occurred_at": moment, "year": 2026, "level": 1,
              "category_id": "seeing-a-doctor"}
    received = FeedbackReceived(unit_id="health-commission", has_text=True, **common)
    first = FeedbackReassigned(from_unit_id="health-commission", unit_id="xihu-district", revision=1, **common)
    second = FeedbackReassigned(from_unit_id="xihu-district", unit_id="shangcheng-district", revision=2, **common)
    for data in (second, received, first):  # the last move first, the first move last
        async with sessions() as session, session.begin():
            await on[data.__event_type__](session, Envelope.of(data, source="test", key=data.unit_id))
    async with sessions() as session:
        rows = (await session.execute(select(negative_items.c.unit_id, negative_items.c.revision))).all()
        per_unit = dict((await session.execute(
            select(negative_days.c.unit_id, func.sum(negative_days.c.count)).group_by(negative_days.c.unit_id)
        )).all())
    assert [tuple(r) for r in rows] == [("shangcheng-district", 2)]
    # The counts are additive: they come out right in any order.
    assert {u: n for u, n in per_unit.items() if n} == {"shangcheng-district": 1}


async def test_a_notice_raised_by_a_catch_up_sweep_gets_its_deadline_from_the_day_it_is_issued(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    """The service was down from Monday 2 March; back on Friday 20 March, its sweep evaluates the closed
    days it missed. The notice for 2 March is issued on the 20th: one working day to acknowledge from then."""
    from notices.models import notice_history

    async with sessions() as session, session.begin():
        await repository.add_negatives(session, [("health-commission", "seeing-a-doctor", date(2026, 3, 2), 6)])
    back = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)  # 10:00 in Hangzhou
    async with sessions() as session, session.begin():
        await service.sweep(session, city=city, calendar=CALENDAR, today=date(2026, 3, 20), now=back,
                            catchup_days=400)
    [notice] = await all_notices(sessions)
    assert notice["evidence"]["day"] == "2026-03-02" and notice["year"] == 2026
    assert notice["issued_on"] == date(2026, 3, 20) and notice["deadline"] == date(2026, 3, 23)
    assert notice["overdue"] is False
    async with sessions() as session:
        kinds = [r[0] for r in (await session.execute(select(outbox.c.type))).all()]
        actions = [r[0] for r in (await session.execute(select(notice_history.c.action))).all()]
    assert "notice.overdue" not in kinds and actions == ["issue"]
    # The deadline still bites when it passes.
    await sweep_marks(sessions, date(2026, 3, 24))
    async with sessions() as session:
        assert (await repository.get_notice(session, notice["id"]))["overdue"] is True  # type: ignore[index]


async def _verified_complaint_notice(sessions: async_sessionmaker[AsyncSession], city: CityProfile
                                     ) -> str:
    """Six complaints on Monday 2 March raise a notice that day; it is verified on 15 March."""
    day = date(2026, 3, 2)
    async with sessions() as session, session.begin():
        await repository.add_negatives(session, [("health-commission", "seeing-a-doctor", day, 6)])
        notice_id = (await service.evaluate(session, city=city, calendar=CALENDAR, today=day,
                                            now=datetime(2026, 3, 2, 2, 0, tzinfo=UTC))).issued[0]
    plan = PlanIn.model_validate({"actions": ["a"], "commitment": {"metric": "m", "target": 1, "due": "2026-03-20"}})
    await step(sessions, notice_id, "acknowledge", HEALTH, day)
    await step(sessions, notice_id, "plan", HEALTH, day, plan=plan)
    await step(sessions, notice_id, "resolve", HEALTH, day, text="done")
    await step(sessions, notice_id, "verify", COMMISSION, date(2026, 3, 15))
    return notice_id


async def test_re_evaluating_a_day_before_a_verification_neither_escalates_nor_reissues(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    first_id = await _verified_complaint_notice(sessions, city)
    # 4 March: the notice was open on that day; the episode has been followed to its end.
    async with sessions() as session, session.begin():
        again = await service.evaluate(session, city=city, calendar=CALENDAR, today=date(2026, 3, 4),
                                       now=at(date(2026, 3, 16)))
    assert again.fired == 1 and again.issued == []
    # A rise before that notice (2 February, found late) is a notice of its own, but no recurrence
    # "after" a verification that came later.
    async with sessions() as session, session.begin():
        await repository.add_negatives(session, [("health-commission", "seeing-a-doctor", date(2026, 2, 2), 6)])
        earlier = await service.evaluate(session, city=city, calendar=CALENDAR, today=date(2026, 2, 2),
                                         now=at(date(2026, 3, 16)))
    assert len(earlier.issued) == 1
    async with sessions() as session:
        notice = await repository.get_notice(session, earlier.issued[0])
    assert notice is not None and notice["severity"] == "normal" and notice["linked_notice_id"] is None
    assert "recurrence" not in notice["evidence"] and notice["id"] != first_id


async def test_a_target_moved_on_track_without_a_report_is_not_raised_again_from_the_same_reports(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    from notices.consumers import handlers
    from yardstick.events import Envelope, TargetProgress, TargetStatusChanged

    on = handlers(city)

    async def apply(data: TargetProgress | TargetStatusChanged) -> None:
        async with sessions() as session, session.begin():
            await on[data.__event_type__](session, Envelope.of(data, source="target-tracker", key=data.unit_id))

    async def report(day: date) -> None:
        await apply(TargetProgress(target_id="t1", unit_id="health-commission", year=2026, date=day, value=1.0,
                                   attainment=0.1, status="off_track"))

    async def status(status: str, as_of: date) -> None:
        await apply(TargetStatusChanged(target_id="t1", unit_id="health-commission", year=2026, previous=None,
                                        status=status, as_of=as_of))  # type: ignore[arg-type]

    async def evaluate(day: date) -> list[str]:
        async with sessions() as session, session.begin():
            return (await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))).issued

    start = date(2026, 3, 2)
    for d in range(7):
        await report(start + timedelta(days=d))
    day = start + timedelta(days=6)
    [first_id] = await evaluate(day)
    plan = PlanIn.model_validate({"actions": ["a"], "commitment": {"metric": "m", "target": 1, "due": "2026-03-30"}})
    await step(sessions, first_id, "acknowledge", HEALTH, day)
    await step(sessions, first_id, "plan", HEALTH, day, plan=plan)
    await step(sessions, first_id, "resolve", HEALTH, day, text="done")
    # A commission PATCH: the tracker announces on_track with no new report; verify succeeds.
    day += timedelta(days=1)
    await status("on_track", day)
    await step(sessions, first_id, "verify", COMMISSION, day)
    assert await evaluate(day) == []
    # Off track again without a report: the seven reports before the verification do not count again.
    day += timedelta(days=1)
    await status("off_track", day)
    assert await evaluate(day) == []
    # Seven new off_track reports after the verification: a recurrence, escalated and linked.
    for d in range(1, 8):
        await report(day + timedelta(days=d))
    day += timedelta(days=7)
    [second_id] = await evaluate(day)
    async with sessions() as session:
        second = await repository.get_notice(session, second_id)
    assert second is not None and second["severity"] == "escalated" and second["linked_notice_id"] == first_id
    assert second["evidence"]["off_track_in_a_row"] == 7
    assert second["evidence"]["reports_after"] == (start + timedelta(days=7)).isoformat()


async def test_satisfaction_is_not_verified_without_enough_ratings(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    unit = "health-commission"
    day = date(2026, 3, 2)
    async with sessions() as session, session.begin():
        await session.execute(rating_days.insert(), [{"subject_kind": "unit", "subject_id": unit, "day": day,
                                                      "unit_id": unit, "n": 40, "satisfied": 10}])
        [notice_id] = (await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))).issued
    plan = PlanIn.model_validate({"actions": ["a"], "commitment": {"metric": "m", "target": 1, "due": "2026-03-20"}})
    await step(sessions, notice_id, "acknowledge", HEALTH, day)
    await step(sessions, notice_id, "plan", HEALTH, day, plan=plan)
    await step(sessions, notice_id, "resolve", HEALTH, day, text="done")
    later = date(2026, 3, 20)  # the window ending today holds no rating at all
    with pytest.raises(ApiError) as empty:
        await step(sessions, notice_id, "verify", COMMISSION, later)
    assert empty.value.status == 409 and "too few ratings" in empty.value.message
    assert empty.value.details[0]["n"] == 0 and empty.value.details[0]["min_ratings"] == 30
    async with sessions() as session, session.begin():
        await session.execute(rating_days.insert(), [{"subject_kind": "unit", "subject_id": unit, "day": later,
                                                      "unit_id": unit, "n": 29, "satisfied": 29}])
    with pytest.raises(ApiError) as few:
        await step(sessions, notice_id, "verify", COMMISSION, later)
    assert few.value.status == 409 and "29 in the 14 days" in few.value.message
    async with sessions() as session, session.begin():
        await repository.add_ratings(session, [("unit", unit, later, unit, 1, 1)])
    assert (await step(sessions, notice_id, "verify", COMMISSION, later))["status"] == "verified"


async def test_follow_up_ratings_count_as_the_units_online_ratings_once_each(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    """scoring-method.md puts follow-up ratings in the online channel; satisfaction-drop reads a unit's
    online ratings (notices.md), so thirty unhappy follow-ups raise a notice on the unit."""
    from notices import consumers
    from notices.models import negative_days, processed_events
    from yardstick.bus.codec import encode
    from yardstick.consumer import IdempotentConsumer
    from yardstick.events import Envelope, FeedbackFollowUp

    unit, day = "health-commission", date(2026, 3, 2)
    moment = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    follow_ups = [Envelope.of(FeedbackFollowUp(feedback_id=f"f{i}", unit_id=unit, level=1 if i < 24 else 5,
                                               occurred_at=moment, year=2026, category_id="seeing-a-doctor"),
                              source="feedback-intake", key=unit) for i in range(30)]
    messages = [encode(e) for e in follow_ups]
    consumer = IdempotentConsumer(name="notices", sessions=sessions, table=processed_events,
                                  handlers=consumers.handlers(city), batch_handler=consumers.batch_handler(city))
    assert await consumer.batch(messages[:20]) == []
    for message in messages[15:]:  # five redelivered, one at a time
        await consumer(message)
    assert (consumer.applied, consumer.skipped) == (30, 5)
    async with sessions() as session:
        assert await repository.rating_totals(session, "unit", unit) == (30, 6)
        # A follow-up rates the unit's response: it is no new complaint in the category's cell.
        assert (await session.execute(select(func.count()).select_from(negative_days))).scalar() == 0
    async with sessions() as session, session.begin():
        result = await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))
    [notice] = await all_notices(sessions)
    assert result.issued == [notice["id"]]
    assert (notice["rule"], notice["subject"], notice["evidence"]["n"]) == ("satisfaction-drop", unit, 30)


async def test_a_withdrawn_target_raises_nothing_and_its_open_notice_can_be_verified(
        sessions: async_sessionmaker[AsyncSession], city: CityProfile) -> None:
    from notices.consumers import handlers
    from yardstick.events import Envelope, TargetChanged, TargetProgress

    on = handlers(city)
    day = date(2026, 7, 15)

    def withdrawn(target_id: str, unit_id: str) -> TargetChanged:
        return TargetChanged(target_id=target_id, unit_id=unit_id, year=2026, code=target_id, title="t",
                             kind="numeric", direction="decrease", baseline=30, target=20, weight=1,
                             cadence="daily", approved=True, withdrawn=True, changes=["withdrawn"])

    async with sessions() as session, session.begin():
        # t-open: no_data, and a notice raised on it; t-quiet: seven off_track reports, never evaluated.
        await session.execute(target_states.insert(), [
            {"target_id": "t-open", "unit_id": "health-commission", "status": "no_data", "as_of": day}])
        [notice_id] = (await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))).issued
        for d in range(7):
            data = TargetProgress(target_id="t-quiet", unit_id="xihu-district", year=2026,
                                  date=day - timedelta(days=d), value=1.0, attainment=0.1, status="off_track")
            await on[data.__event_type__](session, Envelope.of(data, source="target-tracker", key=data.unit_id))
        # A change that is no withdrawal says nothing about the status.
        kept = withdrawn("t-quiet", "xihu-district").model_copy(update={"withdrawn": False, "changes": ["title"]})
        await on["target.changed"](session, Envelope.of(kept, source="target-tracker", key="xihu-district"))
        assert await repository.target_status(session, "t-quiet") == "off_track"
        for target_id, unit_id in (("t-open", "health-commission"), ("t-quiet", "xihu-district")):
            await on["target.changed"](session, Envelope.of(withdrawn(target_id, unit_id), source="target-tracker",
                                                            key=unit_id))
    async with sessions() as session, session.begin():
        again = await service.evaluate(session, city=city, calendar=CALENDAR, today=day, now=at(day))
        assert await repository.target_status(session, "t-quiet") == "withdrawn"
    assert again.fired == 0 and again.issued == []
    plan = PlanIn.model_validate({"actions": ["a"], "commitment": {"metric": "m", "target": 1, "due": "2026-08-01"}})
    await step(sessions, notice_id, "acknowledge", HEALTH, day)
    await step(sessions, notice_id, "plan", HEALTH, day, plan=plan)
    await step(sessions, notice_id, "resolve", HEALTH, day, text="target withdrawn by the commission")
    verified = await step(sessions, notice_id, "verify", COMMISSION, day + timedelta(days=1))
    assert verified["status"] == "verified"


async def test_a_refused_recipient_leaves_no_address_in_the_delivery(
        sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch) -> None:
    import smtplib

    import httpx

    from notices import notify
    from notices.models import deliveries

    address = "coordinator@health.example"
    now = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    async with sessions() as session, session.begin():
        await repository.add_subscription(session, {"id": "s1", "unit_id": None, "webhook_url": None,
                                                    "email": address, "secret": "k", "created_at": now})
        await repository.add_delivery(session, {"subscription_id": "s1", "channel": "email",
                                                "payload": {"type": "notice.issued"}, "attempts": 0,
                                                "next_attempt_at": now})

    def refuse(settings: NoticesSettings, to: str, payload: dict) -> None:  # type: ignore[type-arg]
        raise smtplib.SMTPRecipientsRefused({to: (550, f"5.1.1 <{to}>: Recipient address rejected".encode())})

    monkeypatch.setattr(notify, "send_email", refuse)
    async with httpx.AsyncClient() as client:
        assert await notify.deliver_due(sessions, NoticesSettings(auth_secret="x"), client, now=now) == 0
    async with sessions() as session:
        last_error = (await session.execute(select(deliveries.c.last_error))).scalar_one()
    assert last_error == "SMTPRecipientsRefused: SMTP 550"
    # Other SMTP errors keep their code, never the server's text (which may echo an address).
    assert notify.failure_reason(smtplib.SMTPDataError(554, f"<{address}> rejected".encode())) == \
        "SMTPDataError: SMTP 554"
    assert notify.failure_reason(smtplib.SMTPSenderRefused(553, b"no", "notices@yardstick.invalid")) == \
        "SMTPSenderRefused: SMTP 553"
