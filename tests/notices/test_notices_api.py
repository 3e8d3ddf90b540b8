"""The notices API in process: events in, a notice out, the lifecycle over HTTP, webhooks and e-mail."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import io
import json
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from notices.app import create_app
from notices.settings import NoticesSettings
from yardstick import db, events
from yardstick.bus.codec import encode
from yardstick.bus.memory import MemoryBus
from yardstick.city import CityProfile
from yardstick.events import Envelope

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class Receiver:
    """A local webhook receiver: fails the first call, to see the retry, then records."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []
        self.failures = 1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        status = 200
        if self.failures:
            self.failures -= 1
            status = 503
        else:
            self.calls.append((body, headers[b"x-yardstick-signature"].decode()))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def notices_app(tmp_path: Path, city: CityProfile, unused_tcp_port: int
                      ) -> AsyncIterator[tuple[httpx.AsyncClient, Any, MemoryBus, Inbox, Receiver]]:
    async with running_notices(tmp_path, city, unused_tcp_port) as running:
        yield running


@contextlib.asynccontextmanager
async def running_notices(tmp_path: Path, city: CityProfile, port: int, *, database_url: str = ""
                          ) -> AsyncIterator[tuple[httpx.AsyncClient, Any, MemoryBus, Inbox, Receiver]]:
    """The notices app on the in-process bus, its database SQLite under tmp_path unless `database_url`."""
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    receiver = Receiver()
    settings = NoticesSettings(data_dir=tmp_path, database_url=database_url, bus="memory", auth_secret=SECRET,
                               live_evaluation=False, daily_sweep=False, smtp_port=port,
                               delivery_interval_s=0.05, delivery_backoff_s=0.05, webhook_allow_private=True)
    bus = MemoryBus(retry_s=0.02)
    app = create_app(settings, bus=bus, city=city)
    original = httpx.AsyncClient

    def client_factory(*args: Any, **kw: Any) -> httpx.AsyncClient:
        # The notifier's client posts to the local receiver app (an ASGI webhook endpoint).
        return original(*args, transport=httpx.ASGITransport(app=receiver), **kw)

    import notices.tasks as tasks

    tasks.httpx.AsyncClient = client_factory  # type: ignore[misc]
    try:
        async with app.router.lifespan_context(app):
            await bus.start()
            async with original(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                yield client, app, bus, inbox, receiver
            await bus.stop()
    finally:
        tasks.httpx.AsyncClient = original  # type: ignore[misc]
        smtp.stop()


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def complaint(unit: str, category: str, day: date, i: int) -> Envelope:
    moment = datetime(day.year, day.month, day.day, 3, 0, tzinfo=UTC)
    data = events.FeedbackReceived(feedback_id=f"fb-{day.isoformat()}-{i}", unit_id=unit, channel="web",
                                   occurred_at=moment, year=day.year, level=1, category_id=category, has_text=True)
    return Envelope.of(data, source="feedback-intake", key=unit)


async def test_events_to_notice_lifecycle_and_notifications(
        notices_app: tuple[httpx.AsyncClient, Any, MemoryBus, Inbox, Receiver], token: Any, eventually: Any) -> None:
    client, app, bus, inbox, receiver = notices_app
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}
    health = {"Authorization": f"Bearer {token('coordinator', unit_id='health-commission', subject='c1')}"}
    other = {"Authorization": f"Bearer {token('coordinator', unit_id='xihu-district', subject='c2')}"}
    r = await client.post("/v1/subscriptions", json={"unit_id": "health-commission",
                                                     "webhook_url": "http://receiver/hook",
                                                     "email": "coordinator@health.example"}, headers=health)
    assert r.status_code == 201, r.text
    hook_secret = r.json()["secret"]
    assert (await client.post("/v1/subscriptions", json={"unit_id": "health-commission",
                                                         "email": "x@example.org"}, headers=other)).status_code == 403
    # Quiet history, then a spike, as events through the consumer (applied once even if redelivered).
    day = date(2026, 4, 15)
    envelopes = [complaint("health-commission", "seeing-a-doctor", day - timedelta(days=d), d)
                 for d in range(12, 60, 4)]
    envelopes += [complaint("health-commission", "seeing-a-doctor", day - timedelta(days=i % 5), 100 + i)
                  for i in range(10)]
    await bus.publish([encode(e) for e in envelopes + envelopes[:3]])
    consumer = app.state.runtime.consumers[0]
    await eventually(lambda: consumer.applied + consumer.skipped == len(envelopes) + 3)
    assert (consumer.applied, consumer.skipped) == (len(envelopes), 3)
    r = await client.post("/v1/rules:evaluate", json={"day": day.isoformat()}, headers=commission)
    assert r.status_code == 200, r.text
    assert len(r.json()["issued"]) == 1
    listed = (await client.get("/v1/notices", params={"unit_id": "health-commission"}, headers=health)).json()
    notice = listed["items"][0]
    assert notice["evidence"]["window_count"] == 10 and notice["status"] == "issued"
    # Evaluated for an April day but issued now: the evidence keeps its day, the unit gets its working
    # day to acknowledge from today (notices.md: deadlines count from the day after the step), so the
    # sweep right after does not call it overdue.
    issued_on = datetime.now(UTC).astimezone(app.state.runtime.city.timezone).date()
    assert notice["evidence"]["day"] == day.isoformat() and notice["issued_on"] == issued_on.isoformat()
    assert notice["deadline"] == app.state.calendar.add(issued_on, 1).isoformat() and notice["overdue"] is False
    assert (await client.post("/v1/rules:evaluate", headers=commission)).status_code == 200
    assert (await client.get(f"/v1/notices/{notice['id']}", headers=health)).json()["overdue"] is False
    assert set(notice["feedback_ids"]) <= {e.data.feedback_id for e in envelopes}  # type: ignore[attr-defined]
    assert (await client.get("/v1/notices", params={"unit_id": "health-commission"}, headers=other)
            ).status_code == 403
    nid = notice["id"]
    assert (await client.post(f"/v1/notices/{nid}/acknowledge", headers=other)).status_code == 403
    assert (await client.post(f"/v1/notices/{nid}/resolve", json={"text": "x"}, headers=health)).status_code == 409
    assert (await client.post(f"/v1/notices/{nid}/acknowledge", headers=health)).status_code == 200
    due = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    r = await client.post(f"/v1/notices/{nid}/plan", headers=health, json={
        "actions": ["evening clinics"], "commitment": {"metric": "complaints per week", "target": 2, "due": due}})
    assert r.status_code == 200, r.text
    assert (await client.post(f"/v1/notices/{nid}/resolve", json={"text": "clinics open"}, headers=health)
            ).status_code == 200
    # Today (the real clock) the April spike is long out of the window: the metric has recovered.
    r = await client.post(f"/v1/notices/{nid}/verify", headers=commission)
    assert r.status_code == 200, r.text
    detail = (await client.get(f"/v1/notices/{nid}", headers=commission)).json()
    # Acknowledged on the day it was issued: nothing was overdue.
    assert [h["action"] for h in detail["history"]] == ["issue", "acknowledge", "plan", "resolve", "verify"]
    # The effect's "before" is the span before the evidence's April day, not before the issue.
    assert detail["effect"]["before"]["last"] == (day - timedelta(days=1)).isoformat()
    assert detail["effect"]["before"]["negative"] > 0
    as_csv = await client.get("/v1/public/notices", headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    csv_rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert csv_rows[0]["id"] == nid and csv_rows[0]["outcome"] == "verified"
    assert json.loads(csv_rows[0]["plan"]) == ["evening clinics"] and "feedback_ids" not in as_csv.text
    public = (await client.get("/v1/public/notices")).json()["items"][0]
    assert public["outcome"] == "verified" and public["plan"] == ["evening clinics"]
    assert public["evidence"]["day"] == day.isoformat() and public["issued_on"] == issued_on.isoformat()
    assert public["evidence"]["decided_by"] in ("test", "min_count")  # how it decided, in words
    assert "feedback_ids" not in public and "actor" not in json.dumps(public)
    # Rules: readable, editable (audited), effective at once.
    r = await client.put("/v1/rules/complaint-recurrence", json={"min_count": 50}, headers=commission)
    assert r.status_code == 200 and r.json()["settings"]["min_count"] == 50
    assert (await client.put("/v1/rules/complaint-recurrence", json={"alpha": 2}, headers=commission)
            ).status_code == 422
    assert (await client.get("/v1/rules/complaint-recurrence", headers=commission)).json()["audit"][0]["after"][
        "min_count"] == 50
    assert (await client.get("/v1/rules", headers=health)).status_code == 403
    # Notifications: issue, the reminder of the acknowledge deadline (the next working day, as the sweep
    # saw it) and four transitions, by signed webhook (after one failure) and e-mail; nothing overdue.
    await eventually(lambda: len(receiver.calls) == 6 and len(inbox.messages) == 6)
    for body, sig in receiver.calls:
        assert sig == "sha256=" + hmac.new(hook_secret.encode(), body, hashlib.sha256).hexdigest()
    kinds = [json.loads(body)["type"] for body, _ in receiver.calls]
    assert kinds.count("notice.issued") == 1 and kinds.count("notice.transitioned") == 4
    assert kinds.count("notice.deadline") == 1 and kinds.count("notice.overdue") == 0
    assert all(m["To"] == "coordinator@health.example" for m in inbox.messages)


async def test_webhooks_to_internal_addresses_are_refused(tmp_path: Path, city: CityProfile, token: Any) -> None:
    """A subscriber must not make the service call inside the network (loopback, private, link-local)."""
    from notices.notify import resolve_public

    settings = NoticesSettings(data_dir=tmp_path, bus="memory", auth_secret=SECRET, live_evaluation=False,
                               daily_sweep=False)
    app = create_app(settings, bus=MemoryBus(), city=city)
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for url in ("http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest",
                    "http://localhost/hook", "http://[::1]/hook"):
            r = await client.post("/v1/subscriptions", json={"webhook_url": url}, headers=commission)
            assert r.status_code == 422, (url, r.text)
        assert (await client.post("/v1/subscriptions", json={"webhook_url": "https://hooks.example.org/x"},
                                  headers=commission)).status_code == 201
    # A name that resolves inside the network is refused at delivery time.
    with pytest.raises(PermissionError):
        await resolve_public("http://localhost:9/hook")


async def test_a_replay_of_the_same_events_raises_notices_on_the_same_cells(
        tmp_path: Path, city: CityProfile, token: Any, eventually: Any) -> None:
    """Two services fed the same events, in a different order and with redeliveries, evaluated on the
    same days, hold notices on the same (unit, rule, subject) cells: detection follows the events'
    own days, not when they arrived."""
    day = date(2026, 4, 15)
    history = [complaint("health-commission", "seeing-a-doctor", day - timedelta(days=d), d) for d in range(12, 60, 4)]
    history += [complaint("health-commission", "seeing-a-doctor", day - timedelta(days=i % 5), 100 + i)
                for i in range(10)]
    history += [complaint("xihu-district", "noise", day - timedelta(days=i % 6), 200 + i) for i in range(8)]
    history += [complaint("transport", "parking", day - timedelta(days=d), 300 + d) for d in range(0, 40, 9)]
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}

    async def cells(run: str, order: list[Envelope]) -> set[tuple[str, str, str]]:
        settings = NoticesSettings(data_dir=tmp_path / run, bus="memory", auth_secret=SECRET,
                                   live_evaluation=False, daily_sweep=False)
        bus = MemoryBus(retry_s=0.02)
        app = create_app(settings, bus=bus, city=city)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            await bus.start()
            await bus.publish([encode(e) for e in order])
            consumer = app.state.runtime.consumers[0]
            await eventually(lambda: consumer.applied + consumer.skipped == len(order))
            for d in range(3, -1, -1):
                r = await client.post("/v1/rules:evaluate", json={"day": (day - timedelta(days=d)).isoformat()},
                                      headers=commission)
                assert r.status_code == 200, r.text
            items = (await client.get("/v1/notices", headers=commission)).json()["items"]
            await bus.stop()
        return {(n["unit_id"], n["rule"], n["subject"]) for n in items}

    live = await cells("live", history)
    assert live, "the scenario must raise something to compare"
    replayed = await cells("replay", list(reversed(history)) + history[:5])
    assert replayed == live


