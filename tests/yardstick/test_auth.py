"""Tests of tokens and roles (api.md "Tokens and roles") against feedback-intake's POST /v1/ratings."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from yardstick import events
from yardstick.auth import issue
from yardstick.bus.codec import encode

WINDOW_A = "finance-w1"
WINDOW_B = "commerce-w1"


def _batch(window: str = WINDOW_A, rating_id: str | None = None) -> dict[str, Any]:
    rated_at = datetime.now(UTC) - timedelta(minutes=1)
    return {"ratings": [{"id": rating_id or str(uuid.uuid4()), "window_id": window, "level": 5,
                         "rated_at": rated_at.isoformat()}]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return dict(error)


async def test_a_valid_kiosk_token_is_accepted(system: Any, token: Any) -> None:
    kiosk = token("kiosk", window_id=WINDOW_A, subject="kiosk-a")
    response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(kiosk))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1


async def test_no_token_is_401(system: Any) -> None:
    response = await system.intake.post("/v1/ratings", json=_batch())
    _assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Basic a2lvc2s6cHc=", "Bearer", "Bearer ", "Token abc", "bearer-abc"])
async def test_a_malformed_header_is_401(system: Any, header: str) -> None:
    response = await system.intake.post("/v1/ratings", json=_batch(), headers={"Authorization": header})
    _assert_error(response, 401, "unauthenticated")


async def test_a_token_that_is_not_a_jwt_is_401(system: Any) -> None:
    response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer("not.a.jwt"))
    _assert_error(response, 401, "unauthenticated")


async def test_a_token_signed_with_another_secret_is_401(system: Any, secret: str) -> None:
    forged, _ = issue(secret + "-forged", role="kiosk", window_id=WINDOW_A, subject="kiosk-a")
    response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(forged))
    _assert_error(response, 401, "unauthenticated")


async def test_an_unsigned_token_is_401(system: Any) -> None:
    claims = {"jti": "x", "iss": "yardstick", "role": "kiosk", "window": WINDOW_A,
              "iat": int(datetime.now(UTC).timestamp())}
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(unsigned))
    _assert_error(response, 401, "unauthenticated")


async def test_an_expired_token_is_401(system: Any, token: Any) -> None:
    expired = token("kiosk", window_id=WINDOW_A, subject="kiosk-a", ttl_s=-60)
    response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(expired))
    error = _assert_error(response, 401, "unauthenticated")
    assert "expired" in error["message"]


async def test_a_token_that_has_not_expired_yet_is_accepted(system: Any, token: Any) -> None:
    fresh = token("kiosk", window_id=WINDOW_A, subject="kiosk-a", ttl_s=3600)
    response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(fresh))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("role", ["citizen", "staff", "commission", "leader"])
async def test_a_role_other_than_kiosk_is_403(system: Any, token: Any, role: str) -> None:
    other = token(role)
    response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(other))
    _assert_error(response, 403, "forbidden")


async def test_a_kiosk_posting_for_another_window_is_403_and_nothing_is_stored(
        system: Any, token: Any) -> None:
    kiosk_a = token("kiosk", window_id=WINDOW_A, subject="kiosk-a")
    foreign_id = str(uuid.uuid4())
    mixed = _batch(WINDOW_A)
    mixed["ratings"].append(_batch(WINDOW_B, rating_id=foreign_id)["ratings"][0])
    own_id = mixed["ratings"][0]["id"]
    response = await system.intake.post("/v1/ratings", json=mixed, headers=_bearer(kiosk_a))
    error = _assert_error(response, 403, "forbidden")
    assert WINDOW_B in error["message"]
    # Nothing of the request was kept: both ids can still be posted and are new.
    again = await system.intake.post("/v1/ratings", json=_batch(WINDOW_A, rating_id=own_id),
                                     headers=_bearer(kiosk_a))
    assert again.json() == {"accepted": 1, "duplicates": 0, "suppressed": 0, "rejected": []}
    kiosk_b = token("kiosk", window_id=WINDOW_B, subject="kiosk-b")
    proper = await system.intake.post("/v1/ratings", json=_batch(WINDOW_B, rating_id=foreign_id),
                                      headers=_bearer(kiosk_b))
    assert proper.status_code == 202, proper.text
    assert proper.json() == {"accepted": 1, "duplicates": 0, "suppressed": 0, "rejected": []}


async def test_a_revoked_token_stops_working_within_a_second(system: Any, secret: str) -> None:
    kiosk, claims = issue(secret, role="kiosk", window_id=WINDOW_A, subject="kiosk-a")
    spare, _ = issue(secret, role="kiosk", window_id=WINDOW_A, subject="kiosk-spare")
    first = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(kiosk))
    assert first.status_code == 202, first.text

    envelope = events.Envelope.of(
        events.TokenRevoked(token_id=claims["jti"], revoked_at=datetime.now(UTC)),
        source="yardstick-token", key=claims["jti"])
    await system.bus.publish([encode(envelope)])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while True:
        response = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(kiosk))
        if response.status_code == 401 or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    error = _assert_error(response, 401, "unauthenticated")
    assert "revoked" in error["message"]
    # Every service applies the revocation, and other tokens keep working.
    # (Not revoked, a kiosk token would get 403 there.)
    elsewhere = await system.scoring.get("/v1/scorecards/finance", headers=_bearer(kiosk))
    _assert_error(elsewhere, 401, "unauthenticated")
    still = await system.intake.post("/v1/ratings", json=_batch(), headers=_bearer(spare))
    assert still.status_code == 202, still.text


async def test_error_bodies_of_the_wrong_route_keep_the_shape(system: Any) -> None:
    response = await system.intake.get("/v1/no-such-thing")
    _assert_error(response, 404, "not_found")
