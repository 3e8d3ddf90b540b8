"""scoring in process: events and API inputs produce the method's scorecards; closing, verify, rebuild."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from scoring import commands, service
from yardstick import events
from yardstick.bus.codec import encode
from yardstick.events import Envelope

UNIT = "health-commission"
OTHER = "public-security"


async def publish(system: Any, *items: events.Event, key: str = UNIT) -> list[Envelope]:
    envelopes = [Envelope.of(d, source="test", key=key) for d in items]
    await system.bus.publish([encode(e) for e in envelopes])
    return envelopes


async def settled(system: Any, eventually: Any) -> None:
    """Every event applied, and the scorecards recomputed from them (they trail by under a second)."""
    await eventually(lambda: system.bus.lag("scoring") == 0)
    await eventually(system.scorecards_current)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def year() -> int:
    return datetime.now(UTC).astimezone().year


async def rate(system: Any, token: Any, city: Any, levels: list[int]) -> None:
    """Kiosk presses through intake, each from its own device so none is suppressed."""
    window = city.windows_of(UNIT)[0].id
    now = datetime.now(UTC) - timedelta(seconds=5)
    for i, level in enumerate(levels):
        kiosk = token("kiosk", window_id=window, subject=f"kiosk-{uuid.uuid4().hex[:6]}")
        body = {"ratings": [{"id": str(uuid.uuid4()), "window_id": window, "level": level,
                             "rated_at": (now - timedelta(seconds=i)).isoformat()}]}
        response = await system.intake.post("/v1/ratings", json=body, headers=auth(kiosk))
        assert response.status_code == 202 and response.json()["accepted"] == 1, response.text


async def feed_everything(system: Any, token: Any, city: Any, year: int) -> None:
    """Ratings, a reassigned web rating, a survey, a corrected target, grades, a project, an adjustment."""
    await rate(system, token, city, [5, 4, 1, 2])
    moment = datetime.now(UTC) - timedelta(minutes=1)
    fid = str(uuid.uuid4())
    await publish(system, events.FeedbackReceived(feedback_id=fid, unit_id=OTHER, channel="web", occurred_at=moment,
                                                  year=year, level=5), key=OTHER)
    await publish(system, events.FeedbackReassigned(feedback_id=fid, from_unit_id=OTHER, unit_id=UNIT, channel="web",
                                                    occurred_at=moment, year=year, level=5), key=OTHER)
    await publish(
        system,
        events.SurveyDefined(survey_id="s1", year=year, title="Household survey",
                             strata=[events.Stratum(id="x", population=600), events.Stratum(id="y", population=400)]),
        events.SurveyResponse(survey_id="s1", year=year, respondent_id="r1", stratum="x",
                              ratings={UNIT: 5, OTHER: None}),
        events.SurveyResponse(survey_id="s1", year=year, respondent_id="r2", stratum="x", ratings={UNIT: 3}),
        events.SurveyResponse(survey_id="s1", year=year, respondent_id="r3", stratum="y",
                              ratings={UNIT: 1, OTHER: 4}), key="s1")
    today = datetime.now(UTC).astimezone(city.timezone).date()
    target = dict(target_id="t1", unit_id=UNIT, year=year, code="wait-time", title="Shorter waits", kind="numeric",
                  direction="increase", baseline=0.0, target=100.0, weight=1.0, cadence="daily", approved=True)
    await publish(system, events.TargetDefined(**target),  # type: ignore[arg-type]
                  events.TargetProgress(target_id="t1", unit_id=UNIT, year=year, date=today, value=60.0,
                                        attainment=0.6, status="on_track"),
                  events.TargetProgress(target_id="t1", unit_id=UNIT, year=year, date=today, value=50.0,
                                        correction=True, attainment=0.5, status="on_track"))
    for leader, grade in (("leader-1", 70), ("leader-2", 90), ("leader-1", 80)):
        r = await system.scoring.post("/v1/leader-evaluations", json={"unit_id": UNIT, "year": year, "grade": grade},
                                      headers=auth(token("leader", subject=leader)))
        assert r.status_code == 201, r.text
    r = await system.scoring.post("/v1/innovation-projects",
                                  json={"unit_id": UNIT, "year": year, "title": "One window"},
                                  headers=auth(token("coordinator", unit_id=UNIT, subject="c1")))
    assert r.status_code == 201, r.text
    project = r.json()["id"]
    path = f"/v1/innovation-projects/{project}/assessments"
    own = await system.scoring.post(path, json={"points": 1.5}, headers=auth(token("assessor", subject="a0",
                                                                                  unit_id=UNIT)))
    assert own.status_code == 403
    too_many = await system.scoring.post(path, json={"points": 2}, headers=auth(token("assessor", subject="a1")))
    assert too_many.status_code == 422
    for assessor, points in (("a1", 1.0), ("a2", 1.5), ("a3", 1.5), ("a3", 0.5)):
        r = await system.scoring.post(path, json={"points": points}, headers=auth(token("assessor", subject=assessor)))
        assert r.status_code == 201, r.text
    r = await system.scoring.post("/v1/adjustments", json={"unit_id": UNIT, "year": year, "points": -0.5,
                                                           "reason": "late annual report"},
                                  headers=auth(token("commission")))
    assert r.status_code == 201, r.text


def expected_total() -> tuple[float, float]:
    """The unit's S and total, worked out from the inputs above by the published formulas."""
    # Survey: x has 2 respondents (weight 300), y has 1 (weight 400). The unit: 1.0, 0.5 (x), 0.0 (y).
    n_eff = 1000 ** 2 / (2 * 300 ** 2 + 400 ** 2)
    city_mean = (300 * 1.0 + 300 * 0.5 + 400 * 0.0 + 400 * 0.75) / 1400  # the other unit's 4 from stratum y
    survey = (n_eff * 0.45 + 20 * city_mean) / (n_eff + 20)
    window = 0.5  # the unit's mean is the city's: the only kiosk ratings
    online = 1.0  # the reassigned web rating, the only online one
    s = 0.6 * survey + 0.25 * window + 0.15 * online
    return s, 50 * s + 45 * 0.5 + 5 * 85 / 100 + 1.0 - 0.5


