"""The demo's client against a server that drops connections: what it sends again, and what it never does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from yardstick.city import default_city_path, load_city
from yardstick.demo import Demo
from yardstick.settings import AuthSettings
from yardstick.tokens import Registry


def _demo(tmp_path: Path) -> Demo:
    registry = Registry(AuthSettings(data_dir=tmp_path, auth_secret="x" * 40))
    return Demo(registry=registry, city=load_city(default_city_path()))


def _flaky(drops: int) -> tuple[httpx.MockTransport, list[str]]:
    """A server whose first `drops` requests lose their connection before any answer."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if len(seen) <= drops:
            raise httpx.ReadError("connection closed by peer", request=request)
        return httpx.Response(202, json={"accepted": 1, "rejected": []})

    return httpx.MockTransport(handle), seen


@pytest.mark.asyncio
@pytest.mark.parametrize("what", ["kiosk ratings", "citizen feedback", "social posts"])
async def test_a_deduplicated_write_is_sent_again_after_a_dropped_connection(tmp_path: Path, what: str) -> None:
    demo = _demo(tmp_path)
    transport, seen = _flaky(drops=2)
    async with httpx.AsyncClient(transport=transport) as client:
        out = await demo.call(client, what, "POST", "http://intake/v1/x", "token", json={})
    assert out == {"accepted": 1, "rejected": []}
    assert len(seen) == 3
    assert demo.tally.failed == {} and demo.tally.posted == {what: 1}


@pytest.mark.asyncio
async def test_a_write_the_service_does_not_deduplicate_is_never_sent_twice(tmp_path: Path) -> None:
    demo = _demo(tmp_path)
    transport, seen = _flaky(drops=1)
    async with httpx.AsyncClient(transport=transport) as client:
        out = await demo.call(client, "innovation projects", "POST", "http://scoring/v1/x", "token", json={})
    assert out is None
    assert len(seen) == 1
    assert demo.tally.failed == {"innovation projects": 1}
    assert "ReadError" in demo.tally.first_error["innovation projects"]


@pytest.mark.asyncio
async def test_a_connection_that_keeps_dropping_is_reported_not_retried_forever(tmp_path: Path) -> None:
    demo = _demo(tmp_path)
    transport, seen = _flaky(drops=100)
    async with httpx.AsyncClient(transport=transport) as client:
        out = await demo.call(client, "kiosk ratings", "POST", "http://intake/v1/ratings", "token", json={})
    assert out is None
    assert len(seen) == 4  # the first try and three more
    assert demo.tally.failed == {"kiosk ratings": 1}
