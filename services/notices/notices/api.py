"""notices' routes."""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from notices import detectors, notify, repository, service
from notices.schemas import RULE_MODELS, OptionalTextIn, PlanIn, SubscriptionIn, TextIn
from notices.settings import NoticesSettings
from notices.workdays import WorkCalendar
from yardstick.auth import Principal, ensure_unit, require
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime, runtime_of
from yardstick.tables import csv_response, wants_csv
from yardstick.text import StoredText

router = APIRouter(prefix="/v1")
public = APIRouter(prefix="/v1/public")
READERS = ("commission", "leader", "coordinator")
# A year filter the database can hold (an unbounded int overflows SQLite's INTEGER: a 500).
Year = Annotated[int | None, Query(ge=2000, le=2100)]


# The earliest day a re-evaluation takes: the detectors look back up to a year and more from it, and
# far older days overflowed the date arithmetic (a 500); 2000 is also the earliest year the lists take.
EARLIEST_DAY = date(2000, 1, 1)


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date | None = None


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


def _today(request: Request) -> date:
    return _now(request).astimezone(runtime_of(request).city.timezone).date()


def _calendar(request: Request) -> WorkCalendar:
    calendar: WorkCalendar = request.app.state.calendar
    return calendar


def _settings(request: Request) -> NoticesSettings:
    settings: NoticesSettings = request.app.state.settings
    return settings


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError as exc:
        raise ApiError(400, "invalid cursor") from exc
    # Only cursors this service made: a negative or huge offset is a database error, not a page.
    if not 0 <= offset <= 2**31:
        raise ApiError(400, "invalid cursor")
    return offset


def _cursor(offset: int, limit: int, got: int) -> str | None:
    return base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if got == limit else None


def _item(n: dict[str, Any]) -> dict[str, Any]:
    return {"id": n["id"], "unit_id": n["unit_id"], "rule": n["rule"], "subject": n["subject"],
            "status": n["status"], "severity": n["severity"], "overdue": n["overdue"],
            "issued_at": n["issued_at"].isoformat(), "issued_on": n["issued_on"].isoformat(), "year": n["year"],
            "evidence": n["evidence"], "feedback_ids": n["feedback_ids"], "linked_notice_id": n["linked_notice_id"],
            "step": n["step"], "deadline": n["deadline"].isoformat() if n["deadline"] else None}


@router.get("/notices", tags=["notices"])
async def list_notices(request: Request, principal: Principal = Depends(require(*READERS)),
                       unit_id: StoredText | None = None, status: StoredText | None = None, year: Year = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None
                       ) -> dict[str, Any]:
    if principal.role == "coordinator":
        unit_id = unit_id or principal.unit_id
        ensure_unit(principal, unit_id or "")
    offset = _offset(cursor)
    async with runtime_of(request).sessions() as session:
        rows = await repository.list_notices(session, unit_id=unit_id, status=status, year=year, offset=offset,
                                             limit=limit)
    return {"items": [_item(n) for n in rows], "next_cursor": _cursor(offset, limit, len(rows))}


@router.get("/notices/{notice_id}", tags=["notices"])
async def get_notice(notice_id: StoredText, request: Request, principal: Principal = Depends(require(*READERS))
                     ) -> dict[str, Any]:
    async with runtime_of(request).sessions() as session:
        notice = await service.get(session, notice_id=notice_id, principal=principal)
        history = await repository.history(session, notice_id)
        later = await repository.linked_to(session, notice_id)
        effect = await service.effect(session, notice=notice, today=_today(request),
                                      span_days=_settings(request).effect_days)
    linked = [x for x in [notice["linked_notice_id"]] if x] + later
    return _item(notice) | {
        "latest_evidence": notice["latest_evidence"], "evidence_updates": notice["evidence_updates"],
        "plan": notice["plan"], "resolution": notice["resolution"],
        "verified_at": notice["verified_at"].isoformat() if notice["verified_at"] else None,
        "history": [{"at": h["at"].isoformat(), "action": h["action"], "previous": h["previous"],
                     "status": h["status"], "actor_role": h["actor_role"], "actor": h["actor"], "text": h["text"]}
                    for h in history],
        "linked_notices": linked, "effect": effect}


async def _transition(request: Request, notice_id: str, action: str, principal: Principal, *,
                      text: str | None = None, plan: PlanIn | None = None) -> dict[str, Any]:
    runtime: ServiceRuntime = runtime_of(request)
    async with runtime.transaction() as session:
        notice = await service.transition(session, notice_id=notice_id, action=action, principal=principal,
                                          calendar=_calendar(request), today=_today(request), now=_now(request),
                                          text=text, plan=plan)
    return _item(notice)