async def test_scorecard_follows_events_and_inputs(system: Any, token: Any, city: Any, eventually: Any,
                                                    year: int) -> None:
    await feed_everything(system, token, city, year)
    commission = auth(token("commission"))

    async def all_counted() -> bool:
        card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
        return bool(card["public"]["channels"]["window"]["n"] == 4)

    await eventually(all_counted)
    await settled(system, eventually)
    card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
    s, total = expected_total()
    assert card["public"]["channels"]["window"]["n"] == 4
    assert card["public"]["channels"]["online"]["n"] == 1
    assert card["public"]["channels"]["survey"]["n"] == 3
    assert card["public"]["S"] == pytest.approx(s)
    assert card["targets"] == [{"target_id": "t1", "code": "wait-time", "weight": 1.0, "value": 50.0, "r": 0.5}]
    assert card["leaders"] == {"n": 2, "mean": 85.0}
    assert card["bonus"]["projects"][0]["assessments"] == 3
    assert card["total"] == pytest.approx(total)
    other = (await system.scoring.get(f"/v1/scorecards/{OTHER}?year={year}", headers=commission)).json()
    assert other["public"]["channels"]["online"]["n"] == 0  # the reassigned item moved away
    # A redelivered event changes nothing.
    seen = [m for m in system.bus.logs[events.SURVEY]]
    await system.bus.publish(seen)
    await settled(system, eventually)
    again = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
    assert again["total"] == card["total"]
    group = city.unit(UNIT).group
    ranking = (await system.scoring.get(f"/v1/scorecards?year={year}&group={group}", headers=commission)).json()
    assert ranking["rows"][0]["unit_id"] == UNIT and ranking["rows"][0]["rank"] == 1
    assert [r["rank"] for r in ranking["rows"]] == list(range(1, len(ranking["rows"]) + 1))
    # The audit trail names who graded, assessed and adjusted.
    trail = (await system.scoring.get(f"/v1/audit?year={year}", headers=commission)).json()["items"]
    assert {(t["action"], t["actor"]) for t in trail} >= {("leader_evaluation", "leader-1"),
                                                         ("project.assess", "a3"), ("adjustment", None)}
    # scorecard.updated carries the current total (the emitter runs each second).
    async def updated() -> bool:
        totals = [m for m in system.bus.logs[events.SCORES]]
        from yardstick.bus.codec import decode
        last = [decode(m).data for m in totals]
        mine = [d for d in last if isinstance(d, events.ScorecardUpdated) and d.unit_id == UNIT]
        return bool(mine) and mine[-1].total == pytest.approx(total)
    await eventually(updated)
    # Replaying the log into an empty read model gives the same scorecards.
    log = [m for t in ("feedback.v1", "survey.v1", "targets.v1") for m in system.bus.logs[t]]
    assert await commands.rebuild_and_compare(system.runtime("scoring"), log) == []


