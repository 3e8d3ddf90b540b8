"""scoring end to end on real Kafka and PostgreSQL: events and API inputs make the method's scorecards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from harness import System, wait_for
from kafka_tools import produce

from scoring import commands, consumers, repository, service
from scoring.settings import ScoringSettings
from yardstick import events
from yardstick.auth import issue
from yardstick.bus import Message
from yardstick.bus.codec import encode
from yardstick.consumer import IdempotentConsumer, is_transient
from yardstick.events import Envelope
from yardstick.runtime import ServiceRuntime

# A past year of its own: the city-wide means of this year hold only what this module sends.
YEAR = 2019
UNIT = "market-supervision"
OTHER = "transport"


def token(system: System, role: str, **scope: Any) -> str:
    return issue(system.secret, role=role, **scope)[0]


def send(system: System, key: str, *items: events.Event) -> None:
    messages = [encode(Envelope.of(d, source="e2e", key=key)) for d in items]
    asyncio.run(produce(system.prefix + messages[0].topic, messages))


def card(system: System, unit: str, year: int = YEAR) -> dict[str, Any]:
    response = system.get("scoring", f"/v1/scorecards/{unit}?year={year}", token(system, "commission"))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def rating(unit: str, level: int, channel: str = "window", at: datetime | None = None) -> events.FeedbackReceived:
    moment = at or datetime(YEAR, 6, 1, 4, tzinfo=UTC)
    return events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=unit, channel=channel,  # type: ignore[arg-type]
                                   occurred_at=moment, year=moment.year, level=level)


def with_runtime(system: System, use: Callable[[ServiceRuntime, ScoringSettings], Awaitable[Any]]) -> Any:
    """Run `use` with a scoring runtime on the test's database, in its own event loop."""
    settings = ScoringSettings(database_url=system.db_urls["scoring"], bus="kafka", topic_prefix=system.prefix,
                               auth_secret=system.secret)

    async def run() -> Any:
        runtime = ServiceRuntime(settings, commands.metadata, migrations=commands.MIGRATIONS)
        try:
            return await use(runtime, settings)
        finally:
            await runtime.engine.dispose()

    return asyncio.run(run())


def test_scorecards_from_real_events_and_inputs(system: System) -> None:
    for unit in (UNIT, OTHER):
        assert system.get("scoring", f"/v1/scorecards/{unit}?year={YEAR}", token(system, "commission")
                          ).status_code == 200
    # Window 5, 4, 1, 2 for the unit (mean 0.5) and 5, 5 for the other (city window mean 6/8 * ... below).
    send(system, UNIT, *(rating(UNIT, level) for level in (5, 4, 1, 2)))
    send(system, OTHER, rating(OTHER, 5), rating(OTHER, 5))
    moved = rating(OTHER, 4, channel="hotline")
    send(system, OTHER, moved, events.FeedbackReassigned(
        feedback_id=moved.feedback_id, from_unit_id=OTHER, unit_id=UNIT, channel="hotline",
        occurred_at=moved.occurred_at, year=YEAR, level=4))
    send(system, "s-e2e", events.SurveyDefined(survey_id="s-e2e", year=YEAR, title="e2e", strata=[
        events.Stratum(id="urban", population=300), events.Stratum(id="rural", population=100)]),
        events.SurveyResponse(survey_id="s-e2e", year=YEAR, respondent_id="h1", stratum="urban",
                              ratings={UNIT: 4, OTHER: 5}),
        events.SurveyResponse(survey_id="s-e2e", year=YEAR, respondent_id="h2", stratum="rural",
                              ratings={UNIT: 2, OTHER: None}))
    send(system, UNIT, events.TargetDefined(
        target_id="t-e2e", unit_id=UNIT, year=YEAR, code="licence-days", title="Faster licences",
        kind="numeric", direction="decrease", baseline=20, target=10, weight=1, cadence="monthly", approved=True),
        events.TargetProgress(target_id="t-e2e", unit_id=UNIT, year=YEAR, date=date(YEAR, 11, 30), value=14,
                              attainment=0.6, status="on_track"))
    commission = token(system, "commission")
    assert system.post("scoring", "/v1/leader-evaluations", token(system, "leader", subject="mayor"),
                       json={"unit_id": UNIT, "year": YEAR, "grade": 90}).status_code == 201
    project = system.post("scoring", "/v1/innovation-projects", commission,
                          json={"unit_id": UNIT, "year": YEAR, "title": "Licences online"}).json()["id"]
    for who, points in (("x1", 1.2), ("x2", 0.9), ("x3", 0.6)):
        assert system.post("scoring", f"/v1/innovation-projects/{project}/assessments",
                           token(system, "assessor", subject=who), json={"points": points}).status_code == 201
    assert system.post("scoring", "/v1/adjustments", commission,
                       json={"unit_id": UNIT, "year": YEAR, "points": 0.25, "reason": "flood relief"}
                       ).status_code == 201

    # Independently: window city mean (2 + 2) / 6 = 2/3 -> (4*0.5 + 20*2/3) / 24; online: the moved
    # hotline 4 (0.75), the only one -> 0.75. Survey: urban weight 300 (0.75), rural 100 (0.25): mean 0.625,
    # effective n 400^2 / (300^2 + 100^2) = 1.6; city survey: + the other's urban 1.0 -> (225 + 300 + 25) / 700.
    window = (4 * 0.5 + 20 * (2 / 3)) / 24
    survey = (1.6 * 0.625 + 20 * (550 / 700)) / 21.6
    s = 0.6 * survey + 0.25 * window + 0.15 * 0.75
    # Target: decrease 20 -> 10 at 14: r 0.6 -> 27; leaders 90 -> 4.5; bonus mean 0.9; adjustment 0.25.
    total = 50 * s + 27 + 4.5 + 0.9 + 0.25
    got = wait_for(lambda: (c := card(system, UNIT))["public"]["channels"]["survey"]["n"] == 2
                   and c["public"]["channels"]["online"]["n"] == 1 and c["targets"] and c,
                   what="the unit's scorecard to count everything")
    assert got["public"]["channels"]["window"]["n"] == 4
    assert got["public"]["S"] == pytest.approx(s)
    assert got["total"] == pytest.approx(total)
    assert card(system, OTHER)["public"]["channels"]["online"]["n"] == 0

    # A rebuild from the topics gives the same scorecards as the live read model.
    assert with_runtime(system, lambda rt, st: commands.rebuild_and_compare(rt, commands._kafka_messages(st))) == []

    # Finalize (forced: no draft period in a test) and the year no longer moves.
    final = system.post("scoring", f"/v1/scorecards/{YEAR}:finalize", commission, json={"force": True})
    assert final.status_code == 200, final.text
    frozen = card(system, UNIT)
    assert frozen["final"] is True and frozen["total"] == pytest.approx(total)
    send(system, UNIT, rating(UNIT, 1), rating(UNIT, 1))
    after = wait_for(lambda: (c := card(system, UNIT))["late_after_final"]["ratings"] == 2 and c,
                     what="late ratings to be counted apart")
    assert after["total"] == frozen["total"] and after["components"] == frozen["components"]
    assert with_runtime(system, lambda rt, _st: service.verify(rt, YEAR)) == []
    public = system.get("scoring", f"/v1/public/scorecards?year={YEAR}")
    assert public.status_code == 200 and public.json()["final"] is True


