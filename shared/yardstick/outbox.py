"""Transactional outbox: events commit with the state change; a relay publishes them in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from pydantic_core import from_json
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from yardstick.bus import Bus, BusUnavailable
from yardstick.bus.codec import encode_stored
from yardstick.bus.kafka import PublishRefused, shortened
from yardstick.db import JsonText, bulk_insert, xact_lock
from yardstick.events import Envelope, Prepared, ce_time, json_text
from yardstick.observability import BUS_CONNECTED, OUTBOX_PENDING
from yardstick.tasks import stop_task

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox", metadata,
        # BigInteger on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(100), nullable=False),
        Column("key", String(200), nullable=False),
        Column("type", String(100), nullable=False),
        Column("source", String(100), nullable=False),
        Column("time", String(40), nullable=False),
        Column("payload", JSON, nullable=False),
        # How many events the row holds: 1, or a request's events sharing one row (decision 0013).
        Column("events", Integer, nullable=False, server_default="1"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Set by releases before decision 0012, which kept published rows; rows are deleted now.
        Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
    )


# The most rows one delete of the relay names on SQLite: two parameters a row, and SQLite takes at most
# 32,766 a statement.
SQLITE_DELETE_ROWS = 8_000

# How often the relay counts a backlog for the pending gauge, at most (seconds).
PENDING_COUNT_EVERY_S = 1.0

# The most events one row holds: a kiosk's batch of 500 is five rows, and a row stays a few
# tens of kilobytes (the relay reads a thousand events a round).
ROW_EVENTS = 100


def _fields(e: Envelope | Prepared) -> tuple[str, str, str, str, str, str, str]:
    """event id, topic, key, type, source, time and data (JSON text): what a message is made of."""
    if isinstance(e, Prepared):
        return e  # those fields in that order
    return e.id, e.topic, e.key, e.type, e.source, ce_time(e.time), e.data.model_dump_json()


def _row(events: list[tuple[str, str, str, str, str, str, str]]) -> dict[str, object]:
    """One event as its columns; several share a row as a JSON array of their fields (data as text).

    The shared row's own columns describe its first event (its id keeps the column unique);
    the relay reads the array. Data stays JSON text inside it: the relay sends it as it is.
    """
    event_id, topic, key, event_type, source, time, data = events[0]
    payload = data if len(events) == 1 else json_text(events)
    return {"event_id": event_id, "topic": topic, "key": key, "type": event_type, "source": source,
            "time": time, "payload": JsonText(payload), "events": len(events)}


def refuse_to_drop_shared_rows(connection: Connection) -> None:
    """A migration's downgrade below decision 0013: a release before it reads a shared row as one
    event, so the row's other events would be lost with the `events` column."""
    shared = connection.execute(text("SELECT count(*) FROM outbox WHERE events > 1")).scalar()
    if shared:
        raise RuntimeError(f"the outbox holds {shared} rows of several events: run the relay with "
                           "YARDSTICK_OUTBOX_SHARED_ROWS=false until they are published, then downgrade")