async def test_config_is_validated_and_applied(system: Any, token: Any, year: int) -> None:
    commission = auth(token("commission"))
    bad = await system.scoring.put(f"/v1/config/{year}", json={"w_public": 70, "channel_weights": {"survey": 0}},
                                   headers=commission)
    assert bad.status_code == 422
    details = bad.json()["error"]["details"]
    assert any("must equal 100" in d for d in details) and any("channel_weights.window" in d for d in details)
    assert (await system.scoring.get(f"/v1/config/{year}", headers=commission)).json()["w_public"] == 50
    r = await system.scoring.put(f"/v1/config/{year}", json={"w_public": 40, "w_targets": 50, "w_leaders": 10},
                                 headers=commission)
    assert r.status_code == 200 and r.json()["w_leaders"] == 10
    await system.scoring.post("/v1/leader-evaluations", json={"unit_id": UNIT, "year": year, "grade": 50},
                              headers=auth(token("leader", subject="l")))
    card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
    assert card["components"]["leaders"] == pytest.approx(5.0)
    assert (await system.scoring.put(f"/v1/config/{year}", json={}, headers=auth(token("leader")))).status_code == 403


async def test_closing_a_year(system: Any, token: Any, city: Any, eventually: Any, year: int) -> None:
    commission = auth(token("commission"))
    coordinator = auth(token("coordinator", unit_id=UNIT, subject="c"))
    assert (await system.scoring.get(f"/v1/public/scorecards?year={year}")).status_code == 404
    await system.scoring.put(f"/v1/config/{year}", json={"objection_days": 0}, headers=commission)
    await rate(system, token, city, [5, 3])

    async def both_counted() -> bool:
        card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
        return bool(card["public"]["channels"]["window"]["n"] == 2)

    await eventually(both_counted)
    assert (await system.scoring.post(f"/v1/scorecards/{year}:finalize", headers=commission)).status_code == 409
    assert (await system.scoring.post(f"/v1/scorecards/{year}:publish-draft", headers=commission)).status_code == 200
    draft = (await system.scoring.get(f"/v1/public/scorecards?year={year}")).json()
    assert draft["draft"] is True and len(draft["scorecards"]) == len(city.units)
    # objection_days 0: the period is over at once, so the objection is refused; with 7 it is open.
    late = await system.scoring.post("/v1/objections", json={"unit_id": UNIT, "year": year, "text": "recount"},
                                     headers=coordinator)
    assert late.status_code == 409
    final = await system.scoring.post(f"/v1/scorecards/{year}:finalize", headers=commission)
    assert final.status_code == 200, final.text
    before = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
    assert before["final"] is True and before["digest"] == final.json()["digest"]
    assert before["input_counts"]["ratings"] == 2
    await rate(system, token, city, [1, 1, 1])

    async def late_three() -> Any:
        card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
        return card if card["late_after_final"]["ratings"] == 3 else None

    after = await eventually(late_three)
    assert after["total"] == before["total"]
    assert after["late_after_final"]["ratings"] == 3
    refused = await system.scoring.post("/v1/adjustments", json={"unit_id": UNIT, "year": year, "points": 1,
                                                                 "reason": "x"}, headers=commission)
    assert refused.status_code == 409
    assert await service.verify(system.runtime("scoring"), year) == []
    public = (await system.scoring.get(f"/v1/public/scorecards?year={year}")).json()
    assert public["final"] is True and public["draft"] is False


