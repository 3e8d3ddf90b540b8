"""Async SQLAlchemy engines, sessions and Alembic migrations for one service's own database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection
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


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the relay read while a request writes; busy_timeout rides out short locks.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    # Errors carry their statement but never its values: a value may be a complaint's text or a
    # phone number, and errors end up in logs and dead-letter headers.
    return create_async_engine(url, hide_parameters=True, **kwargs)


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


def _upgrade(conn: Connection, script_location: str, url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["connection"] = conn
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


async def xact_lock(session: AsyncSession, name: str) -> None:
    """Wait for a lock named `name`, held until the transaction ends (PostgreSQL; SQLite has one writer)."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": name})


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
