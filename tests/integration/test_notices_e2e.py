"""notices end to end: feedback events on real Kafka raise a notice, followed through its lifecycle."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from harness import System, wait_for
from kafka_tools import produce, read_all

from yardstick import auth, events
from yardstick.bus.codec import encode
from yardstick.city import default_city_path, load_city

CITY = load_city(default_city_path())
CATEGORY = CITY.categories[-1]  # a cell no other end-to-end module writes to
UNIT = CATEGORY.unit


def bearer(system: System, role: str, **scope: str) -> str:
    token, _ = auth.issue(system.secret, role=role, **scope)
    return token


def complaint(days_ago: int, i: int, now: datetime) -> events.Envelope:
    data = events.FeedbackReceived(feedback_id=f"e2e-{i}", unit_id=UNIT, channel="hotline",
                                   occurred_at=now - timedelta(days=days_ago), year=now.year, level=None,
                                   category_id=CATEGORY.id, has_text=True)
    return events.Envelope.of(data, source="feedback-intake", key=UNIT)


def test_complaints_on_kafka_raise_one_notice_followed_to_verification_attempt(system: System) -> None:
    commission = bearer(system, "commission", subject="staff")
    coordinator = bearer(system, "coordinator", unit_id=UNIT, subject="li-wei-13800000000")
    now = datetime.now(UTC)
    quiet = [complaint(d, d, now) for d in range(10, 60, 4)]
    spike = [complaint(i % 5, 1000 + i, now) for i in range(10)]
    asyncio.run(produce(system.prefix + events.FEEDBACK, [encode(e) for e in quiet + spike]))

    def issued() -> list[dict[str, object]]:
        r = system.get("notices", f"/v1/notices?unit_id={UNIT}", commission)
        return [n for n in r.json()["items"] if n["subject"] == CATEGORY.id]

    # Live evaluation, debounced, with nobody asking.
    notices = wait_for(issued, timeout=90, what="the live evaluation to issue a notice")
    assert len(notices) == 1
    notice = notices[0]
    assert notice["rule"] == "complaint-recurrence" and notice["evidence"]["window_count"] == 10
    # The sweep on request raises nothing new on the same cell.
    r = system.post("notices", "/v1/rules:evaluate", commission)
    assert r.status_code == 200, r.text
    assert len(issued()) == 1
    nid = notice["id"]
    other = bearer(system, "coordinator", unit_id="xihu-district" if UNIT != "xihu-district" else "health-commission")
    assert system.post("notices", f"/v1/notices/{nid}/acknowledge", other).status_code == 403
    assert system.post("notices", f"/v1/notices/{nid}/acknowledge", coordinator).status_code == 200
    due = (now + timedelta(days=30)).date().isoformat()
    assert system.post("notices", f"/v1/notices/{nid}/plan", coordinator, json={
        "actions": ["more staff"], "commitment": {"metric": "complaints per week", "target": 1, "due": due}}
    ).status_code == 200
    assert system.post("notices", f"/v1/notices/{nid}/resolve", coordinator, json={"text": "done"}).status_code == 200
    # The spike is still in the window: verify refuses with the current figures.
    r = system.post("notices", f"/v1/notices/{nid}/verify", commission)
    assert r.status_code == 409 and r.json()["error"]["details"][0]["window_count"] == 10
    # The events went out on notices.v1, with counts and feedback ids only.
    def published() -> list[str]:
        messages = asyncio.run(read_all(system.prefix + events.NOTICES))
        return [m.value.decode() for m in messages if nid.encode() in m.value]

    bodies = wait_for(lambda: len(published()) >= 4 and published(), what="the notice's events on Kafka")
    first = json.loads(bodies[0])
    assert first["rule"] == "complaint-recurrence" and set(first["feedback_ids"]) <= {f"e2e-{1000 + i}"
                                                                                       for i in range(10)}
    assert "li-wei" not in " ".join(bodies) and "13800000000" not in " ".join(bodies)
