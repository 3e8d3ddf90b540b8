"""`db.driver`: the hot paths' statements on the asyncpg connection, inside the session's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from yardstick import db
from yardstick.consumer import is_transient

metadata = MetaData()
things = Table("things", metadata, Column("id", String(64), primary_key=True), Column("n", Integer, nullable=False))
notes = Table("notes", metadata, Column("who", String(20), nullable=True), Column("n", Integer, nullable=True),
              Column("doc", JSON, nullable=True))

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(scratch_engine: Any) -> AsyncIterator[AsyncEngine]:
    async with scratch_engine("postgresql", metadata, "yt_driver") as engine:
        yield engine


async def _lock_is_free(engine: AsyncEngine, name: str) -> bool:
    async with engine.connect() as other:
        free = (await other.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": name})).scalar()
        await other.rollback()
    return bool(free)


async def test_a_lock_taken_on_the_driver_first_is_held_until_the_session_commits(engine: AsyncEngine) -> None:
    """The first statement of a transaction on the driver: SQLAlchemy had not begun it on the server yet.
    Run outside one, the transaction-scoped lock would end with its own statement."""
    sessions = db.session_factory(engine)
    async with db.transaction(sessions) as session:
        await db.xact_lock(session, "kiosk:a")
        assert not await _lock_is_free(engine, "kiosk:a")
        await db.xact_lock(session, "outbox:b", "outbox:c")
        assert not await _lock_is_free(engine, "outbox:c")
    assert await _lock_is_free(engine, "kiosk:a") and await _lock_is_free(engine, "outbox:c")


async def test_rows_inserted_on_the_driver_commit_and_roll_back_with_the_session(engine: AsyncEngine) -> None:
    sessions = db.session_factory(engine)
    with pytest.raises(RuntimeError):
        async with db.transaction(sessions) as session:
            assert await db.bulk_insert(session, things, [{"id": "a", "n": 1}], returning=things.c.id) == ["a"]
            raise RuntimeError("the request failed after its insert")
    async with sessions() as session:
        # One session, two transactions: the second gets its own connection, not the first one's.
        async with session.begin():
            await db.bulk_insert(session, things, [{"id": "b", "n": 2}, {"id": "c", "n": 3}])
        async with session.begin():
            inserted = await db.bulk_insert(session, things, [{"id": "c", "n": 9}, {"id": "d", "n": 4}],
                                            skip_conflicts=True, returning=things.c.id)
            assert inserted == ["d"]
            # The session's own statements see the driver's rows: one transaction.
            assert (await session.execute(select(func.count()).select_from(things))).scalar() == 3
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.id, things.c.n).order_by(things.c.id))).all() == [
            ("b", 2), ("c", 3), ("d", 4)]


async def test_a_driver_error_rolls_the_session_back_and_is_judged_like_sqlalchemys(engine: AsyncEngine) -> None:
    sessions = db.session_factory(engine)
    async with db.transaction(sessions) as session:
        await db.bulk_insert(session, things, [{"id": "x", "n": 1}])
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        async with db.transaction(sessions) as session:
            await db.bulk_insert(session, things, [{"id": "y", "n": 1}])
            await db.bulk_insert(session, things, [{"id": "x", "n": 2}])
    assert not is_transient(caught.value)  # the data's fault (SQLSTATE class 23), as through SQLAlchemy
    async with db.transaction(sessions) as session:  # the pool's connections are usable after it
        await db.bulk_insert(session, things, [{"id": "z", "n": 3}])
    async with engine.connect() as conn:
        assert [r[0] for r in await conn.execute(select(things.c.id).order_by(things.c.id))] == ["x", "z"]


@pytest.mark.parametrize("rows", [
    pytest.param([{"who": "a", "n": 1, "doc": []}, {"who": "a", "n": 2, "doc": []}, {"who": "b", "n": 2, "doc": []}],
                 id="some-columns-alike"),
    pytest.param([{"who": "a", "n": 1, "doc": {"k": 1}}] * 3, id="identical-rows-stay-three"),
    pytest.param([{"who": None, "n": None, "doc": None}] * 2, id="all-null"),
    pytest.param([{"who": "solo", "n": 7, "doc": [1, 2]}], id="one-row"),
])
async def test_bulk_insert_stores_every_row_whichever_columns_are_alike(engine: AsyncEngine,
                                                                          rows: list[dict[str, Any]]) -> None:
    """A column alike in every row travels as one value (the driver checks each element of an array): the
    rows stored are the rows given, as many as given."""
    sessions = db.session_factory(engine)
    async with db.transaction(sessions) as session:
        await db.bulk_insert(session, notes, rows)
    async with engine.connect() as conn:
        stored = [dict(r._mapping) for r in await conn.execute(select(notes))]
    assert sorted(stored, key=repr) == sorted(rows, key=repr)


async def test_a_savepoint_begun_after_the_driver_is_in_use_rolls_back_its_own_rows(engine: AsyncEngine) -> None:
    """A review's find: the cached connection skipped SQLAlchemy's pending SAVEPOINT, so a failed nested
    block's rows were committed with the outer transaction."""
    sessions = db.session_factory(engine)
    async with db.transaction(sessions) as session:
        await db.xact_lock(session, "kiosk:a")  # the driver in use before the savepoint
        with pytest.raises(ValueError):
            async with session.begin_nested():
                await db.bulk_insert(session, things, [{"id": "in-savepoint", "n": 1}])
                raise ValueError("the nested block fails")
        await db.bulk_insert(session, things, [{"id": "kept", "n": 2}])
        with pytest.raises(asyncpg.UniqueViolationError):
            async with session.begin_nested():
                await db.bulk_insert(session, things, [{"id": "kept", "n": 3}])
        await db.bulk_insert(session, things, [{"id": "after", "n": 4}])  # the transaction is still usable
    async with engine.connect() as conn:
        assert [r[0] for r in await conn.execute(select(things.c.id).order_by(things.c.id))] == ["after", "kept"]


