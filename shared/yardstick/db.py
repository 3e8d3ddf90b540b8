"""Async SQLAlchemy engines, sessions and Alembic migrations for one service's own database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from pydantic_core import to_json
from sqlalchemy import JSON, Column, MetaData, Table, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, immediate: bool = False, **kwargs: Any) -> AsyncEngine:
    """The engine of a database URL. `immediate` (SQLite): its transactions begin IMMEDIATE, holding the
    write lock from their first statement (writer_engine)."""
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # SQLAlchemy begins the transactions itself (below), instead of the driver's legacy mode,
            # which begins one only before the first write.
            dbapi_conn.isolation_level = None
            # WAL lets the relay read while a request writes; busy_timeout rides out short locks.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL never corrupts the file; a power cut may lose the last commits. SQLite
            # is the quick-start store (`yardstick run`), where FULL's fsync per commit (~4 ms here)
            # was most of the demo's write time.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # SQLAlchemy's pre-ping costs three round trips per checkout on asyncpg (BEGIN, ";", ROLLBACK):
    # a third of a feedback post's. The check below costs none: a connection the server closed (a
    # restart, a terminated backend) is closed on our side as soon as the event loop reads the EOF.
    kwargs.setdefault("pool_pre_ping", False)
    # When every connection is busy, a request waits this long, then answers 503 with Retry-After
    # (runtime.install_unavailable): a kiosk backs off sooner than after SQLAlchemy's default 30 s.
    kwargs.setdefault("pool_timeout", 5)
    # Errors carry their statement but never its values: a value may be a complaint's text or a
    # phone number, and errors end up in logs and dead-letter headers.
    engine = create_async_engine(url, hide_parameters=True, **kwargs)

    @event.listens_for(engine.sync_engine, "checkout")
    def _drop_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        # DisconnectionError makes the pool discard this connection and check out (or open) another;
        # a dead link the loop has not noticed fails its statement instead, as a disconnect, which
        # invalidates the pool's older connections too (and the request is a 503).
        if dbapi_conn.driver_connection.is_closed():
            raise DisconnectionError("connection closed by the server")

    return engine


def writer_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine for units of work that write: on PostgreSQL the engine itself; on SQLite (decision 0021)
    a second engine on the same file with a single connection, whose transactions begin IMMEDIATE.

    Begun deferred, a SQLite transaction that has read is a reader on a snapshot, and its first write
    fails at once with "database is locked" (busy_timeout does not apply) whenever another connection
    committed since that snapshot, as the quick start's scoring loops did beside the consumers. Begun
    IMMEDIATE, it holds the write lock from its first statement. With one connection, a process's
    writers queue in the pool, a wait a cancelled task leaves at once, rather than in SQLite's busy
    handler, whose wait a cancelled task's thread sits out (up to busy_timeout) and that no stopping
    service should wait for. Reads stay on `engine`, deferred, beside the writer (WAL)."""
    if engine.dialect.name != "sqlite":
        return engine
    return make_engine(engine.url.render_as_string(hide_password=False), immediate=True,
                       pool_size=1, max_overflow=0)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back on error."""
    async with sessions() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def alembic_config(conn: Connection, script_location: str, url: str) -> Any:
    """Alembic's configuration for a service's migrations on this connection (`run_migrations_online`)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    # Alembic's configuration interpolates %(name)s: a URL's %XX escapes (a user `svc@corp` is
    # `svc%40corp`, a folder `50% off` is `50%25 off`) would make it refuse to migrate.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = conn
    return cfg


def _upgrade(conn: Connection, script_location: str, url: str) -> None:
    from alembic import command

    cfg = alembic_config(conn, script_location, url)
    if conn.dialect.name == "postgresql":
        # Several instances may start together: one migrates, the others wait for it.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": script_location})
    command.upgrade(cfg, "head")


# Alembic keeps its running context in module globals: in the one-process mode four
# services start together, so their migrations must not interleave.
_MIGRATING = asyncio.Lock()


async def migrate(engine: AsyncEngine, script_location: str) -> None:
    """Bring the service's database to the newest revision of its own migrations."""
    async with _MIGRATING, engine.begin() as conn:
        await conn.run_sync(_upgrade, script_location, str(engine.url))


