"""The foundation's guarantees on real Kafka and PostgreSQL, with the services as processes.

The tests share one running system and run in file order; each uses its own window (and so
its own unit) so their counts never mix.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import REPO, System, control, wait_for
from kafka_tools import produce, read_all, rewind_group

from yardstick import auth, events
from yardstick.bus import Message
from yardstick.bus.codec import encode
from yardstick.city import default_city_path, load_city

CITY = load_city(default_city_path())
# One window of each of six different departments: each test counts on its own unit.
WINDOWS = [CITY.windows_of(u.id)[0] for u in CITY.departments[:7]]


def kiosk(system: System, window_id: str, subject: str | None = None) -> str:
    token, _ = auth.issue(system.secret, role="kiosk", window_id=window_id,
                          subject=subject or f"kiosk-{window_id}")
    return token


def commission(system: System) -> str:
    return auth.issue(system.secret, role="commission", subject="test-commission")[0]


def ratings(window_id: str, levels: list[int], start: datetime | None = None) -> dict[str, object]:
    start = start or datetime.now(UTC) - timedelta(minutes=30)
    return {"ratings": [
        {"id": str(uuid.uuid4()), "window_id": window_id, "level": level,
         "rated_at": (start + timedelta(seconds=10 * i)).isoformat()}
        for i, level in enumerate(levels)]}


def window_n(system: System, unit_id: str) -> int:
    r = system.get("scoring", f"/v1/scorecards/{unit_id}", commission(system))
    r.raise_for_status()
    return int(r.json()["public"]["channels"]["window"]["n"])


def notice_n(system: System, window_id: str) -> int:
    r = system.get("notices", f"/v1/counts/window/{window_id}", commission(system))
    r.raise_for_status()
    return int(r.json()["n"])


def test_rating_is_applied_once_by_scoring_and_once_by_notices(system: System) -> None:
    w = WINDOWS[0]
    body = ratings(w.id, [5, 4, 2])
    r = system.post("feedback-intake", "/v1/ratings", kiosk(system, w.id), json=body)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 3, "duplicates": 0, "suppressed": 0, "rejected": []}
    # The kiosk retries the same batch (lost answer): nothing new is counted.
    again = system.post("feedback-intake", "/v1/ratings", kiosk(system, w.id), json=body)
    assert again.json()["duplicates"] == 3

    wait_for(lambda: window_n(system, w.unit) == 3, what="scoring to count 3 window ratings")
    wait_for(lambda: notice_n(system, w.id) == 3, what="notices to count 3 window ratings")
    time.sleep(2)  # anything applied twice would show up by now
    assert window_n(system, w.unit) == 3
    assert notice_n(system, w.id) == 3
    card = system.get("scoring", f"/v1/scorecards/{w.unit}", commission(system)).json()
    assert card["public"]["channels"]["window"]["mean"] == pytest.approx((1.0 + 0.75 + 0.25) / 3)


def test_redelivered_events_change_nothing(system: System) -> None:
    w = WINDOWS[0]
    before = (window_n(system, w.unit), notice_n(system, w.id))
    assert before == (3, 3)
    for service, group in (("scoring", "scoring"), ("notices", "notices")):
        system.stop(service)
        asyncio.run(rewind_group(system.prefix + group, system.prefix + events.FEEDBACK))
        system.start(service)
    # Every event is delivered again from offset 0 and recognised as already applied.
    wait_for(lambda: system.metric("scoring", "yardstick_events_consumed_total", consumer="scoring",
                                   outcome="duplicate") >= 3, what="scoring to skip the redelivered events")
    wait_for(lambda: system.metric("notices", "yardstick_events_consumed_total", consumer="notices",
                                   outcome="duplicate") >= 3, what="notices to skip the redelivered events")
    assert (window_n(system, w.unit), notice_n(system, w.id)) == before


def test_intake_accepts_while_the_broker_is_down_and_events_follow(system: System) -> None:
    w = WINDOWS[1]
    control("KAFKA", "stop")
    try:
        r = system.post("feedback-intake", "/v1/ratings", kiosk(system, w.id), json=ratings(w.id, [5, 1]))
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 2
        ready = system.get("feedback-intake", "/readyz")
        assert ready.status_code == 200  # the database is fine; the broker is not its business
        wait_for(lambda: system.metric("feedback-intake", "yardstick_outbox_pending",
                                       service="feedback-intake") >= 2, what="events waiting in the outbox")
    finally:
        control("KAFKA", "start")
    wait_for(lambda: window_n(system, w.unit) == 2, timeout=90, what="events after the broker is back")
    wait_for(lambda: notice_n(system, w.id) == 2, timeout=90, what="notices to catch up")


def test_consumer_killed_between_db_commit_and_offset_commit_applies_nothing_twice(system: System) -> None:
    w = WINDOWS[2]
    system.stop("scoring")
    log = open(system.logs / "crash-consumer.log", "wb")
    crasher = subprocess.Popen([sys.executable, str(Path(__file__).with_name("crash_consumer.py"))],
                               env=system.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(5)  # let it join the group and take the partitions
        r = system.post("feedback-intake", "/v1/ratings", kiosk(system, w.id), json=ratings(w.id, [4]))
        assert r.json()["accepted"] == 1
        assert crasher.wait(timeout=90) == 9, (system.logs / "crash-consumer.log").read_text()[-3000:]
    finally:
        if crasher.poll() is None:
            crasher.kill()
    duplicates_before = 0.0
    system.start("scoring")
    # The event comes again (its offset was never committed) and is skipped.
    wait_for(lambda: system.metric("scoring", "yardstick_events_consumed_total", consumer="scoring",
                                   outcome="duplicate") > duplicates_before,
             what="the redelivered event to be recognised")
    assert window_n(system, w.unit) == 1


def test_poison_message_goes_to_the_dlq_and_the_consumer_moves_on(system: System) -> None:
    w = WINDOWS[3]
    topic = system.prefix + events.FEEDBACK
    poison = Message(topic=topic, key=w.unit.encode(), value=b"\xff not json",
                     headers=(("ce_id", b"poison-1"), ("ce_type", b"feedback.received"),
                              ("ce_source", b"test"), ("ce_specversion", b"1.0"),
                              ("content-type", b"application/json")))
    asyncio.run(produce(topic, [poison]))
    r = system.post("feedback-intake", "/v1/ratings", kiosk(system, w.id), json=ratings(w.id, [3]))
    assert r.json()["accepted"] == 1
    wait_for(lambda: window_n(system, w.unit) == 1, what="the good rating after the poison one")

    def dead() -> list[Message]:
        got = asyncio.run(read_all(topic + ".dlq"))
        return [m for m in got if m.header("ce_id") == b"poison-1"]

    letters = wait_for(lambda: len(dead()) >= 2 and dead(), what="both consumers to dead-letter the poison")
    consumers = sorted(m.header("x-consumer").decode() for m in letters)  # type: ignore[union-attr]
    assert consumers == ["notices", "scoring"]
    for m in letters:
        assert m.value == poison.value
        assert b"JSON" in (m.header("x-error") or b"") or b"CloudEvents" in (m.header("x-error") or b"")
        assert m.header("x-attempts") == b"1"
    assert system.metric("scoring", "yardstick_dead_lettered_total", consumer="scoring") >= 1


def test_database_outage_is_retried_not_dead_lettered(system: System) -> None:
    w = WINDOWS[4]
    topic = system.prefix + events.FEEDBACK
    event = events.Envelope.of(
        events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=w.unit, channel="window",
                                occurred_at=datetime.now(UTC), year=datetime.now().year,
                                level=5, window_id=w.id),
        source="test", key=w.unit)
    control("PG", "stop")
    try:
        asyncio.run(produce(topic, [encode(event)]))
        time.sleep(6)  # consumers try, fail on the database, and back off
        assert not [m for m in asyncio.run(read_all(topic + ".dlq"))
                    if m.header("ce_id") == event.id.encode()], "a transient failure was dead-lettered"
        assert system.get("scoring", "/readyz").status_code == 503
    finally:
        control("PG", "start")
    wait_for(lambda: window_n(system, w.unit) == 1, timeout=90, what="the event after the database is back")
    wait_for(lambda: notice_n(system, w.id) == 1, timeout=90, what="notices after the database is back")


def _cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "yardstick"), "token", *args], env=system.env,
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=True)


def test_tokens(system: System) -> None:
    w, other = WINDOWS[5], WINDOWS[6]
    body = ratings(w.id, [5])
    assert system.post("feedback-intake", "/v1/ratings", json=body).status_code == 401
    forged, _ = auth.issue("not-the-secret-but-just-as-long-as-one-0123", role="kiosk", window_id=w.id, subject="k")
    r = system.post("feedback-intake", "/v1/ratings", forged, json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    citizen, _ = auth.issue(system.secret, role="citizen")
    assert system.post("feedback-intake", "/v1/ratings", citizen, json=body).status_code == 403
    r = system.post("feedback-intake", "/v1/ratings", kiosk(system, other.id), json=body)
    assert r.status_code == 403 and w.id in r.json()["error"]["message"]

    issued = _cli(system, "issue", "--role", "kiosk", "--window", w.id, "--subject", "kiosk-cli")
    token = issued.stdout.strip().splitlines()[-1]
    token_id = auth.Authenticator(system.secret, auth.Revocations()).verify(token).token_id
    assert system.post("feedback-intake", "/v1/ratings", token, json=body).status_code == 202
    listed = _cli(system, "list", "--window", w.id).stdout
    assert token_id in listed
    _cli(system, "revoke", token_id)
    started = time.monotonic()
    # Revocation travels on auth.v1 to every service: intake refuses the kiosk's post, and
    # scoring, which would have said 403 (wrong role), now says 401 (no valid token at all).
    wait_for(lambda: system.post("feedback-intake", "/v1/ratings", token,
                                 json=ratings(w.id, [5])).status_code == 401,
             timeout=15, what="intake to refuse the revoked token")
    wait_for(lambda: system.get("scoring", f"/v1/scorecards/{w.unit}", token).status_code == 401,
             timeout=15, what="scoring to refuse the revoked token")
    print(f"revocation reached both services in {time.monotonic() - started:.2f}s")
