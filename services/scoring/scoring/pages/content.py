"""What each page shows, gathered from scoring's read model: no HTTP here, and no other service called."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from datetime import date, timedelta, tzinfo
from typing import Any

from scoring import repository, service
from scoring.pages import i18n, opinion
from yardstick.db import as_utc
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime

# The step a notice waits for in each state (notices.md lifecycle); deadlines reach us only when missed.
NEXT_STEP = {"issued": "acknowledge", "acknowledged": "plan", "plan_submitted": "resolve", "resolved": "verify"}


def _numbers(values: dict[str, Any]) -> dict[str, int | float]:
    return {k: v for k, v in sorted(values.items()) if isinstance(v, int | float) and not isinstance(v, bool)}


def _words(values: dict[str, Any]) -> dict[str, str | list[str]]:
    """The evidence given in words that the pages can name: why it fired, how it decided, the days it
    looked at. Only the detectors' own vocabulary (i18n.EVIDENCE_WORDS, a target's statuses) and
    calendar days pass: any other text in an event's evidence could say anything, personal data
    included, and is never shown (nor are the sample feedback ids)."""
    out: dict[str, str | list[str]] = {}
    for k, v in sorted(values.items()):
        if isinstance(v, str) and ((k, v) in i18n.EVIDENCE_WORDS
                                   or (k == "latest_status" and v in i18n.TARGET_STATUSES)
                                   or (k in i18n.DAY_KEYS and _is_day(v))):
            out[k] = v
        elif k == "window" and isinstance(v, list) and len(v) == 2 and all(_is_day(x) for x in v):
            out[k] = list(v)
    return out


def _is_day(value: Any) -> bool:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def observed_day(n: dict[str, Any]) -> date | None:
    """The last day of the window the detector looked at (its evidence's `window`), when it says so.

    A notice raised by re-evaluating a past day is issued now about that day: the effect and the
    register use the day the problem was seen.
    """
    window = n["evidence"].get("window")
    if isinstance(window, list) and len(window) == 2 and isinstance(window[1], str):
        try:
            return date.fromisoformat(window[1])
        except ValueError:
            return None
    return None


def notice_row(n: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """A notice as the pages show it: no feedback ids, evidence reduced to its numbers.

    The plan, its commitment, the deadline of the step now due and the verification's figures come
    from the newest `notice.transitioned` that carried them (older events carry none: `plan_known`).
    Timestamps stay UTC instants (the JSON report carries them); `issued_on` is the city's calendar
    day of the issue, which the register compares with the day the problem was seen.
    """
    history = list(n["history"])
    plan = next((h for h in reversed(history) if h.get("actions") or h.get("commitment")), None)
    current = history[-1] if history else {}
    verified = next((h for h in reversed(history) if h.get("status") == "verified"), None)
    commitment = dict(plan["commitment"]) if plan and plan.get("commitment") else None
    if commitment and isinstance(commitment.get("target"), float) and commitment["target"].is_integer():
        commitment["target"] = int(commitment["target"])  # "3 a week", not "3.00 a week"
    reopened = any(h.get("status") == "acknowledged" and h.get("previous") == "resolved" for h in history)
    if n["status"] == "verified":
        outcome = "verified"
    elif reopened:
        outcome = "reopened"
    else:
        outcome = "in_progress"
    return {"notice_id": n["notice_id"], "unit_id": n["unit_id"], "year": n["year"], "rule": n["rule"],
            "subject": n["subject"], "severity": n["severity"], "status": n["status"],
            "issued_at": as_utc(n["issued_at"]).isoformat(),
            "issued_on": as_utc(n["issued_at"]).astimezone(tz).date().isoformat(),
            "observed_on": (observed.isoformat() if (observed := observed_day(n)) else None),
            "verified_at": as_utc(n["verified_at"]).isoformat() if n["verified_at"] else None,
            "evidence": _numbers(n["evidence"]), "evidence_words": _words(n["evidence"]), "overdue": list(n["overdue"]),
            "history": [{"status": h["status"], "at": h["at"]} for h in history],
            "next_step": NEXT_STEP.get(n["status"]),
            "linked_notice_id": n["linked_notice_id"],
            "plan_known": plan is not None or not any(h.get("status") == "plan_submitted" for h in history),
            "actions": list(plan.get("actions") or []) if plan else [],
            "commitment": commitment,
            "planned_at": plan["at"] if plan else None,
            "deadline": current.get("deadline") if n["status"] not in ("resolved", "verified") else None,
            "outcome": outcome,
            "figures": _numbers(verified.get("figures") or {}) if verified else {}}


async def page_stamp(runtime: ServiceRuntime) -> str:
    async with runtime.sessions() as session:
        return await repository.page_stamp(session)


async def ranking(runtime: ServiceRuntime, year: int) -> dict[str, list[dict[str, Any]]]:
    """Rows per group, in rank order, groups in the city profile's order."""
    rows = service.ranking_rows(await service.scorecards(runtime, year), None)
    out: dict[str, list[dict[str, Any]]] = {g.id: [] for g in runtime.city.groups}
    for r in rows:
        out.setdefault(r["group"], []).append(r)
    return out


async def open_notices(runtime: ServiceRuntime, unit_id: str | None = None) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        rows = await repository.notices_of(session, unit_id=unit_id, open_only=True)
    return [notice_row(n, runtime.city.timezone) for n in rows]


async def has_data(runtime: ServiceRuntime, year: int) -> bool:
    """Whether anything was ever recorded for the year (its row appears with the first input)."""
    async with runtime.sessions() as session:
        return await repository.year_row(session, year) is not None


async def unit_page(runtime: ServiceRuntime, unit_id: str, year: int) -> dict[str, Any]:
    card = await service.scorecard(runtime=runtime, unit_id=unit_id, year=year)
    async with runtime.sessions() as session:
        days = await repository.weekly_satisfaction(session, unit_id=unit_id, year=year)
        cells = await repository.complaint_cells(session, year=year, unit_id=unit_id)
        targets = await repository.target_series(session, unit_id=unit_id, year=year)
        notices = await repository.notices_of(session, unit_id=unit_id, year=year)
    weeks, by_channel = opinion.weekly_means(days)
    negative: dict[str, int] = defaultdict(int)
    weekly: dict[str, dict[date, int]] = defaultdict(dict)
    for _u, category, week, _total, n in cells:
        negative[category] += n
        weekly[category][week] = weekly[category].get(week, 0) + n
    # The trend covers the 12 weeks up to now (or to the year's end), quiet weeks as zeros.
    last = opinion.week_of(min(service.today(runtime), date(year, 12, 31)))
    all_weeks = [last - timedelta(weeks=i) for i in range(11, -1, -1)]
    top = sorted((c for c in negative if negative[c] > 0), key=lambda c: (-negative[c], c))[:8]
    categories = [{"category_id": c, "negative": negative[c], "trend": [weekly[c].get(w, 0) for w in all_weeks]}
                  for c in top]
    return {"card": card, "weeks": weeks, "satisfaction": by_channel, "categories": categories,
            "category_weeks": all_weeks, "targets": targets,
            "notices": [notice_row(n, runtime.city.timezone) for n in notices]}


async def public_results(runtime: ServiceRuntime, year: int | None) -> dict[str, Any]:
    """The published scorecards of a year (the newest published when none is asked) and its notices."""
    async with runtime.sessions() as session:
        published = await repository.published_years(session)
    if year is None:
        year = published[0][0] if published else service.current_year(runtime)
    try:
        results: dict[str, Any] | None = await service.public_scorecards(runtime=runtime, year=year)
    except ApiError as exc:
        if exc.status != 404:
            raise
        results = None
    async with runtime.sessions() as session:
        notices = await repository.notices_of(session, year=year)
    groups: dict[str, list[dict[str, Any]]] = {g.id: [] for g in runtime.city.groups}
    for r in (results or {}).get("rows", []):
        groups.setdefault(r["group"], []).append(r)
    return {"year": year, "years": [y for y, _s in published], "results": results, "groups": groups,
            "notices": [notice_row(n, runtime.city.timezone) for n in notices]}


async def public_unit(runtime: ServiceRuntime, unit_id: str, year: int | None) -> dict[str, Any]:
    """One unit's published results: the asked (or newest) published year, every published year's
    satisfaction and total for the year-on-year line, and the unit's notices in the register."""
    async with runtime.sessions() as session:
        published = await repository.published_years(session)
        notices = await repository.notices_of(session, unit_id=unit_id)
    years = [y for y, _s in published]
    if year is None:
        year = years[0] if years else service.current_year(runtime)
    history = []
    card = None
    for y in years:
        results = await service.public_scorecards(runtime=runtime, year=y)
        mine = next((c for c in results["scorecards"] if c["unit_id"] == unit_id), None)
        if mine is None:
            continue
        rated = any(v.get("n", 0) for v in mine["public"].get("channels", {}).values())
        history.append({"year": y, "final": results["final"], "total": mine["total"], "rank": mine["rank"],
                        "grade": mine["grade"], "S": mine["public"].get("S") if rated else None})
        if y == year:
            # S is 0 on the scorecard when nobody rated the unit: the page shows "—" then.
            card = mine | {"final": results["final"], "rated": rated}
    return {"unit_id": unit_id, "year": year, "years": years, "card": card,
            "history": sorted(history, key=lambda h: h["year"]),
            "notices": [notice_row(n, runtime.city.timezone) for n in notices]}


async def year_status(runtime: ServiceRuntime, year: int) -> str:
    async with runtime.sessions() as session:
        row = await repository.year_row(session, year)
    return str(row["status"]) if row else "live"


async def annual_report(runtime: ServiceRuntime, year: int) -> dict[str, Any]:
    """The annual public-opinion analysis: every figure from the read model or the scorecards."""
    today = service.today(runtime)
    async with runtime.sessions() as session:
        row = await repository.year_row(session, year)
        previous_row = await repository.year_row(session, year - 1)
        months = await repository.months_of(session, year)
        this_cells = await repository.complaint_cells(session, year=year)
        last_cells = await repository.complaint_cells(session, year=year - 1)
        notices = await repository.notices_of(session, year=year)
        cell_weeks: dict[tuple[str, str], list[tuple[date, int, int]]] = {}
        for n in notices:
            if n["status"] == "verified" and n["rule"] in ("complaint-recurrence", "recurrence-after-rectification"):
                key = (n["unit_id"], n["subject"])
                if key not in cell_weeks:
                    cell_weeks[key] = await repository.complaint_weeks_of(session, unit_id=key[0],
                                                                          category_id=key[1])
    status = str(row["status"]) if row else "live"
    cards = await service.scorecards(runtime, year)
    # Last year's satisfaction, for the year-on-year column: its final scorecards once finalized.
    previous_cards = await service.scorecards(runtime, year - 1)
    # None: nothing was recorded for last year, so its column has no state to name.
    previous_status = str(previous_row["status"]) if previous_row else None

    channels: dict[str, list[int]] = {}
    for m, channel, count in months:
        channels.setdefault(channel, [0] * 12)[m - 1] += count
    volume = {"months": list(range(1, 13)), "channels": dict(sorted(channels.items())),
              "by_channel": {c: sum(v) for c, v in sorted(channels.items())},
              "by_month": [sum(v[m] for v in channels.values()) for m in range(12)],
              "total": sum(sum(v) for v in channels.values())}

    satisfaction = []
    # Groups in the city profile's order (departments before districts), as the ranking shows them.
    group_order = {g.id: i for i, g in enumerate(runtime.city.groups)}
    for card in sorted(cards.values(), key=lambda c: (group_order.get(c["group"], len(group_order)), c["group"],
                                                      c["rank"], c["unit_id"])):
        public = card["public"]
        satisfaction.append({"unit_id": card["unit_id"], "group": card["group"], "rank": card["rank"],
                             "grade": card["grade"], "total": card["total"], "S": public.get("S"),
                             "interval": public.get("interval"),
                             "n": {c: v.get("n", 0) for c, v in public.get("channels", {}).items()}})
        # S is 0 on the scorecard when nobody rated the unit; the report says "no ratings" instead.
        satisfaction[-1]["rated"] = any(n for n in satisfaction[-1]["n"].values())
        before = previous_cards.get(card["unit_id"])
        rated_before = before is not None and any(v.get("n", 0) for v in before["public"].get("channels", {}).values())
        previous_s = before["public"].get("S") if before is not None and rated_before else None
        satisfaction[-1]["previous_S"] = previous_s
        satisfaction[-1]["change"] = (public.get("S") - previous_s
                                      if previous_s is not None and satisfaction[-1]["rated"] else None)

    def negatives(cells: list[tuple[str, str, date, int, int]]) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for _u, category, _w, _t, n in cells:
            out[category] += n
        return {c: n for c, n in out.items() if n}

    shares = opinion.category_shares(negatives(this_cells), negatives(last_cells))
    by_status: dict[str, int] = defaultdict(int)
    by_rule: dict[str, int] = defaultdict(int)
    items = []
    for n in sorted(notices, key=lambda n: (as_utc(n["issued_at"]), n["notice_id"])):
        by_status[n["status"]] += 1
        by_rule[n["rule"]] += 1
        item = notice_row(n, runtime.city.timezone)
        weeks = cell_weeks.get((n["unit_id"], n["subject"]))
        if weeks is not None and n["verified_at"] is not None:
            tz = runtime.city.timezone
            eff = opinion.effect([(w, neg) for w, _t, neg in weeks],
                                 issued=observed_day(n) or as_utc(n["issued_at"]).astimezone(tz).date(),
                                 verified=as_utc(n["verified_at"]).astimezone(tz).date(), today=today)
            item["effect"] = asdict(eff)
        else:
            item["effect"] = None
        items.append(item)
    rows = [asdict(s) for s in shares]
    return {
        "year": year, "status": status, "previous_status": previous_status, "generated_on": today.isoformat(),
        "volume": volume, "satisfaction": satisfaction,
        "categories": rows,
        "negative_total": sum(s.negative for s in shares),
        "previous_negative_total": sum(s.previous_negative for s in shares),
        "notices": {"issued": len(notices), "by_status": dict(sorted(by_status.items())),
                    "by_rule": dict(sorted(by_rule.items())), "items": items},
        "priorities": [r for r in rows if r["priority"]],
        "test": opinion.TEST,
    }
