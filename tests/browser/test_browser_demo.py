"""The demo city, small, against real servers: last year finalized, the planted notice's story, on the pages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from test_browser_pages import SECRET, Stack

from yardstick.city import default_city_path, load_city
from yardstick.demo import Demo
from yardstick.runner import _settled, demo_overrides
from yardstick.settings import AuthSettings
from yardstick.tokens import Registry

SOCIAL_SECRET = "demo-social-secret"


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Any]]:
    data_dir = tmp_path_factory.mktemp("demo-data")
    today = datetime.now(UTC).astimezone(load_city(default_city_path()).timezone).date()
    stack = Stack(data_dir, overrides=demo_overrides(today, SOCIAL_SECRET))
    stack.start()

    async def run() -> Any:
        registry = Registry(AuthSettings(data_dir=data_dir, auth_secret=SECRET))
        await registry.prepare()
        relay = registry.relay(stack.bus)
        await relay.start()
        try:
            demo = Demo(registry=registry, city=stack.city, days=3, scale=0.05, seed=11,
                        ports={"intake": stack.ports["feedback-intake"], "targets": stack.ports["target-tracker"],
                               "scoring": stack.ports["scoring"], "notices": stack.ports["notices"]},
                        social_secret=SOCIAL_SECRET, settle=lambda groups: _settled(stack.bus, groups, 0.5))
            return await demo.run()
        finally:
            await relay.stop()
            await registry.close()

    tally = asyncio.run_coroutine_threadsafe(run(), stack.loop).result(timeout=600)
    yield stack, tally
    stack.stop()


def test_the_demo_goes_through_the_apis_without_refusals(demo_stack: tuple[Stack, Any]) -> None:
    _stack, tally = demo_stack
    assert tally.failed == {}, tally.first_error
    for what in ("kiosk ratings", "citizen feedback", "social posts", "targets", "progress reports",
                 "leader grades", "assessments", "survey upload", "year closed", "notice steps"):
        assert tally.posted.get(what, 0) > 0, what
    assert tally.notes == []


def test_last_year_is_final_and_the_planted_problem_tells_its_story(demo_stack: tuple[Stack, Any]) -> None:
    stack, _tally = demo_stack
    year = datetime.now(UTC).astimezone(stack.city.timezone).year
    scoring = stack.url("scoring")
    final = httpx.get(f"{scoring}/v1/public/scorecards", params={"year": year - 1}).json()
    assert final["final"] is True and len(final["scorecards"]) == len(stack.city.units)
    assert any(ch.get("n", 0) for c in final["scorecards"] for ch in c["public"]["channels"].values())
    token = (stack.data_dir / "commission-token").read_text().strip()
    notices = httpx.get(f"{stack.url('notices')}/v1/notices", params={"unit_id": "health-commission"},
                        headers={"Authorization": f"Bearer {token}"}).json()["items"]
    doctor = {n["status"]: n for n in notices if n["subject"] == "seeing-a-doctor"}
    assert set(doctor) == {"verified", "plan_submitted"}
    assert doctor["plan_submitted"]["severity"] == "escalated"  # it recurred after the rectification
    report = httpx.get(f"{scoring}/v1/reports/annual/{year}",
                       headers={"Authorization": f"Bearer {token}", "accept": "application/json"}).json()
    assert report["previous_status"] == "final"
    assert any(s["previous_S"] is not None for s in report["satisfaction"])
    share = next(c for c in report["categories"] if c["category_id"] == "seeing-a-doctor")
    assert share["previous_negative"] > 0 and share["negative"] > 0
    public = httpx.get(f"{scoring}/public", params={"year": year, "lang": "en"}).text
    row = public.split(f'data-notice="{doctor["plan_submitted"]["id"]}"')[1].split("</tr>")[0]
    assert "<li>Extend the evening slots to weekends</li>" in row