async def test_objections_hold_the_year_open(system: Any, token: Any, year: int) -> None:
    commission = auth(token("commission"))
    await system.scoring.post(f"/v1/scorecards/{year}:publish-draft", headers=commission)
    filed = await system.scoring.post("/v1/objections", json={"unit_id": UNIT, "year": year, "text": "recount"},
                                      headers=auth(token("coordinator", unit_id=UNIT)))
    assert filed.status_code == 201
    refused = await system.scoring.post(f"/v1/scorecards/{year}:finalize", headers=commission)
    assert refused.status_code == 409
    answer = await system.scoring.post(f"/v1/objections/{filed.json()['id']}/answer",
                                       json={"text": "recounted", "upheld": False}, headers=commission)
    assert answer.status_code == 200
    assert (await system.scoring.post(f"/v1/scorecards/{year}:finalize", headers=commission)).status_code == 409
    forced = await system.scoring.post(f"/v1/scorecards/{year}:finalize", json={"force": True}, headers=commission)
    assert forced.status_code == 200 and forced.json()["forced"] is True


async def test_scorecard_updated_at_most_once_a_second_per_unit(system: Any, token: Any, city: Any,
                                                                 eventually: Any, year: int) -> None:
    """Ratings every 0.1 s for 2.5 s: each unit's scorecard.updated are a second apart, the last one current.

    An update's time is the moment of the pass that sent it, the moment the once-a-second rule counts from.
    """
    from yardstick.bus.codec import decode

    for i in range(25):
        await publish(system, events.FeedbackReceived(
            feedback_id=str(uuid.uuid4()), unit_id=UNIT, channel="web", year=year, level=1 + i % 5,
            occurred_at=datetime.now(UTC) - timedelta(minutes=1)))
        await asyncio.sleep(0.1)
    await settled(system, eventually)
    commission = auth(token("commission"))
    card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
    assert card["public"]["channels"]["online"]["n"] == 25

    def updates() -> dict[str, list[Envelope]]:
        out: dict[str, list[Envelope]] = {}
        for m in system.bus.logs[events.SCORES]:
            envelope = decode(m)
            if isinstance(envelope.data, events.ScorecardUpdated) and envelope.data.year == year:
                out.setdefault(envelope.data.unit_id, []).append(envelope)
        return out

    await eventually(lambda: (u := updates().get(UNIT)) and u[-1].data.total == pytest.approx(card["total"]),
                     timeout=10)
    sent = updates()
    assert len(sent[UNIT]) >= 2  # the unit's total moved while the ratings came in
    for unit_id, envelopes in sent.items():
        gaps = [(b.time - a.time).total_seconds() for a, b in itertools.pairwise(envelopes)]
        assert all(g >= 1.0 for g in gaps), (unit_id, gaps)


async def test_a_ratings_only_pass_keeps_the_other_inputs_and_any_other_change_reloads_them(
        system: Any, token: Any, eventually: Any, year: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ratings bump the year's version only; a survey (like any other input) bumps its inputs version as well."""
    from scoring import repository

    commission = auth(token("commission"))
    reads: list[int] = []
    original = repository.grades_of

    async def counted(session: Any, y: int) -> Any:
        reads.append(y)
        return await original(session, y)

    monkeypatch.setattr(repository, "grades_of", counted)
    moment = datetime.now(UTC) - timedelta(minutes=1)
    await publish(system, events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=UNIT, channel="web",
                                                  occurred_at=moment, year=year, level=5))
    await settled(system, eventually)
    loaded = len(reads)
    assert loaded >= 1  # the first pass of the year read everything
    for level in (1, 2, 3):
        await publish(system, events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=UNIT, channel="web",
                                                      occurred_at=moment, year=year, level=level))
        await settled(system, eventually)
    card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
    assert card["public"]["channels"]["online"]["n"] == 4
    assert len(reads) == loaded  # ratings only: the passes read the ratings again, nothing else
    assert card["public"]["channels"]["survey"]["n"] == 0
    await publish(system, events.SurveyDefined(survey_id="s9", year=year, title="Survey",
                                               strata=[events.Stratum(id="x", population=100)]),
                  events.SurveyResponse(survey_id="s9", year=year, respondent_id="r1", stratum="x",
                                        ratings={UNIT: 5}), key="s9")
    await settled(system, eventually)
    card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
    assert card["public"]["channels"]["survey"]["n"] == 1
    assert len(reads) > loaded


