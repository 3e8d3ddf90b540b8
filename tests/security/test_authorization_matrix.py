"""Every endpoint of the four services x every role x in and out of scope, against api.md's role table.

The table below is written from the contract ("Tokens and roles", the Reads paragraph and each
endpoint's line); the test reads each service's OpenAPI document, so an endpoint added without a
row here fails `test_every_route_has_a_row`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import httpx
import pytest

from yardstick.auth import ROLES

UNIT = "health-commission"        # every request concerns this unit ...
OTHER_UNIT = "xihu-district"      # ... and tokens scoped here are out of scope
WINDOW = "health-commission-w1"
OTHER_WINDOW = "xihu-district-w1"
YEAR = 2026                       # the year open to objections (its draft is published in the setup)
FINAL_YEAR = 2024                 # finalized in the setup: its annual report is open
CLOSING_YEAR = 2025               # what the :publish-draft and :finalize rows act on
SOCIAL_SECRET = "matrix-social-secret"

ALL = frozenset(ROLES)
COMMISSION = frozenset({"commission"})
READERS = frozenset({"commission", "leader", "coordinator"})   # scorecards, targets, notices (Reads)
WRITERS = frozenset({"commission", "coordinator"})
COORDINATOR = frozenset({"coordinator"})
Scope = Literal["unit", "window", "affiliation"] | None


@dataclass
class World:
    """The resources the requests point at, all of unit UNIT, made in the setup."""

    feedback_id: str = ""
    feedback_to_reassign: str = ""
    queued_feedback: str = ""
    tracking_code: str = ""
    open311_id: str = ""
    survey_id: str = ""
    target_id: str = ""
    proposal_id: str = ""
    project_id: str = ""
    objection_id: str = ""
    notice_id: str = ""


Build = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str                      # the OpenAPI template, e.g. /v1/targets/{target_id}
    allowed: frozenset[str]        # roles that may call it (a valid token of any other role: 403)
    open: bool = False             # no token is fine (api.md's open list)
    scope: Scope = None            # unit: coordinator of OTHER_UNIT gets 403; window: kiosk of OTHER_WINDOW;
                                   # affiliation: an assessor affiliated with UNIT gets 403
    request: Build = field(default=lambda w: {})   # the concrete path values, query and body
    credential: Literal["header", "api_key", "form"] = "header"   # where the token goes
    page: bool = False             # a dashboard page: no token redirects to the sign-in page


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def fmt(path: str, w: World) -> str:
    return path.format(unit_id=UNIT, tracking_code=w.tracking_code, request_id=w.open311_id,
                       survey_id=w.survey_id, target_id=w.target_id, project_id=w.project_id,
                       objection_id=w.objection_id, notice_id=w.notice_id, rule_id="complaint-recurrence",
                       kind="window", subject_id=WINDOW, year=YEAR)


def social_body() -> dict[str, Any]:
    raw = json.dumps({"platform": "weibo", "post_id": uuid.uuid4().hex, "text": "the clinic queue is long",
                      "posted_at": now_iso()}).encode()
    signature = "sha256=" + hmac.new(SOCIAL_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return {"content": raw, "headers": {"X-Signature": signature, "Content-Type": "application/json"}}


def rating() -> dict[str, Any]:
    return {"json": {"ratings": [{"id": str(uuid.uuid4()), "window_id": WINDOW, "level": 4, "rated_at": now_iso()}]}}


TODAY = date.today().isoformat()
IN_A_MONTH = (date.today() + timedelta(days=30)).isoformat()
TARGET = {"unit_id": UNIT, "year": YEAR, "title": "wait time", "unit_of_measure": "min", "direction": "decrease",
          "baseline": 30, "target": 20, "weight": 1}

# fmt: off
TABLE: list[Row] = [
    # --- feedback-intake ---------------------------------------------------------------------------
    Row("feedback-intake", "GET", "/healthz", ALL, open=True),
    Row("feedback-intake", "GET", "/readyz", ALL, open=True),
    Row("feedback-intake", "GET", "/metrics", ALL, open=True),
    Row("feedback-intake", "POST", "/v1/ratings", frozenset({"kiosk"}), scope="window", request=lambda w: rating()),
    # A citizen's own feedback (web, mobile) is open; any token may carry it too.
    Row("feedback-intake", "POST", "/v1/feedback", ALL, open=True,
        request=lambda w: {"json": {"channel": "web", "unit_id": UNIT, "level": 3, "text": "ok"}}),
    # Feedback heard at the hotline, face to face or in the exhibit hall: staff only.
    Row("feedback-intake", "POST", "/v1/feedback", frozenset({"staff"}),
        request=lambda w: {"json": {"channel": "hotline", "unit_id": UNIT, "level": 2, "text": "heard"}}),
    Row("feedback-intake", "GET", "/v1/feedback/{tracking_code}", ALL, open=True),
    Row("feedback-intake", "POST", "/v1/feedback/{tracking_code}/follow-up", ALL, open=True,
        request=lambda w: {"json": {"level": 4}}),
    Row("feedback-intake", "GET", "/v1/units/{unit_id}/feedback", WRITERS, scope="unit"),
    Row("feedback-intake", "POST", "/v1/units/{unit_id}/feedback/{feedback_id}/response", COORDINATOR, scope="unit",
        request=lambda w: {"path": {"feedback_id": w.feedback_id}, "json": {"text": "we opened a second desk"}}),
    Row("feedback-intake", "POST", "/v1/units/{unit_id}/feedback/{feedback_id}/reassign", WRITERS, scope="unit",
        request=lambda w: {"path": {"feedback_id": w.feedback_to_reassign},
                           "json": {"unit_id": OTHER_UNIT, "reason": "theirs"}}),
    # Contact data: the coordinator of the unit only (api.md), each read audited.
    Row("feedback-intake", "GET", "/v1/units/{unit_id}/feedback/{feedback_id}/contact", COORDINATOR, scope="unit",
        request=lambda w: {"path": {"feedback_id": w.feedback_id}}),
    Row("feedback-intake", "GET", "/v1/units/{unit_id}/feedback/{feedback_id}/audit", WRITERS, scope="unit",
        request=lambda w: {"path": {"feedback_id": w.feedback_id}}),
    Row("feedback-intake", "GET", "/v1/queue/feedback", COMMISSION),
    Row("feedback-intake", "POST", "/v1/queue/feedback/{feedback_id}/route", COMMISSION,
        request=lambda w: {"path": {"feedback_id": w.queued_feedback}, "json": {"unit_id": UNIT, "reason": "routed"}}),
    # Social items authenticate by their signature alone: no token needed, any token irrelevant.
    Row("feedback-intake", "POST", "/v1/social/items", ALL, open=True, request=lambda w: social_body()),
    Row("feedback-intake", "POST", "/v1/surveys", COMMISSION,
        request=lambda w: {"json": {"year": 2030, "title": "t", "strata": [{"id": "urban", "population": 10}]}}),
    Row("feedback-intake", "POST", "/v1/surveys/{survey_id}/responses", COMMISSION,
        request=lambda w: {"content": json.dumps({"respondent_id": uuid.uuid4().hex, "stratum": "urban",
                                                  "ratings": {UNIT: 5}}) + "\n",
                           "headers": {"Content-Type": "application/x-ndjson"}}),
    Row("feedback-intake", "GET", "/v1/surveys/{survey_id}", frozenset({"commission", "leader"})),
    Row("feedback-intake", "GET", "/open311/v2/services.json", ALL, open=True),
    Row("feedback-intake", "POST", "/open311/v2/requests.json", frozenset({"citizen"}), credential="api_key",
        request=lambda w: {"data": {"service_code": "seeing-a-doctor", "description": "long queue"}}),
    Row("feedback-intake", "GET", "/open311/v2/requests/{request_id}.json", ALL, open=True),
    # --- target-tracker ----------------------------------------------------------------------------
    Row("target-tracker", "GET", "/healthz", ALL, open=True),
    Row("target-tracker", "GET", "/readyz", ALL, open=True),
    Row("target-tracker", "GET", "/metrics", ALL, open=True),
    Row("target-tracker", "POST", "/v1/targets", WRITERS, scope="unit",
        request=lambda w: {"json": {**TARGET, "code": uuid.uuid4().hex[:12]}}),
    Row("target-tracker", "POST", "/v1/targets:import", COMMISSION,
        request=lambda w: {"params": {"year": 2031}, "content": "unit_id,code\n",
                           "headers": {"Content-Type": "text/csv"}}),
    Row("target-tracker", "POST", "/v1/targets:sweep", COMMISSION),
    Row("target-tracker", "POST", "/v1/targets/{target_id}:approve", COMMISSION,
        request=lambda w: {"path": {"target_id": w.proposal_id}}),
    Row("target-tracker", "POST", "/v1/targets/{target_id}:reject", COMMISSION,
        request=lambda w: {"path": {"target_id": w.proposal_id}}),
    Row("target-tracker", "POST", "/v1/targets/{target_id}:withdraw", COMMISSION,
        request=lambda w: {"path": {"target_id": w.proposal_id}}),
    Row("target-tracker", "PATCH", "/v1/targets/{target_id}", COMMISSION,
        request=lambda w: {"json": {"title": "wait time at the clinic", "reason": "clearer"}}),
    Row("target-tracker", "GET", "/v1/targets/{target_id}", READERS, scope="unit"),
    Row("target-tracker", "POST", "/v1/targets/{target_id}/progress", WRITERS, scope="unit",
        request=lambda w: {"json": {"date": TODAY, "value": 28, "reason": "recount"}}),
    Row("target-tracker", "GET", "/v1/targets/{target_id}/audit", READERS, scope="unit"),
    # A unit's reports at once (an addition to api.md): as the single progress route.
    Row("target-tracker", "POST", "/v1/units/{unit_id}/progress:batch", WRITERS, scope="unit",
        request=lambda w: {"json": {"reports": [{"target_id": w.target_id, "date": TODAY, "value": 27,
                                                 "reason": "batch recount"}]}}),
    Row("target-tracker", "GET", "/v1/units/{unit_id}/targets", READERS, scope="unit"),
    Row("target-tracker", "GET", "/v1/public/targets", ALL, open=True),
    # --- scoring -----------------------------------------------------------------------------------
    Row("scoring", "GET", "/healthz", ALL, open=True),
    Row("scoring", "GET", "/readyz", ALL, open=True),
    Row("scoring", "GET", "/metrics", ALL, open=True),
    # A coordinator reads the rankings and everything of its own unit.
    Row("scoring", "GET", "/v1/scorecards", READERS),
    Row("scoring", "GET", "/v1/scorecards/{unit_id}", READERS, scope="unit"),
    Row("scoring", "GET", "/v1/public/scorecards", ALL, open=True, request=lambda w: {"params": {"year": YEAR}}),
    # The method's weights are no unit's secret: every reader of the scorecards may see them.
    Row("scoring", "GET", "/v1/config/{year}", READERS),
    Row("scoring", "PUT", "/v1/config/{year}", COMMISSION, request=lambda w: {"json": {"pass_line": 80}}),
    Row("scoring", "POST", "/v1/leader-evaluations", frozenset({"leader"}),
        request=lambda w: {"json": {"unit_id": UNIT, "year": YEAR, "grade": 88}}),
    Row("scoring", "POST", "/v1/innovation-projects", WRITERS, scope="unit",
        request=lambda w: {"json": {"unit_id": UNIT, "year": YEAR, "title": "evening clinics"}}),
    Row("scoring", "POST", "/v1/innovation-projects/{project_id}/assessments", frozenset({"assessor"}),
        scope="affiliation", request=lambda w: {"json": {"points": 1.0}}),
    Row("scoring", "POST", "/v1/adjustments", COMMISSION,
        request=lambda w: {"json": {"unit_id": UNIT, "year": YEAR, "points": -0.5, "reason": "late report"}}),
    Row("scoring", "GET", "/v1/audit", COMMISSION),
    Row("scoring", "POST", "/v1/scorecards/{year}:publish-draft", COMMISSION,
        request=lambda w: {"path": {"year": CLOSING_YEAR}}),
    Row("scoring", "POST", "/v1/scorecards/{year}:finalize", COMMISSION,
        request=lambda w: {"path": {"year": CLOSING_YEAR}, "json": {"force": True}}),
    Row("scoring", "POST", "/v1/objections", COORDINATOR, scope="unit",
        request=lambda w: {"json": {"unit_id": UNIT, "year": YEAR, "text": "the survey missed our new hall"}}),
    Row("scoring", "POST", "/v1/objections/{objection_id}/answer", COMMISSION,
        request=lambda w: {"json": {"text": "noted", "upheld": False}}),
    Row("scoring", "GET", "/dashboard/sign-in", ALL, open=True),
    # The sign-in form carries the token in its body: a bad one is 401, a role without a dashboard 403.
    Row("scoring", "POST", "/dashboard/sign-in", READERS, credential="form"),
    Row("scoring", "GET", "/dashboard/sign-out", ALL, open=True),
    Row("scoring", "GET", "/dashboard", READERS, page=True),
    Row("scoring", "GET", "/dashboard/notices", READERS, page=True),
    Row("scoring", "GET", "/dashboard/units/{unit_id}", READERS, scope="unit", page=True),
    Row("scoring", "GET", "/dashboard/stamp", READERS),
    Row("scoring", "GET", "/public", ALL, open=True),
    Row("scoring", "GET", "/public/units/{unit_id}", ALL, open=True),
    Row("scoring", "GET", "/public/track", ALL, open=True, request=lambda w: {"params": {"code": "AB12-CD34"}}),
    # The annual report: open once the year is finalized; before, the commission's and the leaders'.
    Row("scoring", "GET", "/v1/reports/annual/{year}", frozenset({"commission", "leader"}),
        request=lambda w: {"path": {"year": YEAR}, "headers": {"Accept": "application/json"}}),
    Row("scoring", "GET", "/v1/reports/annual/{year}", ALL, open=True,
        request=lambda w: {"path": {"year": FINAL_YEAR}, "headers": {"Accept": "application/json"}}),
    # --- notices -----------------------------------------------------------------------------------
    Row("notices", "GET", "/healthz", ALL, open=True),
    Row("notices", "GET", "/readyz", ALL, open=True),
    Row("notices", "GET", "/metrics", ALL, open=True),
    Row("notices", "GET", "/v1/notices", READERS, scope="unit", request=lambda w: {"params": {"unit_id": UNIT}}),
    Row("notices", "GET", "/v1/notices/{notice_id}", READERS, scope="unit"),
    Row("notices", "POST", "/v1/notices/{notice_id}/acknowledge", COORDINATOR, scope="unit"),
    Row("notices", "POST", "/v1/notices/{notice_id}/plan", COORDINATOR, scope="unit",
        request=lambda w: {"json": {"actions": ["evening clinics"],
                                    "commitment": {"metric": "complaints per week", "target": 2, "due": IN_A_MONTH}}}),
    Row("notices", "POST", "/v1/notices/{notice_id}/resolve", COORDINATOR, scope="unit",
        request=lambda w: {"json": {"text": "clinics open"}}),
    Row("notices", "POST", "/v1/notices/{notice_id}/verify", COMMISSION),
    Row("notices", "POST", "/v1/notices/{notice_id}/reopen", COMMISSION),
    Row("notices", "GET", "/v1/effects", frozenset({"commission", "leader"})),
    Row("notices", "GET", "/v1/rules", COMMISSION),
    Row("notices", "POST", "/v1/rules:evaluate", COMMISSION),
    Row("notices", "GET", "/v1/rules/{rule_id}", COMMISSION),
    Row("notices", "PUT", "/v1/rules/{rule_id}", COMMISSION, request=lambda w: {"json": {"min_count": 5}}),
    Row("notices", "POST", "/v1/subscriptions", WRITERS, scope="unit",
        request=lambda w: {"json": {"unit_id": UNIT, "email": "desk@health.example"}}),
    Row("notices", "GET", "/v1/counts/{kind}/{subject_id}", COMMISSION),
    Row("notices", "GET", "/v1/public/notices", ALL, open=True),
]
# fmt: on

# Served by FastAPI itself, outside the OpenAPI document; open (api.md).
UNDOCUMENTED = [(service, path) for service in ("feedback-intake", "target-tracker", "scoring", "notices")
                for path in ("/docs", "/openapi.json")]
CLIENTS = {"feedback-intake": "intake", "target-tracker": "targets", "scoring": "scoring", "notices": "notices"}


def test_every_route_has_a_row(system: Any) -> None:
    documented = {(name, method.upper(), path)
                  for name, app in system.apps.items()
                  for path, operations in app.openapi()["paths"].items() for method in operations}
    tabled = {(r.service, r.method, r.path) for r in TABLE}
    assert documented - tabled == set(), "endpoints without an expectation in the authorization table"
    assert tabled - documented == set(), "rows for endpoints that no longer exist"


def tokens(token: Any) -> dict[str, str]:
    """One in-scope token per role, and the out-of-scope ones."""
    return {
        "kiosk": token("kiosk", window_id=WINDOW, subject="kiosk-1"),
        "citizen": token("citizen", subject="app-install-1"),
        "staff": token("staff", subject="hotline-7"),
        "coordinator": token("coordinator", unit_id=UNIT, subject="coord-health"),
        "commission": token("commission", subject="commission-staff"),
        "leader": token("leader", subject="leader-1"),
        "assessor": token("assessor", subject="assessor-1"),
        "kiosk:out": token("kiosk", window_id=OTHER_WINDOW, subject="kiosk-2"),
        "coordinator:out": token("coordinator", unit_id=OTHER_UNIT, subject="coord-xihu"),
        "assessor:out": token("assessor", unit_id=UNIT, subject="assessor-2"),
        "assessor:in": token("assessor", unit_id=OTHER_UNIT, subject="assessor-3"),
    }


async def call(system: Any, row: Row, world: World, credential: str | None) -> httpx.Response:
    built = row.request(world)
    path_values = built.pop("path", {})
    path = row.path
    for name, value in path_values.items():
        path = path.replace("{" + name + "}", str(value))
    headers = dict(built.pop("headers", {}))
    if credential is not None and row.credential == "header":
        headers["Authorization"] = f"Bearer {credential}"
    if row.credential == "api_key":
        built["data"] = {**built.get("data", {}), **({"api_key": credential} if credential else {})}
    if row.credential == "form":
        built["data"] = {"token": credential or ""}
    client: httpx.AsyncClient = getattr(system, CLIENTS[row.service])
    return await client.request(row.method, fmt(path, world), headers=headers, **built)


async def setup_world(system: Any, t: dict[str, str], notice_id: str) -> World:
    w = World()
    commission = {"Authorization": f"Bearer {t['commission']}"}
    coordinator = {"Authorization": f"Bearer {t['coordinator']}"}
    intake_settings = system.apps["feedback-intake"].state.settings
    intake_settings.social_secrets["weibo"] = SOCIAL_SECRET
    made = []
    for body in ({"channel": "web", "unit_id": UNIT, "level": 1, "text": "queue",
                  "contact": {"phone": "13800138000", "email": "a@b.example"}},
                 {"channel": "web", "unit_id": UNIT, "level": 2, "text": "parking"},
                 {"channel": "web", "level": 2, "text": "zzzz qqqq"}):
        r = await system.intake.post("/v1/feedback", json=body)
        assert r.status_code == 201, r.text
        made.append(r.json())
    w.feedback_id, w.feedback_to_reassign, w.queued_feedback = (m["id"] for m in made)
    w.tracking_code = made[0]["tracking_code"]
    r = await system.intake.post("/open311/v2/requests.json", data={
        "api_key": t["citizen"], "service_code": "seeing-a-doctor", "description": "long queue"})
    assert r.status_code < 300, r.text
    w.open311_id = r.json()[0]["service_request_id"]
    r = await system.intake.post("/v1/surveys", headers=commission, json={
        "year": YEAR, "title": "household survey", "strata": [{"id": "urban", "population": 1000}]})
    assert r.status_code == 201, r.text
    w.survey_id = r.json()["id"]
    r = await system.targets.post("/v1/targets", headers=commission, json={**TARGET, "code": "T-1"})
    assert r.status_code == 201, r.text
    w.target_id = r.json()["id"]
    r = await system.targets.post("/v1/targets", headers=coordinator, json={**TARGET, "code": "T-2"})
    assert r.status_code == 201, r.text
    w.proposal_id = r.json()["id"]
    r = await system.scoring.post("/v1/innovation-projects", headers=commission,
                                  json={"unit_id": UNIT, "year": YEAR, "title": "one-window service"})
    assert r.status_code == 201, r.text
    w.project_id = r.json()["id"]
    r = await system.scoring.post(f"/v1/scorecards/{YEAR}:publish-draft", headers=commission)
    assert r.status_code == 200, r.text
    r = await system.scoring.post("/v1/objections", headers=coordinator,
                                  json={"unit_id": UNIT, "year": YEAR, "text": "first objection"})
    assert r.status_code == 201, r.text
    w.objection_id = r.json()["id"]
    r = await system.scoring.post(f"/v1/scorecards/{FINAL_YEAR}:finalize", headers=commission, json={"force": True})
    assert r.status_code == 200, r.text
    w.notice_id = notice_id
    return w


def verdict(status: int, location: str, *, allowed: bool, page: bool, anonymous: bool) -> bool:
    if allowed:
        return status not in (401, 403)
    if page and anonymous:
        return status == 303 and location == "/dashboard/sign-in"
    return status == (401 if anonymous else 403)


async def test_the_authorization_matrix(system: Any, token: Any, spike_notice: str) -> None:
    t = tokens(token)
    world = await setup_world(system, t, spike_notice)
    failures: list[str] = []
    checked = 0

    async def check(row: Row, who: str, credential: str | None, allowed: bool) -> None:
        nonlocal checked
        r = await call(system, row, world, credential)
        checked += 1
        if not verdict(r.status_code, r.headers.get("location", ""), allowed=allowed, page=row.page,
                       anonymous=credential is None):
            want = "not 401/403" if allowed else ("redirect to sign-in" if row.page and credential is None
                                                  else 401 if credential is None else 403)
            failures.append(f"{row.method} {row.service}{row.path} as {who}: {r.status_code}, want {want}: "
                            f"{r.text[:160]}")
        elif not allowed and r.headers.get("content-type", "").startswith("application/json"):
            error = r.json()["error"]
            assert error["code"] in ("unauthenticated", "forbidden") and error["message"], r.text

    for row in TABLE:
        # Refusals first: a refused call must change nothing the allowed calls then rely on.
        await check(row, "no token", None, row.open)
        for role in sorted(ALL - row.allowed):
            await check(row, role, t[role], row.open)
        if row.scope == "unit":
            await check(row, "coordinator of another unit", t["coordinator:out"], False)
        elif row.scope == "window":
            await check(row, "kiosk of another window", t["kiosk:out"], False)
        elif row.scope == "affiliation":
            await check(row, "assessor of the project's unit", t["assessor:out"], False)
            await check(row, "assessor of another unit", t["assessor:in"], True)
        for role in sorted(row.allowed):
            await check(row, role, t[role], True)
    assert not failures, f"{len(failures)} of {checked} checks failed:\n" + "\n".join(failures)


@pytest.mark.parametrize(("service", "path"), UNDOCUMENTED)
async def test_the_documentation_is_open(system: Any, service: str, path: str) -> None:
    r = await getattr(system, CLIENTS[service]).get(path)
    assert r.status_code == 200
