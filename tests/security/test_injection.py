"""SQL and script strings in every free-text field stay inert: stored and answered verbatim by the
APIs, escaped on every page that shows them."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from markupsafe import escape
from sqlalchemy import select, text

from scoring import models as scoring_models

ATTACK = "'); DROP TABLE feedback;-- <script>alert(1)</script> \"><img src=x onerror=alert(1)>"
UNIT = "health-commission"
YEAR = date.today().year
SOCIAL_SECRET = "injection-social-secret"


def payload(field: str) -> str:
    """The attack strings, tagged with the field they went into (so a hit says where it came from)."""
    return f"{field}: {ATTACK}"


def strings(value: Any) -> list[str]:
    """Every string anywhere in a JSON answer."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_verbatim(answer: Any, *fields: str) -> None:
    found = strings(answer)
    for field in fields:
        assert payload(field) in found, f"{field!r} not answered verbatim in {json.dumps(answer)[:600]}"


def assert_inert_html(html: str, *shown: str) -> None:
    """No markup from the data; each field named as shown is there, escaped (so the check can fail)."""
    assert "<script>alert(1)</script>" not in html
    assert "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert "DROP TABLE feedback;--" in html or not shown  # the text itself is kept, as text
    for field in shown:
        assert str(escape(payload(field))) in html, f"{field!r} is not shown escaped"


