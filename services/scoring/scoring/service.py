"""scoring's use cases: scorecards from the aggregates, the commission's inputs, closing a year."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from scoring import method, repository
from yardstick import events
from yardstick.auth import Principal
from yardstick.db import as_utc
from yardstick.errors import ApiError
from yardstick.events import Envelope
from yardstick.runtime import ServiceRuntime

log = logging.getLogger(__name__)
SOURCE = "scoring"


def now() -> datetime:
    return datetime.now(UTC)


def today(runtime: ServiceRuntime) -> date:
    return now().astimezone(runtime.city.timezone).date()


def current_year(runtime: ServiceRuntime) -> int:
    return today(runtime).year


# --- inputs and computation -------------------------------------------------------------


async def config_of(session: AsyncSession, year: int) -> method.Config:
    body = await repository.config_body(session, year)
    return method.config_from(body) if body else method.Config()


async def load_inputs(session: AsyncSession, year: int, as_of: date) -> dict[str, Any]:
    """The year's inputs in canonical form: plain JSON, what a final scorecard's digest covers."""
    return assemble_inputs(year, as_of, await repository.channel_sums(session, year),
                           await load_other_inputs(session, year, as_of))


async def load_other_inputs(session: AsyncSession, year: int, as_of: date) -> dict[str, Any]:
    """Every input but the ratings, as the repository reads them (a pass may keep them: see refresh)."""
    return {"config": await config_of(session, year), "cells": await repository.survey_cells_of(session, year),
            "grades": await repository.grades_of(session, year),
            "projects": await repository.projects_of(session, year),
            "adjustments": await repository.adjustments_of(session, year),
            "targets": await repository.targets_of(session, year, as_of),
            "strata": await repository.survey_strata_of(session, year)}


def assemble_inputs(year: int, as_of: date, channels: dict[str, dict[str, tuple[int, float, float]]],
                    other: dict[str, Any]) -> dict[str, Any]:
    """The canonical inputs from the ratings and the other inputs (which it leaves as they are)."""
    units: dict[str, dict[str, Any]] = {}

    def unit(u: str) -> dict[str, Any]:
        return units.setdefault(u, {"channels": {}, "survey": {}, "targets": [], "grades": [], "projects": {},
                                    "adjustments": []})

    for u, by_channel in channels.items():
        unit(u)["channels"] = {c: list(v) for c, v in sorted(by_channel.items())}
    for u, by_stratum in other["cells"].items():
        unit(u)["survey"] = {h: list(v) for h, v in sorted(by_stratum.items())}
    for t in sorted(other["targets"], key=lambda t: str(t["target_id"])):
        unit(t["unit_id"])["targets"].append({k: v for k, v in t.items() if k != "unit_id"})
    for u, marks in other["grades"].items():
        unit(u)["grades"] = sorted(marks)
    for u, by_project in other["projects"].items():
        unit(u)["projects"] = {p: sorted(m) for p, m in sorted(by_project.items())}
    for u, rows in other["adjustments"].items():
        unit(u)["adjustments"] = [list(r) for r in rows]
    return {"year": year, "as_of": as_of.isoformat(), "config": other["config"].as_dict(),
            "strata": {h: list(v) for h, v in sorted(other["strata"].items())},
            "units": dict(sorted(units.items()))}


def digest(inputs: dict[str, Any]) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def input_counts(inputs: dict[str, Any]) -> dict[str, int]:
    units = inputs["units"].values()
    return {
        "ratings": sum(int(v[0]) for u in units for c, v in u["channels"].items()),
        "survey_ratings": sum(int(v[0]) for u in units for v in u["survey"].values()),
        "survey_respondents": sum(int(n) for _pop, n in inputs["strata"].values()),
        "targets": sum(len(u["targets"]) for u in units),
        "leader_grades": sum(len(u["grades"]) for u in units),
        "projects": sum(len(u["projects"]) for u in units),
        "assessments": sum(len(m) for u in units for m in u["projects"].values()),
        "adjustments": sum(len(u["adjustments"]) for u in units),
    }


def compute(groups: dict[str, str], inputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every scorecard of the year from canonical inputs (the same function for live, final and verify)."""
    config = method.config_from(inputs["config"])
    strata = {h: (int(pop), int(n)) for h, (pop, n) in inputs["strata"].items()}
    per_unit: dict[str, method.UnitInputs] = {}
    for u, raw in inputs["units"].items():
        channels = {c: method.ChannelSums(n=float(n), sum_s=s, sum_s2=s2, count=int(n))
                    for c, (n, s, s2) in raw["channels"].items() if n > 0}
        survey = method.survey_sums({h: method.StratumSums(int(n), s, s2) for h, (n, s, s2) in raw["survey"].items()},
                                    strata)
        if survey.count > 0:
            channels["survey"] = survey
        per_unit[u] = method.UnitInputs(
            channels=channels,
            targets=[method.TargetInput(target_id=t["target_id"], code=t["code"], kind=t["kind"],
                                        direction=t["direction"], baseline=t["baseline"], target=t["target"],
                                        weight=t["weight"], value=t["value"]) for t in raw["targets"]],
            grades=raw["grades"],
            projects=[method.ProjectInput(p, m) for p, m in raw["projects"].items()],
            adjustments=[(p, r) for p, r in raw["adjustments"]])
    return method.year_scorecards(inputs["year"], groups, per_unit, config)


