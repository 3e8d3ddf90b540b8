"""What every service process is made of: database, bus, outbox relay, consumers, health."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from starlette.responses import Response

from yardstick import db, errors, observability
from yardstick.auth import Authenticator, Revocations, revoked_table
from yardstick.bus import Bus, Message, Subscription
from yardstick.city import CityProfile, default_city_path, load_city
from yardstick.consumer import (
    TRANSIENT_DRIVER_ERRORS,
    DecodedT,
    EventHandler,
    IdempotentConsumer,
    PreparedBatch,
    is_transient,
    processed_table,
)
from yardstick.events import Envelope, Prepared
from yardstick.outbox import ROW_EVENTS, Relay, add, outbox_table
from yardstick.settings import ServiceSettings
from yardstick.tasks import stop_tasks

log = logging.getLogger(__name__)


# A consumer's poll on SQLite, at most (ServiceRuntime.consume).
SQLITE_POLL_MAX = 500


def make_bus(settings: ServiceSettings) -> Bus:
    if settings.bus == "kafka":
        from yardstick.bus.kafka import KafkaBus

        return KafkaBus(settings.kafka_bootstrap_servers, client_id=settings.service,
                        partitions=settings.topic_partitions, prefix=settings.topic_prefix,
                        replication_factor=settings.topic_replication_factor,
                        retry_initial_s=settings.retry_initial_s,
                        retry_max_s=settings.retry_max_s)
    from yardstick.bus.memory import MemoryBus

    return MemoryBus(retry_s=settings.retry_initial_s)


class ServiceRuntime:
    """The plumbing of one service; its create_app() builds one and registers its consumers.

    Tables for the outbox and the processed-event log live in the service's own
    MetaData, so they are part of its own database and its own migrations.
    """

    def __init__(self, settings: ServiceSettings, metadata: MetaData, *, migrations: str,
                 bus: Bus | None = None, city: CityProfile | None = None) -> None:
        self.settings = settings
        self.service = settings.service
        self.metadata = metadata
        self.migrations = migrations
        self.outbox: Table = metadata.tables["outbox"] if "outbox" in metadata.tables else outbox_table(metadata)
        self.processed: Table = (metadata.tables["processed_events"] if "processed_events" in metadata.tables
                                 else processed_table(metadata))
        pool: dict[str, Any] = ({} if db.is_sqlite(settings.database_url)
                                else {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow})
        self.engine = db.make_engine(settings.database_url, **pool)
        self.sessions: async_sessionmaker[AsyncSession] = db.session_factory(self.engine)
        # Units of work that write (transaction(), the consumers): on SQLite through the writer engine,
        # one connection whose transactions take the write lock when they begin (decision 0021).
        self.writer = db.writer_engine(self.engine)
        self.writing: async_sessionmaker[AsyncSession] = db.session_factory(self.writer)
        self.bus: Bus = bus if bus is not None else make_bus(settings)
        self.owns_bus = bus is None
        self.city = city or load_city(settings.city or default_city_path())
        self.relay = Relay(engine=self.engine, table=self.outbox, bus=self.bus, service=self.service,
                           interval_s=settings.relay_interval_s, retry_max_s=settings.retry_max_s)
        self.revoked: Table = (metadata.tables["revoked_tokens"] if "revoked_tokens" in metadata.tables
                               else revoked_table(metadata))
        self.revocations = Revocations(self.writing, self.revoked)
        self.authenticator = Authenticator(settings.secret, self.revocations, audience=settings.auth_audience)
        self.consumers: list[IdempotentConsumer[Any]] = []
        self._task_factories: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._stop_callbacks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.instance = f"{socket.gethostname()}-{os.getpid()}"
        self.bus.subscribe(self.revocations.subscription(self.service, self.instance))
        if settings.bus == "kafka" and os.environ.get("YARDSTICK_AUTH_DATABASE_URL"):
            # The token registry's events wait in its outbox when the broker was down as the
            # commission issued or revoked a token; every service offers to relay them (one at a
            # time, by the relay's lock), so a revocation never waits for someone to notice.
            self.add_task("token-relay", self._relay_token_registry)

    # wiring -----------------------------------------------------------------------
    def consume(self, *, name: str, topics: list[str], handlers: Mapping[str, EventHandler],
                after_commit: Callable[[Envelope | DecodedT], Awaitable[None]] | None = None,
                batch_handler: Callable[[AsyncSession, Sequence[DecodedT]], Awaitable[None]] | None = None,
                batched: bool = False, decode: Callable[[Message], Envelope] | None = None,
                decode_batch: Callable[[Message], DecodedT] | None = None,
                prepare: Callable[[Sequence[DecodedT]], PreparedBatch[DecodedT]] | None = None,
                poll_size: int | None = None) -> IdempotentConsumer[DecodedT]:
        """Subscribe `handlers`; batched (or with a batch_handler) the bus hands over a poll at a time.

        A batched consumer applies each poll's messages in one transaction (see
        IdempotentConsumer.batch); the handlers stay the per-event fallback. `decode_batch`
        decodes the polls (it may give rows, and decode a poll at once: yardstick.consumer.RowDecoder);
        `prepare` does a large poll's batch work in the decoding thread (IdempotentConsumer);
        `poll_size` caps a poll (the bus's default when None).
        """
        if self.writer is not self.engine:
            # SQLite has one writer: a poll's transaction holds it, and every request and loop that
            # writes waits for it. Polls of at most SQLITE_POLL_MAX keep that wait short (decision 0021).
            poll_size = min(poll_size or SQLITE_POLL_MAX, SQLITE_POLL_MAX)
        consumer: IdempotentConsumer[DecodedT] = IdempotentConsumer(
            name=name, sessions=self.writing, table=self.processed, handlers=handlers, after_commit=after_commit,
            batch_handler=batch_handler, decode=decode, decode_batch=decode_batch, prepare=prepare)
        self.consumers.append(consumer)
        many = consumer.batch if batched or batch_handler is not None else None
        self.bus.subscribe(Subscription(group=name, topics=topics, handler=consumer, batch_handler=many,
                                        poll_size=poll_size))
        return consumer

    async def _relay_token_registry(self) -> None:
        from yardstick.settings import AuthSettings
        from yardstick.tokens import Registry

        registry = Registry(AuthSettings())
        try:
            await registry.prepare()
            relay = registry.relay(self.bus)
            await relay.start()
            try:
                await asyncio.Event().wait()
            finally:
                await relay.stop()
        finally:
            await registry.close()

    def add_task(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A background loop of the service (a sweep, a notifier), run from start() to stop().

        It must catch its own errors and loop; a crash is logged and the task restarted.
        """
        self._task_factories.append((name, factory))

    def on_stop(self, callback: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Awaited first when the service stops, while the database and the bus are still there
        (work in flight outside the background loops, such as a write queue, ends here)."""
        self._stop_callbacks.append(callback)

    async def _supervised(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        while True:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task failed; restarting", extra={"service": self.service})
                await asyncio.sleep(self.settings.retry_max_s)

    async def emit(self, session: AsyncSession, envelopes: Sequence[Envelope | Prepared]) -> None:
        """Queue events in the request's transaction; the relay is woken after commit."""
        await add(session, self.outbox, envelopes, per_row=ROW_EVENTS if self.settings.outbox_shared_rows else 1)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for reads on hot paths: Core statements, none of a Session's bookkeeping.

        On PostgreSQL it runs in autocommit: each statement is its own transaction, so no BEGIN
        and no ROLLBACK travel to the server (two of a one-query read's three round trips;
        0.6 ms a read for the session, 0.3 ms more for the round trips, in process). Nothing
        changes for the reads: under PostgreSQL's default READ COMMITTED each statement took its
        own snapshot already. SQLite keeps its transactions (switching costs a trip to aiosqlite's
        thread each time), begun deferred: a reader beside the writer, not queued behind it
        (decision 0021).
        """
        async with self.engine.connect() as connection:
            if self.engine.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with db.transaction(self.writing) as session:
            yield session
        if session.info.get("outbox_added"):
            self.relay.wake()

    # lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        await self._migrate_with_retry()
        await self.revocations.load()  # before the first request: a revoked token stays refused
        if self.owns_bus:
            await self.bus.start()
        await self.relay.start()
        self._tasks = [asyncio.create_task(self._supervised(name, factory), name=f"{self.service}:{name}")
                       for name, factory in self._task_factories]
        log.info("service started", extra={"service": self.service})

    async def _migrate_with_retry(self) -> None:
        delay = self.settings.retry_initial_s
        for attempt in range(1, 31):
            try:
                await db.migrate(self.engine, self.migrations)
                return
            except Exception as exc:
                if attempt >= 30:
                    raise
                log.warning("database not ready; retrying migrations",
                            extra={"service": self.service, "error": repr(exc)[:300], "attempt": attempt})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)

    async def stop(self) -> None:
        for callback in self._stop_callbacks:
            await callback()
        await stop_tasks(self._tasks)
        self._tasks = []
        await self.relay.stop()
        if self.owns_bus:
            await self.bus.stop()
        await self.engine.dispose()
        if self.writer is not self.engine:
            await self.writer.dispose()
        log.info("service stopped", extra={"service": self.service})

    # the FastAPI side -------------------------------------------------------------
    def create_app(self, *, title: str, routers: list[Any], version: str = "1") -> FastAPI:
        runtime = self

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await runtime.start()
            try:
                yield
            finally:
                await runtime.stop()

        # The services' metrics are Prometheus's (observability.py) and no OpenTelemetry provider is set
        # up: FastAPI's own telemetry would only ask, on every request, whether one has been (decision 0016).
        app = FastAPI(title=title, version=version, lifespan=lifespan,
                      telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})
        app.state.runtime = self
        app.state.authenticator = self.authenticator
        errors.install(app)
        install_unavailable(app, self.service)
        app.add_middleware(observability.RequestMiddleware, service=self.service)
        app.add_middleware(errors.BodyLimit, limit=self.settings.max_body_bytes,
                           large_prefixes=("/v1/surveys/",), read_timeout_s=self.settings.body_timeout_s,
                           large_read_timeout_s=self.settings.large_body_timeout_s)

        @app.get("/healthz", tags=["health"])
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "service": runtime.service}

        @app.get("/readyz", tags=["health"])
        async def readyz() -> JSONResponse:
            database = await db.ping(runtime.engine)
            body = {"service": runtime.service, "database": "ok" if database else "unreachable",
                    "bus": runtime.bus.state(),
                    "relay": {"holds_lock": runtime.relay.holds_lock, "published": runtime.relay.published}}
            # Only the database takes us out of service: with the broker down, intake keeps
            # accepting and the outbox holds the events.
            return JSONResponse(body, status_code=200 if database else 503)

        @app.get("/metrics", tags=["health"])
        async def metrics() -> Response:
            return observability.metrics_response()

        for router in routers:
            app.include_router(router)
        return app


# What a request meets when the database is away: SQLAlchemy's wrapped driver errors, and the driver's
# own errors and socket errors, which SQLAlchemy lets through unwrapped when a new connection fails and
# `db.driver`'s statements raise as they are; and every driver error the consumers retry, from their
# list, so the two cannot drift apart. (They had: InternalClientError, which derives from none of the
# others, "cannot switch to state 15; another operation (2) is in progress" from a pooled connection
# whose server went away, was retried by consumers and a 500 for a request in a restart test.)
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, PoolTimeout,
    *(getattr(asyncpg, name) for name in sorted(TRANSIENT_DRIVER_ERRORS)))


def install_unavailable(app: FastAPI, service: str) -> None:
    """503 (api.md's error shape, Retry-After) for a request that failed because the database is
    unreachable or busy, instead of a bare 500: a client is right to try again shortly."""

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            log.warning("database unavailable; answered 503",
                        extra={"service": service, "path": request.url.path, "error": repr(exc)[:300]})
            body = errors.error_body(503, "the database or another dependency is unavailable; try again shortly")
            return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
        log.error("request failed", exc_info=exc, extra={"service": service, "path": request.url.path})
        return JSONResponse(errors.error_body(500, "internal error", "internal"), status_code=500)

    for kind in _DATABASE_ERRORS:
        app.add_exception_handler(kind, database_error)


def runtime_of(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime
