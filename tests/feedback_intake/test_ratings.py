"""Tests of POST /v1/ratings (api.md, feedback-intake) and of the counts it feeds in scoring and notices."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

WINDOW = "finance-w1"
OTHER_WINDOW = "finance-w2"
UNIT = "finance"
CST = timezone(timedelta(hours=8))


def rating(at: datetime, *, level: Any = 4, rating_id: str | None = None, window: str = WINDOW,
           reasons: list[str] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": rating_id or str(uuid.uuid4()), "window_id": window, "level": level,
                            "rated_at": at.isoformat()}
    if reasons is not None:
        item["reasons"] = reasons
    return item


def result(accepted: int = 0, duplicates: int = 0, suppressed: int = 0,
           rejected: list[Any] | None = None) -> dict[str, Any]:
    return {"accepted": accepted, "duplicates": duplicates, "suppressed": suppressed,
            "rejected": rejected or []}


@pytest.fixture
def base() -> datetime:
    """A moment well inside the accepted range, on a whole second."""
    return (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


class Kiosk:
    """A kiosk device with its token, posting batches of ratings."""

    def __init__(self, client: httpx.AsyncClient, bearer: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {bearer}"}

    async def post_raw(self, body: Any, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/v1/ratings", json=body, headers=self.headers, **kwargs)

    async def post(self, *items: dict[str, Any]) -> dict[str, Any]:
        response = await self.post_raw({"ratings": list(items)})
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def kiosk(system: Any, token: Any) -> Kiosk:
    return Kiosk(system.intake, token("kiosk", window_id=WINDOW, subject="kiosk-finance-1"))


@pytest.fixture
def commission(token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('commission')}"}


def codes(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [(r["index"], r["error"]["code"]) for r in body["rejected"]]


# counts ------------------------------------------------------------------------------


async def test_a_fresh_batch_is_accepted(kiosk: Kiosk, base: datetime) -> None:
    body = await kiosk.post(*(rating(base + timedelta(seconds=10 * i)) for i in range(3)))
    assert body == result(accepted=3)


async def test_the_same_batch_twice_is_all_duplicates_the_second_time(kiosk: Kiosk, base: datetime) -> None:
    batch = [rating(base + timedelta(seconds=10 * i), level=1 + i) for i in range(4)]
    assert await kiosk.post(*batch) == result(accepted=4)
    assert await kiosk.post(*batch) == result(duplicates=4)


async def test_a_stored_id_is_a_duplicate_whatever_its_body(kiosk: Kiosk, base: datetime) -> None:
    first = rating(base, level=5)
    assert await kiosk.post(first) == result(accepted=1)
    changed = {**first, "level": 1, "rated_at": (base + timedelta(minutes=2)).isoformat()}
    assert await kiosk.post(changed) == result(duplicates=1)
    # Even a body that would now be rejected: the kiosk learns the press is stored.
    too_old = {**first, "rated_at": (datetime.now(UTC) - timedelta(days=40)).isoformat()}
    out_of_range = {**first, "level": 9}
    assert await kiosk.post(too_old, out_of_range) == result(duplicates=2)


async def test_an_id_given_twice_in_one_batch_is_counted_once(kiosk: Kiosk, base: datetime) -> None:
    item = rating(base)
    body = await kiosk.post(item, {**item, "rated_at": (base + timedelta(seconds=30)).isoformat()})
    assert body == result(accepted=1, duplicates=1)


async def test_concurrent_posts_of_one_batch_count_each_id_once(
        system: Any, kiosk: Kiosk, base: datetime, commission: dict[str, str], eventually: Any) -> None:
    batch = [rating(base + timedelta(seconds=10 * i)) for i in range(40)]
    bodies = await asyncio.gather(*(kiosk.post(*batch) for _ in range(3)))
    assert sum(b["accepted"] for b in bodies) == 40
    assert sum(b["duplicates"] for b in bodies) == 80
    assert all(b["suppressed"] == 0 and b["rejected"] == [] for b in bodies)
    assert await kiosk.post(*batch) == result(duplicates=40)
    await _settled(system, eventually, published=40)
    assert await _window_n(system, commission, base) == 40


# suppression -------------------------------------------------------------------------


async def test_presses_3_s_apart_the_second_is_suppressed(kiosk: Kiosk, base: datetime) -> None:
    assert await kiosk.post(rating(base)) == result(accepted=1)
    assert await kiosk.post(rating(base + timedelta(seconds=3))) == result(suppressed=1)


async def test_presses_6_s_apart_both_count(kiosk: Kiosk, base: datetime) -> None:
    assert await kiosk.post(rating(base)) == result(accepted=1)
    assert await kiosk.post(rating(base + timedelta(seconds=6))) == result(accepted=1)


async def test_the_interval_is_exclusive(kiosk: Kiosk, base: datetime) -> None:
    assert await kiosk.post(rating(base)) == result(accepted=1)
    assert await kiosk.post(rating(base + timedelta(seconds=4.9))) == result(suppressed=1)
    # 5 s after the suppressed press at 4.9 s: it is stored, so it counts for the next one too.
    assert await kiosk.post(rating(base + timedelta(seconds=9.9))) == result(accepted=1)
    assert await kiosk.post(rating(base + timedelta(seconds=14.8))) == result(suppressed=1)


async def test_a_suppressed_press_suppresses_the_next_one(kiosk: Kiosk, base: datetime) -> None:
    body = await kiosk.post(*(rating(base + timedelta(seconds=s)) for s in (0, 3, 6, 9, 20)))
    assert body == result(accepted=2, suppressed=3)


async def test_suppression_within_one_batch(kiosk: Kiosk, base: datetime) -> None:
    body = await kiosk.post(rating(base), rating(base + timedelta(seconds=2)),
                            rating(base + timedelta(seconds=30)))
    assert body == result(accepted=2, suppressed=1)


async def test_suppression_is_per_kiosk(system: Any, token: Any, kiosk: Kiosk, base: datetime) -> None:
    second = Kiosk(system.intake, token("kiosk", window_id=WINDOW, subject="kiosk-finance-2"))
    assert await kiosk.post(rating(base)) == result(accepted=1)
    assert await second.post(rating(base + timedelta(seconds=1))) == result(accepted=1)


async def test_suppression_holds_for_rated_at_with_any_offset(kiosk: Kiosk, base: datetime) -> None:
    local = base.astimezone(CST)
    assert await kiosk.post(rating(local)) == result(accepted=1)
    assert await kiosk.post(rating(local + timedelta(seconds=3))) == result(suppressed=1)
    assert await kiosk.post(rating(base + timedelta(seconds=4))) == result(suppressed=1)
    assert await kiosk.post(rating((base + timedelta(seconds=10)).astimezone(CST))) == result(accepted=1)


async def test_concurrent_batches_of_one_kiosk_see_each_others_presses(kiosk: Kiosk, base: datetime) -> None:
    for trial in range(3):
        at = base + timedelta(minutes=trial)
        bodies = await asyncio.gather(*(kiosk.post(rating(at)) for _ in range(3)))
        # Whichever is stored first counts; the others find it at the same instant.
        assert sum(b["accepted"] for b in bodies) == 1, bodies
        assert sum(b["suppressed"] for b in bodies) == 2, bodies


async def test_out_of_order_presses_are_judged_against_what_is_stored(
        system: Any, kiosk: Kiosk, base: datetime, commission: dict[str, str], eventually: Any) -> None:
    t = base
    assert await kiosk.post(rating(t + timedelta(seconds=10))) == result(accepted=1)
    # Earlier than the stored press: nothing stored in the 5 s before it, so it counts,
    # and the press at 10 s stays counted (no decision is revised).
    assert await kiosk.post(rating(t + timedelta(seconds=7))) == result(accepted=1)
    assert await kiosk.post(rating(t + timedelta(seconds=12))) == result(suppressed=1)
    assert await kiosk.post(rating(t + timedelta(seconds=8))) == result(suppressed=1)
    assert await kiosk.post(rating(t + timedelta(seconds=1))) == result(accepted=1)
    await _settled(system, eventually, published=3)
    assert await _window_n(system, commission, base) == 3


# rejections --------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


REJECTIONS = [
    pytest.param(lambda: {"rated_at": (_now() + timedelta(minutes=10)).isoformat()}, "future", id="future"),
    pytest.param(lambda: {"rated_at": (_now() - timedelta(days=31)).isoformat()}, "too_old", id="31-days-old"),
    pytest.param(lambda: {"reasons": ["long-wait", "rude-parrot"]}, "unknown_reason", id="unknown-reason"),
    pytest.param(lambda: {"level": 0}, "invalid", id="level-0"),
    pytest.param(lambda: {"level": 6}, "invalid", id="level-6"),
    pytest.param(lambda: {"level": "5"}, "invalid", id="level-string"),
    pytest.param(lambda: {"level": 4.0}, "invalid", id="level-float"),
    pytest.param(lambda: {"level": None}, "invalid", id="level-null"),
    pytest.param(lambda: {"rated_at": (_now() - timedelta(hours=1)).replace(tzinfo=None).isoformat()},
                 "invalid", id="no-zone"),
    pytest.param(lambda: {"rated_at": "yesterday"}, "invalid", id="not-a-time"),
    pytest.param(lambda: {"extra": "field"}, "invalid", id="unknown-field"),
    pytest.param(lambda: {"id": "not a uuid!"}, "invalid", id="bad-id"),
]


@pytest.mark.parametrize(("change", "code"), REJECTIONS)
async def test_a_bad_item_is_rejected_with_its_index_and_code(kiosk: Kiosk, base: datetime, change: Any,
                                                               code: str) -> None:
    bad = {**rating(base + timedelta(seconds=30)), **change()}
    body = await kiosk.post(rating(base), bad)
    assert body["accepted"] == 1
    assert body["duplicates"] == 0 and body["suppressed"] == 0
    assert codes(body) == [(1, code)]
    assert body["rejected"][0]["error"]["message"]


@pytest.mark.parametrize("missing", ["id", "window_id", "level", "rated_at"])
async def test_an_item_missing_a_field_is_rejected(kiosk: Kiosk, base: datetime, missing: str) -> None:
    bad = rating(base)
    del bad[missing]
    assert codes(await kiosk.post(bad)) == [(0, "invalid")]


async def test_an_item_that_is_not_an_object_is_rejected(kiosk: Kiosk, base: datetime) -> None:
    body = await kiosk.post(rating(base), "five stars")  # type: ignore[arg-type]
    assert body["accepted"] == 1
    assert codes(body) == [(1, "invalid")]


async def test_a_window_missing_from_the_city_profile_is_rejected(system: Any, token: Any,
                                                                  base: datetime) -> None:
    stray = Kiosk(system.intake, token("kiosk", window_id="nowhere-w9", subject="kiosk-stray"))
    body = await stray.post(rating(base, window="nowhere-w9"))
    assert codes(body) == [(0, "unknown_window")]


async def test_the_edges_of_the_time_bounds_are_accepted(kiosk: Kiosk) -> None:
    now = _now()
    body = await kiosk.post(rating(now + timedelta(minutes=4)), rating(now - timedelta(days=29)),
                            rating(now - timedelta(days=15), reasons=["long-wait", "excellent-service"]))
    assert body == result(accepted=3)


async def test_a_rejected_id_is_not_remembered(kiosk: Kiosk, base: datetime) -> None:
    bad = rating(base, level=6)
    assert codes(await kiosk.post(bad)) == [(0, "invalid")]
    assert codes(await kiosk.post(bad)) == [(0, "invalid")], "still rejected, not a duplicate"
    assert await kiosk.post({**bad, "level": 5}) == result(accepted=1)
    too_soon = rating(base + timedelta(seconds=30), reasons=["no-such-reason"])
    assert codes(await kiosk.post(too_soon)) == [(0, "unknown_reason")]
    assert await kiosk.post({**too_soon, "reasons": ["long-wait"]}) == result(accepted=1)


async def test_a_mixed_batch_accepts_the_good_items(kiosk: Kiosk, base: datetime) -> None:
    stored = rating(base - timedelta(minutes=5))
    assert await kiosk.post(stored) == result(accepted=1)
    items = [
        rating(base, level=5),                                   # 0 accepted
        rating(base + timedelta(seconds=1), level=0),            # 1 rejected
        rating(base + timedelta(seconds=2)),                     # 2 suppressed (0 is 2 s earlier)
        stored,                                                  # 3 duplicate
        rating(base + timedelta(seconds=20), reasons=["nope"]),  # 4 rejected
        rating(base + timedelta(seconds=40), level=1),           # 5 accepted
        rating(_now() + timedelta(hours=1)),                     # 6 rejected
    ]
    body = await kiosk.post(*items)
    assert {k: body[k] for k in ("accepted", "duplicates", "suppressed")} == {
        "accepted": 2, "duplicates": 1, "suppressed": 1}
    assert codes(body) == [(1, "invalid"), (4, "unknown_reason"), (6, "future")]
    # Each item landed in exactly one of the four.
    assert body["accepted"] + body["duplicates"] + body["suppressed"] + len(body["rejected"]) == len(items)


# the request as a whole --------------------------------------------------------------


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code


async def test_no_items_is_422(kiosk: Kiosk) -> None:
    _assert_error(await kiosk.post_raw({"ratings": []}), 422, "invalid")


async def test_501_items_is_422_and_500_are_fine(kiosk: Kiosk) -> None:
    start = _now() - timedelta(days=1)
    batch = [rating(start + timedelta(seconds=6 * i)) for i in range(501)]
    _assert_error(await kiosk.post_raw({"ratings": batch}), 422, "invalid")
    assert await kiosk.post(*batch[:500]) == result(accepted=500)


@pytest.mark.parametrize("body", [{}, {"ratings": "many"}, [1, 2]], ids=["empty", "not-a-list", "array"])
async def test_a_body_of_the_wrong_shape_is_422(kiosk: Kiosk, body: Any) -> None:
    _assert_error(await kiosk.post_raw(body), 422, "invalid")


async def test_a_body_that_is_not_json_is_422(kiosk: Kiosk) -> None:
    response = await kiosk.client.post("/v1/ratings", content=b"{not json",
                                       headers={**kiosk.headers, "content-type": "application/json"})
    _assert_error(response, 422, "invalid")


def _oversized_json() -> bytes:
    body = json.dumps({"ratings": [{"id": "x", "window_id": WINDOW, "level": 5,
                                    "rated_at": _now().isoformat(), "pad": "x" * (1024 * 1024)}]})
    assert len(body) > 1024 * 1024
    return body.encode()


async def test_a_body_over_1_mib_is_413(kiosk: Kiosk) -> None:
    response = await kiosk.client.post("/v1/ratings", content=_oversized_json(),
                                       headers={**kiosk.headers, "content-type": "application/json"})
    _assert_error(response, 413, "payload_too_large")


async def test_a_streamed_body_over_1_mib_is_413(kiosk: Kiosk) -> None:
    data = _oversized_json()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 64 * 1024):
            yield data[i:i + 64 * 1024]

    response = await kiosk.client.post("/v1/ratings", content=chunks(),
                                       headers={**kiosk.headers, "content-type": "application/json"})
    assert "content-length" not in response.request.headers
    _assert_error(response, 413, "payload_too_large")


async def test_a_body_just_under_1_mib_is_read(kiosk: Kiosk, base: datetime) -> None:
    item = rating(base, reasons=[])
    pad = 1024 * 1024 - len(json.dumps({"ratings": [item], "p": ""})) - 10
    body = {"ratings": [item], "pad": "x" * pad}
    response = await kiosk.post_raw(body)
    assert response.status_code == 202, response.text[:300]
    assert response.json() == result(accepted=1)


# the flow to scoring and notices -----------------------------------------------------


async def _settled(system: Any, eventually: Any, *, published: int) -> None:
    """Wait until intake's relay published `published` events and both consumers caught up."""
    relay = system.runtime("feedback-intake").relay
    await eventually(lambda: relay.published >= published
                     and system.bus.lag("scoring") == 0 and system.bus.lag("notices") == 0)
    await eventually(system.scorecards_current)
    assert relay.published == published