async def test_free_text_is_stored_verbatim_and_escaped_on_pages(system: Any, token: Any, eventually: Any,
                                                                 spike_notice: str) -> None:
    commission = {"Authorization": f"Bearer {token('commission', subject='commission-staff')}"}
    coordinator = {"Authorization": f"Bearer {token('coordinator', unit_id=UNIT, subject='coord')}"}

    # --- feedback-intake: feedback, a response, a reassignment reason, a social item ------------------
    r = await system.intake.post("/v1/feedback", json={"channel": "web", "unit_id": UNIT, "level": 1,
                                                       "category_id": "seeing-a-doctor",
                                                       "text": payload("feedback.text")})
    assert r.status_code == 201, r.text
    feedback, tracking = r.json()["id"], r.json()["tracking_code"]
    r = await system.intake.post(f"/v1/units/{UNIT}/feedback/{feedback}/response", headers=coordinator,
                                 json={"text": payload("response.text")})
    assert r.status_code == 200, r.text
    assert_verbatim(r.json(), "feedback.text", "response.text")
    assert_verbatim((await system.intake.get(f"/v1/feedback/{tracking}")).json(), "response.text")
    listed = (await system.intake.get(f"/v1/units/{UNIT}/feedback", headers=coordinator)).json()
    assert_verbatim(listed, "feedback.text")
    r = await system.intake.post("/v1/feedback", json={"channel": "web", "unit_id": UNIT, "level": 2,
                                                       "category_id": "seeing-a-doctor", "text": "moved"})
    moved = r.json()["id"]
    r = await system.intake.post(f"/v1/units/{UNIT}/feedback/{moved}/reassign", headers=commission,
                                 json={"unit_id": "xihu-district", "reason": payload("reassign.reason")})
    assert r.status_code == 200, r.text
    audit = (await system.intake.get(f"/v1/units/xihu-district/feedback/{moved}/audit", headers=commission)).json()
    assert_verbatim(audit, "reassign.reason")
    system.apps["feedback-intake"].state.settings.social_secrets["weibo"] = SOCIAL_SECRET
    raw = json.dumps({"platform": "weibo", "post_id": "p-1", "text": payload("social.text"),
                      "posted_at": datetime.now(UTC).isoformat()}).encode()
    signature = "sha256=" + hmac.new(SOCIAL_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    r = await system.intake.post("/v1/social/items", content=raw,
                                 headers={"X-Signature": signature, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    social_unit = r.json()["unit_id"]
    social = (await system.intake.get(f"/v1/units/{social_unit}/feedback", headers=commission) if social_unit
              else await system.intake.get("/v1/queue/feedback", headers=commission)).json()
    assert_verbatim(social, "social.text")

    # --- target-tracker: title, unit of measure, progress note and correction reason -------------------
    r = await system.targets.post("/v1/targets", headers=commission, json={
        "unit_id": UNIT, "year": YEAR, "code": "INJ-1", "title": payload("target.title"),
        "unit_of_measure": payload("uom"), "direction": "decrease", "baseline": 30,
        "target": 20, "weight": 1, "public_commitment": True})
    assert r.status_code == 201, r.text
    target = r.json()["id"]
    day = (date.today() - timedelta(days=1)).isoformat()
    r = await system.targets.post(f"/v1/targets/{target}/progress", headers=coordinator,
                                  json={"date": day, "value": 28, "note": payload("progress.note")})
    assert r.status_code == 201, r.text
    r = await system.targets.post(f"/v1/targets/{target}/progress", headers=coordinator,
                                  json={"date": day, "value": 27, "reason": payload("progress.reason")})
    assert r.status_code == 201, r.text
    r = await system.targets.patch(f"/v1/targets/{target}", headers=commission,
                                   json={"reason": payload("patch.reason"), "weight": 2})
    assert r.status_code == 200, r.text
    assert_verbatim((await system.targets.get(f"/v1/targets/{target}", headers=coordinator)).json(),
                    "target.title", "uom")
    assert_verbatim((await system.targets.get(f"/v1/targets/{target}/audit", headers=commission)).json(),
                    "progress.reason", "patch.reason")
    assert_verbatim((await system.targets.get("/v1/public/targets", params={"year": YEAR})).json(), "target.title")

    # --- scoring: project title and summary, adjustment reason, objection and its answer ---------------
    r = await system.scoring.post("/v1/innovation-projects", headers=coordinator, json={
        "unit_id": UNIT, "year": YEAR, "title": payload("project.title"), "summary": payload("project.summary")})
    assert r.status_code == 201, r.text
    project = r.json()["id"]
    r = await system.scoring.post("/v1/adjustments", headers=commission, json={
        "unit_id": UNIT, "year": YEAR, "points": -0.5, "reason": payload("adjustment.reason")})
    assert r.status_code == 201, r.text
    assert_verbatim(r.json(), "adjustment.reason")
    assert_verbatim((await system.scoring.get(f"/v1/scorecards/{UNIT}", params={"year": YEAR},
                                              headers=coordinator)).json(), "adjustment.reason")
    assert (await system.scoring.post(f"/v1/scorecards/{YEAR}:publish-draft", headers=commission)).status_code == 200
    r = await system.scoring.post("/v1/objections", headers=coordinator, json={
        "unit_id": UNIT, "year": YEAR, "text": payload("objection.text")})
    assert r.status_code == 201, r.text
    objection = r.json()["id"]
    r = await system.scoring.post(f"/v1/objections/{objection}/answer", headers=commission,
                                  json={"text": payload("objection.answer"), "upheld": False})
    assert r.status_code == 200, r.text
    assert_verbatim((await system.scoring.get("/v1/audit", params={"year": YEAR}, headers=commission)).json(),
                    "project.title")
    # No API reads these back: they are in the scoring database, as text, in full.
    async with system.runtime("scoring").sessions() as session:
        stored = (await session.execute(select(scoring_models.projects.c.summary)
                                        .where(scoring_models.projects.c.project_id == project))).scalar_one()
        assert stored == payload("project.summary")
        row = (await session.execute(select(scoring_models.objections.c.text, scoring_models.objections.c.answer)
                                     .where(scoring_models.objections.c.objection_id == objection))).one()
        assert tuple(row) == (payload("objection.text"), payload("objection.answer"))

    # --- notices: acknowledgement, plan (actions, commitment metric), resolution, reopening -----------
    n = spike_notice
    steps = [("acknowledge", coordinator, {"text": payload("acknowledge.text")}),
             ("plan", coordinator, {"actions": [payload("plan.action")],
                                    "commitment": {"metric": payload("plan.metric"), "target": 2,
                                                   "due": (date.today() + timedelta(days=30)).isoformat()}}),
             ("resolve", coordinator, {"text": payload("resolve.text")}),
             ("reopen", commission, {"text": payload("reopen.text")})]
    for action, who, body in steps:
        r = await system.notices.post(f"/v1/notices/{n}/{action}", headers=who, json=body)
        assert r.status_code == 200, f"{action}: {r.text}"
    assert_verbatim((await system.notices.get(f"/v1/notices/{n}", headers=coordinator)).json(), "acknowledge.text",
                    "plan.action", "plan.metric", "resolve.text", "reopen.text")
    assert_verbatim((await system.notices.get("/v1/public/notices")).json(), "plan.action", "plan.metric")

    # Nothing was executed: the tables the strings name are all there, with their rows.
    async with system.runtime("feedback-intake").sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM feedback"))).scalar_one() >= 3

    # --- the pages: the dashboard, the public pages, the annual report -------------------------------
    async def scoring_knows() -> bool:
        page = (await system.scoring.get(f"/dashboard/units/{UNIT}", params={"year": YEAR}, headers=commission)).text
        public = (await system.scoring.get("/public", params={"year": YEAR})).text
        return str(escape(payload("target.title"))) in page and str(escape(payload("plan.action"))) in public

    await eventually(scoring_knows)
    page = await system.scoring.get(f"/dashboard/units/{UNIT}", params={"year": YEAR}, headers=commission)
    assert page.status_code == 200
    assert_inert_html(page.text, "target.title")
    public = await system.scoring.get("/public", params={"year": YEAR, "lang": "en"})
    assert public.status_code == 200
    assert_inert_html(public.text, "plan.action")
    for path in ("/dashboard", "/dashboard/notices"):
        r = await system.scoring.get(path, headers=commission)
        assert r.status_code == 200
        assert_inert_html(r.text)
    report = await system.scoring.get(f"/v1/reports/annual/{YEAR}", headers=commission)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert_inert_html(report.text)


async def test_input_reflected_into_pages_is_escaped(system: Any, token: Any) -> None:
    commission = {"Authorization": f"Bearer {token('commission')}"}
    r = await system.scoring.get("/dashboard/units/\"><img src=x onerror=alert(1)>", headers=commission)
    assert r.status_code == 404
    assert_inert_html(r.text)
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in r.text
    r = await system.scoring.get("/public", params={"lang": "\"><script>alert(1)</script>",
                                                   "x": "\"><img src=x onerror=alert(1)>"})
    assert r.status_code == 200
    assert_inert_html(r.text)
    r = await system.scoring.get("/public/track", params={"code": "<script>alert(1)</script>"})
    assert r.status_code == 422
    assert_inert_html(r.text)
    r = await system.scoring.get("/public", params={"year": "<script>alert(1)</script>"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