async def test_live_evaluation_runs_while_events_never_pause(tmp_path: Path, city: CityProfile) -> None:
    """A steady stream of events leaves no quiet debounce_s: evaluation still runs within evaluate_within_s."""
    settings = NoticesSettings(data_dir=tmp_path, bus="memory", auth_secret=SECRET, daily_sweep=False,
                               debounce_s=0.4, evaluate_within_s=1.0)
    bus = MemoryBus(retry_s=0.02)
    app = create_app(settings, bus=bus, city=city)
    evaluator = app.state.evaluator
    async with app.router.lifespan_context(app):
        await bus.start()
        window = city.windows[0]
        started = asyncio.get_running_loop().time()
        for i in range(80):  # an event every 0.05 s (or slower) for 4 s
            moment = datetime.now(UTC)
            await bus.publish([encode(Envelope.of(events.FeedbackReceived(
                feedback_id=f"k{i}", unit_id=window.unit, channel="window", occurred_at=moment, year=moment.year,
                level=5, window_id=window.id), source="feedback-intake", key=window.unit))])
            await asyncio.sleep(0.05)
        elapsed = asyncio.get_running_loop().time() - started
        consumer = app.state.runtime.consumers[0]
        during = evaluator.evaluations
        await bus.stop()
    assert consumer.applied >= 50
    # Once every evaluate_within_s (plus the pass itself), where plain debouncing would not have run at all.
    assert during >= 2, (during, elapsed)


