"""Input the database or the JSON encoder cannot hold is a 422 naming the field, never a 500 (SQLite here;
the same on PostgreSQL in test_targets_postgres.py)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from test_targets_api import PAST, UNIT, numeric
from test_targets_api import Api as ApiCalls

JSON = {"Content-Type": "application/json"}
CSV_HEADER = "unit_id,code,title,unit_of_measure,direction,baseline,target,weight\n"


class Api(ApiCalls):
    async def raw(self, method: str, path: str, status: int, text: str) -> Any:
        """A body as written: Python's json (and FastAPI's parser) read NaN, Infinity and lone surrogates."""
        return await self.call(method, path, status, content=text.encode("utf-8", "surrogatepass"), headers=JSON)


@pytest.fixture
def commission(system: Any, token: Any) -> Api:
    return Api(system.targets, token("commission", subject="commission-staff"))


def named(error: Any, field: str) -> str:
    """The message of a 422, checked to name the field."""
    assert error["error"]["code"] == "invalid"
    message = str(error["error"]["message"])
    assert field in message, message
    return message


async def test_an_explicit_null_in_a_patch_is_refused_for_fields_that_cannot_be_empty(commission: Api) -> None:
    target = await commission.call("POST", "/v1/targets", 201, json=numeric())
    path = f"/v1/targets/{target['id']}"
    for field in ("title", "unit_of_measure", "direction", "baseline", "target", "weight", "cadence",
                  "public_commitment"):
        message = named(await commission.call("PATCH", path, 422, json={field: None}), field)
        assert "cannot be null" in message
    assert await commission.call("GET", path, 200) == target  # unchanged
    # These may be null: no valid range, the linear trajectory, the default due date.
    cleared = await commission.call("PATCH", path, 200, json={"valid_range": None, "milestones": None, "due": None,
                                                              "reason": None})
    assert cleared["valid_range"] is None


async def test_nan_and_infinity_are_refused_everywhere(system: Any, commission: Api) -> None:
    nan, inf = float("nan"), float("inf")  # json.dumps writes them as NaN and Infinity
    milestones = [30.0 - m for m in range(12)]
    for field, over in [("baseline", {"baseline": inf}), ("baseline", {"baseline": nan}), ("target", {"target": -inf}),
                        ("weight", {"weight": inf}), ("valid_range", {"valid_range": [0, inf]}),
                        ("milestones", {"milestones": [*milestones[:11], nan]}),
                        ("baseline", {"baseline": 1e308})]:  # finite, but its projection overflows
        # 422, not 201 (and a 500 on every list afterwards), nor 409 "already has a target" for NaN.
        named(await commission.raw("POST", "/v1/targets", 422, json.dumps(numeric(**over))), field)
    assert (await system.targets.get("/v1/public/targets")).json()["items"] == []
    target = await commission.call("POST", "/v1/targets", 201, json=numeric())
    named(await commission.raw("PATCH", f"/v1/targets/{target['id']}", 422, json.dumps({"target": nan})), "target")
    day = date(PAST, 3, 1).isoformat()
    for value in (nan, inf, -inf, 1e300):
        report = json.dumps({"date": day, "value": value})
        named(await commission.raw("POST", f"/v1/targets/{target['id']}/progress", 422, report), "value")
    batch = json.dumps({"reports": [{"target_id": target["id"], "date": day, "value": nan},
                                    {"target_id": target["id"], "date": day, "value": 25}]})
    done = await commission.raw("POST", f"/v1/units/{UNIT}/progress:batch", 200, batch)
    assert done["accepted"] == 1 and [r["index"] for r in done["rejected"]] == [0]
    assert done["rejected"][0]["error"]["code"] == "invalid" and "value" in done["rejected"][0]["error"]["message"]
    assert (await system.targets.get("/v1/public/targets")).status_code == 200


async def test_nul_and_lone_surrogates_are_refused_naming_the_field(commission: Api) -> None:
    for field in ("title", "unit_of_measure", "code", "unit_id"):
        named(await commission.call("POST", "/v1/targets", 422, json=numeric(**{field: "wait\x00ing"})), field)
    named(await commission.raw("POST", "/v1/targets", 422,
                               json.dumps(numeric(title="wait\ud800ing"), ensure_ascii=False)), "title")
    target = await commission.call("POST", "/v1/targets", 201, json=numeric())
    day = date(PAST, 3, 1).isoformat()
    for field in ("note", "evidence_url", "reason"):
        named(await commission.call("POST", f"/v1/targets/{target['id']}/progress", 422,
                                    json={"date": day, "value": 25, field: "a\x00b"}), field)
    named(await commission.call("PATCH", f"/v1/targets/{target['id']}", 422, json={"title": "\x00"}), "title")
    named(await commission.call("PATCH", f"/v1/targets/{target['id']}", 422, json={"reason": "\x00"}), "reason")
    named(await commission.call("POST", f"/v1/targets/{target['id']}:withdraw", 422, json={"reason": "\x00"}),
          "reason")
    done = await commission.call("POST", f"/v1/units/{UNIT}/progress:batch", 200, json={"reports": [
        {"target_id": target["id"], "date": day, "value": 25, "note": "\x00"},
        {"target_id": "a\x00", "date": day, "value": 25}]})
    assert done["accepted"] == 0 and [r["error"]["code"] for r in done["rejected"]] == ["invalid", "invalid"]
    assert "note" in done["rejected"][0]["error"]["message"]
    assert "target_id" in done["rejected"][1]["error"]["message"]
    named(await commission.call("GET", "/v1/targets/a%00b", 422), "target_id")
    named(await commission.call("GET", f"/v1/units/{UNIT}/targets?cursor=%00", 422), "cursor")
    csv = CSV_HEADER + f"{UNIT},c1,wait\x00ing,minutes,decrease,30,20,1\n"
    failed = await commission.call("POST", f"/v1/targets:import?year={PAST}", 422, content=csv,
                                   headers={"Content-Type": "text/csv"})
    assert [d["row"] for d in failed["error"]["details"]] == [2] and "title" in failed["error"]["details"][0]["error"]


async def test_an_import_with_a_cell_over_the_csv_field_limit_is_a_422_with_its_line(commission: Api) -> None:
    good = f"{UNIT},c1,Wait,minutes,decrease,30,20,1\n"
    csv = CSV_HEADER + good + f"{UNIT},c2," + "x" * 200_000 + ",minutes,decrease,30,20,1\n"  # body under 1 MiB
    failed = await commission.call("POST", f"/v1/targets:import?year={PAST}", 422, content=csv,
                                   headers={"Content-Type": "text/csv"})
    assert [d["row"] for d in failed["error"]["details"]] == [3]
    assert "field limit" in failed["error"]["details"][0]["error"]
    assert (await commission.call("GET", f"/v1/units/{UNIT}/targets?year={PAST}", 200))["items"] == []


async def test_only_a_taken_code_is_a_conflict(system: Any) -> None:
    """Another broken constraint is a bug to see (a 500 with its log), not "already has a target"."""
    from sqlalchemy.exc import IntegrityError

    from target_tracker import service
    from target_tracker.schemas import TargetIn
    from yardstick.auth import Principal
    from yardstick.errors import ApiError

    runtime = system.runtime("target-tracker")
    staff = Principal(token_id="t", role="commission", subject="commission-staff")
    await service.define(runtime=runtime, principal=staff, body=TargetIn.model_validate(numeric()))
    with pytest.raises(ApiError) as taken:
        await service.define(runtime=runtime, principal=staff, body=TargetIn.model_validate(numeric()))
    assert taken.value.status == 409
    # SQLite stores NaN as NULL: a NOT NULL violation (the schema refuses NaN; this skips it).
    unstorable = TargetIn.model_construct(**{**numeric(code="other"), "baseline": float("nan"), "valid_range": None})
    with pytest.raises(IntegrityError):
        await service.define(runtime=runtime, principal=staff, body=unstorable)


async def test_a_title_with_personal_contact_data_is_refused_before_it_is_published(system: Any,
                                                                                     commission: Api) -> None:
    """A target's title is on the public targets list and in target.defined: no phone or e-mail there."""
    for title in ("Waits (contact Wang 13900001111)", "Waits: write to wang@example.com"):
        message = named(await commission.call("POST", "/v1/targets", 422,
                                              json=numeric(title=title, public_commitment=True)), "title")
        assert "personal data" in message
    assert (await system.targets.get("/v1/public/targets")).json()["items"] == []
    target = await commission.call("POST", "/v1/targets", 201, json=numeric(title="Waits at the window"))
    named(await commission.call("PATCH", f"/v1/targets/{target['id']}", 422, json={"title": "call 139 0000 1111"}),
          "title")
    assert (await commission.call("GET", f"/v1/targets/{target['id']}", 200))["title"] == "Waits at the window"
    csv = CSV_HEADER + f"{UNIT},c2,ask wang@example.com,minutes,decrease,30,20,1\n"
    failed = await commission.call("POST", f"/v1/targets:import?year={PAST}", 422, content=csv,
                                   headers={"Content-Type": "text/csv"})
    assert [d["row"] for d in failed["error"]["details"]] == [2] and "title" in failed["error"]["details"][0]["error"]
