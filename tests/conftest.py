"""Shared fixtures: the city profile, tokens, and the four services in one process on a MemoryBus."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import os
import secrets
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

# pytest puts this folder on sys.path to import this file. Its sub-folders are named like
# the packages under test (tests/yardstick, tests/scoring, ...) and, having no __init__.py,
# would be found there as namespace packages ahead of the real, editable-installed ones.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from yardstick import db  # noqa: E402
from yardstick.auth import issue  # noqa: E402
from yardstick.bus.memory import MemoryBus  # noqa: E402
from yardstick.city import CityProfile, default_city_path, load_city  # noqa: E402
from yardstick.services import SERVICES  # noqa: E402
from yardstick.tasks import stop_tasks  # noqa: E402

TEST_SECRET = "test-secret-0123456789abcdef0123456789abcdef"

Predicate = Callable[[], Any]
Eventually = Callable[..., Awaitable[Any]]
TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def city() -> CityProfile:
    return load_city(default_city_path())


@pytest.fixture
def city_today(city: CityProfile) -> Callable[[], date]:
    """Today in the city, read when called: a run that crosses the city's midnight (16:00 UTC for
    Hangzhou) must not use a date taken earlier as "tomorrow" (a CI run did: it was today by then)."""
    return lambda: datetime.now(UTC).astimezone(city.timezone).date()


@pytest.fixture
def secret() -> str:
    return TEST_SECRET


@pytest.fixture
def token(secret: str) -> TokenFactory:
    """`token("kiosk", window_id="...", subject="kiosk-1")`: a signed bearer token."""

    def make(role: str, **scope: Any) -> str:
        signed, _claims = issue(secret, role=role, **scope)
        return signed

    return make


# A polling loop with its own deadline: asyncio.timeout (what ASYNC109 suggests) does not fit.
async def _eventually(predicate: Predicate, timeout: float = 30.0, interval: float = 0.02) -> Any:  # noqa: ASYNC109
    """Poll until `predicate` (sync or async) returns something truthy; return it, or fail.

    The deadline guards against a hang, it measures nothing: it returns as soon as the condition
    holds, so it is generous (a CI machine running the whole suite under load once took over
    5 s for the scorecards to be recomputed after a seed; speed is for bench/).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {last!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def eventually() -> Eventually:
    return _eventually


PG_ADMIN = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL")
ScratchEngine = Callable[[str, "str | MetaData", str], AbstractAsyncContextManager[AsyncEngine]]


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_ADMIN else []))
def backend(request: pytest.FixtureRequest) -> str:
    """Each database backend a test runs on: SQLite, and PostgreSQL when the shared cluster is there
    (make test sets YARDSTICK_TEST_PG_ADMIN_URL)."""
    return str(request.param)


@pytest.fixture
def scratch_engine(tmp_path: Path) -> ScratchEngine:
    """`scratch_engine(backend, schema, prefix)`: an engine on a fresh database of that backend
    (a SQLite file under tmp_path, or a PostgreSQL database named prefix_<random>), migrated (schema
    a service's migrations folder) or with a test's tables created (schema a MetaData); disposed,
    and the PostgreSQL database dropped, on leaving."""

    @contextlib.asynccontextmanager
    async def scratch(backend: str, schema: str | MetaData, prefix: str) -> AsyncIterator[AsyncEngine]:
        async with contextlib.AsyncExitStack() as stack:
            if backend == "sqlite":
                engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / prefix}_{secrets.token_hex(3)}.db")
            else:
                if PG_ADMIN is None:
                    pytest.fail("this test needs PostgreSQL: run it through `make test` "
                                "(YARDSTICK_TEST_PG_ADMIN_URL)", pytrace=False)
                engine = db.make_engine(await stack.enter_async_context(db.scratch_database(PG_ADMIN, prefix)))
            stack.push_async_callback(engine.dispose)  # disposed before the database is dropped
            if isinstance(schema, MetaData):
                async with engine.begin() as conn:
                    await conn.run_sync(schema.create_all)
            else:
                await db.migrate(engine, schema)
            yield engine

    return scratch