def groups_of(runtime: ServiceRuntime) -> dict[str, str]:
    return {u.id: u.group for u in runtime.city.units}


# --- precomputed scorecards -------------------------------------------------------------------


async def refresh(runtime: ServiceRuntime, *, only: int | None = None, wait: bool = False) -> list[int] | None:
    """One pass: recompute every live year whose aggregates (or day) moved since its scorecards were computed.

    The city-wide means move with every rating, so a pass computes all of a year's scorecards
    at once from the aggregates and stores them; reads answer from what it stored. One
    instance at a time computes (an advisory lock on PostgreSQL): another instance skips the
    pass (`wait` False, the background loop) or waits for it (an API write that must read its
    own change). Inputs are read on a second session, so on SQLite the writing transaction
    starts with its first write. Returns the years recomputed, None when another instance
    held the lock (its pass may have started before this instance's latest events).
    """
    as_of = today(runtime)
    groups = groups_of(runtime)
    done: list[int] = []
    kept = _OTHER_INPUTS.setdefault(runtime, {})
    async with runtime.transaction() as session:
        if wait:
            await repository.wait_recompute_lock(session)
        elif not await repository.lock_recompute(session):
            return None
        async with runtime.sessions() as reader:
            computed_cards = []
            for y, v, computed, status, on, inputs_version in await repository.compute_states(reader):
                if status == "final" or (only is not None and y != only):
                    continue
                if v == computed and on == as_of and await _same_units(runtime, reader, y, groups):
                    continue
                # The versions are read before the inputs: what they hold is at least those versions.
                # Only ratings moved since the other inputs were read: those are kept (one query of
                # eight). They are read again at least every OTHER_INPUTS_MAX_AGE_S all the same: an
                # instance of an older release (a rolling deploy) does not bump inputs_version.
                key = (inputs_version, as_of)
                moment = time.monotonic()
                if y not in kept or kept[y][0] != key or moment - kept[y][1] > OTHER_INPUTS_MAX_AGE_S:
                    kept[y] = (key, moment, await load_other_inputs(reader, y, as_of))
                inputs = assemble_inputs(y, as_of, await repository.channel_sums(reader, y), kept[y][2])
                computed_cards.append((y, v, compute(groups, inputs)))
        for year, version, cards in computed_cards:
            await repository.put_scorecards(session, year, cards)
            await repository.set_year(session, year, computed_version=version, computed_on=as_of)
            _PROFILE_CHECKED.setdefault(runtime, set()).add(year)
            done.append(year)
    return done


async def _same_units(runtime: ServiceRuntime, session: AsyncSession, year: int, groups: dict[str, str]) -> bool:
    """Whether the year's stored scorecards are of the city profile's units and groups.

    The profile changes only with a restart: each year is checked once per runtime (after that a pass
    stores every unit's card), not on every pass.
    """
    checked = _PROFILE_CHECKED.setdefault(runtime, set())
    if year in checked:
        return True
    same = await repository.scorecard_units(session, year) == groups
    if same:
        checked.add(year)
    return same


_PROFILE_CHECKED: weakref.WeakKeyDictionary[ServiceRuntime, set[int]] = weakref.WeakKeyDictionary()