@router.post("/notices/{notice_id}/acknowledge", tags=["notices"])
async def acknowledge(notice_id: StoredText, request: Request, principal: Principal = Depends(require("coordinator")),
                      body: OptionalTextIn | None = None) -> dict[str, Any]:
    return await _transition(request, notice_id, "acknowledge", principal, text=body.text if body else None)


@router.post("/notices/{notice_id}/plan", tags=["notices"])
async def submit_plan(notice_id: StoredText, body: PlanIn, request: Request,
                      principal: Principal = Depends(require("coordinator"))) -> dict[str, Any]:
    return await _transition(request, notice_id, "plan", principal, plan=body)


@router.post("/notices/{notice_id}/resolve", tags=["notices"])
async def resolve(notice_id: StoredText, body: TextIn, request: Request,
                  principal: Principal = Depends(require("coordinator"))) -> dict[str, Any]:
    return await _transition(request, notice_id, "resolve", principal, text=body.text)


@router.post("/notices/{notice_id}/verify", tags=["notices"])
async def verify(notice_id: StoredText, request: Request, principal: Principal = Depends(require("commission")),
                 body: OptionalTextIn | None = None) -> dict[str, Any]:
    return await _transition(request, notice_id, "verify", principal, text=body.text if body else None)


@router.post("/notices/{notice_id}/reopen", tags=["notices"])
async def reopen(notice_id: StoredText, request: Request, principal: Principal = Depends(require("commission")),
                 body: OptionalTextIn | None = None) -> dict[str, Any]:
    return await _transition(request, notice_id, "reopen", principal, text=body.text if body else None)


@router.get("/effects", tags=["notices"])
async def effects(request: Request, principal: Principal = Depends(require("commission", "leader")),
                  year: Year = None) -> dict[str, Any]:
    """The effect of every verified notice: the metric before it and over the same span after verification."""
    async with runtime_of(request).sessions() as session:
        rows = await repository.list_notices(session, unit_id=None, status="verified", year=year, offset=0,
                                             limit=100000)
        items = [{"notice_id": n["id"], "unit_id": n["unit_id"], "rule": n["rule"], "subject": n["subject"],
                  "effect": await service.effect(session, notice=n, today=_today(request),
                                                 span_days=_settings(request).effect_days)} for n in rows]
    return {"items": items, "next_cursor": None}


# ----- rules ------------------------------------------------------------------------


@router.get("/rules", tags=["rules"])
async def list_rules(request: Request, principal: Principal = Depends(require("commission"))) -> dict[str, Any]:
    async with runtime_of(request).sessions() as session:
        rules = service.rules_view(await service.load_rules(session))
    return {"items": [{"id": k, "settings": v} for k, v in rules.items()], "next_cursor": None}


@router.post("/rules:evaluate", tags=["rules"])
async def evaluate(request: Request, principal: Principal = Depends(require("commission")),
                   body: EvaluateIn | None = None) -> dict[str, Any]:
    """Run the sweep now: the closed days not yet swept, or the one `day` given (a re-evaluation)."""
    runtime = runtime_of(request)
    now = _now(request)
    async with runtime.transaction() as session:
        await repository.lock(session, "notices-sweep")  # a sweep running now finishes first (seconds at most)
        if body is not None and body.day is not None:
            if body.day > _today(request):
                raise ApiError(422, "cannot evaluate a day in the future")
            if body.day < EARLIEST_DAY:
                raise ApiError(422, f"cannot evaluate a day before {EARLIEST_DAY.isoformat()}; give a later day",
                               details=[{"day": body.day.isoformat()}])
            results = [await service.evaluate(session, city=runtime.city, calendar=_calendar(request),
                                              today=body.day, now=now)]
            await service.mark_deadlines(session, calendar=_calendar(request), today=_today(request), now=now)
        else:
            results = await service.sweep(session, city=runtime.city, calendar=_calendar(request),
                                          today=_today(request), now=now,
                                          catchup_days=_settings(request).catchup_days)
            results.append(await service.evaluate(session, city=runtime.city, calendar=_calendar(request),
                                                  today=_today(request), now=now))
    return {"days": [{"day": r.day.isoformat(), "fired": r.fired, "issued": r.issued, "updated": r.updated}
                     for r in results],
            "issued": [i for r in results for i in r.issued]}


@router.get("/rules/{rule_id}", tags=["rules"])
async def get_rule(rule_id: str, request: Request, principal: Principal = Depends(require("commission"))
                   ) -> dict[str, Any]:
    if rule_id not in RULE_MODELS:
        raise ApiError(404, f"rule {rule_id!r} does not exist; one of {', '.join(detectors.RULES)}")
    async with runtime_of(request).sessions() as session:
        rules = service.rules_view(await service.load_rules(session))
        audit = await repository.rule_history(session, rule_id)
    return {"id": rule_id, "settings": rules[rule_id],
            "audit": [{"at": a["at"].isoformat(), "actor": a["actor"], "before": a["before"], "after": a["after"]}
                      for a in audit]}


