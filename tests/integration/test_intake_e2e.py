"""feedback-intake end to end: every channel on real Kafka and PostgreSQL, with the services as processes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from harness import System, wait_for
from kafka_tools import read_all

from yardstick import auth, events
from yardstick.bus.codec import decode
from yardstick.city import default_city_path, load_city

CITY = load_city(default_city_path())
INTAKE = "feedback-intake"
SOCIAL_SECRET = "e2e-weibo-secret"
# Units and windows no other end-to-end module counts on.
WINDOW = CITY.windows_of("customs")[1]


def token(system: System, role: str, **scope: Any) -> str:
    return auth.issue(system.secret, role=role, **scope)[0]


def published(system: System, topic: str, event_type: str) -> list[Any]:
    messages = asyncio.run(read_all(system.prefix + topic))
    out = []
    for message in messages:
        if message.header("ce_source") != b"feedback-intake":
            continue  # other modules of the session put test messages (a poison one among them) here
        envelope = decode(message)
        if envelope.type == event_type:
            out.append(envelope.data)
    return out


@pytest.fixture(scope="module")
def intake(system: System) -> Iterator[System]:
    """Intake restarted with a social-media secret (the harness starts it without one)."""
    system.env["YARDSTICK_INTAKE_SOCIAL_SECRETS"] = json.dumps({"weibo": SOCIAL_SECRET})
    system.stop(INTAKE)
    system.start(INTAKE)
    yield system


def test_web_and_staff_feedback_reach_the_bus_without_personal_data(intake: System) -> None:
    web = intake.post(INTAKE, "/v1/feedback", json={
        "channel": "web", "text": "淳安县城的公交站没有遮雨棚", "unit_id": "chunan-county", "level": 2,
        "contact": {"phone": "13511112222"}, "client_id": str(uuid.uuid4())})
    assert web.status_code == 201, web.text
    staff = intake.post(INTAKE, "/v1/feedback", token(intake, "staff", subject="hall-3"), json={
        "channel": "exhibit_hall", "text": "Hawkers block the pavement near the hall", "unit_id": "chunan-county"})
    assert staff.status_code == 201, staff.text
    ids = {web.json()["id"], staff.json()["id"]}

    def arrived() -> list[Any]:
        found = [e for e in published(intake, events.FEEDBACK, "feedback.received") if e.feedback_id in ids]
        return found if len(found) == 2 else []

    found = wait_for(arrived, what="both feedback.received events on Kafka")
    assert {e.channel for e in found} == {"web", "exhibit_hall"}
    assert all(e.unit_id == "chunan-county" and e.has_text for e in found)
    assert "13511112222" not in json.dumps([e.model_dump(mode="json") for e in found])
    code = web.json()["tracking_code"]
    assert intake.get(INTAKE, f"/v1/feedback/{code}").json()["status"] == "routed"


def test_concurrent_retries_of_one_batch_are_counted_once(intake: System) -> None:
    kiosk = token(intake, "kiosk", window_id=WINDOW.id, subject="e2e-intake-kiosk")
    start = datetime.now(UTC) - timedelta(hours=2)
    batch = {"ratings": [{"id": str(uuid.uuid4()), "window_id": WINDOW.id, "level": 4,
                          "rated_at": (start + timedelta(seconds=10 * i)).isoformat()} for i in range(100)]}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: intake.post(INTAKE, "/v1/ratings", kiosk, json=batch).json(), range(6)))
    assert sum(a["accepted"] for a in answers) == 100
    assert sum(a["duplicates"] for a in answers) == 500
    ids = {r["id"] for r in batch["ratings"]}

    def counted() -> int:
        return len([e for e in published(intake, events.FEEDBACK, "feedback.received") if e.feedback_id in ids])

    wait_for(lambda: counted() == 100, what="100 rating events")
    assert counted() == 100


def test_social_item_signed_and_idempotent(intake: System) -> None:
    item = {"platform": "weibo", "post_id": f"e2e-{uuid.uuid4()}", "text": "Thick smog over Jiande this week",
            "posted_at": datetime.now(UTC).isoformat()}
    raw = json.dumps(item).encode()
    signature = "sha256=" + hmac.new(SOCIAL_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    url = intake.url(INTAKE) + "/v1/social/items"
    assert httpx.post(url, content=raw, headers={"X-Signature": "sha256=00"}).status_code == 401
    first = httpx.post(url, content=raw, headers={"X-Signature": signature})
    again = httpx.post(url, content=raw, headers={"X-Signature": signature})
    assert first.status_code == 201 and again.status_code == 200, first.text
    assert first.json()["category_id"] == "air-pollution"
    wait_for(lambda: [e for e in published(intake, events.FEEDBACK, "feedback.received")
                      if e.feedback_id == first.json()["id"] and e.channel == "social"], what="the social event")


def test_open311_round_trip(intake: System) -> None:
    services = intake.get(INTAKE, "/open311/v2/services.json").json()
    assert "noise" in {s["service_code"] for s in services}
    created = httpx.post(intake.url(INTAKE) + "/open311/v2/requests.json", data={
        "api_key": token(intake, "citizen"), "service_code": "noise", "description": "Loud bar at night"})
    assert created.status_code == 201, created.text
    request_id = created.json()[0]["service_request_id"]
    status = intake.get(INTAKE, f"/open311/v2/requests/{request_id}.json").json()[0]
    assert status["status"] == "open" and status["agency_responsible"] == "ecology-environment"


def test_unit_response_and_follow_up(intake: System) -> None:
    created = intake.post(INTAKE, "/v1/feedback", json={"channel": "mobile", "text": "建德市区积水严重",
                                                        "unit_id": "jiande-city", "level": 1}).json()
    coordinator = token(intake, "coordinator", unit_id="jiande-city")
    answer = intake.post(INTAKE, f"/v1/units/jiande-city/feedback/{created['id']}/response", coordinator,
                         json={"text": "已疏通排水"})
    assert answer.status_code == 200, answer.text
    follow = intake.post(INTAKE, f"/v1/feedback/{created['tracking_code']}/follow-up", json={"level": 4})
    assert follow.status_code == 200
    wait_for(lambda: [e for e in published(intake, events.FEEDBACK, "feedback.follow_up")
                      if e.feedback_id == created["id"] and e.level == 4], what="the follow-up event")


def test_an_items_moves_share_its_partition_after_it(intake: System) -> None:
    """A move is keyed by the unit the item was announced for: on Kafka the item and its moves sit
    on one partition in order, so no consumer reads a move before its item or two moves swapped."""
    created = intake.post(INTAKE, "/v1/feedback", json={"channel": "web", "text": "淳安县城道路坑洼",
                                                        "unit_id": "chunan-county", "level": 2}).json()
    commission = token(intake, "commission")
    for from_unit, to_unit in (("chunan-county", "tonglu-county"), ("tonglu-county", "linan-district")):
        moved = intake.post(INTAKE, f"/v1/units/{from_unit}/feedback/{created['id']}/reassign", commission,
                            json={"unit_id": to_unit, "reason": "another unit's road"})
        assert moved.status_code == 200, moved.text

    def messages() -> list[Any]:
        found = [m for m in asyncio.run(read_all(intake.prefix + events.FEEDBACK))
                 if m.header("ce_source") == b"feedback-intake" and json.loads(m.value)["feedback_id"] == created["id"]]
        return found if len(found) == 3 else []

    found = wait_for(messages, what="the item and its two moves on Kafka")
    assert {m.partition for m in found} == {found[0].partition}
    ordered = sorted(found, key=lambda m: m.offset)
    assert [(m.header("ce_type"), json.loads(m.value).get("revision")) for m in ordered] == [
        (b"feedback.received", None), (b"feedback.reassigned", 1), (b"feedback.reassigned", 2)]
    assert {m.key for m in ordered} == {b"chunan-county"}


def test_survey_upload(intake: System) -> None:
    commission = token(intake, "commission")
    survey = intake.post(INTAKE, "/v1/surveys", commission, json={
        "year": 2031, "title": "e2e", "strata": [{"id": "a", "population": 10}, {"id": "b", "population": 20}]})
    assert survey.status_code == 201, survey.text
    survey_id = survey.json()["id"]
    lines = "\n".join(json.dumps({"respondent_id": f"h{i}", "stratum": "ab"[i % 2], "ratings": {"tax": 1 + i % 5}})
                      for i in range(40))
    headers = {"Authorization": f"Bearer {commission}", "Content-Type": "application/x-ndjson"}
    url = intake.url(INTAKE) + f"/v1/surveys/{survey_id}/responses"
    body = httpx.post(url, content=lines, headers=headers, timeout=30).json()
    assert body == {"accepted": 40, "duplicates": 0, "rejected": []}
    assert httpx.post(url, content=lines, headers=headers, timeout=30).json()["duplicates"] == 40
    wait_for(lambda: len([e for e in published(intake, events.SURVEY, "survey.response")
                          if e.survey_id == survey_id]) == 40, what="40 survey.response events")


async def _terminate_backends(db_url: str) -> int:
    """End every other session on intake's database, as a PostgreSQL restart or a failover would."""
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return len(await conn.fetch("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        await conn.close()


def test_pooled_connections_the_server_closed_are_replaced_at_checkout(intake: System) -> None:
    """The pool has no pre-ping round trips (yardstick.db.make_engine): a connection whose backend
    is gone is dropped when it is checked out, so the next requests are served, not answered 503."""
    def post() -> httpx.Response:
        return intake.post(INTAKE, "/v1/feedback", json={"channel": "web", "text": "候车室太冷", "level": 2,
                                                         "unit_id": "chunan-county", "client_id": str(uuid.uuid4())})

    with ThreadPoolExecutor(max_workers=4) as pool:  # several pooled connections
        assert {r.status_code for r in pool.map(lambda _: post(), range(8))} == {201}
    assert asyncio.run(_terminate_backends(intake.db_urls[INTAKE])) >= 1
    time.sleep(0.5)  # the service's event loop reads the EOF of each closed connection
    answers = [post() for _ in range(8)]
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers if r.status_code != 201]