async def test_evaluations_racing_on_one_cell_issue_one_notice(
        backend: str, tmp_path: Path, city: CityProfile, unused_tcp_port: int, token: Any, eventually: Any) -> None:
    """The commission's run and the service's own sweep at the same moment: one notice, and neither fails.

    On PostgreSQL both may read "no notice open" before either writes (forced here): the cell's open
    key makes the second's insert do nothing. On SQLite the writers take turns on one connection that
    holds the write lock from a transaction's start (db.writer_engine), so the second evaluation waits
    for the first and finds its notice open.
    """
    from notices import service

    async with contextlib.AsyncExitStack() as stack:
        url = ("" if backend == "sqlite" else await stack.enter_async_context(
            db.scratch_database(os.environ["YARDSTICK_TEST_PG_ADMIN_URL"], "yt_notices_race")))
        client, app, bus, _inbox, _receiver = await stack.enter_async_context(
            running_notices(tmp_path, city, unused_tcp_port, database_url=url))
        await _race_one_cell(client, app, bus, service, token, eventually, interleave=backend != "sqlite")


async def _race_one_cell(client: httpx.AsyncClient, app: Any, bus: MemoryBus, service: Any, token: Any,
                         eventually: Any, *, interleave: bool) -> None:
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}
    day = date(2026, 4, 15)
    envelopes = [complaint("health-commission", "seeing-a-doctor", day - timedelta(days=d), d)
                 for d in range(12, 60, 4)]
    envelopes += [complaint("health-commission", "seeing-a-doctor", day - timedelta(days=i % 5), 100 + i)
                  for i in range(10)]
    await bus.publish([encode(e) for e in envelopes])
    consumer = app.state.runtime.consumers[0]
    await eventually(lambda: consumer.applied == len(envelopes))
    runtime, calendar = app.state.runtime, app.state.calendar
    # Interleaved, both evaluations have read "no notice open" before either writes: the state the race leaves.
    looked = asyncio.Barrier(2)
    original = service.repository.open_notice

    async def open_notice_then_wait(session: Any, key: str) -> Any:
        found = await original(session, key)
        await looked.wait()
        return found

    async def evaluate() -> service.Evaluation:
        async with runtime.transaction() as session:
            return await service.evaluate(session, city=runtime.city, calendar=calendar, today=day,
                                          now=datetime.now(UTC))

    if interleave:
        service.repository.open_notice = open_notice_then_wait
    try:
        results = await asyncio.wait_for(asyncio.gather(evaluate(), evaluate()), timeout=30)
    finally:
        service.repository.open_notice = original
    assert sorted(len(r.issued) for r in results) == [0, 1]
    listed = (await client.get("/v1/notices", params={"unit_id": "health-commission"}, headers=commission)).json()
    assert len(listed["items"]) == 1
    for _ in range(200):  # the outbox relayed: exactly one notice.issued went out
        if not await runtime.relay.pending():
            break
        await asyncio.sleep(0.05)
    issued = [m for m in bus.logs.get(events.NOTICES, []) if m.header("ce_type") == b"notice.issued"]
    assert len(issued) == 1