def compress_payloads(connection: Connection, *, lz4: bool = True) -> None:
    """A migration's step: on PostgreSQL, the outbox's payloads compressed with lz4 (or, with
    lz4=False, back to the server's default_toast_compression).

    A shared row holds a request's events, a kiosk batch's hundred of them about 48 kB of JSON, which
    PostgreSQL stores out of line and compresses. pglz, its default, cost the server 1.2-1.4 ms of CPU
    a row written, read and deleted; lz4 0.5-0.6 ms (decision 0028). New values only: the change
    rewrites nothing. A server built without lz4 (it is optional before PostgreSQL 16) keeps pglz.
    """
    if connection.dialect.name != "postgresql":
        return
    if lz4 and not connection.execute(text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")).scalar():
        log.warning("this PostgreSQL server has no lz4 compression: the outbox keeps pglz, which costs the "
                    "server about twice the CPU a kiosk batch's events (decision 0028)")
        return
    connection.execute(text(
        f"ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION {'lz4' if lz4 else 'default'}"))


def rows(envelopes: Sequence[Envelope | Prepared], *, per_row: int = ROW_EVENTS) -> list[dict[str, object]]:
    """The outbox rows these events make, `per_row` events at most sharing one (in order)."""
    fields = [_fields(e) for e in envelopes]
    return [_row(fields[i:i + per_row]) for i in range(0, len(fields), per_row)]


async def add(session: AsyncSession, table: Table, envelopes: Sequence[Envelope | Prepared], *,
              per_row: int = ROW_EVENTS) -> None:
    """Queue events in the caller's transaction; they are published only if it commits.

    On PostgreSQL the transaction first takes a transaction-scoped lock per key, so two
    transactions writing events for the same key commit in the order of their row ids:
    the relay, which reads by id, then publishes each key's events in commit order.
    SQLite serialises all writers, which gives the same order for free.
    """
    if not envelopes:
        return
    await xact_lock(session, *sorted({f"outbox:{e.key}" for e in envelopes}))
    # A request's events share rows (events.md allows it): a row, its three index entries and
    # their write cost a kiosk batch more than its hundred events' JSON (decision 0013).
    await bulk_insert(session, table, rows(envelopes, per_row=per_row))
    session.info.setdefault("outbox_added", 0)
    session.info["outbox_added"] += len(envelopes)


class Relay:
    """Publishes outbox rows in id order and deletes them once the broker acked; one instance at a time."""

    def __init__(self, *, engine: AsyncEngine, table: Table, bus: Bus, service: str,
                 interval_s: float = 0.5, batch: int = 1000, max_batch: int = 16_000,
                 retry_max_s: float = 10.0, count_every_s: float = PENDING_COUNT_EVERY_S) -> None:
        self.engine = engine
        self.table = table
        self.bus = bus
        self.service = service
        self.interval_s = interval_s
        self.batch = batch
        # A backlog doubles the next round, up to max_batch events: in a process whose event loop is
        # busy with requests each of a round's awaits waits its turn behind them, so a round took
        # about a second whatever its size, and rounds of 1,000 fell behind a saturated intake.
        self.max_batch = max(max_batch, batch)
        self.round = batch
        self.retry_max_s = retry_max_s
        self.coalesce_s = 0.02
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock_conn: AsyncConnection | None = None
        self.published = 0
        self.holds_lock = False
        self.count_every_s = count_every_s
        self._count_after = 0.0  # the event loop's time before which a backlog is not counted again

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay:{self.service}")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        await self._release_lock()

    async def _acquire_lock(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True
        if self._lock_conn is None:
            self._lock_conn = await self.engine.connect()  # kept first: a failure below lets it go
            # Autocommit, as ServiceRuntime.reading: each of a round's two statements (read the oldest
            # rows, delete the published ones) is its own transaction, so no BEGIN and COMMIT travel
            # to the server around each (four of a round's six round trips, paid by every post of a
            # quiet hour). The session-level advisory lock does not depend on a transaction.
            await self._lock_conn.execution_options(isolation_level="AUTOCOMMIT")
        got = (await self._lock_conn.execute(
            text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": f"relay:{self.service}"})
        ).scalar()
        await self._lock_conn.commit()
        return bool(got)

    async def _release_lock(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                # Invalidated, not closed: close() would hand the connection back to the pool with its
                # session, and so the session-level advisory lock, still alive; no relay (of this
                # instance or another) could take the lock again while that pooled session lived. Ending
                # the session releases it.
                await self._lock_conn.invalidate()
            with contextlib.suppress(Exception):
                await self._lock_conn.close()
            self._lock_conn = None
        self.holds_lock = False

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if not self.holds_lock:
                    self.holds_lock = await self._acquire_lock()
                if self.holds_lock:
                    while await self.publish_once():
                        pass
                    BUS_CONNECTED.labels(service=self.service).set(1)
                backoff = 0.2
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the inner result when a
                # cancel arrives as it completes (an event already set), and stop() then waited for ever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval_s):
                        await self._wake.wait()
                    # Woken by a commit: let the requests of the next few milliseconds join this
                    # batch instead of paying a round of queries each.
                    await asyncio.sleep(self.coalesce_s)
                self._wake.clear()
            except asyncio.CancelledError:
                raise
            except PublishRefused as exc:
                # The broker answers, and refuses this service's events for good (its rights on a topic, the
                # topic's settings): waiting changes nothing until an operator does, so say what to fix.
                log.error("the broker refuses this service's events; they wait in the outbox: grant the "
                          "service's principal Write on the topics, or fix the topics",
                          extra={"service": self.service, "error": str(exc)[:300]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
            except BusUnavailable as exc:
                BUS_CONNECTED.labels(service=self.service).set(0)
                log.warning("broker unreachable; events wait in the outbox",
                            extra={"service": self.service, "error": str(exc)[:300]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
            except Exception as exc:
                # Database trouble: drop the lock connection (it may be dead) and try again.
                log.warning("relay failed; retrying", extra={"service": self.service, "error": repr(exc)})
                await self._release_lock()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)

    async def publish_waiting(self, *, wait_s: float = 2.0) -> bool:
        """Publish what waits in the outbox now, as its one relay, and let go: False when another relay
        kept the lock for `wait_s` (a running service's relay, which publishes it within its interval).

        For a one-shot publisher beside the services (`yardstick token`): without the lock it would
        publish beside their relays.
        """
        deadline = asyncio.get_running_loop().time() + wait_s
        try:
            while not await self._acquire_lock():
                if asyncio.get_running_loop().time() >= deadline:
                    return False
                await asyncio.sleep(0.1)
            self.holds_lock = True
            while await self.publish_once():
                pass
            return True
        finally:
            await self._release_lock()

    async def publish_once(self) -> bool:
        """Publish one batch; True when a full batch went out (there may be more).

        On PostgreSQL the work runs on the connection that holds the relay's advisory lock: if
        that session died (and with it the lock, which another instance may now hold), the
        query fails here and the relay lets go instead of publishing beside the new holder.
        """
        if self._lock_conn is not None:
            lock_conn = self._lock_conn

            @contextlib.asynccontextmanager
            async def held() -> AsyncIterator[AsyncConnection]:
                yield lock_conn

            return await self._publish_batch(held)
        # A pooled connection for the read, and another for the delete: none is held while the bus takes
        # the messages (the one-process bus waits until they are applied, decision 0027), so a stop that
        # cancels the wait leaves no connection to be closed in the middle of its use.
        return await self._publish_batch(self.engine.connect)

    @functools.cached_property
    def _next_batch(self) -> Select[Any]:
        """The oldest rows holding up to `:events` events (one row more may pass it); built once.

        The rows are chosen from their ids and event counts alone, then only those are read
        whole: a round of 16,000 events may be 160 shared rows, and the payloads of the rows
        beyond them are never fetched. The running sum stops PostgreSQL's index scan at the
        limit like a plain LIMIT (the window is evaluated as rows stream in).
        """
        t = self.table
        bound = bindparam("events", type_=Integer)
        chosen = (
            select(t.c.id, t.c.events.label("n"), func.sum(t.c.events).over(order_by=t.c.id).label("upto"))
            .where(t.c.sent_at.is_(None)).order_by(t.c.id).limit(bound).subquery()
        )
        return (select(t.c.id, t.c.event_id, t.c.topic, t.c.key, t.c.type, t.c.source, t.c.time,
                       # The payload as its stored JSON text: it is the message value as it is.
                       cast(t.c.payload, Text).label("payload"), t.c.events)
                .join(chosen, chosen.c.id == t.c.id)
                .where(chosen.c.upto - chosen.c.n < bound).order_by(t.c.id))

    async def _publish_batch(self, connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]]) -> bool:
        t = self.table
        limit = self.round
        async with connect() as conn:
            rows = (await conn.execute(self._next_batch, {"events": limit})).all()
            # Hold no snapshot or locks while waiting on the broker (on the lock's connection, in autocommit,
            # the read was its own transaction and this sends nothing).
            await conn.commit()
        # Unpacked as tuples: a Row's attribute access cost more than the encoding.
        messages = []
        for _id, event_id, topic, key, event_type, source, at, payload, count in rows:
            if count == 1:
                messages.append(encode_stored(event_id=event_id, source=source, event_type=event_type, time=at,
                                              key=key, value=payload.encode(), topic=topic))
            else:
                messages.extend(encode_stored(event_id=event_id, topic=topic, key=key, event_type=event_type,
                                              source=source, time=at, value=data.encode())
                                for event_id, topic, key, event_type, source, at, data in from_json(payload))
        more = len(messages) >= limit
        if not more:
            # The backlog fits in this batch: the gauge is exact without a sum over the table.
            OUTBOX_PENDING.labels(service=self.service).set(len(messages))
        if not rows:
            self.round = self.batch
            return False
        # Wait for the broker's acks before deleting: a crash in between republishes,
        # and consumers skip the duplicates by event id.
        try:
            await self.bus.publish(messages)
        except PublishRefused as exc:
            if not exc.messages_at_fault:
                raise
            await self._dead_letter_refused(exc)  # the round's other messages were acknowledged
        # Published rows are deleted, not marked (decision 0012): the topic is their record, and a
        # delete writes no new row version nor index entries (an update of sent_at wrote both, for
        # every event, and the table only grew).
        async with connect() as conn:
            ids = [r[0] for r in rows]
            if conn.dialect.name == "postgresql":
                # One array parameter instead of `batch` expanded ones: compiled once, cheap to send.
                await conn.execute(delete(t).where(t.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))),
                                   {"ids": ids})
            else:
                # By id list, not id range: a row inside the range may have been uncommitted when
                # we read, and must not be removed before it is published. And only if it still holds
                # the event we published first: SQLite gives the id of a deleted row to the next one
                # once the table is empty (INTEGER PRIMARY KEY without AUTOINCREMENT), and with no lock
                # there another relay of the same outbox (the token registry's: every service's and
                # `yardstick token`'s) may have published and deleted our rows meanwhile, so an id read
                # here may now name a new row, not yet published (decision 0026).
                for i in range(0, len(rows), SQLITE_DELETE_ROWS):
                    part = rows[i:i + SQLITE_DELETE_ROWS]
                    await conn.execute(delete(t).where(t.c.id.in_([r[0] for r in part]),
                                                       t.c.event_id.in_([r[1] for r in part])))
            await conn.commit()
        self.published += len(messages)
        self.round = min(limit * 2, self.max_batch) if more else self.batch
        if more and (now := asyncio.get_running_loop().time()) >= self._count_after:
            # A backlog's exact size takes a pass over the table: once a second is enough for a gauge
            # scraped every few (a round's own cost behind a saturated intake, every round before).
            self._count_after = now + self.count_every_s
            OUTBOX_PENDING.labels(service=self.service).set(await self._pending_on(connect))
        return more

    async def _dead_letter_refused(self, refused: PublishRefused) -> None:
        """Events the broker refuses whatever happens (too large, invalid: decision 0025) go to their topic's
        dead-letter topic, shortened, so the events after them are not held for ever; logged as errors,
        since their consumers never apply them. Raises (the rows stay) when that publish fails."""
        await self.bus.publish([
            shortened(message, f"the broker refused it: {error!r}", consumer=f"relay:{self.service}", attempts=1,
                      refusal=error)
            for message, error in refused.refused])
        for message, error in refused.refused:
            log.error("the broker refused an event for good; dead-lettered instead of published",
                      extra={"service": self.service, "topic": message.topic,
                             "event_type": (message.header("ce_type") or b"").decode(),
                             "reason": f"{(message.header('ce_id') or b'').decode()}: {error!r}"[:300]})

    async def _pending_on(self, connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]]) -> int:
        async with connect() as conn:
            return await self.pending(conn)

    async def pending(self, conn: AsyncConnection | None = None) -> int:
        """Events committed but not yet published; on `conn` (the round's own) or a pooled connection."""
        if conn is None:
            async with self.engine.connect() as pooled:
                return await self.pending(pooled)
        count = (await conn.execute(
            select(func.coalesce(func.sum(self.table.c.events), 0)).where(self.table.c.sent_at.is_(None))
        )).scalar_one()
        await conn.commit()
        return int(count)