def run_migrations_online(target_metadata: MetaData) -> None:
    """Body of each service's Alembic env.py: use the connection handed over by `migrate`."""
    from alembic import context

    conn = context.config.attributes.get("connection")
    if conn is None:
        # Invoked from the alembic CLI (e.g. `alembic revision --autogenerate`): open a sync engine.
        from sqlalchemy import create_engine

        url = context.config.get_main_option("sqlalchemy.url") or ""
        sync_url = url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg2")
        with create_engine(sync_url).connect() as sync_conn:
            context.configure(connection=sync_conn, target_metadata=target_metadata,
                              render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
            sync_conn.commit()
        return
    context.configure(connection=conn, target_metadata=target_metadata,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp with its zone: SQLite hands back naive datetimes, and everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def driver(session: AsyncSession) -> Any:
    """The asyncpg connection under a PostgreSQL session, inside the session's transaction; None on SQLite.

    For the hot paths' statements (`xact_lock`, `bulk_insert`, a kiosk batch's reads): a statement
    through the session cost 4 times the client CPU of the same statement on the driver (289 against
    67 us for an advisory lock, in process), which is SQLAlchemy's execution context, result and
    greenlet switches. They run in the session's transaction, so they commit or roll back with it.
    SQLAlchemy begins that transaction on the driver only before its first statement: it is begun
    here when no statement has (`_start_transaction`, the dialect's own step;
    tests/yardstick/test_db_driver.py fails if a release renames it). The driver's errors are not
    wrapped by SQLAlchemy: the services' handlers and `consumer.is_transient` take both.
    """
    if dialect_name(session) != "postgresql":
        return None
    raw = session.info.get(_DRIVER)
    if raw is not None:
        return raw
    # Through the session each time a transaction or savepoint begins (the listeners below forget the
    # connection then): SQLAlchemy emits a pending SAVEPOINT when asked for the connection.
    connection = await session.connection()
    fairy = await connection.get_raw_connection()
    adapted: Any = fairy.dbapi_connection
    if adapted._transaction is None and adapted.isolation_level != "autocommit":
        try:
            await adapted._start_transaction()
        except BaseException as exc:
            # A BEGIN cancelled or failed half way leaves the server's transaction unknown to the
            # adapter (its rollback would send nothing, and asyncpg would nest the next one as a
            # savepoint): the connection is dropped, as SQLAlchemy drops one its own statement left so.
            with contextlib.suppress(Exception):
                await connection.invalidate(exc if isinstance(exc, Exception) else None)
            # The adapter's stand-in error for the driver's (not a DBAPIError): the driver's own, which
            # the services' 503 handler and is_transient know.
            driver_error = getattr(exc, "driver_exception", None)
            if isinstance(driver_error, Exception):
                raise driver_error from exc
            raise
    raw = session.info[_DRIVER] = fairy.driver_connection
    return raw


_DRIVER = "yardstick.driver"


@event.listens_for(AsyncSession.sync_session_class, "after_transaction_end")
def _forget_driver(session: Any, transaction: Any) -> None:
    """The driver's connection goes back to the pool with the transaction: a later one may get another."""
    if transaction.parent is None:
        session.info.pop(_DRIVER, None)


@event.listens_for(AsyncSession.sync_session_class, "after_transaction_create")
def _forget_driver_for_a_savepoint(session: Any, transaction: Any) -> None:
    """A savepoint begins on the server when the session is next asked for its connection."""
    if transaction.nested:
        session.info.pop(_DRIVER, None)


async def xact_lock(session: AsyncSession, *names: str) -> None:
    """Wait for the locks of these names, in the order given, each held until the transaction ends
    (PostgreSQL; SQLite has one writer). Several names take one round trip: callers that lock more
    than one pass them sorted, so two transactions never wait on each other in opposite orders."""
    if dialect_name(session) != "postgresql" or not names:
        return
    raw = await driver(session)
    if len(names) == 1:
        await raw.fetch("SELECT pg_advisory_xact_lock(hashtext($1))", names[0])
    else:
        # A function scan over the array yields its elements in order, and the aggregate takes each lock
        # as its row arrives: the locks are taken in the array's order.
        await raw.fetch("SELECT count(pg_advisory_xact_lock(hashtext(k))) FROM unnest($1::text[]) AS k",
                        list(names))


async def try_xact_lock(session: AsyncSession, name: str) -> bool:
    """The lock if free, else False at once: one instance at a time does a sweep or an emission."""
    if dialect_name(session) != "postgresql":
        return True
    return bool((await session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": name})).scalar())


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT (both PostgreSQL's and SQLite's have ON CONFLICT)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return pg_insert if dialect_name(session) == "postgresql" else sqlite_insert


class JsonText(str):
    """A value for a JSON column that is JSON text already (pydantic's model_dump_json)."""


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]], *,
                      skip_conflicts: bool = False, returning: Column[Any] | None = None) -> list[Any]:
    """Insert many rows in one statement; with `returning`, the values of that column actually inserted.

    On PostgreSQL the rows travel as one array per column through `unnest`: a statement with a
    handful of parameters, compiled once, instead of SQLAlchemy building and binding a parameter
    per value (the most expensive part of a kiosk batch before). Every row names the same columns.
    """
    if not rows:
        return []
    columns = list(rows[0])
    if dialect_name(session) != "postgresql":
        stmt: Any = insert_for(session)(table)
        if skip_conflicts:
            stmt = stmt.on_conflict_do_nothing()
        plain = [{k: json.loads(v) if isinstance(v, JsonText) else v for k, v in row.items()} for row in rows]
        if returning is None:
            await session.execute(stmt, plain)
            return []
        return [r[0] for r in await session.execute(stmt.returning(returning), plain)]
    # Column by column; a plain column's values as they are (a kiosk batch is 900 of them), a JSON
    # column's as text by pydantic's serialiser (a fifth of json.dumps's cost: a kiosk batch's reasons).
    values = [[v if isinstance(v, JsonText) else to_json(v).decode() for v in map(itemgetter(c), rows)]
              if isinstance(table.c[c].type, JSON) else list(map(itemgetter(c), rows)) for c in columns]
    # A column whose rows all hold one value (a kiosk batch's device, window, unit, year and status)
    # travels as that one value: the driver checks every element of an array it encodes, about a fifth
    # of a kiosk batch's CPU in intake before. One column stays an array, so that n rows are n rows.
    same = tuple(len(rows) == 1 or (col.count(col[0]) == len(col) and len(set(map(type, col))) == 1)
                 for col in values)  # alike and of one type: 1, 1.0 and True are equal, not alike
    if all(same) and len(rows) > 1:
        same = (False, *same[1:])
    key = (table.name, tuple(columns), same, skip_conflicts, None if returning is None else returning.name)
    sql = _BULK_SQL.get(key)
    if sql is None:
        types = [_pg_type(table.c[c]) for c in columns]
        arrays = [i for i, one in enumerate(same) if not one]
        picked = ", ".join(f"${i + 1}::{types[i]}" if one else f'u."{columns[i]}"' for i, one in enumerate(same))
        source = (f"unnest({', '.join(f'${i + 1}::{types[i]}[]' for i in arrays)}) "
                  f"AS u({', '.join(chr(34) + columns[i] + chr(34) for i in arrays)})") if arrays else None
        sql = _BULK_SQL[key] = (
            f'INSERT INTO "{table.name}" ({", ".join(chr(34) + c + chr(34) for c in columns)}) '
            f"SELECT {picked}" + (f" FROM {source}" if source else "")
            + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
            + (f' RETURNING "{returning.name}"' if returning is not None else ""))
    args = [col[0] if one else col for col, one in zip(values, same, strict=True)]
    raw = await driver(session)
    if returning is None:
        await raw.execute(sql, *args)
        return []
    return [r[0] for r in await raw.fetch(sql, *args)]


_BULK_SQL: dict[tuple[str, tuple[str, ...], tuple[bool, ...], bool, str | None], str] = {}


_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _pg_type(column: Column[Any]) -> str:
    return str(column.type.compile(dialect=_PG_DIALECT))


# --- scratch databases (tests and benchmarks) ---------------------------------------------------


def _scratch(admin_url: str, prefix: str) -> tuple[str, str, str]:
    """(the cluster's libpq DSN, a new database name, that database's SQLAlchemy URL)."""
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"{prefix}_{secrets.token_hex(4)}"
    return dsn, name, "postgresql+asyncpg://" + dsn.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"


async def _on_cluster(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database `<prefix>_<random>` for a test or a benchmark.

    admin_url names any database of the cluster (`postgresql+asyncpg://` or `postgresql://`), as
    YARDSTICK_TEST_PG_ADMIN_URL does. Yields the new database's SQLAlchemy URL (asyncpg); drops it on
    leaving, whatever happened, with any connection still open to it.
    """
    dsn, name, url = _scratch(admin_url, prefix)
    await _on_cluster(dsn, f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        await _on_cluster(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database_sync(admin_url: str, prefix: str) -> Iterator[str]:
    """scratch_database outside an event loop (a benchmark that starts server processes)."""
    dsn, name, url = _scratch(admin_url, prefix)
    asyncio.run(_on_cluster(dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield url
    finally:
        asyncio.run(_on_cluster(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