def _json(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "content-type": "application/json"}


def _plan(due: str, *, actions: str = '["a"]', metric: str = '"m"', target: str = "2") -> str:
    """A plan as raw JSON text: what a client may send that json.dumps would not write."""
    return ('{"actions": ' + actions + ', "commitment": {"metric": ' + metric + ', "target": ' + target
            + ', "due": "' + due + '"}}')


async def _refused_plans(client: httpx.AsyncClient, nid: str, headers: dict[str, str],
                         cases: Sequence[tuple[str, str]]) -> list[str]:
    """Each (field, raw plan) is a 422 whose message names the field; the messages, in order."""
    messages = []
    for field, body in cases:
        r = await client.post(f"/v1/notices/{nid}/plan", content=body, headers=_json(headers))
        assert r.status_code == 422, r.text
        message = str(r.json()["error"]["message"])
        assert field in message, message
        messages.append(message)
    return messages


async def _acknowledged_notice(client: httpx.AsyncClient, app: Any, bus: MemoryBus, eventually: Any,
                               commission: dict[str, str], health: dict[str, str]) -> str:
    day = date(2026, 4, 15)
    envelopes = [complaint("health-commission", "seeing-a-doctor", day - timedelta(days=i % 5), i) for i in range(6)]
    await bus.publish([encode(e) for e in envelopes])
    consumer = app.state.runtime.consumers[0]
    await eventually(lambda: consumer.applied == len(envelopes))
    [nid] = (await client.post("/v1/rules:evaluate", json={"day": day.isoformat()}, headers=commission)
             ).json()["issued"]
    assert (await client.post(f"/v1/notices/{nid}/acknowledge", headers=health)).status_code == 200
    return str(nid)


