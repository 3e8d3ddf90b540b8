"""The pages end to end on real Kafka and PostgreSQL: events in, the report and the public register out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from typing import Any

from harness import System, wait_for
from kafka_tools import produce

from yardstick import events
from yardstick.auth import issue
from yardstick.bus.codec import encode
from yardstick.events import Envelope

# Years of their own: the report counts every item of the year, city-wide.
YEAR = 2017
UNIT = "sports"
CATEGORY = "seeing-a-doctor"


def token(system: System, role: str, **scope: Any) -> str:
    return issue(system.secret, role=role, **scope)[0]


def send(system: System, key: str, *items: events.Event) -> None:
    messages = [encode(Envelope.of(d, source="e2e", key=key)) for d in items]
    asyncio.run(produce(system.prefix + messages[0].topic, messages))


def complaint(year: int, level: int | None, category: str | None = CATEGORY) -> events.FeedbackReceived:
    return events.FeedbackReceived(feedback_id=str(uuid.uuid4()), unit_id=UNIT, channel="web",
                                   occurred_at=datetime(year, 5, 10, 2, tzinfo=UTC), year=year, level=level,
                                   category_id=category, has_text=level is None)


def test_the_report_and_register_follow_the_events(system: System) -> None:
    commission = token(system, "commission", subject="e2e")
    send(system, UNIT, *[complaint(YEAR, 1) for _ in range(4)], complaint(YEAR, None), complaint(YEAR, 5),
         complaint(YEAR - 1, 2), complaint(YEAR - 1, 2, "parking"))
    issued = datetime(YEAR, 6, 1, 2, tzinfo=UTC)
    notice_id = f"e2e-{uuid.uuid4().hex[:8]}"
    send(system, UNIT,
         events.NoticeIssued(notice_id=notice_id, unit_id=UNIT, rule="complaint-recurrence",
                             subject=CATEGORY, severity="normal", issued_at=issued, year=YEAR,
                             evidence={"window_count": 5, "note": "13800000000"}),
         events.NoticeTransitioned(notice_id=notice_id, unit_id=UNIT, previous="issued", status="acknowledged",
                                   at=issued, actor_role="coordinator", deadline=date(YEAR, 6, 8)),
         events.NoticeTransitioned(notice_id=notice_id, unit_id=UNIT, previous="acknowledged",
                                   status="plan_submitted", at=issued, actor_role="coordinator",
                                   actions=["Evening clinics in every district"], deadline=date(YEAR, 7, 15),
                                   commitment=events.NoticeCommitment(metric="complaints a week", target=2,
                                                                      due=date(YEAR, 7, 15))))

    def report() -> dict[str, Any] | None:
        r = system.get("scoring", f"/v1/reports/annual/{YEAR}", commission, headers={"accept": "application/json"})
        body: dict[str, Any] = r.json()
        if r.status_code != 200:
            return None
        # Wait for last year's complaints too: they come after this year's on the same partition.
        doctor = next((c for c in body["categories"] if c["category_id"] == CATEGORY), None)
        return body if body["notices"]["issued"] == 1 and body["volume"]["total"] == 6 \
            and doctor is not None and doctor["previous_negative"] == 1 \
            and body["notices"]["by_status"] == {"plan_submitted": 1} else None

    body = wait_for(report, timeout=60)
    assert body is not None
    doctor = next(c for c in body["categories"] if c["category_id"] == CATEGORY)
    assert doctor["negative"] == 5 and doctor["previous_negative"] == 1
    assert body["volume"]["channels"]["web"][4] == 6  # May
    assert system.get("scoring", f"/v1/reports/annual/{YEAR}").status_code == 401  # not final yet
    r = system.post("scoring", f"/v1/scorecards/{YEAR}:finalize", commission, json={"force": True})
    assert r.status_code == 200, r.text
    html = system.get("scoring", f"/v1/reports/annual/{YEAR}?lang=en").text
    assert 'data-negative="5"' in html and "13800000000" not in html
    public = system.get("scoring", f"/public?year={YEAR}&lang=en").text
    assert "Recurring complaints" in public and "items in the window: 5" in public and "13800000000" not in public
    row = public.split(f'data-notice="{notice_id}"')[1].split("</tr>")[0]
    assert "<li>Evening clinics in every district</li>" in row and "complaints a week: 2" in row
    assert "15 Jul " + str(YEAR) in row  # the commitment's due date, also the deadline of the step now due


def test_a_signed_in_coordinator_sees_its_unit_page(system: System) -> None:
    coordinator = token(system, "coordinator", unit_id=UNIT, subject="coord")
    r = system.post("scoring", "/dashboard/sign-in", content=f"token={coordinator}",
                    headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/dashboard/units/{UNIT}"
    cookies = {"yardstick_dashboard": coordinator}
    assert system.get("scoring", f"/dashboard/units/{UNIT}", cookies=cookies).status_code == 200
    assert system.get("scoring", "/dashboard/units/transport", cookies=cookies).status_code == 403
    stamp = system.get("scoring", "/dashboard/stamp", cookies=cookies)
    assert stamp.status_code == 200 and stamp.json()["stamp"]