@dataclass
class System:
    intake: httpx.AsyncClient
    targets: httpx.AsyncClient
    scoring: httpx.AsyncClient
    notices: httpx.AsyncClient
    bus: MemoryBus
    apps: dict[str, Any] = field(default_factory=dict)

    def runtime(self, service: str) -> Any:
        return self.apps[service].state.runtime

    async def published(self, *services: str) -> bool:
        """The services' relays published every event they committed (their outboxes are empty).

        Check this before a consumer's lag: a request's events reach the bus after it returned, so
        a lag of 0 read before the relay's round is no sign they were applied."""
        return all([await _published_all(self.runtime(s)) for s in services or tuple(self.apps)])

    async def emitted(self, service: str, event_type: str) -> list[dict[str, Any]]:
        """The data of every event of this type the service committed, in commit order, as the bus
        carries it: read once its outbox is empty (the relay deletes a row once it is published)."""
        runtime = self.runtime(service)
        await _eventually(lambda: _published_all(runtime))
        return [json.loads(m.value) for log in self.bus.logs.values() for m in log
                if m.header("ce_type") == event_type.encode() and m.header("ce_source") == service.encode()]

    async def scorecards_current(self) -> bool:
        """Scoring applied every event on the bus and recomputed its stored scorecards from them
        (reads trail the events by under a second: scoring.service.refresher)."""
        from scoring import service

        return self.bus.lag("scoring") == 0 and not await service.behind(self.runtime("scoring"))


async def _published_all(runtime: Any) -> bool:
    runtime.relay.wake()
    return not await runtime.relay.pending()


_CLIENT_NAMES = {"feedback-intake": "intake", "target-tracker": "targets", "scoring": "scoring",
                 "notices": "notices"}


@pytest.fixture
async def system(tmp_path: Path, secret: str, city: CityProfile) -> AsyncIterator[System]:
    """The four services on one MemoryBus, each with its own SQLite file under tmp_path."""
    bus = MemoryBus(retry_s=0.02)
    apps: dict[str, Any] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    async with AsyncExitStack() as stack:
        for name, spec in SERVICES.items():
            # database_url="": a YARDSTICK_*_DATABASE_URL in the environment must not win.
            settings = spec.settings(data_dir=tmp_path, bus="memory", auth_secret=secret, database_url="")
            app = spec.create_app(settings, bus=bus, city=city)
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps[name] = app
            clients[_CLIENT_NAMES[name]] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"))
        await bus.start()
        stack.push_async_callback(bus.stop)
        yield System(bus=bus, apps=apps, **clients)
    await _end_leftover_tasks()


def _closes_an_aiosqlite_connection(task: asyncio.Task[Any]) -> bool:
    return getattr(task.get_coro(), "__qualname__", "") == "AsyncAdapt_aiosqlite_connection._terminate_graceful_close"


async def _end_leftover_tasks(limit_s: float = 20.0) -> None:
    """Tasks still running once the services stopped are ended here, cancelled as often as it takes.

    pytest-asyncio's loop cancels leftovers once, then waits for them without limit: two CI checks
    hung there (under load), on a task that did not end. A leftover is named in a warning; one that
    outlives `limit_s` of cancelling fails the test with its stack instead of hanging the run.
    """
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    # A statement cancelled as a service stops (its relay or consumer loop, under load) has SQLAlchemy
    # close that aiosqlite connection in a task of its own, which ends when aiosqlite's thread answers.
    # Cancelled, it left that thread answering a closed loop ("Event loop is closed", decision 0022):
    # it is let finish first, and only one that does not finish within 15 s is a leftover.
    closing = [t for t in left if _closes_an_aiosqlite_connection(t)]
    if closing:
        # 15 s: under a loaded CI the close waits behind the statements still queued in aiosqlite's thread.
        await asyncio.wait(closing, timeout=15.0)
        left = [t for t in left if not t.done()]
    if not left:
        return

    def described() -> str:
        out = io.StringIO()
        for task in left:
            if not task.done():
                task.print_stack(limit=25, file=out)
        return out.getvalue()[-6000:]

    before = described()
    try:
        async with asyncio.timeout(limit_s):
            await stop_tasks(left)
    except TimeoutError:
        pytest.fail(f"tasks still running {limit_s:.0f} s after being cancelled:\n{described()}")
    warnings.warn(f"tasks left running after the services stopped (now ended):\n{before}", stacklevel=1)