async def test_a_day_before_2000_is_not_evaluated(
        notices_app: tuple[httpx.AsyncClient, Any, MemoryBus, Inbox, Receiver], token: Any) -> None:
    """The detectors look back up to 455 days: from year 1 the date arithmetic overflowed (a 500)."""
    client = notices_app[0]
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}
    for day in ("0001-01-03", "1999-12-31"):
        r = await client.post("/v1/rules:evaluate", json={"day": day}, headers=commission)
        assert r.status_code == 422, r.text
        assert "before 2000-01-01" in r.json()["error"]["message"]
    assert (await client.post("/v1/rules:evaluate", json={"day": "2000-01-01"}, headers=commission)
            ).status_code == 200


async def test_a_plan_with_personal_contact_data_is_refused_and_nothing_published(
        notices_app: tuple[httpx.AsyncClient, Any, MemoryBus, Inbox, Receiver], token: Any, eventually: Any) -> None:
    """notices.md: the public register shows the plan and never any personal data (nor may events carry it)."""
    client, app, bus, _inbox, _receiver = notices_app
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}
    health = {"Authorization": f"Bearer {token('coordinator', unit_id='health-commission', subject='c1')}"}
    nid = await _acknowledged_notice(client, app, bus, eventually, commission, health)
    due = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    for message in await _refused_plans(client, nid, health, (
            ("actions.1", _plan(due, actions='["evening clinics", "联系人王五 13900001111"]')),
            ("commitment.metric", _plan(due, metric='"complaints (ask wangwu@example.com)"')),
            ("commitment.target", _plan(due, target='"call +86 139-0000-1111"')))):
        assert "personal data" in message, message
    [listed] = (await client.get("/v1/public/notices")).json()["items"]
    assert listed["status"] == "acknowledged" and not listed.get("actions")
    assert not [m for m in bus.logs.get(events.NOTICES, []) if b"13900001111" in m.value or b"wangwu" in m.value]
    r = await client.post(f"/v1/notices/{nid}/plan", content=_plan(due, actions='["evening clinics, 12345 hotline"]'),
                          headers=_json(health))
    assert r.status_code == 200, r.text