@router.put("/rules/{rule_id}", tags=["rules"])
async def put_rule(rule_id: str, request: Request, body: Annotated[dict[str, Any], Body()],
                   principal: Principal = Depends(require("commission"))) -> dict[str, Any]:
    from pydantic import ValidationError

    try:
        async with runtime_of(request).transaction() as session:
            settings = await service.put_rule(session, rule_id=rule_id, body=body, principal=principal,
                                              now=_now(request))
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in e["loc"]], "message": e["msg"]} for e in exc.errors()]
        raise ApiError(422, f"invalid settings for {rule_id}", details=details) from exc
    return {"id": rule_id, "settings": settings}


# ----- subscriptions ----------------------------------------------------------------


@router.post("/subscriptions", tags=["subscriptions"], status_code=201)
async def subscribe(body: SubscriptionIn, request: Request,
                    principal: Principal = Depends(require("commission", "coordinator"))) -> dict[str, Any]:
    if body.webhook_url is not None:
        try:
            notify.check_webhook_host(str(body.webhook_url), allow_private=_settings(request).webhook_allow_private)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
    async with runtime_of(request).transaction() as session:
        sub = await service.subscribe(session, unit_id=body.unit_id,
                                      webhook_url=str(body.webhook_url) if body.webhook_url else None,
                                      email=body.email, principal=principal, city=runtime_of(request).city,
                                      now=_now(request))
    # The signing secret is shown once, here; webhooks carry X-Yardstick-Signature: sha256=<hex>.
    return {"id": sub["id"], "unit_id": sub["unit_id"], "webhook_url": sub["webhook_url"], "email": sub["email"],
            "secret": sub["secret"]}


# ----- the public register ----------------------------------------------------------


def _public_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    keep = ("window_count", "baseline_count", "expected_count", "p_value", "q_value", "window", "n", "satisfied",
            "share", "wilson_high", "previous_share", "latest_status", "off_track_in_a_row", "reason", "day",
            "decided_by", "kind")
    return {k: evidence[k] for k in keep if k in evidence}


PUBLIC_COLUMNS = ("id", "unit_id", "rule", "subject", "severity", "status", "overdue", "issued_on",
                  "acknowledged_at", "resolved_at", "verified_on", "outcome", "plan", "commitment", "evidence")


@public.get("/notices", tags=["public"], response_model=None)
async def public_notices(request: Request, year: Year = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None
                         ) -> dict[str, Any] | Response:
    offset = _offset(cursor)
    async with runtime_of(request).sessions() as session:
        rows = await repository.list_notices(session, unit_id=None, status=None, year=year, offset=offset,
                                             limit=limit)
    items = []
    for n in rows:
        plan = n["plan"] or {}
        items.append({"id": n["id"], "unit_id": n["unit_id"], "rule": n["rule"], "subject": n["subject"],
                      "severity": n["severity"], "status": n["status"], "overdue": n["overdue"],
                      "evidence": _public_evidence(n["evidence"]), "plan": plan.get("actions"),
                      "commitment": plan.get("commitment"), "issued_on": n["issued_on"].isoformat(),
                      "acknowledged_at": n["acknowledged_at"].isoformat() if n["acknowledged_at"] else None,
                      "resolved_at": n["resolved_at"].isoformat() if n["resolved_at"] else None,
                      "verified_on": n["verified_on"].isoformat() if n["verified_on"] else None,
                      "outcome": "verified" if n["status"] == "verified" else "open"})
    if wants_csv(request):
        return csv_response(PUBLIC_COLUMNS, items)
    return {"items": items, "next_cursor": _cursor(offset, limit, len(items))}


@router.get("/counts/{kind}/{subject_id}", tags=["counts"])
async def rating_counts(kind: Literal["window", "unit"], subject_id: str, request: Request,
                        principal: Principal = Depends(require("commission"))) -> dict[str, Any]:
    """The rating counts the satisfaction detector reads for one window or unit (all days)."""
    runtime = runtime_of(request)
    known = runtime.city.window_ids if kind == "window" else runtime.city.unit_ids
    if subject_id not in known:
        raise ApiError(404, f"{kind} {subject_id!r} is not in the city profile")
    async with runtime.sessions() as session:
        n, satisfied = await repository.rating_totals(session, kind, subject_id)
    return {"kind": kind, "subject_id": subject_id, "n": n, "satisfied": satisfied}
