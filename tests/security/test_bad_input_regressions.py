"""Inputs that answered 500 before (found by schemathesis or by reading the same code): now a clear 4xx."""

from __future__ import annotations

import base64
from typing import Any

import pytest


def _cursor(offset: str) -> str:
    return base64.urlsafe_b64encode(offset.encode()).decode()


@pytest.mark.parametrize("path", ["/v1/scorecards/0:finalize", "/v1/scorecards/99999:publish-draft"])
async def test_a_year_no_calendar_holds_is_422_when_closing(system: Any, token: Any, path: str) -> None:
    headers = {"Authorization": f"Bearer {token('commission')}"}
    r = await system.scoring.post(path, json={"force": True}, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"][-1] == "year"


@pytest.mark.parametrize(("service", "path", "params"), [
    ("scoring", "/v1/config/0", {}),
    ("scoring", "/v1/scorecards", {"year": "123456789012345678901"}),
    ("scoring", "/v1/public/scorecards", {"year": "-1"}),
    ("scoring", "/v1/audit", {"cursor": "123456789012345678901234567890"}),
    ("notices", "/v1/notices", {"year": "123456789012345678901"}),
    ("notices", "/v1/public/notices", {"year": "99999999999999999999"}),
    ("notices", "/v1/effects", {"year": "0"}),
])
async def test_numbers_out_of_range_are_422(system: Any, token: Any, service: str, path: str,
                                            params: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {token('commission')}"}
    r = await getattr(system, service).get(path, params=params, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"


async def test_a_target_audit_cursor_longer_than_an_integer_is_422(system: Any, token: Any) -> None:
    headers = {"Authorization": f"Bearer {token('commission')}"}
    r = await system.targets.post("/v1/targets", headers=headers, json={
        "unit_id": "health-commission", "year": 2026, "code": "A-1", "title": "t", "unit_of_measure": "min",
        "direction": "decrease", "baseline": 30, "target": 20, "weight": 1})
    assert r.status_code == 201, r.text
    audit = f"/v1/targets/{r.json()['id']}/audit"
    r = await system.targets.get(audit, params={"cursor": "9" * 30}, headers=headers)
    assert r.status_code == 422, r.text
    assert (await system.targets.get(audit, params={"cursor": "1"}, headers=headers)).status_code == 200


@pytest.mark.parametrize("offset", ["-5", "9" * 30])
async def test_a_forged_notices_cursor_is_400(system: Any, token: Any, offset: str) -> None:
    headers = {"Authorization": f"Bearer {token('commission')}"}
    for path in ("/v1/notices", "/v1/public/notices"):
        r = await system.notices.get(path, params={"cursor": _cursor(offset)}, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"] == "invalid cursor"
