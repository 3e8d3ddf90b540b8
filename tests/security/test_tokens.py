"""Tokens every service must refuse with 401 and a message that says why: a bad signature, expired,
revoked through the registry and auth.v1, issued for another audience or for none."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import inspect, text

from yardstick import auth, db, events, tokens
from yardstick.bus.codec import decode
from yardstick.bus.memory import MemoryBus
from yardstick.errors import ApiError
from yardstick.settings import AuthSettings
from yardstick.tokens import Registry

# One call per service that only the commission may make.
PROTECTED = {"intake": "/v1/queue/feedback", "targets": "/v1/units/health-commission/targets",
             "scoring": "/v1/scorecards", "notices": "/v1/rules"}


async def answers(system: Any, token: str) -> dict[str, tuple[int, str]]:
    out = {}
    for name, path in PROTECTED.items():
        r = await getattr(system, name).get(path, headers={"Authorization": f"Bearer {token}"})
        out[name] = (r.status_code, r.json()["error"]["message"] if r.status_code >= 400 else "")
    return out


def _quietly(encode: Any, *args: Any, **kwargs: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return str(encode(*args, **kwargs))


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"jti": "t-" + str(now), "iss": auth.ISSUER, "aud": auth.AUDIENCE, "role": "commission", "iat": now,
            **extra}


async def test_a_good_commission_token_passes_everywhere(system: Any, token: Any) -> None:
    assert {name: status for name, (status, _) in (await answers(system, token("commission"))).items()} == {
        name: 200 for name in PROTECTED}


@pytest.mark.parametrize(("make", "message"), [
    (lambda secret: jwt.encode(claims(), secret + "-not", algorithm="HS256"), "invalid token: bad signature"),
    (lambda secret: jwt.encode(claims(exp=int(time.time()) - 5), secret, algorithm="HS256"),
     "token expired; ask the commission for a new one"),
    (lambda secret: jwt.encode(claims(aud="another-city"), secret, algorithm="HS256"),
     "invalid token: not issued for this deployment (audience yardstick)"),
    (lambda secret: jwt.encode({k: v for k, v in claims().items() if k != "aud"}, secret, algorithm="HS256"),
     "invalid token: no 'aud' claim"),
    # The deployment's own key under another algorithm (PyJWT warns it is short for HS512: the point here).
    (lambda secret: _quietly(jwt.encode, claims(), secret, algorithm="HS512"), "invalid token"),
    (lambda secret: jwt.encode(claims(), None, algorithm="none"), "invalid token"),
], ids=["bad-signature", "expired", "other-audience", "no-audience", "other-algorithm", "unsigned"])
async def test_every_service_refuses_the_token_and_says_why(system: Any, secret: str, make: Any,
                                                            message: str) -> None:
    got = await answers(system, make(secret))
    assert got == {name: (401, message) for name in PROTECTED}


async def test_a_token_revoked_in_the_registry_stops_working_on_every_service(
        system: Any, secret: str, tmp_path: Path, eventually: Any) -> None:
    registry = Registry(AuthSettings(data_dir=tmp_path, auth_secret=secret, database_url=""))
    await registry.prepare()
    relay = registry.relay(system.bus)
    await relay.start()
    try:
        token, issued = await registry.issue(role="commission", subject="leaving-staff")
        assert jwt.decode(token, secret, algorithms=["HS256"], audience="yardstick")["aud"] == "yardstick"
        assert {n: s for n, (s, _) in (await answers(system, token)).items()} == {n: 200 for n in PROTECTED}
        assert await registry.revoke(issued["jti"]) is True

        async def refused_everywhere() -> bool:
            return await answers(system, token) == {name: (401, "token revoked") for name in PROTECTED}

        await eventually(refused_everywhere)
    finally:
        await relay.stop()
        await registry.close()


async def test_a_registry_an_earlier_release_created_gets_the_outbox_event_count(
        secret: str, tmp_path: Path, backend: str) -> None:
    """The registry has no migration history: prepare() adds the column decision 0013 added, and a
    revocation that waited in the old outbox still goes out. Pods of every service start together
    and prepare it at once: on PostgreSQL none of them fails for another having added it."""
    async with contextlib.AsyncExitStack() as stack:
        url = "" if backend == "sqlite" else await stack.enter_async_context(
            db.scratch_database(os.environ["YARDSTICK_TEST_PG_ADMIN_URL"], "yt_registry"))
        await _upgrade_an_old_registry(AuthSettings(data_dir=tmp_path, auth_secret=secret, database_url=url),
                                       pods=1 if backend == "sqlite" else 4)


async def _upgrade_an_old_registry(settings: AuthSettings, pods: int) -> None:
    old = Registry(settings)
    waiting = events.Envelope.of(events.TokenRevoked(token_id="t-old", revoked_at=datetime(2026, 11, 1, tzinfo=UTC)),
                                 source=tokens.SOURCE, key="t-old")
    async with old.engine.begin() as conn:  # the tables as the earlier release created them, an event waiting
        await conn.run_sync(tokens.metadata.create_all)
        await conn.execute(text("ALTER TABLE outbox DROP COLUMN events"))
        await conn.execute(text("INSERT INTO outbox (event_id, topic, key, type, source, time, payload) "
                                "VALUES (:id, :topic, :key, :type, :source, :time, :payload)"),
                           {"id": waiting.id, "topic": waiting.topic, "key": waiting.key, "type": waiting.type,
                            "source": waiting.source, "time": events.ce_time(waiting.time),
                            "payload": waiting.data.model_dump_json()})
    await old.close()
    starting = [Registry(settings) for _ in range(pods)]
    try:
        await asyncio.gather(*(pod.prepare() for pod in starting))
    finally:
        for pod in starting:
            await pod.close()
    registry = Registry(settings)
    try:
        await registry.prepare()  # and again: nothing to add the second time
        bus = MemoryBus()
        _, claims = await registry.issue(role="commission", subject="staff")
        assert await registry.relay(bus).publish_once() is False
        published = [decode(m) for m in bus.logs[events.AUTH]]
        assert published[0] == waiting
        assert [e.data.token_id for e in published] == ["t-old", claims["jti"]]  # type: ignore[attr-defined]
    finally:
        await registry.close()


async def test_two_pods_adding_the_registrys_event_count_at_once_both_start() -> None:
    """Both see no column; the second's ALTER waits for the first's lock, then finds the column."""
    async with db.scratch_database(os.environ["YARDSTICK_TEST_PG_ADMIN_URL"], "yt_registry_race") as url:
        engine = db.make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(tokens.metadata.create_all)
                await conn.execute(text("ALTER TABLE outbox DROP COLUMN events"))
            async with engine.connect() as first, engine.connect() as second:
                await first.begin()
                await tokens.add_event_count(first)  # added, not committed: the second cannot see it
                await second.begin()
                racing = asyncio.create_task(tokens.add_event_count(second))
                await asyncio.sleep(0.5)
                assert not racing.done()  # waiting for the first's lock on the table
                await first.commit()
                await racing
                await second.commit()
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda sync: [c["name"] for c in inspect(sync).get_columns("outbox")])
            assert names.count("events") == 1
        finally:
            await engine.dispose()


def test_the_cli_issues_tokens_for_the_configured_audience(tmp_path: Path, secret: str) -> None:
    env = {**os.environ, "YARDSTICK_AUTH_SECRET": secret, "YARDSTICK_DATA_DIR": str(tmp_path),
           "YARDSTICK_BUS": "memory", "YARDSTICK_AUTH_AUDIENCE": "city-b"}
    env.pop("YARDSTICK_AUTH_DATABASE_URL", None)
    cli = Path(sys.executable).with_name("yardstick")
    done = subprocess.run([str(cli), "token", "issue", "--role", "leader", "--subject", "mayor"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert jwt.decode(token, secret, algorithms=["HS256"], audience="city-b")["role"] == "leader"
    revocations = auth.Revocations()
    assert auth.Authenticator(secret, revocations, audience="city-b").verify(token).subject == "mayor"
    with pytest.raises(ApiError) as refused:
        auth.Authenticator(secret, revocations).verify(token)  # the default audience, "yardstick"
    assert refused.value.status == 401 and "audience" in refused.value.message