def test_kiosk_ratings_through_intake_reach_the_scorecard(system: System) -> None:
    window = "market-supervision-w1"
    now = datetime.now(UTC)
    before = card(system, UNIT, now.year)["public"]["channels"]["window"]["n"]
    for i, level in enumerate((5, 3)):
        kiosk = token(system, "kiosk", window_id=window, subject=f"e2e-{uuid.uuid4().hex[:6]}")
        body = {"ratings": [{"id": str(uuid.uuid4()), "window_id": window, "level": level,
                             "rated_at": (now - timedelta(seconds=10 + i)).isoformat()}]}
        assert system.post("feedback-intake", "/v1/ratings", kiosk, json=body).json()["accepted"] == 1
    wait_for(lambda: card(system, UNIT, now.year)["public"]["channels"]["window"]["n"] == before + 2,
             what="two kiosk ratings in the live scorecard")


def test_two_instances_taking_the_same_polls_apply_each_event_once(system: System) -> None:
    """A rebalance hands polls to a second instance while the first still applies them: each counts once."""
    year = 2013  # a year of its own (the pages test counts every item of 2017 and 2016)

    async def use(runtime: ServiceRuntime, _settings: ScoringSettings) -> tuple[int, int, int]:
        table = consumers.handlers(runtime.city)
        twins = [IdempotentConsumer(name="e2e-twins", sessions=runtime.sessions, table=runtime.processed,
                                    handlers=table, batch_handler=consumers.batch_handler(runtime.city, table))
                 for _ in range(2)]
        polls = [[encode(Envelope.of(rating(unit, 1 + i % 5, at=datetime(year, 3, 1 + i % 20, 4, tzinfo=UTC)),
                                     source="e2e", key=unit))
                  for i in range(k * 50, k * 50 + 50) for unit in (UNIT, OTHER)] for k in range(6)]

        async def take(consumer: IdempotentConsumer, order: list[list[Message]]) -> None:
            for poll in order:
                while True:  # as the bus does: a transient failure (a deadlock, say) retries the poll
                    try:
                        assert await consumer.batch(poll) == []
                        break
                    except Exception as exc:
                        if not is_transient(exc):
                            raise
                        await asyncio.sleep(0.05)

        await asyncio.gather(take(twins[0], polls), take(twins[1], polls[::-1]))
        async with runtime.sessions() as session:
            sums = await repository.channel_sums(session, year)
        return (twins[0].applied + twins[1].applied, sums[UNIT]["window"][0], sums[OTHER]["window"][0])

    assert with_runtime(system, use) == (600, 300, 300)
