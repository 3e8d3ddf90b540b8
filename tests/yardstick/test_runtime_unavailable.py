"""A request that fails because the database is unreachable is a 503 in the JSON error shape, never a 500."""

from __future__ import annotations

import socket
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.pool import AsyncAdaptedQueuePool

from yardstick import db
from yardstick.bus.memory import MemoryBus
from yardstick.consumer import TRANSIENT_DRIVER_ERRORS
from yardstick.runtime import ServiceRuntime, runtime_of
from yardstick.settings import ServiceSettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def _app(database_url: str) -> Any:
    router = APIRouter()

    @router.get("/probe")
    async def probe(request: Request) -> dict[str, int]:
        async with runtime_of(request).sessions() as session:
            return {"one": int((await session.execute(text("SELECT 1"))).scalar_one())}

    @router.get("/broken")
    async def broken(request: Request) -> dict[str, int]:
        async with runtime_of(request).sessions() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL)"))
            await session.execute(text("INSERT INTO t VALUES (NULL)"))  # an IntegrityError: the request's fault
        return {}

    settings = ServiceSettings(database_url=database_url, auth_secret="s" * 40)
    runtime = ServiceRuntime(settings, db.new_metadata(), migrations="unused", bus=MemoryBus())
    return runtime.create_app(title="probe", routers=[router])


async def test_an_unreachable_database_is_a_503_with_retry_after() -> None:
    app = _app(f"postgresql+asyncpg://u:p@127.0.0.1:{_closed_port()}/nothing")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/probe")
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "unavailable"


@pytest.mark.parametrize("name", sorted(TRANSIENT_DRIVER_ERRORS))
async def test_every_driver_error_the_consumers_retry_is_a_503_for_a_request(name: str, tmp_path: Any) -> None:
    """The consumers' list of the driver's transient errors and the requests' 503 handlers agree: a
    restart test met InternalClientError (which derives from none of the handled types) as a 500."""
    kind = getattr(asyncpg, name, None) or getattr(asyncpg.exceptions, name)
    app = _app(f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}")

    @app.get("/raises")
    async def raises() -> None:
        raise kind("cannot switch to state 15; another operation (2) is in progress")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/raises")
    assert r.status_code == 503, (name, r.text)
    assert r.headers["retry-after"] == "1"


async def test_a_database_error_that_is_not_transient_stays_a_500_in_the_json_shape(tmp_path: Any) -> None:
    app = _app(f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/probe")).json() == {"one": 1}
        r = await client.get("/broken")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal"


async def test_a_pool_with_every_connection_busy_is_a_503_not_a_wait_then_500(tmp_path: Any) -> None:
    """Overload: the request waits pool_timeout for a connection, then tells the kiosk to back off."""
    router = APIRouter()

    @router.get("/hold")
    async def hold(request: Request) -> dict[str, int]:
        async with runtime_of(request).engine.connect() as conn:
            return {"one": int((await conn.execute(text("SELECT 1"))).scalar_one())}

    settings = ServiceSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", auth_secret="s" * 40)
    runtime = ServiceRuntime(settings, db.new_metadata(), migrations="unused", bus=MemoryBus())
    # A pool of one connection, already taken, and a short wait.
    runtime.engine = db.make_engine(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=0.2,
                                     poolclass=AsyncAdaptedQueuePool)
    app = runtime.create_app(title="probe", routers=[router])
    taken = await runtime.engine.connect()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.get("/hold")
    finally:
        await taken.close()
        await runtime.engine.dispose()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "unavailable"


def test_a_postgresql_pool_is_sized_by_the_settings() -> None:
    url = f"postgresql+asyncpg://u:p@127.0.0.1:{_closed_port()}/nothing"  # nothing is connected here
    default = ServiceRuntime(ServiceSettings(database_url=url, auth_secret="s" * 40), db.new_metadata(),
                             migrations="unused", bus=MemoryBus())
    sized = ServiceRuntime(ServiceSettings(database_url=url, auth_secret="s" * 40, db_pool_size=20,
                                           db_max_overflow=0), db.new_metadata(), migrations="unused",
                           bus=MemoryBus())
    assert isinstance(default.engine.pool, AsyncAdaptedQueuePool)
    assert isinstance(sized.engine.pool, AsyncAdaptedQueuePool)
    assert (default.engine.pool.size(), default.engine.pool._max_overflow) == (10, 10)
    assert (sized.engine.pool.size(), sized.engine.pool._max_overflow) == (20, 0)
