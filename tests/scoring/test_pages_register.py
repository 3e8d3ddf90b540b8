"""The public register and unit page: a notice's plan, commitment and outcome reach them from the notices API."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from yardstick import events
from yardstick.bus.codec import encode
from yardstick.events import Envelope

UNIT = "health-commission"
CATEGORY = "seeing-a-doctor"
PHONE = "13711112222"
ACTIONS = ["Open evening appointment slots", "Publish waiting times daily"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def publish(system: Any, *items: events.Event, key: str = UNIT) -> None:
    await system.bus.publish([encode(Envelope.of(d, source="test", key=key)) for d in items])


async def caught_up(system: Any, eventually: Any) -> None:
    # Intake's relay publishes the complaints after their requests returned: a lag of 0 read before it
    # did said nothing, and the detector then found too few (a CI failure under load).
    await eventually(system.published)
    await eventually(lambda: all(system.bus.lag(g) == 0 for g in ("scoring", "notices")))


async def test_a_plan_posted_to_notices_shows_on_the_public_register(system: Any, token: Any, city: Any,
                                                                     eventually: Any) -> None:
    """Complaints through intake fire the detector; the plan and commitment travel on notice.transitioned."""
    citizen = token("citizen", subject="c")
    for _ in range(7):
        r = await system.intake.post("/v1/feedback", headers=auth(citizen), json={
            "channel": "web", "unit_id": UNIT, "category_id": CATEGORY, "level": 1, "text": "挂号太难",
            "contact": {"phone": PHONE}, "client_id": str(uuid.uuid4())})
        assert r.status_code == 201, r.text
    await caught_up(system, eventually)
    commission = token("commission", subject="staff")
    r = await system.notices.post("/v1/rules:evaluate", json={}, headers=auth(commission))
    assert r.status_code == 200, r.text
    listing = (await system.notices.get("/v1/notices", params={"unit_id": UNIT}, headers=auth(commission))).json()
    notice = next(n for n in listing["items"] if n["subject"] == CATEGORY)
    coordinator = token("coordinator", unit_id=UNIT, subject="coord")
    base = f"/v1/notices/{notice['id']}"
    assert (await system.notices.post(base + "/acknowledge", json={"text": "received"},
                                      headers=auth(coordinator))).status_code == 200
    today = datetime.now(UTC).astimezone(city.timezone).date()
    due = today + timedelta(days=40)
    r = await system.notices.post(base + "/plan", headers=auth(coordinator), json={
        "actions": ACTIONS, "commitment": {"metric": "complaints a week", "target": 2, "due": due.isoformat()}})
    assert r.status_code == 200, r.text
    year = today.year

    async def register_row() -> str | None:
        # The transition reaches scoring through notices' outbox and the bus: wait for its state.
        page = (await system.scoring.get(f"/public?year={year}&lang=en")).text
        shown = page.split(f'data-notice="{notice["id"]}"')
        return page if len(shown) > 1 and "plan submitted" in shown[1].split("</tr>")[0] else None

    html = await eventually(register_row)
    row = html.split(f'data-notice="{notice["id"]}"')[1].split("</tr>")[0]
    for action in ACTIONS:
        assert f"<li>{action}</li>" in row
    assert "complaints a week: 2" in row and due.strftime("%-d %b %Y") in row
    assert 'data-outcome="in_progress"' in row
    assert PHONE not in html and "挂号太难" not in html
    # The dashboard shows the deadline of the step now due (the plan's due date: resolve by then).
    await_sign = await system.scoring.post("/dashboard/sign-in", content=f"token={commission}",
                                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert await_sign.status_code == 303
    system.scoring.cookies.set("yardstick_dashboard", commission)
    dashboard = (await system.scoring.get("/dashboard/notices?lang=en")).text
    assert f"Deadline {due.strftime('%-d %b %Y')}" in dashboard

    # A notice from before the fields existed says so instead of showing an empty plan.
    await publish(system,
                  events.NoticeIssued(notice_id="n-old", unit_id=UNIT, rule="complaint-recurrence", subject="noise",
                                      severity="normal", issued_at=datetime.now(UTC), year=year),
                  events.NoticeTransitioned(notice_id="n-old", unit_id=UNIT, previous="issued",
                                            status="acknowledged", at=datetime.now(UTC), actor_role="coordinator"),
                  events.NoticeTransitioned(notice_id="n-old", unit_id=UNIT, previous="acknowledged",
                                            status="plan_submitted", at=datetime.now(UTC), actor_role="coordinator"))
    await caught_up(system, eventually)
    html = (await system.scoring.get(f"/public?year={year}&lang=en")).text
    assert "predates events that carry the plan" in html.split('data-notice="n-old"')[1].split("</tr>")[0]


async def test_a_verified_notice_shows_its_outcome_and_figures(system: Any, eventually: Any) -> None:
    at = datetime.now(UTC) - timedelta(days=2)
    year = at.year
    seen = at.date() - timedelta(days=40)  # a past day re-evaluated: the notice is issued later about it
    await publish(system,
                  events.NoticeIssued(notice_id="n-done", unit_id=UNIT, rule="complaint-recurrence", subject=CATEGORY,
                                      severity="normal", issued_at=at, year=year,
                                      evidence={"window_count": 9, "window": [str(seen - timedelta(days=6)),
                                                                              str(seen)]}),
                  events.NoticeTransitioned(notice_id="n-done", unit_id=UNIT, previous="resolved", status="verified",
                                            at=at + timedelta(days=1), actor_role="commission",
                                            figures={"window_count": 1, "baseline_count": 4}))
    await caught_up(system, eventually)
    html = (await system.scoring.get(f"/public?year={year}&lang=en")).text
    row = html.split('data-notice="n-done"')[1].split("</tr>")[0]
    assert 'data-outcome="verified"' in row
    # The figures are named in the page's language, the key kept for machines.
    assert 'data-key="window_count">items in the window: 1<' in row
    assert 'data-key="baseline_count">items in the baseline: 4<' in row
    assert f"seen on {seen.day} {seen.strftime('%b')} {seen.year}" in row


async def test_the_public_unit_page_shows_its_years_and_notices(system: Any, token: Any, city: Any,
                                                                eventually: Any) -> None:
    year = datetime.now(UTC).astimezone(city.timezone).year
    commission = token("commission", subject="staff")
    for y, level in ((year - 2, 3), (year - 1, 5)):
        moment = datetime(y, 6, 1, 3, tzinfo=UTC)
        await publish(system, *(events.FeedbackReceived(feedback_id=f"r-{y}-{i}", unit_id=UNIT, channel="window",
                                                        occurred_at=moment, year=y, level=level) for i in range(3)))
        await caught_up(system, eventually)
        r = await system.scoring.post(f"/v1/scorecards/{y}:finalize", json={"force": True}, headers=auth(commission))
        assert r.status_code == 200, r.text
    r = await system.scoring.get(f"/public/units/{UNIT}?lang=en")
    assert r.status_code == 200
    html = r.text
    final = {y: (await system.scoring.get("/v1/public/scorecards", params={"year": y})).json()
             for y in (year - 2, year - 1)}
    for y, body in final.items():
        card = next(c for c in body["scorecards"] if c["unit_id"] == UNIT)
        row = html.split(f'<tr data-year="{y}">')[1].split("</tr>")[0]
        assert f"{card['public']['S'] * 100:.1f}%" in row
        assert f"{card['total']:.3f}" in row
    assert re.search(r'<svg[^>]*class="chart"', html)  # two rated years: the line is drawn
    newest = next(c for c in final[year - 1]["scorecards"] if c["unit_id"] == UNIT)
    assert f'data-s="{newest["public"]["S"]}"' in html  # the newest published year by default
    assert (await system.scoring.get("/public/units/no-such-unit")).status_code == 404
    listed = (await system.scoring.get(f"/public?year={year - 1}")).text
    assert f'href="/public/units/{UNIT}?year={year - 1}"' in listed
