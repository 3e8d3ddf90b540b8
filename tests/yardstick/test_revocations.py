"""Revocations outlive a restart: kept in the service's database, loaded before the first request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx

from feedback_intake.app import create_app
from feedback_intake.settings import IntakeSettings
from yardstick import events
from yardstick.auth import issue
from yardstick.bus.codec import encode
from yardstick.bus.memory import MemoryBus

SECRET = "revocations-secret-0123456789abcdef"


async def _status(app: object, token: str) -> int:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        response = await client.get("/v1/units/finance/feedback", headers={"Authorization": f"Bearer {token}"})
        return response.status_code


async def test_a_restarted_service_refuses_a_revoked_token_without_rereading_the_log(tmp_path: Path) -> None:
    settings = IntakeSettings(data_dir=tmp_path, bus="memory", auth_secret=SECRET,
                              database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}")
    revoked, claims = issue(SECRET, role="commission", subject="leaving")
    kept, _ = issue(SECRET, role="commission", subject="staying")

    bus = MemoryBus()
    app = create_app(settings, bus=bus)
    runtime = app.state.runtime
    await bus.start()
    await runtime.start()
    try:
        assert await _status(app, revoked) == 200
        await bus.publish([encode(events.Envelope.of(
            events.TokenRevoked(token_id=claims["jti"], revoked_at=datetime.now(UTC)),
            source="yardstick-token", key=claims["jti"]))])
        for _ in range(100):
            if await _status(app, revoked) == 401:
                break
            await asyncio.sleep(0.02)
        assert await _status(app, revoked) == 401
        # Delivered twice (a replay of auth.v1): stored once, no error.
        await bus.publish([encode(events.Envelope.of(
            events.TokenRevoked(token_id=claims["jti"], revoked_at=datetime.now(UTC)),
            source="yardstick-token", key=claims["jti"]))])
    finally:
        await runtime.stop()
        await bus.stop()

    # A new process on the same database, with a bus that has not delivered anything (the broker
    # down, or the log not read yet): the revocation holds from the first request.
    quiet = MemoryBus()
    restarted = create_app(settings, bus=quiet)
    await restarted.state.runtime.start()
    try:
        assert await _status(restarted, revoked) == 401
        assert await _status(restarted, kept) == 200
    finally:
        await restarted.state.runtime.stop()