# Per runtime and year, the inputs other than ratings a pass read: the (inputs version, day) they are
# of, when they were read (time.monotonic) and the inputs.
_OTHER_INPUTS: weakref.WeakKeyDictionary[
    ServiceRuntime, dict[int, tuple[tuple[int, date], float, dict[str, Any]]]] = weakref.WeakKeyDictionary()
OTHER_INPUTS_MAX_AGE_S = 30.0


async def behind(runtime: ServiceRuntime) -> list[int]:
    """Live years whose stored scorecards do not yet include everything applied (for at most a second)."""
    as_of = today(runtime)
    async with runtime.sessions() as session:
        return [y for y, v, computed, status, on, _i in await repository.compute_states(session)
                if status != "final" and (v != computed or on != as_of)]


async def refresher(runtime: ServiceRuntime, wake: asyncio.Event, *, min_gap_s: float,
                    poll_s: float) -> None:
    """The background loop: a pass when woken (an applied batch) or every poll_s (another instance's events).

    A wake-up finds the loop idle and the pass starts at once, or finds it resting after a pass
    and the next one starts when the rest is over: at least min_gap_s, and as long as the last
    pass took twice, so under a steady stream the recompute (its queries, the database's work,
    the JSON it stores) takes at most a third of the time and the batches that arrive meanwhile
    share one pass (a rest only as long as the pass measured worse end to end at 1,000 ratings/s:
    the recompute competes with the consumer for this process and the database). An event is in
    the stored scorecards within about four passes' time (the pass it just missed, the rest, its
    own). The wake-up is
    cleared just before a pass reads its inputs: a batch committed after that wakes the loop
    again. A pass skipped because another instance held the lock is tried again after the
    rest, until one includes what this instance applied.
    """
    loop = asyncio.get_running_loop()
    ready_at = loop.time()  # when the rest after the last pass is over
    while True:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel (yardstick.tasks).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll_s):
                await wake.wait()
        await asyncio.sleep(max(0.0, ready_at - loop.time()))
        wake.clear()
        started = loop.time()
        try:
            if await refresh(runtime) is None:
                wake.set()  # another instance's pass may not include our batches: try again after the rest
        except Exception:
            log.exception("scorecard recompute failed; retrying", extra={"service": runtime.service})
        finished = loop.time()
        ready_at = finished + max(min_gap_s, 2 * (finished - started))


@dataclass
class _Cached:
    key: tuple[int, str, date | None]
    cards: dict[str, dict[str, Any]]
    complete: bool  # every unit's card is here (else only the units or groups read since the pass)
    groups: set[str]


_CACHE: weakref.WeakKeyDictionary[ServiceRuntime, dict[int, _Cached]] = weakref.WeakKeyDictionary()


async def _cards(runtime: ServiceRuntime, year: int, *, unit_id: str | None = None,
                 group: str | None = None) -> dict[str, dict[str, Any]]:
    """A year's scorecards as the last pass computed them (a final year: its frozen scorecards).

    The version the stored scorecards were computed from lives in the shared database, so with
    several instances each sees a new pass at its next read. After a pass, a read of one unit
    or one group loads only those rows; the returned dict holds at least what was asked for. A
    year no pass has computed yet (nothing was ever recorded for it) is computed here from its
    (empty) aggregates.
    """
    cache = _CACHE.setdefault(runtime, {})
    async with runtime.sessions() as session:
        row = await repository.year_row(session, year)
        if row is None or (row["status"] != "final" and not row["computed_version"]):
            key: tuple[int, str, date | None] = (int(row["version"]) if row else 0, "live", today(runtime))
        elif row["status"] == "final":
            key = (int(row["version"]), "final", None)
        else:
            key = (int(row["computed_version"]), "computed", row["computed_on"])
        hit = cache.get(year)
        if hit is None or hit.key != key:
            hit = cache[year] = _Cached(key, {}, False, set())
        if hit.complete or (unit_id is not None and unit_id in hit.cards) \
                or (group is not None and group in hit.groups):
            return hit.cards
        groups = groups_of(runtime)
        if key[1] == "computed" and unit_id is not None:
            found = await repository.scorecards_of(session, year, unit_id=unit_id)
            if _units(found) == {unit_id: groups.get(unit_id)}:
                hit.cards.update(found)
                return hit.cards
        if key[1] == "computed" and group is not None:
            found = await repository.scorecards_of(session, year, group=group)
            if _units(found) == {u: g for u, g in groups.items() if g == group}:
                hit.cards.update(found)
                hit.groups.add(group)
                return hit.cards
        if key[1] == "final":
            cards = _with_late(await repository.published_of(session, year, "final"),
                               await repository.late_counts(session, year))
        elif key[1] == "computed":
            cards = await repository.scorecards_of(session, year)
            if _units(cards) != groups_of(runtime):
                # Stored for another city profile (a restart with a changed one), until the next pass.
                cards = compute(groups_of(runtime), await load_inputs(session, year, today(runtime)))
        else:
            cards = compute(groups_of(runtime), await load_inputs(session, year, today(runtime)))
    hit.cards, hit.complete = cards, True
    return cards