class _Proxy:
    """A TCP proxy to the test cluster that can hold the server's answers back or drop the connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.hold = asyncio.Event()
        self.drop = asyncio.Event()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, from_client: bool) -> None:
            try:
                while data := await r.read(65536):
                    if from_client and self.drop.is_set():
                        self.drop.clear()
                        client_w.transport.abort()
                        server_w.transport.abort()
                        return
                    if not from_client and self.hold.is_set():
                        await asyncio.sleep(0.5)
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                w.close()

        await asyncio.gather(pump(client_r, server_w, True), pump(server_r, client_w, False))


def _through(engine: AsyncEngine, port: int) -> str:
    """The engine's database URL by way of the proxy listening on `port`."""
    return engine.url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


async def test_a_unit_of_work_cancelled_during_its_begin_leaves_no_transaction_open(engine: AsyncEngine) -> None:
    """A review's find: a task cancelled while the driver's BEGIN was under way left the server's
    transaction unknown to SQLAlchemy; the pool's connection then nested every later unit of work in
    it as a savepoint, and their commits committed nothing. The connection is dropped now."""
    proxy = _Proxy((str(engine.url.host), int(engine.url.port or 5432)))
    async with proxy as port:
        proxied = db.make_engine(_through(engine, port), pool_size=1, max_overflow=0)
        sessions = db.session_factory(proxied)
        try:
            async with db.transaction(sessions) as session:  # the pool's one connection, opened
                await session.execute(text("SELECT 1"))

            async def unit_of_work() -> None:
                async with db.transaction(sessions) as session:
                    await db.xact_lock(session, "kiosk:a")

            proxy.hold.set()
            task = asyncio.create_task(unit_of_work())
            await asyncio.sleep(0.2)  # BEGIN sent, its answer held back
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.6)
            proxy.hold.clear()
            for i in range(2):
                async with db.transaction(sessions) as session:
                    await db.xact_lock(session, "kiosk:b")
                    await db.bulk_insert(session, things, [{"id": f"later-{i}", "n": i}])
        finally:
            await proxied.dispose()
    async with engine.connect() as conn:
        assert [r[0] for r in await conn.execute(select(things.c.id).order_by(things.c.id))] == ["later-0", "later-1"]
    assert await _lock_is_free(engine, "kiosk:b")


async def test_a_connection_lost_at_the_drivers_begin_answers_503(engine: AsyncEngine) -> None:
    """A review's find: the adapter's stand-in error for a failed BEGIN was neither SQLAlchemy's nor the
    driver's, and a request answered a bare 500. It is the driver's own now: 503 with Retry-After."""
    import httpx
    from fastapi import FastAPI

    from yardstick import runtime

    proxy = _Proxy((str(engine.url.host), int(engine.url.port or 5432)))
    async with proxy as port:
        proxied = db.make_engine(_through(engine, port), pool_size=1, max_overflow=0)
        sessions = db.session_factory(proxied)
        app = FastAPI()
        runtime.install_unavailable(app, "test")

        @app.post("/lock")
        async def lock() -> dict[str, bool]:
            async with db.transaction(sessions) as session:
                await db.xact_lock(session, "kiosk:a")
            return {"ok": True}

        try:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                assert (await client.post("/lock")).status_code == 200
                proxy.drop.set()
                r = await client.post("/lock")
                assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
                assert (await client.post("/lock")).status_code == 200  # a new connection
        finally:
            await proxied.dispose()
