"""Tests of feedback intake (api.md, feedback-intake): channels, routing, the unit's side, follow-up, limits."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from feedback_intake import repository, service
from feedback_intake.deadlines import add_working_days
from feedback_intake.limits import RateLimiter
from feedback_intake.models import feedback
from feedback_intake.service import NewFeedback
from yardstick.city import UNCATEGORISED
from yardstick.errors import ApiError
from yardstick.events import FeedbackReceived, NoticeIssued

INTAKE = "feedback-intake"


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def outbox_payloads(system: Any, event_type: str) -> list[dict[str, Any]]:
    return await system.emitted(INTAKE, event_type)


async def keys_of(system: Any, feedback_id: str) -> list[tuple[str, str]]:
    """(type, Kafka key) of every event of the item on the bus, in order."""
    await system.emitted(INTAKE, "feedback.received")  # the outbox published
    return [(m.header("ce_type").decode(), m.key.decode()) for log in system.bus.logs.values() for m in log
            if m.header("ce_source") == INTAKE.encode() and json.loads(m.value).get("feedback_id") == feedback_id]


async def post(system: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return await system.intake.post("/v1/feedback", json=body, headers=headers or {})


async def test_web_feedback_is_classified_routed_and_announced_without_personal_data(system: Any) -> None:
    response = await post(system, {"channel": "web", "text": "医院挂号排了一整天也没挂上专家号", "level": 1,
                                   "contact": {"phone": "13800000000", "email": "a@example.org"}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["category_id"] == "seeing-a-doctor" and body["unit_id"] == "health-commission"
    assert body["status"] == "received" and len(body["tracking_code"]) == 12
    payloads = await outbox_payloads(system, "feedback.received")
    mine = [p for p in payloads if p["feedback_id"] == body["id"]]
    assert len(mine) == 1
    assert mine[0]["channel"] == "web" and mine[0]["has_text"] is True and mine[0]["level"] == 1
    assert mine[0]["category_id"] == "seeing-a-doctor"
    # Written without the model (events.prepare): every field, each as the model writes it.
    assert FeedbackReceived.model_validate(mine[0]).model_dump(mode="json") == mine[0]
    flat = json.dumps(payloads, ensure_ascii=False)
    assert "13800000000" not in flat and "example.org" not in flat and "挂号排了" not in flat


async def test_contact_is_encrypted_at_rest(system: Any) -> None:
    body = (await post(system, {"channel": "mobile", "text": "垃圾桶满了没人清运",
                                "contact": {"phone": "13912345678"}})).json()
    runtime = system.runtime(INTAKE)
    from feedback_intake.models import feedback
    async with runtime.transaction() as session:
        stored = (await session.execute(feedback.select().where(feedback.c.id == body["id"]))).first()
    assert stored.contact and "13912345678" not in stored.contact


async def test_retry_with_the_same_client_id_is_stored_once(system: Any) -> None:
    client_id = str(uuid.uuid4())
    item = {"channel": "web", "unit_id": "tax", "level": 2, "client_id": client_id}
    first = await post(system, item)
    second = await post(system, item)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json() == second.json()
    payloads = await outbox_payloads(system, "feedback.received")
    assert len([p for p in payloads if p["feedback_id"] == first.json()["id"]]) == 1
    # The same id with another body is not a retry: no receipt (and tracking code) of someone else's item.
    other = await post(system, {**item, "level": 5})
    assert other.status_code == 409 and first.json()["tracking_code"] not in other.text
    # Ids must be UUIDs: counters ("1", "2", ...) would collide between apps.
    assert (await post(system, {**item, "client_id": "1"})).status_code == 422


@pytest.mark.parametrize(("change", "where"), [
    ({"unit_id": "no-such-unit"}, "unit_id"), ({"window_id": "no-such-window"}, "window_id"),
    ({"category_id": "no-such-category"}, "category_id"), ({"channel": "fax"}, "channel"),
    ({"text": "x" * 4001}, "text"), ({"level": 6}, "level"),
])
async def test_unknown_ids_and_bad_values_are_422(system: Any, change: dict[str, Any], where: str) -> None:
    response = await post(system, {"channel": "web", "level": 3, "unit_id": "tax", **change})
    assert response.status_code == 422, response.text
    assert where in json.dumps(response.json()["error"])


async def test_a_level_or_a_text_is_required(system: Any) -> None:
    response = await post(system, {"channel": "web", "unit_id": "tax"})
    assert response.status_code == 422 and "level or a text" in response.json()["error"]["message"]


@pytest.mark.parametrize(("offset", "status"), [
    (timedelta(minutes=4, seconds=50), 201), (timedelta(minutes=5, seconds=10), 422),
    (-timedelta(days=29, hours=23), 201), (-timedelta(days=30, minutes=1), 422),
])
async def test_submitted_at_obeys_the_rating_bounds(system: Any, offset: timedelta, status: int) -> None:
    at = datetime.now(UTC) + offset
    response = await post(system, {"channel": "web", "unit_id": "tax", "level": 4, "submitted_at": at.isoformat()})
    assert response.status_code == status, response.text


async def test_staff_channels_need_a_staff_token(system: Any, token: Any) -> None:
    item = {"channel": "hotline", "text": "市民来电反映小区噪音扰民", "level": 2}
    assert (await post(system, item)).status_code == 401
    assert (await post(system, item, bearer(token("citizen")))).status_code == 403
    ok = await post(system, item, bearer(token("staff", subject="hotline-7")))
    assert ok.status_code == 201 and ok.json()["category_id"] == "noise"


async def test_caller_named_unit_wins_over_the_category_default(system: Any) -> None:
    body = (await post(system, {"channel": "web", "text": "停车位太少", "unit_id": "xihu-district"})).json()
    assert body["unit_id"] == "xihu-district" and body["category_id"] == "parking"


async def test_unclear_text_goes_to_the_commission_queue_until_routed(system: Any, token: Any) -> None:
    body = (await post(system, {"channel": "web", "text": "thank you very much"})).json()
    assert body["category_id"] == UNCATEGORISED and body["unit_id"] is None
    assert not [p for p in await outbox_payloads(system, "feedback.received") if p["feedback_id"] == body["id"]]
    commission = bearer(token("commission"))
    queue = (await system.intake.get("/v1/queue/feedback", headers=commission)).json()
    assert body["id"] in [i["id"] for i in queue["items"]]
    routed = await system.intake.post(f"/v1/queue/feedback/{body['id']}/route", headers=commission,
                                      json={"unit_id": "letters-visits", "reason": "general complaint"})
    assert routed.status_code == 200 and routed.json()["unit_id"] == "letters-visits"
    events = [p for p in await outbox_payloads(system, "feedback.received") if p["feedback_id"] == body["id"]]
    assert len(events) == 1 and events[0]["unit_id"] == "letters-visits" and events[0]["category_id"] is None
    # Moved on later: keyed by the unit it was routed to, as its feedback.received was.
    moved = await system.intake.post(f"/v1/units/letters-visits/feedback/{body['id']}/reassign", headers=commission,
                                      json={"unit_id": "tax", "reason": "a tax question"})
    assert moved.status_code == 200, moved.text
    assert await keys_of(system, body["id"]) == [("feedback.received", "letters-visits"),
                                                 ("feedback.reassigned", "letters-visits")]


async def test_unit_lists_responds_and_citizen_follows_up_once(system: Any, token: Any) -> None:
    created = (await post(system, {"channel": "web", "text": "公交车总是不准点", "level": 2})).json()
    code, unit = created["tracking_code"], created["unit_id"]
    assert unit == "public-transport-group"
    coordinator = bearer(token("coordinator", unit_id=unit))
    listing = (await system.intake.get(f"/v1/units/{unit}/feedback?status=routed", headers=coordinator)).json()
    item = next(i for i in listing["items"] if i["id"] == created["id"])
    assert item["text"] == "公交车总是不准点" and item["overdue"] is False
    assert item["due"] == add_working_days(datetime.now(UTC).astimezone(system.runtime(INTAKE).city.timezone).date(),
                                           15).isoformat()
    early = await system.intake.post(f"/v1/feedback/{code}/follow-up", json={"level": 4})
    assert early.status_code == 409
    other = bearer(token("coordinator", unit_id="tax"))
    assert (await system.intake.get(f"/v1/units/{unit}/feedback", headers=other)).status_code == 403
    answer = await system.intake.post(f"/v1/units/{unit}/feedback/{created['id']}/response", headers=coordinator,
                                      json={"text": "已调整发车间隔"})
    assert answer.status_code == 200 and answer.json()["status"] == "responded"
    again = await system.intake.post(f"/v1/units/{unit}/feedback/{created['id']}/response", headers=coordinator,
                                     json={"text": "again"})
    assert again.status_code == 409
    status = (await system.intake.get(f"/v1/feedback/{code}")).json()
    assert status["status"] == "responded" and status["response"]["text"] == "已调整发车间隔"
    assert (await system.intake.post(f"/v1/feedback/{code}/follow-up", json={"level": 4})).status_code == 200
    assert (await system.intake.post(f"/v1/feedback/{code}/follow-up", json={"level": 5})).status_code == 409
    follow = [p for p in await outbox_payloads(system, "feedback.follow_up") if p["feedback_id"] == created["id"]]
    assert [f["level"] for f in follow] == [4]
    responded = [p for p in await outbox_payloads(system, "feedback.responded") if p["feedback_id"] == created["id"]]
    assert len(responded) == 1 and responded[0]["overdue"] is False


async def test_contact_only_for_the_routed_units_coordinator_and_audited(system: Any, token: Any) -> None:
    created = (await post(system, {"channel": "web", "text": "社保卡补办太慢",
                                   "contact": {"phone": "13700001111"}})).json()
    unit = created["unit_id"]
    path = f"/v1/units/{unit}/feedback/{created['id']}"
    assert (await system.intake.get(path + "/contact", headers=bearer(token("commission")))).status_code == 403
    assert (await system.intake.get(path + "/contact",
                                    headers=bearer(token("coordinator", unit_id="tax")))).status_code == 403
    coordinator = bearer(token("coordinator", unit_id=unit))
    contact = await system.intake.get(path + "/contact", headers=coordinator)
    assert contact.status_code == 200 and contact.json()["phone"] == "13700001111"
    public = (await system.intake.get(f"/v1/feedback/{created['tracking_code']}")).text
    assert "13700001111" not in public
    trail = (await system.intake.get(path + "/audit", headers=coordinator)).json()["items"]
    assert [t["action"] for t in trail] == ["contact_read"]


async def test_reassign_moves_the_item_and_is_audited(system: Any, token: Any) -> None:
    created = (await post(system, {"channel": "web", "text": "小区门口积水严重", "level": 1})).json()
    unit = created["unit_id"]
    coordinator = bearer(token("coordinator", unit_id=unit))
    path = f"/v1/units/{unit}/feedback/{created['id']}/reassign"
    bad = await system.intake.post(path, headers=coordinator, json={"unit_id": "nowhere", "reason": "x"})
    assert bad.status_code == 422
    moved = await system.intake.post(path, headers=coordinator, json={"unit_id": "xihu-district",
                                                                      "reason": "a district road"})
    assert moved.status_code == 200 and moved.json()["unit_id"] == "xihu-district"
    assert (await system.intake.post(path, headers=coordinator,
                                     json={"unit_id": "tax", "reason": "again"})).status_code == 404
    events = [p for p in await outbox_payloads(system, "feedback.reassigned") if p["feedback_id"] == created["id"]]
    assert len(events) == 1 and events[0]["from_unit_id"] == unit and events[0]["unit_id"] == "xihu-district"
    trail = (await system.intake.get(f"/v1/units/xihu-district/feedback/{created['id']}/audit",
                                     headers=bearer(token("commission")))).json()["items"]
    assert trail[0]["action"] == "reassign" and trail[0]["detail"]["reason"] == "a district road"
    # Moved on again by the commission: the second move carries revision 2.
    again = await system.intake.post(f"/v1/units/xihu-district/feedback/{created['id']}/reassign",
                                     headers=bearer(token("commission")), json={"unit_id": "tax", "reason": "tax"})
    assert again.status_code == 200
    events = [p for p in await outbox_payloads(system, "feedback.reassigned") if p["feedback_id"] == created["id"]]
    assert [(e["unit_id"], e["revision"]) for e in events] == [("xihu-district", 1), ("tax", 2)]
    # Every move keyed by the unit the item was announced for: on the item's partition, a consumer
    # reads the moves after the item and in order (a move keyed by its new unit could overtake it).
    assert await keys_of(system, created["id"]) == [("feedback.received", unit), ("feedback.reassigned", unit),
                                                    ("feedback.reassigned", unit)]


async def stale_reads(system: Any, monkeypatch: pytest.MonkeyPatch, feedback_id: str) -> None:
    """The next reads of the item answer what it is now, whatever commits meanwhile: the READ
    COMMITTED interleaving of PostgreSQL (read, another transaction commits, update), which
    SQLite's one writer at a time never produces on its own."""
    async with system.runtime(INTAKE).transaction() as session:
        stale = await repository.feedback_where(session, feedback.c.id == feedback_id)

    async def read_before_the_commit(session: Any, unit_id: str | None, wanted: str) -> Any:
        return stale

    monkeypatch.setattr(service, "_unit_item", read_before_the_commit)