def _with_late(cards: dict[str, dict[str, Any]], late: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """A final year's cards with the items of each unit that came after the finalize."""
    for u, card in cards.items():
        card["late_after_final"] = {"ratings": 0} | late.get(u, {})
    return cards


def _units(cards: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The units (and their groups) some stored cards were computed for."""
    return {u: str(c["group"]) for u, c in cards.items()}


async def scorecards(runtime: ServiceRuntime, year: int) -> dict[str, dict[str, Any]]:
    """All scorecards of a year (see _cards)."""
    return await _cards(runtime, year)


async def scorecard(*, runtime: ServiceRuntime, unit_id: str, year: int) -> dict[str, Any]:
    if unit_id not in runtime.city.unit_ids:
        raise ApiError(404, f"unit {unit_id!r} is not in the city profile")
    card = (await _cards(runtime, year, unit_id=unit_id)).get(unit_id)
    if card is None:  # a final year's frozen cards, made before the unit joined the city profile
        raise ApiError(404, f"{year} was finalized without a scorecard of {unit_id!r}")
    return card


def ranking_rows(cards: dict[str, dict[str, Any]], group: str | None) -> list[dict[str, Any]]:
    chosen = [c for c in cards.values() if group is None or c["group"] == group]
    chosen.sort(key=lambda c: (c["group"], c["rank"]))
    return [{"rank": c["rank"], "unit_id": c["unit_id"], "group": c["group"], "total": c["total"],
             "components": c["components"], "grade": c["grade"], "final": c["final"]} for c in chosen]


async def ranking(*, runtime: ServiceRuntime, year: int, group: str | None) -> dict[str, Any]:
    if group is not None and group not in runtime.city.group_ids:
        raise ApiError(404, f"group {group!r} is not in the city profile")
    return {"year": year, "group": group, "rows": ranking_rows(await _cards(runtime, year, group=group), group)}


async def public_scorecards(*, runtime: ServiceRuntime, year: int | None) -> dict[str, Any]:
    """Published results only: the final year, else a published draft marked as such; no year asked, the
    newest published one (as the public pages). A final year's cards show the items that came late, as the
    commission's read does."""
    async with runtime.sessions() as session:
        if year is None:
            published = await repository.published_years(session)
            if not published:
                raise ApiError(404, "no results are published yet")
            year = published[0][0]
        row = await repository.year_row(session, year)
        status = str(row["status"]) if row else "live"
        if status not in ("draft", "final"):
            raise ApiError(404, f"no results of {year} are published yet")
        cards = await repository.published_of(session, year, status)
        if status == "final":
            _with_late(cards, await repository.late_counts(session, year))
    return {"year": year, "draft": status == "draft", "final": status == "final",
            "rows": ranking_rows(cards, None), "scorecards": [cards[u] for u in sorted(cards)]}


# --- config and the commission's inputs -----------------------------------------------------


async def get_config(*, runtime: ServiceRuntime, year: int) -> dict[str, Any]:
    async with runtime.sessions() as session:
        return (await config_of(session, year)).as_dict()


async def _open_year(session: AsyncSession, year: int) -> None:
    """Bump the year (its scorecards change) and refuse inputs once it is final."""
    if await repository.touch_year(session, year) == "final":
        raise ApiError(409, f"{year} is finalized: its scorecards no longer change")


async def put_config(*, runtime: ServiceRuntime, principal: Principal, year: int,
                     body: dict[str, Any]) -> dict[str, Any]:
    problems = method.config_problems(body)
    if problems:
        raise ApiError(422, f"invalid config for {year}: {'; '.join(problems)}", details=problems)
    config = method.config_from(body).as_dict()
    async with runtime.transaction() as session:
        await _open_year(session, year)
        await repository.put_config(session, year, config)
        await _audit(session, principal, "config.put", year, None, config)
    await _recompute(runtime, year)
    return config


async def _recompute(runtime: ServiceRuntime, year: int) -> None:
    """After a commission's write: its scorecards now, so the writer reads its own change at once.

    The write has committed; should the pass fail, the background loop computes it instead.
    """
    try:
        await refresh(runtime, only=year, wait=True)
    except Exception:
        log.exception("scorecard recompute after a write failed; the background pass will do it",
                      extra={"service": runtime.service, "year": year})


async def _audit(session: AsyncSession, principal: Principal, action: str, year: int | None,
                 subject: str | None, details: dict[str, Any]) -> None:
    await repository.add_audit(session, at=now(), actor_role=principal.role, actor=principal.subject,
                               action=action, year=year, subject=subject, details=details)


def _known_unit(runtime: ServiceRuntime, unit_id: str) -> None:
    if unit_id not in runtime.city.unit_ids:
        raise ApiError(422, f"unit {unit_id!r} is not in the city profile")


async def leader_evaluation(*, runtime: ServiceRuntime, principal: Principal, unit_id: str, year: int,
                            grade: float) -> dict[str, Any]:
    _known_unit(runtime, unit_id)
    if not principal.subject:
        raise ApiError(403, "a leader's token must name the leader (its subject)")
    async with runtime.transaction() as session:
        await _open_year(session, year)
        await repository.put_grade(session, unit_id=unit_id, year=year, leader=principal.subject, grade=grade,
                                   at=now())
        await _audit(session, principal, "leader_evaluation", year, unit_id, {"grade": grade})
    await _recompute(runtime, year)
    return {"unit_id": unit_id, "year": year, "grade": grade}


async def create_project(*, runtime: ServiceRuntime, principal: Principal, unit_id: str, year: int,
                         title: str, summary: str | None) -> dict[str, Any]:
    _known_unit(runtime, unit_id)
    if not principal.covers_unit(unit_id):
        raise ApiError(403, f"this token does not cover unit {unit_id}")
    project_id = uuid.uuid4().hex
    async with runtime.transaction() as session:
        await _open_year(session, year)
        await repository.add_project(session, project_id=project_id, unit_id=unit_id, year=year, title=title,
                                     summary=summary, created_at=now())
        await _audit(session, principal, "project.create", year, unit_id, {"project_id": project_id,
                                                                            "title": title})
    await _recompute(runtime, year)
    return {"id": project_id}


async def assess(*, runtime: ServiceRuntime, principal: Principal, project_id: str,
                 points: float) -> dict[str, Any]:
    if not principal.subject:
        raise ApiError(403, "an assessor's token must name the assessor (its subject)")
    async with runtime.transaction() as session:
        project = await repository.project(session, project_id)
        if project is None:
            raise ApiError(404, f"no innovation project {project_id}")
        if principal.unit_id == project["unit_id"]:
            raise ApiError(403, f"assessors affiliated with {project['unit_id']} may not assess its projects")
        config = await config_of(session, project["year"])
        if not 0 <= points <= config.project_max:
            raise ApiError(422, f"points must be between 0 and {config.project_max:g}")
        await _open_year(session, project["year"])
        await repository.put_assessment(session, project_id=project_id, assessor=principal.subject,
                                        points=points, at=now())
        await _audit(session, principal, "project.assess", project["year"], project_id, {"points": points})
    await _recompute(runtime, int(project["year"]))
    return {"project_id": project_id, "points": points}


async def adjust(*, runtime: ServiceRuntime, principal: Principal, unit_id: str, year: int, points: float,
                 reason: str) -> dict[str, Any]:
    _known_unit(runtime, unit_id)
    adjustment_id = uuid.uuid4().hex
    async with runtime.transaction() as session:
        await _open_year(session, year)
        await repository.add_adjustment(session, adjustment_id=adjustment_id, unit_id=unit_id, year=year,
                                        points=points, reason=reason, at=now())
        await _audit(session, principal, "adjustment", year, unit_id, {"adjustment_id": adjustment_id,
                                                                       "points": points, "reason": reason})
    await _recompute(runtime, year)
    return {"id": adjustment_id, "unit_id": unit_id, "year": year, "points": points, "reason": reason}


async def audit_trail(*, runtime: ServiceRuntime, year: int | None, limit: int, cursor: int) -> dict[str, Any]:
    async with runtime.sessions() as session:
        rows = await repository.audit_of(session, year, limit, cursor)
    items = [{**r, "at": r["at"].isoformat()} for r in rows]
    return {"items": items, "next_cursor": str(rows[-1]["id"]) if len(rows) == limit else None}


# --- closing a year -----------------------------------------------------------------------


def _published_events(cards: dict[str, dict[str, Any]], *, year: int, draft: bool,
                      final_digest: str | None = None) -> list[Envelope]:
    out: list[Envelope] = []
    for u, c in sorted(cards.items()):
        data: events.Event
        if final_digest is None:
            data = events.ScorecardPublished(unit_id=u, year=year, total=c["total"], rank=c["rank"],
                                             grade=c["grade"], draft=draft)
        else:
            data = events.ScorecardFinalized(unit_id=u, year=year, total=c["total"], rank=c["rank"],
                                             grade=c["grade"], digest=final_digest)
        out.append(Envelope.of(data, source=SOURCE, key=u))
    return out


async def publish_draft(*, runtime: ServiceRuntime, principal: Principal, year: int) -> dict[str, Any]:
    async with runtime.transaction() as session:
        if await repository.touch_year(session, year) != "live":
            raise ApiError(409, f"{year} already has a published draft or is finalized")
        cards = compute(groups_of(runtime), await load_inputs(session, year, today(runtime)))
        at = now()
        # Worked out before anything is written: the draft is published whole or not at all.
        until = at + timedelta(days=(await config_of(session, year)).objection_days)
        await repository.put_published(session, year, "draft", cards)
        await repository.set_year(session, year, status="draft", draft_at=at)
        await _audit(session, principal, "publish_draft", year, None, {"units": len(cards)})
        await runtime.emit(session, _published_events(cards, year=year, draft=True))
    return {"year": year, "status": "draft", "draft_at": at.isoformat(), "objections_until": until.isoformat()}


async def file_objection(*, runtime: ServiceRuntime, principal: Principal, unit_id: str, year: int,
                         text: str) -> dict[str, Any]:
    _known_unit(runtime, unit_id)
    if not principal.covers_unit(unit_id):
        raise ApiError(403, f"this token does not cover unit {unit_id}")
    objection_id = uuid.uuid4().hex
    async with runtime.transaction() as session:
        row = await repository.year_row(session, year)
        config = await config_of(session, year)
        if row is None or row["status"] != "draft":
            raise ApiError(409, f"{year} has no published draft open to objections")
        if now() > as_utc(row["draft_at"]) + timedelta(days=config.objection_days):
            raise ApiError(409, f"the objection period of {year} is over")
        await repository.add_objection(session, objection_id=objection_id, unit_id=unit_id, year=year, text=text,
                                       filed_at=now())
        await _audit(session, principal, "objection.file", year, unit_id, {"objection_id": objection_id})
    return {"id": objection_id, "unit_id": unit_id, "year": year, "status": "open"}


async def answer_objection(*, runtime: ServiceRuntime, principal: Principal, objection_id: str, text: str,
                           upheld: bool) -> dict[str, Any]:
    async with runtime.transaction() as session:
        objection = await repository.objection(session, objection_id)
        if objection is None:
            raise ApiError(404, f"no objection {objection_id}")
        if objection["answered_at"] is not None:
            raise ApiError(409, "this objection is already answered")
        await repository.answer_objection(session, objection_id, answer=text, upheld=upheld, at=now())
        await _audit(session, principal, "objection.answer", objection["year"], objection["unit_id"],
                     {"objection_id": objection_id, "upheld": upheld})
    return {"id": objection_id, "status": "answered", "upheld": upheld}


async def finalize(*, runtime: ServiceRuntime, principal: Principal, year: int, force: bool) -> dict[str, Any]:
    """Freeze the year: scorecards as of December 31, their inputs' counts and digest."""
    async with runtime.transaction() as session:
        status = await repository.touch_year(session, year)  # holds the year's row until commit
        if status == "final":
            raise ApiError(409, f"{year} is already finalized")
        if not force:
            row = await repository.year_row(session, year)
            config = await config_of(session, year)
            if status != "draft" or row is None:
                raise ApiError(409, f"publish the draft of {year} first (or force)")
            until = as_utc(row["draft_at"]) + timedelta(days=config.objection_days)
            if now() < until:
                raise ApiError(409, f"objections to {year} may be filed until {until.isoformat()} (or force)")
            open_ = await repository.open_objections(session, year)
            if open_:
                raise ApiError(409, f"{open_} objection(s) to {year} are not answered yet (or force)")
        inputs = await load_inputs(session, year, date(year, 12, 31))
        cards = compute(groups_of(runtime), inputs)
        fingerprint = digest(inputs)
        counts = input_counts(inputs)
        for card in cards.values():
            card["final"] = True
            card["digest"] = fingerprint
            card["input_counts"] = counts
        await repository.put_published(session, year, "final", cards)
        await repository.set_year(session, year, status="final", finalized_at=now(), forced=force,
                                  digest=fingerprint, input_counts=counts)
        await _audit(session, principal, "finalize", year, None, {"force": force, "digest": fingerprint})
        await runtime.emit(session, _published_events(cards, year=year, draft=False, final_digest=fingerprint))
    return {"year": year, "status": "final", "digest": fingerprint, "input_counts": counts, "forced": force}


async def verify(runtime: ServiceRuntime, year: int) -> list[str]:
    """Recompute a final year from its stored inputs; the differences found (none: it verifies)."""
    async with runtime.sessions() as session:
        row = await repository.year_row(session, year)
        if row is None or row["status"] != "final":
            return [f"{year} is not finalized"]
        inputs = await load_inputs(session, year, date(year, 12, 31))
        stored = await repository.published_of(session, year, "final")
    problems = []
    if digest(inputs) != row["digest"]:
        problems.append(f"digest of the stored inputs {digest(inputs)} differs from the final {row['digest']}")
    if input_counts(inputs) != row["input_counts"]:
        problems.append(f"input counts {input_counts(inputs)} differ from the final {row['input_counts']}")
    for u, card in compute(groups_of(runtime), inputs).items():
        old = stored.get(u)
        if old is None:
            problems.append(f"{u}: no final scorecard stored")
            continue
        for key in ("total", "rank", "grade", "components"):
            if _canonical(card[key]) != _canonical(old[key]):
                problems.append(f"{u}: {key} recomputed {card[key]!r}, final {old[key]!r}")
    return problems


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# --- scorecard.updated ----------------------------------------------------------------------


async def emit_updates(runtime: ServiceRuntime, *, min_interval_s: float = 1.0) -> int:
    """One pass: publish scorecard.updated for units whose total or components moved, at most once a second each."""
    sent = 0
    async with runtime.sessions() as session:
        emitted_versions = {y: e for y, _v, e, _s in await repository.year_versions(session)}
        pending = [(y, computed) for y, _v, computed, status, _on, _i in await repository.compute_states(session)
                   if computed and computed != emitted_versions.get(y) and status != "final"]
    for year, version in pending:
        cards = await scorecards(runtime, year)
        async with runtime.transaction() as session:
            if not await repository.lock_emitter(session):
                return sent
            before = await repository.emitted_of(session, year)
            moment = now()
            rows: list[dict[str, Any]] = []
            held = False
            for u, card in sorted(cards.items()):
                last = before.get(u)
                if last is not None and _canonical([last[0], last[1]]) == _canonical([card["total"],
                                                                                       card["components"]]):
                    continue
                if last is not None and (moment - as_utc(last[2])).total_seconds() < min_interval_s:
                    held = True  # too soon for this unit: the next pass sends it
                    continue
                rows.append({"unit_id": u, "total": card["total"], "components": card["components"], "at": moment})
            await repository.put_emitted(session, year, rows)
            await runtime.emit(session, [Envelope.of(events.ScorecardUpdated(
                unit_id=r["unit_id"], year=year, group=cards[r["unit_id"]]["group"], total=r["total"],
                components=r["components"]), source=SOURCE, key=r["unit_id"], time=moment) for r in rows])
            sent += len(rows)
        if not held:
            # In a transaction of its own: the year's row after the outbox's key locks deadlocked
            # with a finalize, which takes them in the other order. Should this one be lost, the
            # next pass finds every unit already emitted and marks the version then.
            async with runtime.transaction() as session:
                await repository.set_year(session, year, emitted_version=version)
    return sent