async def _window_n(system: Any, headers: dict[str, str], base: datetime) -> int:
    year = base.astimezone(CST).year
    response = await system.scoring.get(f"/v1/scorecards/{UNIT}", params={"year": year}, headers=headers)
    assert response.status_code == 200, response.text
    n: int = response.json()["public"]["channels"]["window"]["n"]
    return n


async def test_accepted_ratings_reach_scoring_and_notices(system: Any, kiosk: Kiosk, base: datetime,
                                                          commission: dict[str, str], eventually: Any,
                                                          city: Any) -> None:
    assert city.window(WINDOW).unit == UNIT
    assert city.window(OTHER_WINDOW).unit == UNIT
    batch = [
        rating(base, level=5),
        rating(base + timedelta(seconds=10), level=4),
        rating(base + timedelta(seconds=12), level=1),   # suppressed
        rating(base + timedelta(seconds=20), level=1),
        rating(base + timedelta(seconds=30), level=9),   # rejected
    ]
    first = await kiosk.post(*batch)
    assert {k: first[k] for k in ("accepted", "duplicates", "suppressed")} == {
        "accepted": 3, "duplicates": 0, "suppressed": 1}
    assert codes(first) == [(4, "invalid")]
    again = await kiosk.post(*batch[:4], rating(base + timedelta(seconds=40), level=2))
    assert again == result(accepted=1, duplicates=4)
    accepted = 4

    await _settled(system, eventually, published=accepted)
    scorecard = (await system.scoring.get(f"/v1/scorecards/{UNIT}",
                                          params={"year": base.astimezone(CST).year},
                                          headers=commission)).json()
    window = scorecard["public"]["channels"]["window"]
    assert window["n"] == accepted
    expected_mean = (1.0 + 0.75 + 0.0 + 0.25) / 4
    assert window["mean"] == pytest.approx(expected_mean)
    assert scorecard["public"]["channels"]["online"]["n"] == 0

    counts = await system.notices.get(f"/v1/counts/window/{WINDOW}", headers=commission)
    assert counts.status_code == 200, counts.text
    assert counts.json() == {"kind": "window", "subject_id": WINDOW, "n": accepted, "satisfied": 2}
    other = (await system.notices.get(f"/v1/counts/window/{OTHER_WINDOW}", headers=commission)).json()
    assert other["n"] == 0


async def test_counts_read_by_a_kiosk_are_403(system: Any, kiosk: Kiosk) -> None:
    response = await system.notices.get(f"/v1/counts/window/{WINDOW}", headers=kiosk.headers)
    _assert_error(response, 403, "forbidden")
