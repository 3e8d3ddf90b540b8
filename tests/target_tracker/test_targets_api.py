"""target-tracker's API in one process (MemoryBus, SQLite): definitions, progress, audit, scope, import."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from yardstick.bus.codec import decode

UNIT = "health-commission"
OTHER = "finance"
# A whole past year can be reported; it is judged as of Dec 31.
PAST = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).year - 1


def numeric(**over: Any) -> dict[str, Any]:
    body = {"unit_id": UNIT, "year": PAST, "code": "wait-minutes", "title": "Average wait at the windows",
            "unit_of_measure": "minutes", "direction": "decrease", "kind": "numeric", "baseline": 30,
            "target": 20, "weight": 2, "cadence": "daily", "valid_range": [0, 240], "public_commitment": True}
    body.update(over)
    return body


class Api:
    def __init__(self, client: httpx.AsyncClient, bearer: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {bearer}"}

    async def call(self, method: str, path: str, status: int | None = None, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kw)
        if status is not None:
            assert response.status_code == status, response.text
        return response.json() if response.headers.get("content-type", "").startswith("application/json") \
            else response

    async def define(self, status: int = 201, **over: Any) -> Any:
        return await self.call("POST", "/v1/targets", status, json=numeric(**over))

    async def report(self, target_id: str, on: date, value: float, status: int = 201, **extra: Any) -> Any:
        return await self.call("POST", f"/v1/targets/{target_id}/progress", status,
                               json={"date": on.isoformat(), "value": value, **extra})


@pytest.fixture
def commission(system: Any, token: Any) -> Api:
    return Api(system.targets, token("commission", subject="commission-staff"))


@pytest.fixture
def coordinator(system: Any, token: Any) -> Api:
    return Api(system.targets, token("coordinator", unit_id=UNIT, subject="coordinator-a"))


@pytest.fixture
def stranger(system: Any, token: Any) -> Api:
    return Api(system.targets, token("coordinator", unit_id=OTHER, subject="coordinator-b"))


def events_of(system: Any, kind: str | None = None) -> list[Any]:
    out = [decode(m) for m in system.bus.logs["targets.v1"]]
    return [e for e in out if kind is None or e.type == kind]


async def test_define_validates_direction_and_baseline(commission: Api) -> None:
    same = await commission.define(422, baseline=20, target=20)
    assert "target equals baseline" in same["error"]["message"]
    wrong = await commission.define(422, direction="increase")
    assert "disagrees" in wrong["error"]["message"]
    assert (await commission.define(422, unit_id="atlantis"))["error"]["code"] == "invalid"
    created = await commission.define()
    assert created["approved"] is True and created["state"] == "approved"
    assert created["status"] == "no_data" and created["latest"] is None and created["attainment"] == 0
    assert (await commission.define(409))["error"]["code"] == "conflict"


async def test_proposal_approval_and_events(system: Any, commission: Api, coordinator: Api, stranger: Api,
                                            eventually: Any) -> None:
    proposal = await coordinator.define(code="proposed")
    assert proposal["approved"] is False and proposal["state"] == "proposed"
    await stranger.define(403, code="not-mine")
    await coordinator.call("POST", f"/v1/targets/{proposal['id']}:approve", 403)
    # Reports count only on approved targets.
    await coordinator.report(proposal["id"], date(PAST, 3, 1), 25, status=409)
    approved = await commission.call("POST", f"/v1/targets/{proposal['id']}:approve", 200)
    assert approved["state"] == "approved"
    defined = await eventually(lambda: events_of(system, "target.defined"))
    assert [e.data.target_id for e in defined] == [proposal["id"]]
    assert defined[0].key == UNIT and defined[0].data.approved is True and defined[0].data.baseline == 30
    rejected = await coordinator.define(code="second")
    await commission.call("POST", f"/v1/targets/{rejected['id']}:reject", 200, json={"reason": "duplicate"})
    assert (await commission.call("GET", f"/v1/targets/{rejected['id']}", 200))["state"] == "rejected"
    assert len(events_of(system, "target.defined")) == 1


async def test_progress_attainment_and_status(system: Any, commission: Api, coordinator: Api,
                                              eventually: Any) -> None:
    target = await commission.define()
    # Wait falls 0.1 minute a day through December, to 20.5 on Dec 31 (r = 0.95).
    start = date(PAST, 12, 1)
    for d in range(30):
        out = await coordinator.report(target["id"], start + timedelta(days=d), 23.5 - 0.1 * d)
        assert out["late"] is True  # a past year's report is long after the next day
    assert out["projection"]["method"] == "holt"  # 30 reports
    # 0.1 a day for the one day left: about 20.5, r = 0.95, at risk.
    assert out["projection"]["value"] == pytest.approx(20.5, abs=0.05)
    assert out["status"] == "at_risk"
    out = await coordinator.report(target["id"], date(PAST, 12, 31), 20.5)
    assert out["attainment"] == pytest.approx(0.95)
    assert out["projection"]["method"] == "reported"  # the year is fully reported
    one = await coordinator.call("GET", f"/v1/targets/{target['id']}", 200)
    assert one["latest"] == {"date": date(PAST, 12, 31).isoformat(), "value": pytest.approx(20.5)}
    assert one["attainment"] == pytest.approx(0.95)
    assert one["status"] == out["status"] == "at_risk"
    assert len(one["history"]) == 31 and one["expected"] == pytest.approx(20)
    progress = await eventually(lambda: len(events_of(system, "target.progress")) == 31
                                and events_of(system, "target.progress"))
    last = progress[-1].data
    assert (last.date, last.value, last.correction, last.status) == (date(PAST, 12, 31), 20.5, False, "at_risk")
    assert last.attainment == pytest.approx(0.95)
    changes = events_of(system, "target.status_changed")
    assert changes and changes[-1].data.status == "at_risk"


async def test_report_rules(commission: Api, coordinator: Api, stranger: Api,
                            city_today: Callable[[], date]) -> None:
    target = await commission.define()
    tomorrow = city_today() + timedelta(days=1)
    assert "future" in (await coordinator.report(target["id"], tomorrow, 25, status=422))["error"]["message"]
    outside = await coordinator.report(target["id"], date(PAST, 5, 1), 500, status=422)
    assert "valid range" in outside["error"]["message"]
    await coordinator.report(target["id"], date(PAST - 1, 5, 1), 25, status=422)  # not the target's year
    await stranger.report(target["id"], date(PAST, 5, 1), 25, status=403)
    milestone = await commission.define(code="new-portal", kind="milestone", direction="increase", baseline=0,
                                        target=1, valid_range=None, due=date(PAST, 6, 30).isoformat())
    await coordinator.report(milestone["id"], date(PAST, 5, 1), 0.5, status=422)
    await coordinator.report(milestone["id"], date(PAST, 5, 1), 1)
    done = await commission.call("GET", f"/v1/targets/{milestone['id']}", 200)
    assert (done["attainment"], done["status"]) == (1.0, "on_track")


async def test_corrections_keep_the_audit_trail(system: Any, commission: Api, coordinator: Api,
                                                eventually: Any) -> None:
    target = await commission.define()
    on = date(PAST, 4, 2)
    await coordinator.report(target["id"], on, 26)
    again = await coordinator.report(target["id"], on, 25, status=409)
    assert "reason" in again["error"]["message"]
    fixed = await coordinator.report(target["id"], on, 25, reason="typo in the first report")
    assert fixed["correction"] is True and fixed["attainment"] == pytest.approx(0.5)
    await commission.report(target["id"], on, 24.5, reason="audited figure")
    trail = await coordinator.call("GET", f"/v1/targets/{target['id']}/audit", 200)
    reports = [i for i in trail["items"] if i["action"] in ("report", "correction")]
    assert [(i["value"], i["previous_value"], i["action"]) for i in reports] == [
        (26, None, "report"), (25, 26, "correction"), (24.5, 25, "correction")]
    assert [i["actor"] for i in reports] == ["coordinator-a", "coordinator-a", "commission-staff"]
    assert reports[1]["reason"] == "typo in the first report"
    one = await coordinator.call("GET", f"/v1/targets/{target['id']}", 200)
    assert one["history"] == [{"date": on.isoformat(), "value": 24.5, "late": True, "corrected": True}]
    # Wait for both corrections to be relayed, not just the first.
    corrections = await eventually(lambda: (found := [e for e in events_of(system, "target.progress")
                                                      if e.data.correction]) and len(found) >= 2 and found)
    assert [e.data.value for e in corrections] == [25, 24.5]
    page = await coordinator.call("GET", f"/v1/targets/{target['id']}/audit?limit=2", 200)
    rest = await coordinator.call("GET", f"/v1/targets/{target['id']}/audit?cursor={page['next_cursor']}", 200)
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in trail["items"]]


async def test_audit_table_refuses_rewrites(system: Any, commission: Api, coordinator: Api) -> None:
    from sqlalchemy import text

    target = await commission.define()
    await coordinator.report(target["id"], date(PAST, 4, 2), 26)
    runtime = system.runtime("target-tracker")
    with pytest.raises(Exception, match="append-only"):
        async with runtime.transaction() as session:
            await session.execute(text("UPDATE audit SET value = 1"))
    with pytest.raises(Exception, match="append-only"):
        async with runtime.transaction() as session:
            await session.execute(text("DELETE FROM audit"))


async def test_change_and_withdraw_are_audited(system: Any, commission: Api, coordinator: Api,
                                               eventually: Any) -> None:
    target = await commission.define()
    await coordinator.report(target["id"], date(PAST, 12, 31), 25)
    await coordinator.call("PATCH", f"/v1/targets/{target['id']}", 403, json={"target": 15})
    bad = await commission.call("PATCH", f"/v1/targets/{target['id']}", 422, json={"target": 35})
    assert "disagrees" in bad["error"]["message"]
    changed = await commission.call("PATCH", f"/v1/targets/{target['id']}", 200,
                                    json={"target": 25, "reason": "experts' review"})
    assert changed["attainment"] == pytest.approx(1.0)
    await commission.call("POST", f"/v1/targets/{target['id']}:withdraw", 200)
    await commission.call("POST", f"/v1/targets/{target['id']}:withdraw", 409)
    await coordinator.report(target["id"], date(PAST, 12, 30), 25, status=409)
    got = await eventually(lambda: len(events_of(system, "target.changed")) == 2
                           and events_of(system, "target.changed"))
    assert got[0].data.changes == ["target"] and got[0].data.target == 25
    assert got[1].data.withdrawn is True
    trail = await commission.call("GET", f"/v1/targets/{target['id']}/audit", 200)
    actions = [i["action"] for i in trail["items"]]
    assert actions == ["defined", "report", "changed", "withdrawn"]
    assert trail["items"][2]["changes"] == {"target": [20, 25]}


async def test_reads_scope_and_public(system: Any, commission: Api, coordinator: Api, stranger: Api,
                                      token: Any) -> None:
    public = await commission.define()
    await commission.define(code="internal", public_commitment=False)
    await stranger.call("GET", f"/v1/targets/{public['id']}", 403)
    await stranger.call("GET", f"/v1/units/{UNIT}/targets", 403)
    leader = Api(system.targets, token("leader", subject="mayor"))
    listed = await leader.call("GET", f"/v1/units/{UNIT}/targets?year={PAST}", 200)
    assert sorted(i["code"] for i in listed["items"]) == ["internal", "wait-minutes"]
    first = await coordinator.call("GET", f"/v1/units/{UNIT}/targets?limit=1", 200)
    second = await coordinator.call("GET", f"/v1/units/{UNIT}/targets?limit=1&cursor={first['next_cursor']}", 200)
    assert {first["items"][0]["code"], second["items"][0]["code"]} == {"internal", "wait-minutes"}
    assert second["next_cursor"] is None
    open_ = await system.targets.get(f"/v1/public/targets?year={PAST}")
    assert open_.status_code == 200
    items = open_.json()["items"]
    assert [i["code"] for i in items] == ["wait-minutes"] and "created_by" not in items[0]
    as_csv = await system.targets.get(f"/v1/public/targets?year={PAST}", headers={"Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["code"] for r in rows] == ["wait-minutes"]


def year_csv(units: list[str], per_unit: int, year: int, *, bad_row: int | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["unit_id", "code", "title", "unit_of_measure", "direction", "kind", "baseline", "target",
                     "weight", "cadence", "due", "valid_min", "valid_max", "public_commitment", "milestones"])
    n = 0
    for unit in units:
        for i in range(per_unit):
            n += 1
            target = 80 if n != bad_row else 40  # the bad row: increase with target below baseline
            if i == per_unit - 1:
                writer.writerow([unit, f"t{i}", f"Milestone {i}", "done", "increase", "milestone", 0, 1, 1,
                                 "monthly", f"{year}-09-30", "", "", "false", ""])
            else:
                writer.writerow([unit, f"t{i}", f"Target {i}", "%", "increase", "numeric", 50, target, 1 + i % 3,
                                 "daily", "", 0, 100, "true" if i == 0 else "false", ""])
    return out.getvalue()


async def test_import_a_year_of_45_units(system: Any, city: Any, commission: Api, coordinator: Api,
                                         eventually: Any) -> None:
    units = sorted(city.unit_ids)[:45]
    assert len(units) == 45
    body = year_csv(units, 10, PAST)
    done = await commission.call("POST", f"/v1/targets:import?year={PAST}", 201, content=body,
                                 headers={"Content-Type": "text/csv"})
    assert done["imported"] == 450
    listed = await commission.call("GET", f"/v1/units/{units[3]}/targets?year={PAST}", 200)
    assert len(listed["items"]) == 10
    assert {i["kind"] for i in listed["items"]} == {"numeric", "milestone"}
    await eventually(lambda: len(events_of(system, "target.defined")) == 450)
    # The same file again: every row collides, nothing more is imported.
    again = await commission.call("POST", f"/v1/targets:import?year={PAST}", 422, content=body,
                                  headers={"Content-Type": "text/csv"})
    assert len(again["error"]["details"]) == 450
    await coordinator.call("POST", f"/v1/targets:import?year={PAST}", 403, content=body,
                           headers={"Content-Type": "text/csv"})


async def test_one_bad_row_imports_nothing(system: Any, city: Any, commission: Api) -> None:
    units = sorted(city.unit_ids)[:45]
    body = year_csv(units, 10, PAST, bad_row=137)
    extra = "\nno-such-unit,x,X,%,increase,numeric,1,2,1,daily,,,,false,\n"
    failed = await commission.call("POST", f"/v1/targets:import?year={PAST}", 422, content=body + extra.lstrip(),
                                   headers={"Content-Type": "text/csv"})
    details = failed["error"]["details"]
    assert [d["row"] for d in details] == [138, 452]  # line numbers: the header is line 1
    assert "disagrees" in details[0]["error"] and "city profile" in details[1]["error"]
    for unit in units[:3]:
        listed = await commission.call("GET", f"/v1/units/{unit}/targets?year={PAST}", 200)
        assert listed["items"] == []
    assert events_of(system, "target.defined") == []


async def test_sweep_finds_stale_targets(system: Any, commission: Api, coordinator: Api, eventually: Any) -> None:
    from target_tracker import service
    from target_tracker.schemas import ProgressIn
    from yardstick.auth import Principal

    runtime = system.runtime("target-tracker")
    settings = system.apps["target-tracker"].state.settings
    target = await commission.define()
    reporter = Principal(token_id="t", role="coordinator", unit_id=UNIT, subject="coordinator-a")
    # Reports in early June of the past year, each made the next day: on track (20 by December) then.
    for day in range(1, 6):
        on = date(PAST, 6, day)
        out = await service.report(runtime=runtime, settings=settings, principal=reporter, target_id=target["id"],
                                   body=ProgressIn(date=on, value=30 - day), now=_noon(on + timedelta(days=1)))
    assert out.status == "on_track" and out.late is False
    ten_days_on = await service.sweep(runtime=runtime, settings=settings, now=_noon(date(PAST, 6, 15)))
    assert ten_days_on["changed"] == 0
    swept = await service.sweep(runtime=runtime, settings=settings, now=_noon(date(PAST, 6, 16)))
    assert swept["changed"] == 1
    stale = await eventually(lambda: [e for e in events_of(system, "target.status_changed")
                                      if e.data.status == "no_data"])
    assert (stale[0].data.target_id, stale[0].data.previous, stale[0].data.as_of) == (
        target["id"], "on_track", date(PAST, 6, 16))
    assert (await commission.call("POST", "/v1/targets:sweep", 200))["changed"] == 0  # still stale today
    await coordinator.call("POST", "/v1/targets:sweep", 403)


async def test_sweep_judges_milestones_after_their_due_date(system: Any, commission: Api, coordinator: Api,
                                                            eventually: Any) -> None:
    from target_tracker import service
    from target_tracker.schemas import ProgressIn
    from yardstick.auth import Principal

    runtime = system.runtime("target-tracker")
    settings = system.apps["target-tracker"].state.settings
    milestone = await commission.define(code="portal", kind="milestone", direction="increase", baseline=0, target=1,
                                        valid_range=None, due=date(PAST, 6, 30).isoformat())
    # Not done yet in May: on track until its due date (the first status announced, with the report).
    reporter = Principal(token_id="t", role="coordinator", unit_id=UNIT, subject="coordinator-a")
    not_yet = await service.report(runtime=runtime, settings=settings, principal=reporter, target_id=milestone["id"],
                                   body=ProgressIn(date=date(PAST, 5, 1), value=0), now=_noon(date(PAST, 5, 2)))
    assert not_yet.status == "on_track"
    assert (await service.sweep(runtime=runtime, settings=settings, now=_noon(date(PAST, 6, 30))))["changed"] == 0
    assert (await commission.call("GET", f"/v1/targets/{milestone['id']}", 200))["status"] == "off_track"  # today
    swept = await service.sweep(runtime=runtime, settings=settings, now=_noon(date(PAST, 7, 1)))
    assert swept["changed"] == 1
    changed = await eventually(lambda: [e for e in events_of(system, "target.status_changed")
                                        if e.data.as_of == date(PAST, 7, 1)])
    assert [(e.data.previous, e.data.status) for e in changed] == [("on_track", "off_track")]


async def test_sweep_marks_a_never_reported_target_no_data_once_its_first_report_is_overdue(
        system: Any, commission: Api, coordinator: Api, eventually: Any) -> None:
    """notices (target-off-track) fires on a target the tracker marked no_data: a unit that reports
    nothing must get there too, once, when its first report is as overdue as a stale one, not the
    day the target is defined."""
    from target_tracker import service

    runtime = system.runtime("target-tracker")
    settings = system.apps["target-tracker"].state.settings
    year = PAST + 2  # next year: its targets' clock starts on Jan 1, and the sweep can be run on any day of it
    daily = await commission.define(year=year, code="daily")
    monthly = await commission.define(year=year, code="monthly", cadence="monthly")
    portal = await commission.define(year=year, code="portal", kind="milestone", direction="increase", baseline=0,
                                     target=1, valid_range=None, due=date(year, 3, 31).isoformat())
    proposal = await coordinator.define(year=year, code="proposed")
    assert daily["status"] == "no_data"  # shown as it is: nothing reported
    # A change before the first report is overdue announces no status either.
    await commission.call("PATCH", f"/v1/targets/{daily['id']}", 200, json={"target": 15})

    async def sweep(on: date) -> int:
        return int((await service.sweep(runtime=runtime, settings=settings, now=_noon(on)))["changed"])

    assert await sweep(date(year, 1, 11)) == 0  # 10 days: a daily target's stale limit not passed
    assert await sweep(date(year, 1, 12)) == 1
    assert await sweep(date(year, 1, 13)) == 0  # announced once, not on every sweep
    assert await sweep(date(year, 1, 1) + timedelta(days=62)) == 0  # a monthly target's limit: 62 days
    assert await sweep(date(year, 1, 1) + timedelta(days=63)) == 1
    assert await sweep(date(year, 4, 1)) == 0  # the milestone's report for Mar 31 is on time through Apr 1
    assert await sweep(date(year, 4, 2)) == 1
    assert await sweep(date(year, 6, 1)) == 0
    marked = await eventually(lambda: len(events_of(system, "target.status_changed")) == 3
                              and events_of(system, "target.status_changed"))
    assert [(e.data.target_id, e.data.previous, e.data.status, e.data.as_of) for e in marked] == [
        (daily["id"], None, "no_data", date(year, 1, 12)),
        (monthly["id"], None, "no_data", date(year, 1, 1) + timedelta(days=63)),
        # A milestone never reported is not done once due (api.md): off_track, once its report is late.
        (portal["id"], None, "off_track", date(year, 4, 2))]
    assert proposal["id"] not in {e.data.target_id for e in marked}  # nothing is due before approval



def _noon(on: date) -> datetime:
    return datetime(on.year, on.month, on.day, 12, tzinfo=ZoneInfo("Asia/Shanghai"))


async def test_the_sweep_never_overwrites_a_report_that_came_after_its_read(system: Any, commission: Api) -> None:
    """The sweep read a target, then a report changed it: the sweep's stale verdict must not land."""
    from target_tracker import repository, service
    from target_tracker.models import targets
    from target_tracker.schemas import ProgressIn
    from yardstick.auth import Principal

    runtime = system.runtime("target-tracker")
    settings = system.apps["target-tracker"].state.settings
    target = await commission.define()
    reporter = Principal(token_id="t", role="coordinator", unit_id=UNIT, subject="coordinator-a")
    on = date(PAST, 6, 1)
    await service.report(runtime=runtime, settings=settings, principal=reporter, target_id=target["id"],
                         body=ProgressIn(date=on, value=29), now=_noon(on + timedelta(days=1)))
    async with runtime.sessions() as session:
        seen = (await session.execute(targets.select().where(targets.c.id == target["id"]))).mappings().one()
    # Meanwhile a new report arrives...
    later = date(PAST, 6, 20)
    await service.report(runtime=runtime, settings=settings, principal=reporter, target_id=target["id"],
                         body=ProgressIn(date=later, value=27), now=_noon(later + timedelta(days=1)))
    # ...so the sweep's write, based on what it saw before, changes nothing.
    async with runtime.transaction() as session:
        assert await repository.set_status_if_unchanged(session, seen, "no_data") is False
    async with runtime.sessions() as session:
        now_row = (await session.execute(targets.select().where(targets.c.id == target["id"]))).mappings().one()
    assert now_row["status"] != "no_data" and now_row["latest_date"] == later
