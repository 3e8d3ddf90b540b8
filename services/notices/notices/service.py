"""notices' use cases: evaluation, the notice lifecycle, effects, rules and subscriptions."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from notices import detectors, repository
from notices.detectors import ComplaintSettings, Finding, RecurrenceSettings, SatisfactionSettings, TargetSettings
from notices.models import outbox
from notices.schemas import RULE_MODELS, PlanIn
from notices.workdays import WorkCalendar
from yardstick import events
from yardstick.auth import Principal
from yardstick.city import CityProfile
from yardstick.errors import ApiError
from yardstick.events import Envelope
from yardstick.outbox import add as add_to_outbox

SOURCE = "notices"
SWEEP = "daily"
STEPS = {"issued": "acknowledge", "acknowledged": "plan", "plan_submitted": "resolve"}
# action -> (the state it starts from, the state it leads to)
TRANSITIONS = {"acknowledge": ("issued", "acknowledged"), "plan": ("acknowledged", "plan_submitted"),
               "resolve": ("plan_submitted", "resolved"), "verify": ("resolved", "verified"),
               "reopen": ("resolved", "acknowledged")}
ACK_DAYS = 1
PLAN_DAYS = 5
RESOLVE_MAX_DAYS = 60


@dataclass(frozen=True)
class Rules:
    complaint: ComplaintSettings
    satisfaction: SatisfactionSettings
    target: TargetSettings
    recurrence: RecurrenceSettings


async def load_rules(session: AsyncSession) -> Rules:
    stored = await repository.rule_settings(session)

    def of(rule: str) -> dict[str, Any]:
        return RULE_MODELS[rule].model_validate(stored.get(rule, {})).model_dump()

    return Rules(complaint=ComplaintSettings(**of(detectors.COMPLAINT)),
                 satisfaction=SatisfactionSettings(**of(detectors.SATISFACTION)),
                 target=TargetSettings(**of(detectors.TARGET)),
                 recurrence=RecurrenceSettings(**of(detectors.RECURRENCE)))


# ----- detection ---------------------------------------------------------------------


async def detect(session: AsyncSession, *, rules: Rules, today: date) -> list[Finding]:
    """Every detector over the window ending `today`; findings that fire carry sample feedback ids."""
    findings: list[Finding] = []
    c = rules.complaint
    window_start = today - timedelta(days=c.window_days - 1)
    first = await repository.first_data_day(session)
    history_days = (today - first).days + 1 if first is not None else 0
    cells = [detectors.ComplaintCell(u, k, w, b) for u, k, w, b in await repository.complaint_counts(
        session, window_start=window_start, baseline_start=window_start - timedelta(days=c.baseline_days),
        today=today)]
    for finding in detectors.complaint_recurrence(cells, c, history_days=history_days):
        if finding.fires:
            ids = await repository.sample_feedback_ids(session, unit_id=finding.unit_id, category_id=finding.subject,
                                                       since=window_start, today=today)
            finding.evidence["sample_feedback_ids"] = ids
        finding.evidence["window"] = [window_start.isoformat(), today.isoformat()]
        findings.append(finding)
    s = rules.satisfaction
    s_start = today - timedelta(days=s.window_days - 1)
    for kind, subject, unit_id, n, sat, pn, psat in await repository.rating_counts(
            session, window_start=s_start, previous_start=s_start - timedelta(days=s.previous_days), today=today):
        finding = detectors.satisfaction_drop(unit_id=unit_id, subject=subject, kind=kind, n=n, satisfied=sat,
                                              previous_n=pn, previous_satisfied=psat, settings=s)
        finding.evidence["window"] = [s_start.isoformat(), today.isoformat()]
        findings.append(finding)
    # A verified notice closed the run of reports it was about: the reports up to its verification day
    # do not count again (the tracker may call a target on_track without a new report, and verify
    # then succeeds while the last reports are still the off_track ones).
    verified = await repository.last_verified_days(session, rule=detectors.TARGET, today=today)
    for target_id, unit_id, status, recent in await repository.target_statuses(
            session, today=today, limit=rules.target.consecutive_reports, after=verified):
        finding = detectors.target_off_track(unit_id=unit_id, target_id=target_id, recent_statuses=recent,
                                             latest_status=status, settings=rules.target)
        if target_id in verified:
            finding.evidence["reports_after"] = verified[target_id].isoformat()
        findings.append(finding)
    for finding in findings:
        # The day evaluated: the evidence's own day, which a notice keeps when it is issued later
        # (by a catch-up sweep or a re-evaluation) and gets its deadlines from the day it is issued.
        finding.evidence["day"] = today.isoformat()
    return findings


@dataclass
class Evaluation:
    day: date
    issued: list[str]
    updated: list[str]
    fired: int


async def evaluate(session: AsyncSession, *, city: CityProfile, calendar: WorkCalendar, today: date,
                   now: datetime) -> Evaluation:
    """Issue a notice for every cell that fires and has none open; attach new evidence to open ones."""
    rules = await load_rules(session)
    findings = [f for f in await detect(session, rules=rules, today=today) if f.fires]
    issued: list[str] = []
    updated: list[str] = []
    for finding in findings:
        key = repository.open_key(finding.unit_id, finding.rule, finding.subject)
        current = await repository.open_notice(session, key)
        if current is not None:
            if _comparable(current.get("latest_evidence") or current["evidence"]) != _comparable(finding.evidence):
                await repository.update_notice(session, current["id"], {
                    "latest_evidence": finding.evidence, "evidence_updates": current["evidence_updates"] + 1})
                updated.append(current["id"])
            continue
        notice_id = await _issue(session, finding=finding, key=key, rules=rules, calendar=calendar, today=today,
                                 now=now, issue_day=max(today, now.astimezone(city.timezone).date()))
        if notice_id is not None:
            issued.append(notice_id)
    return Evaluation(day=today, issued=issued, updated=updated, fired=len(findings))


def _comparable(evidence: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in evidence.items() if k not in {"history_days", "window", "day"}}


def evidence_day(notice: dict[str, Any]) -> date:
    """The day whose evaluation raised the notice (notices issued before it was recorded: the issue day)."""
    day = notice["evidence"].get("day")
    issued_on: date = notice["issued_on"]
    return date.fromisoformat(day) if isinstance(day, str) else issued_on


async def _issue(session: AsyncSession, *, finding: Finding, key: str, rules: Rules, calendar: WorkCalendar,
                 today: date, now: datetime, issue_day: date) -> str | None:
    """The new notice's id, or None when it would not be a new notice: one was opened on the cell
    meanwhile (it stands; nothing is sent), or the day evaluated lies in the span a notice since
    verified was open on the cell (a re-evaluation of a past episode, already followed to its end).

    `today` is the day evaluated and `issue_day` the local day the notice is issued (later than
    `today` in a catch-up sweep or a re-evaluation): the acknowledge deadline counts from the
    issue, so a notice is never overdue the moment it is created.
    """
    earlier = await repository.last_verified(session, unit_id=finding.unit_id, rule=finding.rule,
                                             subject=finding.subject)
    gap = (today - earlier["verified_on"]).days if earlier is not None and earlier["verified_on"] else None
    if earlier is not None and gap is not None and gap < 0 and evidence_day(earlier) <= today:
        return None
    # Recurrence counts from a verification on or before the day evaluated, never from a later one.
    escalated = gap is not None and 0 <= gap <= rules.recurrence.recurrence_days
    notice_id = str(uuid.uuid4())
    evidence = dict(finding.evidence)
    feedback_ids = list(evidence.pop("sample_feedback_ids", []))
    if escalated:
        assert earlier is not None
        evidence["recurrence"] = {"rule": detectors.RECURRENCE, "earlier_notice_id": earlier["id"],
                                  "verified_on": earlier["verified_on"].isoformat(),
                                  "recurrence_days": rules.recurrence.recurrence_days}
    severity = "escalated" if escalated else "normal"
    linked = earlier["id"] if escalated and earlier is not None else None
    deadline = calendar.add(issue_day, ACK_DAYS)
    if not await repository.insert_notice(session, {
        "id": notice_id, "unit_id": finding.unit_id, "rule": finding.rule, "subject": finding.subject,
        "open_key": key, "status": "issued", "severity": severity, "overdue": False, "issued_at": now,
        # The year stays the evidence's, so a replay keeps a notice in the year of its problem.
        "issued_on": issue_day, "year": today.year, "evidence": evidence, "latest_evidence": None,
        "evidence_updates": 0, "feedback_ids": feedback_ids, "linked_notice_id": linked,
        "step": "acknowledge", "deadline": deadline}):
        return None
    await repository.add_history(session, {"notice_id": notice_id, "at": now, "action": "issue", "previous": None,
                                           "status": "issued", "actor_role": "system", "actor": None,
                                           "text": None})
    data = events.NoticeIssued(notice_id=notice_id, unit_id=finding.unit_id, rule=finding.rule,
                               subject=finding.subject, severity=severity, issued_at=now, year=today.year,
                               evidence=evidence, linked_notice_id=linked, feedback_ids=feedback_ids)
    await _emit(session, data, finding.unit_id)
    await _notify(session, unit_id=finding.unit_id, now=now, payload={
        "type": "notice.issued", "notice_id": notice_id, "unit_id": finding.unit_id, "rule": finding.rule,
        "subject": finding.subject, "severity": severity, "issued_on": issue_day.isoformat(),
        "deadline": deadline.isoformat()})
    return notice_id


async def _emit(session: AsyncSession, data: events.Event, unit_id: str) -> None:
    await add_to_outbox(session, outbox, [Envelope.of(data, source=SOURCE, key=unit_id)])


async def _notify(session: AsyncSession, *, unit_id: str, now: datetime, payload: dict[str, Any]) -> None:
    """Queue one delivery per subscribed channel; the notifier sends them after commit, with retries."""
    for sub in await repository.subscriptions_for(session, unit_id):
        for channel, target in (("webhook", sub["webhook_url"]), ("email", sub["email"])):
            if target:
                await repository.add_delivery(session, {"subscription_id": sub["id"], "channel": channel,
                                                        "payload": payload, "attempts": 0,
                                                        "next_attempt_at": now})


async def sweep(session: AsyncSession, *, city: CityProfile, calendar: WorkCalendar, today: date, now: datetime,
                catchup_days: int) -> list[Evaluation]:
    """Evaluate each closed local day not yet swept (in order), then mark overdue steps and send reminders.

    `today` is the current local day: the days before it are closed. Returns nothing when
    another instance holds the sweep lock.
    """
    if not await repository.try_lock(session, "notices-sweep"):
        return []
    last = await repository.last_swept(session, SWEEP)
    closed = today - timedelta(days=1)
    first = await repository.first_data_day(session)
    start = last + timedelta(days=1) if last is not None else (first or closed)
    start = max(start, closed - timedelta(days=catchup_days - 1))
    results = []
    day = start
    while day <= closed:
        results.append(await evaluate(session, city=city, calendar=calendar, today=day, now=now))
        day += timedelta(days=1)
    if closed >= start or last is None:
        await repository.set_swept(session, SWEEP, max(closed, last or closed))
    await mark_deadlines(session, calendar=calendar, today=today, now=now)
    return results


async def mark_deadlines(session: AsyncSession, *, calendar: WorkCalendar, today: date, now: datetime) -> None:
    """A missed deadline sets `overdue` and publishes notice.overdue, without changing the state."""
    for notice in await repository.notices_with_deadlines(session):
        deadline: date = notice["deadline"]
        if today > deadline and not notice["overdue"]:
            await repository.update_notice(session, notice["id"], {"overdue": True})
            await repository.add_history(session, {
                "notice_id": notice["id"], "at": now, "action": "overdue", "previous": notice["status"],
                "status": notice["status"], "actor_role": "system", "actor": None,
                "text": f"{notice['step']} was due {deadline.isoformat()}"})
            await _emit(session, events.NoticeOverdue(notice_id=notice["id"], unit_id=notice["unit_id"],
                                                      step=notice["step"] or "", deadline=deadline),
                        notice["unit_id"])
            await _notify(session, unit_id=notice["unit_id"], now=now, payload={
                "type": "notice.overdue", "notice_id": notice["id"], "unit_id": notice["unit_id"],
                "step": notice["step"], "deadline": deadline.isoformat()})
        elif today < deadline <= calendar.add(today, 1) and notice["reminded_for"] != deadline:
            await repository.update_notice(session, notice["id"], {"reminded_for": deadline})
            await _notify(session, unit_id=notice["unit_id"], now=now, payload={
                "type": "notice.deadline", "notice_id": notice["id"], "unit_id": notice["unit_id"],
                "step": notice["step"], "deadline": deadline.isoformat()})


# ----- lifecycle ---------------------------------------------------------------------


async def get(session: AsyncSession, *, notice_id: str, principal: Principal, lock: bool = False
              ) -> dict[str, Any]:
    notice = await repository.get_notice(session, notice_id, lock=lock)
    if notice is None:
        raise ApiError(404, f"notice {notice_id} does not exist")
    if principal.role == "coordinator" and principal.unit_id != notice["unit_id"]:
        raise ApiError(403, f"this token does not cover unit {notice['unit_id']}")
    return notice


async def transition(session: AsyncSession, *, notice_id: str, action: str, principal: Principal,
                     calendar: WorkCalendar, today: date, now: datetime, text: str | None = None,
                     plan: PlanIn | None = None) -> dict[str, Any]:
    """One step of the lifecycle: checks who may, from which state, and what verification needs."""
    notice = await get(session, notice_id=notice_id, principal=principal, lock=True)
    by_commission = action in {"verify", "reopen"}
    if by_commission and principal.role != "commission":
        raise ApiError(403, f"only the commission may {action} a notice")
    if not by_commission and not (principal.role == "coordinator" and principal.unit_id == notice["unit_id"]):
        raise ApiError(403, f"only the coordinator of {notice['unit_id']} may {action} this notice")
    start, end = TRANSITIONS[action]
    if notice["status"] != start:
        raise ApiError(409, f"cannot {action} a notice that is {notice['status']}; it must be {start}",
                       details=[{"status": notice["status"], "required": start}])
    values: dict[str, Any] = {"status": end, "overdue": False}
    published: dict[str, Any] = {}  # what notice.transitioned carries for the public register
    if action == "acknowledge":
        values |= {"acknowledged_at": now, "step": "plan", "deadline": calendar.add(today, PLAN_DAYS)}
    elif action == "plan":
        assert plan is not None
        due = plan.commitment.due
        if due <= today or due > today + timedelta(days=RESOLVE_MAX_DAYS):
            raise ApiError(422, f"the commitment's due date must be after today and at most {RESOLVE_MAX_DAYS} "
                                "calendar days after the plan", details=[{"due": due.isoformat()}])
        values |= {"plan": plan.model_dump(mode="json"), "plan_at": now, "step": "resolve", "deadline": due}
        published = {"actions": list(plan.actions),
                     "commitment": events.NoticeCommitment(**plan.commitment.model_dump())}
    elif action == "resolve":
        values |= {"resolution": text, "resolved_at": now, "step": None, "deadline": None}
    elif action == "reopen":
        values |= {"step": "plan", "deadline": calendar.add(today, PLAN_DAYS), "resolved_at": None}
    elif action == "verify":
        recovered, figures = await current_figures(session, notice=notice, today=today)
        if not recovered:
            raise ApiError(409, figures.pop("why", "the metric that fired is not back to normal yet"),
                           details=[figures])
        values |= {"verified_at": now, "verified_on": today, "open_key": None, "step": None, "deadline": None}
        published = {"figures": {k: v for k, v in figures.items()
                                 if isinstance(v, int | float) and not isinstance(v, bool)}}
    await repository.update_notice(session, notice_id, values)
    await repository.add_history(session, {"notice_id": notice_id, "at": now, "action": action,
                                           "previous": start, "status": end, "actor_role": principal.role,
                                           "actor": principal.subject, "text": text})
    deadline: date | None = values.get("deadline")
    await _emit(session, events.NoticeTransitioned(notice_id=notice_id, unit_id=notice["unit_id"], previous=start,
                                                   status=end, at=now, actor_role=principal.role,
                                                   deadline=deadline, **published),
                notice["unit_id"])
    await _notify(session, unit_id=notice["unit_id"], now=now, payload={
        "type": "notice.transitioned", "notice_id": notice_id, "unit_id": notice["unit_id"], "previous": start,
        "status": end, "deadline": deadline.isoformat() if deadline else None})
    return notice | values


async def current_figures(session: AsyncSession, *, notice: dict[str, Any], today: date
                          ) -> tuple[bool, dict[str, Any]]:
    """Whether the metric that fired is back to normal, with the figures that say so (and, under
    `why`, the 409's message when it is not for another reason than the metric itself)."""
    rules = await load_rules(session)
    rule, unit_id, subject = notice["rule"], notice["unit_id"], notice["subject"]
    if rule == detectors.COMPLAINT:
        c = rules.complaint
        start = today - timedelta(days=c.window_days - 1)
        rows = await repository.complaint_counts(session, window_start=start,
                                                 baseline_start=start - timedelta(days=c.baseline_days),
                                                 today=today, unit_id=unit_id, category_id=subject)
        window, baseline = (rows[0][2], rows[0][3]) if rows else (0, 0)
        p0 = c.window_days / (c.window_days + c.baseline_days)
        return detectors.complaint_recovered(window, baseline, c), {
            "window_count": window, "baseline_count": baseline, "min_count": c.min_count,
            "p_value": detectors.recurrence_p_value(window, baseline, p0), "alpha": c.alpha,
            "window": [start.isoformat(), today.isoformat()]}
    if rule == detectors.SATISFACTION:
        s = rules.satisfaction
        kind = notice["evidence"].get("kind", "window")
        start = today - timedelta(days=s.window_days - 1)
        n, sat = await repository.rating_span(session, kind=kind, subject_id=subject, first=start, last=today)
        low, high = detectors.wilson_interval(sat, n, s.confidence)
        figures = {"n": n, "satisfied": sat, "wilson_low": low, "wilson_high": high, "threshold": s.threshold,
                   "min_ratings": s.min_ratings, "window": [start.isoformat(), today.isoformat()]}
        if n < s.min_ratings:
            # With no ratings the interval is (0, 1): its upper end says nothing about a recovery.
            figures["why"] = (f"too few ratings to verify: {n} in the {s.window_days} days ending today, "
                              f"{s.min_ratings} needed (as to fire); verify once enough ratings have come in")
        return detectors.satisfaction_recovered(n, sat, s), figures
    status = await repository.target_status(session, subject)
    # A withdrawn target can never be back on track: it is gone, and its notice may be verified
    # once resolved (docs/decisions/notices-detection.md).
    return status in {"on_track", detectors.WITHDRAWN}, {"status": status}


async def effect(session: AsyncSession, *, notice: dict[str, Any], today: date, span_days: int
                 ) -> dict[str, Any] | None:
    """The metric over `span_days` before the notice and over the same span after verification."""
    verified_on: date | None = notice["verified_on"]
    if verified_on is None:
        return None
    # Before the evidence's day, not the issue day: a notice issued late by a catch-up sweep would
    # otherwise count the very rise that raised it as "before".
    first_day = evidence_day(notice)
    before = (first_day - timedelta(days=span_days), first_day - timedelta(days=1))
    after_end = min(verified_on + timedelta(days=span_days), today)
    after = (verified_on + timedelta(days=1), after_end)
    out: dict[str, Any] = {"span_days": span_days, "complete": after_end - verified_on >= timedelta(days=span_days)}
    for name, (first, last) in (("before", before), ("after", after)):
        days = max(0, (last - first).days + 1)
        figures: dict[str, Any] = {"first": first.isoformat(), "last": last.isoformat(), "days": days}
        if notice["rule"] == detectors.COMPLAINT:
            negative, total = await repository.cell_totals(session, unit_id=notice["unit_id"],
                                                           category_id=notice["subject"], first=first, last=last)
            figures |= {"negative": negative, "items": total,
                        "per_week": negative / days * 7 if days else None,
                        "negative_share": negative / total if total else None}
        elif notice["rule"] == detectors.SATISFACTION:
            n, sat = await repository.rating_span(session, kind=notice["evidence"].get("kind", "window"),
                                                  subject_id=notice["subject"], first=first, last=last)
            figures |= {"n": n, "satisfied": sat, "satisfaction": sat / n if n else None}
        out[name] = figures
    if notice["rule"] == detectors.TARGET:
        out["status_now"] = await repository.target_status(session, notice["subject"])
    return out


# ----- rules and subscriptions -------------------------------------------------------


async def put_rule(session: AsyncSession, *, rule_id: str, body: dict[str, Any], principal: Principal,
                   now: datetime) -> dict[str, Any]:
    model = RULE_MODELS.get(rule_id)
    if model is None:
        raise ApiError(404, f"rule {rule_id!r} does not exist; one of {', '.join(detectors.RULES)}")
    stored = (await repository.rule_settings(session)).get(rule_id)
    merged = model.model_validate({**(stored or {}), **body}).model_dump()
    await repository.put_rule(session, rule_id=rule_id, settings=merged, before=stored, actor=principal.subject,
                              at=now)
    return merged


async def subscribe(session: AsyncSession, *, unit_id: str | None, webhook_url: str | None, email: str | None,
                    principal: Principal, city: CityProfile, now: datetime) -> dict[str, Any]:
    if not webhook_url and not email:
        raise ApiError(422, "give a webhook_url, an email, or both")
    if principal.role == "coordinator":
        if unit_id is not None and unit_id != principal.unit_id:
            raise ApiError(403, f"this token does not cover unit {unit_id}")
        unit_id = principal.unit_id
    if unit_id is not None and unit_id not in city.unit_ids:
        raise ApiError(422, f"unit {unit_id!r} is not in the city profile")
    sub = {"id": str(uuid.uuid4()), "unit_id": unit_id, "webhook_url": webhook_url, "email": email,
           "secret": secrets.token_hex(32), "created_at": now}
    await repository.add_subscription(session, sub)
    return sub


def rules_view(rules: Rules) -> dict[str, dict[str, Any]]:
    return {detectors.COMPLAINT: asdict(rules.complaint), detectors.SATISFACTION: asdict(rules.satisfaction),
            detectors.TARGET: asdict(rules.target), detectors.RECURRENCE: asdict(rules.recurrence)}
