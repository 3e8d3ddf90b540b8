"""target-tracker on real Kafka and PostgreSQL: definitions, progress, corrections and their events."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import httpx
from harness import System, wait_for
from kafka_tools import read_all

from yardstick import auth
from yardstick.bus.codec import decode
from yardstick.city import default_city_path, load_city
from yardstick.events import Envelope

CITY = load_city(default_city_path())
# Districts near the end of the profile: the other end-to-end modules count on departments.
UNIT, OTHER = CITY.districts[-1].id, CITY.districts[-2].id
TODAY = datetime.now(UTC).astimezone(CITY.timezone).date()
PAST = TODAY.year - 1
SVC = "target-tracker"


def bearer(system: System, role: str, **scope: Any) -> str:
    return auth.issue(system.secret, role=role, **scope)[0]


def post_csv(system: System, path: str, token: str, text: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    return httpx.post(system.url(SVC) + path, headers=headers, content=text, timeout=60)


def target_events(system: System, unit_id: str) -> list[Envelope]:
    messages = asyncio.run(read_all(system.prefix + "targets.v1"))
    return [e for e in (decode(m) for m in messages) if e.key == unit_id]


def body(**over: Any) -> dict[str, Any]:
    out = {"unit_id": UNIT, "year": PAST, "code": "permits-days", "title": "Days to issue a building permit",
           "unit_of_measure": "days", "direction": "decrease", "kind": "numeric", "baseline": 40, "target": 20,
           "weight": 1, "cadence": "daily", "valid_range": [0, 365], "public_commitment": True}
    out.update(over)
    return out


def test_targets_progress_and_corrections_reach_kafka(system: System) -> None:
    commission = bearer(system, "commission", subject="e2e-commission")
    coordinator = bearer(system, "coordinator", unit_id=UNIT, subject="e2e-coordinator")
    stranger = bearer(system, "coordinator", unit_id=OTHER, subject="e2e-stranger")
    created = system.post(SVC, "/v1/targets", commission, json=body())
    assert created.status_code == 201, created.text
    target_id = created.json()["id"]
    assert system.post(SVC, "/v1/targets", commission, json=body(code="bad", target=40)).status_code == 422
    proposal = system.post(SVC, "/v1/targets", coordinator, json=body(code="proposed"))
    assert proposal.status_code == 201 and proposal.json()["approved"] is False
    approved = system.post(SVC, f"/v1/targets/{proposal.json()['id']}:approve", commission)
    assert approved.status_code == 200 and approved.json()["approved"] is True

    for day in range(1, 11):
        r = system.post(SVC, f"/v1/targets/{target_id}/progress", coordinator,
                        json={"date": date(PAST, 3, day).isoformat(), "value": 40 - day})
        assert r.status_code == 201, r.text
    on = date(PAST, 3, 10).isoformat()
    assert system.post(SVC, f"/v1/targets/{target_id}/progress", coordinator,
                       json={"date": on, "value": 29}).status_code == 409
    fixed = system.post(SVC, f"/v1/targets/{target_id}/progress", coordinator,
                        json={"date": on, "value": 29, "reason": "recount"})
    assert fixed.status_code == 201 and fixed.json()["correction"] is True
    assert system.post(SVC, f"/v1/targets/{target_id}/progress", stranger,
                       json={"date": on, "value": 29}).status_code == 403

    one = system.get(SVC, f"/v1/targets/{target_id}", coordinator).json()
    assert one["latest"] == {"date": on, "value": 29.0}
    assert one["attainment"] == 0.55  # (40 - 29) / (40 - 20)
    trail = system.get(SVC, f"/v1/targets/{target_id}/audit", commission).json()["items"]
    assert [(i["action"], i["value"], i["previous_value"]) for i in trail[-2:]] == [
        ("report", 30.0, None), ("correction", 29.0, 30.0)]

    def arrived() -> list[Envelope] | None:
        got = target_events(system, UNIT)
        return got if sum(e.type == "target.progress" for e in got) == 11 else None

    got = wait_for(arrived, timeout=60, what="target events on Kafka")
    defined = [e.data.target_id for e in got if e.type == "target.defined"]
    assert defined == [target_id, proposal.json()["id"]]
    progress = [e.data for e in got if e.type == "target.progress"]
    assert [p.date.day for p in progress] == [*range(1, 11), 10]
    assert progress[-1].correction is True and progress[-1].value == 29
    assert progress[-1].attainment == 0.55
    assert all(e.source == SVC for e in got)
    # The past year is judged on Dec 31, long after the last report in March: no_data.
    assert progress[-1].status == "no_data"


def test_sweep_runs_on_postgres(system: System) -> None:
    commission = bearer(system, "commission", subject="e2e-commission")
    first = system.post(SVC, "/v1/targets:sweep", commission)
    assert first.status_code == 200 and first.json()["ran"] is True
    again = system.post(SVC, "/v1/targets:sweep", commission).json()
    assert again["changed"] == 0  # idempotent: nothing changed since the first run


def test_a_year_of_45_units_imports_in_one_file(system: System) -> None:
    commission = bearer(system, "commission", subject="e2e-commission")
    year = PAST - 1
    units = sorted(CITY.unit_ids)[:45]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["unit_id", "code", "title", "unit_of_measure", "direction", "baseline", "target", "weight"])
    for unit in units:
        for i in range(10):
            writer.writerow([unit, f"k{i}", f"Indicator {i}", "%", "increase", 60, 90, 1])
    text = out.getvalue()
    bad = text.replace(f"{units[7]},k3,Indicator 3,%,increase,60,90,1", f"{units[7]},k3,Indicator 3,%,increase,60,60,1")
    assert bad != text
    refused = post_csv(system, f"/v1/targets:import?year={year}", commission, bad)
    assert refused.status_code == 422
    assert [d["row"] for d in refused.json()["error"]["details"]] == [2 + 7 * 10 + 3]
    assert system.get(SVC, f"/v1/units/{units[0]}/targets?year={year}", commission).json()["items"] == []
    done = post_csv(system, f"/v1/targets:import?year={year}", commission, text)
    assert done.status_code == 201, done.text
    assert done.json()["imported"] == 450
    listed = system.get(SVC, f"/v1/units/{units[-1]}/targets?year={year}", commission).json()["items"]
    assert sorted(i["code"] for i in listed) == [f"k{i}" for i in range(10)]