async def test_a_response_committed_during_a_reassign_keeps_the_item(system: Any, token: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    created = (await post(system, {"channel": "web", "unit_id": "tax", "level": 2, "text": "办税大厅排队太久"})).json()
    path = f"/v1/units/tax/feedback/{created['id']}"
    await stale_reads(system, monkeypatch, created["id"])  # the reassign reads first ...
    answer = await system.intake.post(f"{path}/response", headers=bearer(token("coordinator", unit_id="tax")),
                                      json={"text": "已增开窗口"})  # ... the response commits ...
    assert answer.status_code == 200, answer.text
    moved = await system.intake.post(f"{path}/reassign", headers=bearer(token("commission")),
                                     json={"unit_id": "finance", "reason": "wrong unit"})  # ... then it updates
    assert moved.status_code == 409, moved.text
    assert moved.json()["error"]["message"] == "a responded item stays with the unit that responded"
    monkeypatch.undo()
    status = (await system.intake.get(f"/v1/feedback/{created['tracking_code']}")).json()
    assert status["unit_id"] == "tax" and status["status"] == "responded"
    assert not [p for p in await outbox_payloads(system, "feedback.reassigned") if p["feedback_id"] == created["id"]]


async def test_a_response_that_loses_to_a_reassign_is_told_the_item_moved(system: Any, token: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    created = (await post(system, {"channel": "web", "unit_id": "tax", "level": 2, "text": "办税大厅排队太久"})).json()
    path = f"/v1/units/tax/feedback/{created['id']}"
    await stale_reads(system, monkeypatch, created["id"])  # the response reads first ...
    moved = await system.intake.post(f"{path}/reassign", headers=bearer(token("commission")),
                                     json={"unit_id": "finance", "reason": "wrong unit"})  # ... the move commits
    assert moved.status_code == 200, moved.text
    answer = await system.intake.post(f"{path}/response", headers=bearer(token("coordinator", unit_id="tax")),
                                      json={"text": "已增开窗口"})
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["message"] == "the feedback was moved to another unit meanwhile; reload it"
    monkeypatch.undo()
    status = (await system.intake.get(f"/v1/feedback/{created['tracking_code']}")).json()
    assert status["unit_id"] == "finance" and status["status"] == "routed"


async def test_a_notice_links_the_feedback_it_names(system: Any, eventually: Any) -> None:
    created = (await post(system, {"channel": "web", "text": "工地夜间施工噪音", "level": 1})).json()
    runtime = system.runtime(INTAKE)
    from yardstick.events import Envelope
    notice = NoticeIssued(notice_id="n-1", unit_id=created["unit_id"], rule="complaint-recurrence", subject="noise",
                          severity="normal", issued_at=datetime.now(UTC), year=datetime.now(UTC).year,
                          feedback_ids=[created["id"]])
    async with runtime.transaction() as session:
        await runtime.emit(session, [Envelope.of(notice, source="notices", key=created["unit_id"])])

    async def linked() -> bool:
        status = (await system.intake.get(f"/v1/feedback/{created['tracking_code']}")).json()
        return status["status"] == "in_rectification" and status["notice"] == {"id": "n-1"}

    await eventually(linked)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_social_items_are_signed_idempotent_and_complaints(system: Any) -> None:
    system.apps[INTAKE].state.settings.social_secrets = {"weibo": "weibo-secret"}
    item = {"platform": "weibo", "post_id": "p-1", "text": "地铁早高峰太挤了",
            "posted_at": datetime.now(UTC).isoformat(), "author_hash": "abc"}
    raw = json.dumps(item, ensure_ascii=False).encode()
    unsigned = await system.intake.post("/v1/social/items", content=raw)
    assert unsigned.status_code == 401
    wrong = await system.intake.post("/v1/social/items", content=raw, headers={"X-Signature": sign("other", raw)})
    assert wrong.status_code == 401
    # A header with non-ASCII bytes is a bad signature too, not a server error.
    crafted = await system.intake.post("/v1/social/items", content=raw,
                                       headers=[(b"X-Signature", "sha256=é".encode("latin-1"))])
    assert crafted.status_code == 401
    signed = {"X-Signature": sign("weibo-secret", raw)}
    first = await system.intake.post("/v1/social/items", content=raw, headers=signed)
    again = await system.intake.post("/v1/social/items", content=raw, headers=signed)
    assert first.status_code == 201 and again.status_code == 200 and first.json() == again.json()
    assert first.json()["category_id"] == "metro"
    events = [p for p in await outbox_payloads(system, "feedback.received") if p["feedback_id"] == first.json()["id"]]
    assert len(events) == 1 and events[0]["channel"] == "social" and events[0]["level"] is None
    assert "abc" not in json.dumps(events)


async def test_a_social_body_nested_too_deeply_is_a_bad_signature(system: Any) -> None:
    system.apps[INTAKE].state.settings.social_secrets = {"weibo": "weibo-secret"}
    deep = b"[" * 200_000 + b"]" * 200_000  # RecursionError in json.loads, before any signature check
    response = await system.intake.post("/v1/social/items", content=deep, headers={"X-Signature": "sha256=00"})
    assert response.status_code == 401 and response.json()["error"]["message"] == "bad or missing signature"


async def test_a_redelivered_social_post_with_edited_text_answers_the_stored_receipt(system: Any) -> None:
    system.apps[INTAKE].state.settings.social_secrets = {"weibo": "weibo-secret"}
    item = {"platform": "weibo", "post_id": "p-edited", "text": "地铁早高峰太挤了",
            "posted_at": datetime.now(UTC).isoformat()}
    raw = json.dumps(item, ensure_ascii=False).encode()
    first = await system.intake.post("/v1/social/items", content=raw,
                                     headers={"X-Signature": sign("weibo-secret", raw)})
    edited = json.dumps({**item, "text": "地铁早高峰太挤了（已编辑）"}, ensure_ascii=False).encode()
    again = await system.intake.post("/v1/social/items", content=edited,
                                     headers={"X-Signature": sign("weibo-secret", edited)})
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json() == first.json()
    async with system.runtime(INTAKE).transaction() as session:
        stored = await repository.feedback_where(session, feedback.c.id == first.json()["id"])
    assert stored.text == "地铁早高峰太挤了"  # the first delivery stands
    events = [p for p in await outbox_payloads(system, "feedback.received") if p["feedback_id"] == first.json()["id"]]
    assert len(events) == 1


async def test_a_retry_after_the_horizon_answers_the_stored_receipt(system: Any) -> None:
    """As a kiosk's rating id: a stored item's retry is a retry whatever its age."""
    intake = system.apps[INTAKE].state.intake
    now = datetime.now(UTC)
    at = now - timedelta(days=29, hours=23)
    later = now + timedelta(hours=2)  # `at` is past the 30-day horizon by then
    web = NewFeedback(channel="web", unit_id="tax", level=2, text="窗口太少", client_id=str(uuid.uuid4()),
                      submitted_at=at)
    social = NewFeedback(channel="social", text="地铁早高峰太挤了", platform="weibo", post_id="p-old", submitted_at=at)
    for item in (web, social):
        first, created = await service.create_feedback(intake, item, now=now)
        again, created_again = await service.create_feedback(intake, item, now=later)
        assert created and not created_again and again == first
    # Not a retry: a new item, or another body under the used client_id, still meets the bound.
    for item in (NewFeedback(channel="web", unit_id="tax", level=2, client_id=str(uuid.uuid4()), submitted_at=at),
                 NewFeedback(channel="web", unit_id="tax", level=5, client_id=web.client_id, submitted_at=at)):
        with pytest.raises(ApiError) as refused:
            await service.create_feedback(intake, item, now=later)
        assert refused.value.status == 422 and "30-day horizon" in refused.value.message


NUL, SURROGATE = "\x00", "\ud800"  # PostgreSQL text cannot hold NUL (SQLSTATE 22021); a surrogate has no UTF-8


async def stored_feedback(system: Any) -> list[Any]:
    async with system.runtime(INTAKE).transaction() as session:
        return list((await session.execute(feedback.select())).all())


def names(error: dict[str, Any], field: str) -> bool:
    return field in error["message"] and field.split(".")[-1] in json.dumps(error["details"])


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
async def test_feedback_the_database_cannot_hold_is_422_naming_the_field(system: Any, bad: str) -> None:
    changes: list[tuple[str, dict[str, Any]]] = [
        ("text", {"text": f"窗口{bad}太少"}), ("unit_id", {"unit_id": f"ta{bad}x"}),
        ("contact.phone", {"contact": {"phone": f"138{bad}"}})]
    for field, change in changes:
        body = json.dumps({"channel": "web", "level": 2, "unit_id": "tax", **change})  # ASCII: \u0000, \ud800
        response = await system.intake.post("/v1/feedback", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and names(response.json()["error"], field), response.text
    assert await stored_feedback(system) == []


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
async def test_a_response_or_reason_the_database_cannot_hold_is_422(system: Any, token: Any, bad: str) -> None:
    created = (await post(system, {"channel": "web", "unit_id": "tax", "level": 2})).json()
    path = f"/v1/units/tax/feedback/{created['id']}"
    headers = {**bearer(token("coordinator", unit_id="tax")), "Content-Type": "application/json"}
    answer = await system.intake.post(f"{path}/response", headers=headers, content=json.dumps({"text": f"已{bad}处理"}))
    assert answer.status_code == 422 and names(answer.json()["error"], "text"), answer.text
    moved = await system.intake.post(f"{path}/reassign", headers=headers,
                                     content=json.dumps({"unit_id": "finance", "reason": f"wrong{bad}"}))
    assert moved.status_code == 422 and names(moved.json()["error"], "reason"), moved.text
    [row] = await stored_feedback(system)
    assert row.unit_id == "tax" and row.response_text is None


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
async def test_a_social_item_the_database_cannot_hold_is_422(system: Any, bad: str) -> None:
    system.apps[INTAKE].state.settings.social_secrets = {"weibo": "weibo-secret"}
    for field in ("text", "post_id", "url"):
        item = {"platform": "weibo", "post_id": "p-1", "text": "地铁太挤", "posted_at": datetime.now(UTC).isoformat()}
        raw = json.dumps({**item, field: f"{item.get(field, 'https://weibo.example/p-1')}{bad}"}).encode()
        response = await system.intake.post("/v1/social/items", content=raw,
                                            headers={"X-Signature": sign("weibo-secret", raw)})
        assert response.status_code == 422 and names(response.json()["error"], field), response.text
    assert await stored_feedback(system) == []


async def test_an_open311_field_with_nul_is_422(system: Any, token: Any) -> None:
    """%00 decodes to NUL; an encoded surrogate cannot arrive (the form is decoded as strict UTF-8)."""
    for field in ("description", "phone"):
        form = {"api_key": token("citizen"), "service_code": "noise", "description": "Loud music every night"}
        form[field] = form.get(field, "138") + NUL
        response = await system.intake.post("/open311/v2/requests.json", data=form)
        assert response.status_code == 422 and names(response.json()["error"], field), response.text
    assert await stored_feedback(system) == []


async def test_open311_round_trip(system: Any, token: Any) -> None:
    services = (await system.intake.get("/open311/v2/services.json")).json()
    assert {"seeing-a-doctor", "noise"} <= {s["service_code"] for s in services}
    form = {"api_key": token("citizen"), "service_code": "noise", "description": "Loud music every night",
            "email": "x@example.org", "first_name": "Li"}
    created = await system.intake.post("/open311/v2/requests.json", data=form)
    assert created.status_code == 201, created.text
    request_id = created.json()[0]["service_request_id"]
    status = (await system.intake.get(f"/open311/v2/requests/{request_id}.json")).json()[0]
    assert status["status"] == "open" and status["service_code"] == "noise"
    assert status["agency_responsible"] == "ecology-environment"
    assert "example.org" not in json.dumps(status)
    kiosk = {**form, "api_key": token("kiosk", window_id="finance-w1")}
    assert (await system.intake.post("/open311/v2/requests.json", data=kiosk)).status_code == 403
    unknown = {**form, "service_code": "x"}
    assert (await system.intake.post("/open311/v2/requests.json", data=unknown)).status_code == 422


async def test_anonymous_clients_are_rate_limited_per_install_id(system: Any) -> None:
    system.apps[INTAKE].state.limiter = RateLimiter(rate=0.01, burst=3)
    headers = {"X-Install-Id": "phone-1"}
    statuses = [(await post(system, {"channel": "mobile", "unit_id": "tax", "level": 5}, headers)).status_code
                for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    limited = await post(system, {"channel": "mobile", "unit_id": "tax", "level": 5}, headers)
    assert int(limited.headers["Retry-After"]) >= 1
    other = await post(system, {"channel": "mobile", "unit_id": "tax", "level": 5}, {"X-Install-Id": "phone-2"})
    assert other.status_code == 201


async def test_a_fresh_install_id_per_request_does_not_escape_the_address_limit(system: Any) -> None:
    settings = system.apps[INTAKE].state.settings
    system.apps[INTAKE].state.limiter = RateLimiter(rate=0.01, burst=2)
    statuses = [(await post(system, {"channel": "mobile", "unit_id": "tax", "level": 5},
                            {"X-Install-Id": f"forged-{i}"})).status_code
                for i in range(int(2 * settings.address_rate_scale) + 3)]
    assert statuses[-1] == 429 and statuses.count(201) <= 2 * settings.address_rate_scale


def test_a_shared_address_gets_a_larger_bucket() -> None:
    limiter = RateLimiter(rate=0.0001, burst=2)
    assert [limiter.take("a", now=0.0) for _ in range(3)][-1] > 0
    assert all(limiter.take("b", scale=10, now=0.0) == 0 for _ in range(20))


async def test_body_over_one_mebibyte_is_413(system: Any) -> None:
    response = await system.intake.post("/v1/feedback", content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413


async def test_the_overdue_filter_pages_through_every_item(system: Any, token: Any) -> None:
    """overdue=false and =true each page through all their items (the filter is not applied after LIMIT)."""
    posted = [(await post(system, {"channel": "web", "text": "公交车总是不准点", "level": 2})).json() for _ in range(6)]
    late, fresh = posted[::2], posted[1::2]  # interleaved, so each page of two mixes both kinds
    # Time passes for the late ones: their 15 working days ran out last week.
    async with system.runtime(INTAKE).transaction() as session:
        await session.execute(update(feedback).where(feedback.c.id.in_([i["id"] for i in late]))
                              .values(due=date.today() - timedelta(days=7)))
    unit = late[0]["unit_id"]
    coordinator = bearer(token("coordinator", unit_id=unit))

    async def all_pages(overdue: str) -> list[str]:
        ids: list[str] = []
        cursor: str | None = None
        while True:
            query = f"/v1/units/{unit}/feedback?overdue={overdue}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = (await system.intake.get(query, headers=coordinator)).json()
            assert page["items"] or not ids, "an empty page before the end"
            ids += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return ids

    assert sorted(await all_pages("true")) == sorted(i["id"] for i in late)
    assert sorted(await all_pages("false")) == sorted(i["id"] for i in fresh)