async def test_the_recompute_loop_runs_a_pass_as_soon_as_it_is_woken_and_rests_between_passes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle, a wake-up starts a pass at once; under a stream of wake-ups passes rest twice as long as the last took."""
    runtime: Any = SimpleNamespace(service="scoring")  # the loop hands it to the pass, which is stood in for
    loop = asyncio.get_running_loop()
    passes: list[tuple[float, float]] = []
    passed = asyncio.Event()

    async def slow_pass(given: Any, **_kwargs: Any) -> list[int]:
        assert given is runtime
        started = loop.time()
        await asyncio.sleep(0.2)
        passes.append((started, loop.time()))
        passed.set()
        return []

    monkeypatch.setattr(service, "refresh", slow_pass)
    wake = asyncio.Event()
    task = asyncio.create_task(service.refresher(runtime, wake, min_gap_s=0.05, poll_s=60))
    try:
        await asyncio.sleep(0.1)
        woken = loop.time()
        wake.set()
        await asyncio.sleep(0.1)
        assert passes == [] and not wake.is_set()  # cleared when the pass started
        await asyncio.wait_for(passed.wait(), timeout=10)  # the pass's own length is the machine's
        assert len(passes) == 1 and passes[0][0] - woken < 0.15
        for _ in range(16):  # a batch every 0.1 s
            wake.set()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.7)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Each rest against the pass before it as it was measured (a loaded machine stretches the 0.2 s pass).
    rests = [(b[0] - a[1], 2 * (a[1] - a[0])) for a, b in itertools.pairwise(passes)]
    assert len(passes) >= 3 and all(r >= want - 0.01 for r, want in rests), rests  # twice as long as a pass
    assert all(r < want + 0.15 for r, want in rests), rests  # and no longer: the wake-up came during the rest


async def test_a_publish_draft_that_fails_publishes_nothing(system: Any, token: Any, year: int) -> None:
    """A stored objection period no date can hold (accepted before it was bounded): the draft stays unpublished."""
    from scoring import repository

    commission = auth(token("commission"))
    assert (await system.scoring.put(f"/v1/config/{year}", json={"objection_days": 366},
                                     headers=commission)).status_code == 422
    async with system.runtime("scoring").transaction() as session:
        await repository.put_config(session, year, {"objection_days": 10**9})
    with pytest.raises(OverflowError):
        await system.scoring.post(f"/v1/scorecards/{year}:publish-draft", headers=commission)
    assert (await system.scoring.get(f"/v1/public/scorecards?year={year}")).status_code == 404
    async with system.runtime("scoring").transaction() as session:
        await repository.put_config(session, year, {"objection_days": 365})
    retry = await system.scoring.post(f"/v1/scorecards/{year}:publish-draft", headers=commission)
    assert retry.status_code == 200
    assert retry.json()["objections_until"].startswith(str(int(retry.json()["draft_at"][:4]) + 1))


async def test_the_public_scorecards_show_the_late_items_and_default_to_the_newest_published_year(
        system: Any, token: Any, eventually: Any, year: int) -> None:
    commission = auth(token("commission"))
    assert (await system.scoring.get("/v1/public/scorecards")).status_code == 404  # nothing published yet
    for y in (year - 1, year):
        assert (await system.scoring.post(f"/v1/scorecards/{y}:finalize", json={"force": True},
                                          headers=commission)).status_code == 200
    moment = datetime.now(UTC) - timedelta(minutes=1)
    await publish(system, *[events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=UNIT, channel="web",
                                                    occurred_at=moment, year=year, level=2) for _ in range(3)])

    async def late() -> Any:
        card = (await system.scoring.get(f"/v1/scorecards/{UNIT}?year={year}", headers=commission)).json()
        return card if card["late_after_final"]["ratings"] == 3 else None

    await eventually(late)
    public = (await system.scoring.get("/v1/public/scorecards")).json()
    assert public["year"] == year and public["final"] is True
    mine = next(c for c in public["scorecards"] if c["unit_id"] == UNIT)
    assert mine["late_after_final"] == {"ratings": 3}
    page = await system.scoring.get(f"/public/units/{UNIT}?lang=en")
    assert page.status_code == 200
    older = (await system.scoring.get(f"/v1/public/scorecards?year={year - 1}")).json()
    assert older["year"] == year - 1


async def test_a_survey_defined_for_a_final_year_is_counted_late_and_changes_nothing(
        system: Any, token: Any, eventually: Any, year: int) -> None:
    from scoring import repository

    commission = auth(token("commission"))
    assert (await system.scoring.post(f"/v1/scorecards/{year}:finalize", json={"force": True},
                                      headers=commission)).status_code == 200
    await publish(system, events.SurveyDefined(survey_id="s-late", year=year, title="late",
                                               strata=[events.Stratum(id="x", population=100)]), key="s-late")
    await eventually(lambda: system.bus.lag("scoring") == 0)
    async with system.runtime("scoring").sessions() as session:
        assert await repository.survey_strata_of(session, year) == {}
        assert await repository.late_counts(session, year) == {"": {"survey": 1}}
    assert await service.verify(system.runtime("scoring"), year) == []


async def test_a_changed_city_profile_is_scored_after_a_restart(tmp_path: Any, secret: str, city: Any,
                                                                token: Any) -> None:
    """A unit joins the profile and another changes group: the next start recomputes the live year's cards;
    a final year keeps its frozen ones, and has no card of the new unit (404)."""
    import httpx

    from yardstick.bus.memory import MemoryBus
    from yardstick.city import Unit
    from yardstick.services import SERVICES

    commission = auth(token("commission"))
    live, final = 2030, 2029
    spec = SERVICES["scoring"]

    async def started(profile: Any, body: Any) -> None:
        bus = MemoryBus(retry_s=0.02)
        settings = spec.settings(data_dir=tmp_path, bus="memory", auth_secret=secret, database_url="")
        app = spec.create_app(settings, bus=bus, city=profile)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            await bus.start()
            try:
                await body(client, app.state.runtime)
            finally:
                await bus.stop()

    async def before(client: httpx.AsyncClient, runtime: Any) -> None:
        await service.refresh(runtime)
        for y in (live, final):
            await client.put(f"/v1/config/{y}", json={}, headers=commission)  # the year's cards are stored
        assert (await client.post(f"/v1/scorecards/{final}:finalize", json={"force": True},
                                  headers=commission)).status_code == 200

    await started(city, before)
    moved = city.units[1]
    other_group = next(g.id for g in city.groups if g.id != moved.group)
    changed = type(city)(**{**{k: getattr(city, k) for k in type(city).model_fields}, "units": (
        city.units[0], moved.model_copy(update={"group": other_group}), *city.units[2:],
        Unit(id="new-bureau", name="New Bureau", name_zh="新局", group=city.units[0].group))})

    async def after(client: httpx.AsyncClient, runtime: Any) -> None:
        # Before any pass: the stored cards are of the old profile, so a read computes them.
        card = await client.get(f"/v1/scorecards/new-bureau?year={live}", headers=commission)
        assert card.status_code == 200 and card.json()["unit_id"] == "new-bureau"
        await service.refresh(runtime)
        rows = (await client.get(f"/v1/scorecards?year={live}", headers=commission)).json()["rows"]
        assert {r["unit_id"]: r["group"] for r in rows} == {u.id: u.group for u in changed.units}
        group = (await client.get(f"/v1/scorecards?year={live}&group={other_group}", headers=commission)).json()
        assert moved.id in {r["unit_id"] for r in group["rows"]}
        assert (await client.get(f"/v1/scorecards/new-bureau?year={final}", headers=commission)).status_code == 404
        frozen = (await client.get(f"/v1/scorecards?year={final}", headers=commission)).json()["rows"]
        assert "new-bureau" not in {r["unit_id"] for r in frozen}

    await started(changed, after)