async def test_nan_and_infinity_are_refused_and_the_register_keeps_answering(
        notices_app: tuple[httpx.AsyncClient, Any, MemoryBus, Inbox, Receiver], token: Any, eventually: Any) -> None:
    """Python's JSON parser takes NaN and Infinity; a plan holding one made every page of the public
    register that showed it a 500."""
    client, app, bus, _inbox, _receiver = notices_app
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}
    health = {"Authorization": f"Bearer {token('coordinator', unit_id='health-commission', subject='c1')}"}
    for value in ("NaN", "Infinity", "-Infinity"):
        r = await client.put("/v1/rules/satisfaction-drop", content='{"drop": ' + value + "}",
                             headers=_json(commission))
        assert r.status_code == 422, r.text
    nid = await _acknowledged_notice(client, app, bus, eventually, commission, health)
    due = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    for target in ("NaN", "Infinity", "-Infinity", "1e999"):
        r = await client.post(f"/v1/notices/{nid}/plan", content=_plan(due, target=target), headers=_json(health))
        assert r.status_code == 422, (target, r.text)
        assert "commitment.target" in r.json()["error"]["message"]
    r = await client.post(f"/v1/notices/{nid}/plan", content=_plan(due, target="2.5"), headers=_json(health))
    assert r.status_code == 200, r.text
    r = await client.get("/v1/public/notices")
    assert r.status_code == 200 and r.json()["items"][0]["commitment"]["target"] == 2.5


async def test_nul_and_lone_surrogates_are_refused_naming_the_field(
        backend: str, tmp_path: Path, city: CityProfile, unused_tcp_port: int, token: Any, eventually: Any) -> None:
    """PostgreSQL text cannot hold NUL, and a lone surrogate has no UTF-8 form: either was a 500 there."""
    async with contextlib.AsyncExitStack() as stack:
        url = ("" if backend == "sqlite" else await stack.enter_async_context(
            db.scratch_database(os.environ["YARDSTICK_TEST_PG_ADMIN_URL"], "yt_notices_nul")))
        client, app, bus, _inbox, _receiver = await stack.enter_async_context(
            running_notices(tmp_path, city, unused_tcp_port, database_url=url))
        await _refuses_unstorable_text(client, app, bus, token, eventually)


async def _refuses_unstorable_text(client: httpx.AsyncClient, app: Any, bus: MemoryBus, token: Any,
                                   eventually: Any) -> None:
    commission = {"Authorization": f"Bearer {token('commission', subject='staff')}"}
    health = {"Authorization": f"Bearer {token('coordinator', unit_id='health-commission', subject='c1')}"}
    nid = await _acknowledged_notice(client, app, bus, eventually, commission, health)
    due = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    await _refused_plans(client, nid, health, (("actions.0", _plan(due, actions='["a\\u0000b"]')),
                                               ("commitment.metric", _plan(due, metric='"\\ud800"')),
                                               ("commitment.target", _plan(due, target='"x\\u0000"'))))
    assert (await client.post(f"/v1/notices/{nid}/plan", content=_plan(due), headers=_json(health))
            ).status_code == 200
    for path, body, field in ((f"/v1/notices/{nid}/resolve", '{"text": "done \\udc00"}', "text"),
                              ("/v1/subscriptions", '{"email": "a\\u0000@example.org"}', "email"),
                              ("/v1/subscriptions", '{"unit_id": "health\\u0000", "email": "a@example.org"}',
                               "unit_id")):
        r = await client.post(path, content=body, headers=_json(health))
        assert r.status_code == 422 and field in r.json()["error"]["message"], r.text
    r = await client.post(f"/v1/notices/{nid}/resolve", json={"text": "done"}, headers=health)
    assert r.status_code == 200, r.text
    # Path and query text reaches the database's queries too.
    for path, params, field in ((f"/v1/notices/{nid}%00", {}, "notice_id"),
                                ("/v1/notices", {"status": "x\x00"}, "status"),
                                ("/v1/notices", {"unit_id": "x\x00"}, "unit_id")):
        r = await client.get(path, params=params, headers=commission)
        assert r.status_code == 422 and field in r.json()["error"]["message"], r.text
    r = await client.post(f"/v1/notices/{nid}%00/verify", headers=commission)
    assert r.status_code == 422 and "notice_id" in r.json()["error"]["message"], r.text
