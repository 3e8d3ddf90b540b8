"""Idempotent consumers: each event applied once, recorded in the same transaction as its effects."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import operator
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, NamedTuple, NotRequired, Required, TypeVar, cast

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import Column, DateTime, MetaData, String, Table, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import TextClause
from typing_extensions import TypedDict  # pydantic takes typing's TypedDict from Python 3.12 only

from yardstick import events
from yardstick.bus import DeadLetter, Message
from yardstick.bus.codec import MAX_ID_BYTES, are_event_ids, decode, is_event_id
from yardstick.db import dialect_name, insert_for
from yardstick.events import Envelope
from yardstick.observability import CONSUMED, event_id

log = logging.getLogger(__name__)
_TYPE = operator.attrgetter("type")

EventHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class Row(NamedTuple):
    """An event of a poll decoded to its data's fields alone, for a batch handler that reads a few fields of many.

    `data` holds the fields the message carries (not the defaults of those it leaves out), checked
    by exactly the rules of the event's model, without building the model or an Envelope: a third
    of the cost of decode_lean (decision 0018). Made by `RowDecoder`; a batch handler that takes
    rows reads `data[name]` for required fields and `data.get(name, default)` for the others.
    """

    id: str
    type: str
    data: dict[str, Any]


# What a batch path's decoder gives: an envelope, or a row for the types its handler reads as rows.
Decoded = Envelope | Row
DecodedT = TypeVar("DecodedT", bound=Decoded)
# What a batch handler's work on a poll's events comes to, prepared away from the event loop (IdempotentConsumer's
# `prepare`): called in a transaction with the new ones among those events and the ones applied before (usually
# none; together, the events prepared, each in its place), it does what the batch handler would do with the new.
PreparedBatch = Callable[[AsyncSession, Sequence[DecodedT], Sequence[DecodedT]], Awaitable[None]]
# Applies several new events at once, in order, in the caller's transaction (raise NotFound as one would).
BatchHandler = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]
# From this many messages a poll is decoded in a worker thread while its ids are recorded: below it,
# handing the work to a thread costs more than the overlap saves.
OVERLAP_MIN = 64
# From this many ids record_new looks them up and inserts the new ones plainly, in a savepoint (decision 0020);
# fewer go by ON CONFLICT DO NOTHING, where the savepoint's round trips would cost more than the server saves.
PLAIN_INSERT_MIN = 2_000


class _Polled(NamedTuple, Generic[DecodedT]):
    """A decoded poll: dead letters with their reasons, events in order without a repeated id, the message of
    each event (in the same order), each id's place among the events, and what `prepare` made of the events
    (or the exception it raised; None without prepare)."""

    dead: list[tuple[Message, str]]
    events: list[DecodedT]
    messages: list[Message]
    origin: dict[str, int]
    prepared: PreparedBatch[DecodedT] | Exception | None

    def message(self, event: Decoded) -> Message:
        return self.messages[self.origin[event.id]]


class NotFound(Exception):
    """An event names something that does not exist: a permanent failure (dead-lettered)."""


def processed_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events", metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


# SQLSTATE classes of an error in the message's own data: a value the column cannot hold (22: out of range,
# not a number, too long) or a constraint it breaks (23). Every other refusal is the environment's and
# passes, or an operator ends it, and the same event then applies: a schema in the middle of a migration
# (42P01, 42703; 0A000, a prepared statement another pod's ALTER made stale), a privilege (42501), the
# server's state (25, 55, 57) or resources (53). Dead-lettered, such an event would never be applied.
_MESSAGE_SQLSTATE_CLASSES = {"22", "23"}
# The database unreachable or busy: connection exceptions, transaction rollbacks (deadlock, serialization),
# insufficient resources, operator intervention (shutdown, "starting up", cancelled), system errors; and
# lock_not_available. Retried without a word of ours (the bus logs the retry): nothing to fix.
_BUSY_SQLSTATE_CLASSES = {"08", "40", "53", "57", "58"}
_BUSY_SQLSTATES = {"55P03"}
TRANSIENT_DRIVER_ERRORS = {"ConnectionDoesNotExistError", "CannotConnectNowError", "InterfaceError",
                            "ConnectionFailureError", "PostgresConnectionError", "InternalClientError"}
# SQLite's refusals of a schema it does not (yet) have: a migration running beside the consumer.
_SQLITE_SCHEMA_ERRORS = ("no such table", "no such column", "has no column named")


def is_transient(exc: BaseException) -> bool:
    """A failure of the environment (the database unreachable, busy, or refusing what it would take
    after a migration or a grant): retry. Only an error in the message's own data (SQLSTATE classes 22
    and 23; SQLite's IntegrityError and DataError) and failures outside the database are the message's."""
    # PoolTimeout: every connection of the pool busy for pool_timeout; the database is overloaded.
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | OSError | TimeoutError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        # SQLAlchemy wraps most asyncpg server errors in a plain DBAPIError: judge by the
        # driver's error (its SQLSTATE, or the connection error that caused it).
        chain = _chain(exc.orig)
        if any(_transient_driver_error(e) for e in chain):
            return True
        code = _sqlstate(chain)
        if code is not None:
            return code[:2] not in _MESSAGE_SQLSTATE_CLASSES
        # No SQLSTATE (SQLite): its IntegrityError and DataError are the data's; the others (a
        # database it cannot open, a closed connection, ...) the environment's.
        return not isinstance(exc, IntegrityError | DataError)
    if _transient_driver_error(exc):
        return True
    # The driver's own error outside SQLAlchemy (asyncpg's, raised by a handler's raw query).
    code = _sqlstate([exc])
    return code is not None and code[:2] not in _MESSAGE_SQLSTATE_CLASSES


def _refusal(exc: BaseException) -> str | None:
    """What to check when the database refused a statement for a reason of its own (its schema, a
    privilege, its state); None when it was unreachable or busy, or the message is at fault."""
    if not is_transient(exc):
        return None
    chain = _chain(exc.orig if isinstance(exc, DBAPIError) else exc)
    if any(_transient_driver_error(e) for e in chain):
        return None
    code = _sqlstate(chain)
    if code is None:
        text_ = str(exc).lower()
        return "check migrations" if any(s in text_ for s in _SQLITE_SCHEMA_ERRORS) else None
    if code[:2] in _BUSY_SQLSTATE_CLASSES or code in _BUSY_SQLSTATES:
        return None
    if code == "42501":
        return "check the service's database privileges"
    if code == "0A000":
        return "a migration changed a table under a prepared statement; the retry prepares it again"
    if code[:2] == "42":
        return "check that the database's migrations match this release"
    return "check migrations/privileges and the database's state"


def _log_refusal(consumer: str, exc: BaseException) -> None:
    """A warning saying what to check when the database refused (see `_refusal`); the bus retries."""
    advice = _refusal(exc)
    if advice is not None:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        log.warning("the database refused: %s; retrying; %s", first[:300], advice,
                    extra={"consumer": consumer, "error": repr(exc)[:500]})


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _sqlstate(chain: Sequence[BaseException]) -> str | None:
    """The first SQLSTATE the chain's errors carry (asyncpg's `sqlstate`, psycopg's `pgcode`)."""
    for e in chain:
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def _transient_driver_error(exc: BaseException) -> bool:
    """The database unreachable or busy (see _BUSY_SQLSTATE_CLASSES), by the driver's error."""
    if isinstance(exc, ConnectionError | OSError | TimeoutError):
        return True
    if type(exc).__name__ in TRANSIENT_DRIVER_ERRORS:
        return True
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return isinstance(code, str) and (code[:2] in _BUSY_SQLSTATE_CLASSES or code in _BUSY_SQLSTATES)


class IdempotentConsumer(Generic[DecodedT]):
    """Turns bus messages into typed events and applies each one exactly once.

    `handlers` maps event types to functions that take the open session and the event;
    types without a handler are recorded as seen and skipped. Offsets are committed by the
    bus only after this returns, i.e. after the transaction committed. The batch path decodes
    with `decode_batch` (`decode` unless given), which may give Rows (`RowDecoder`) and decode a
    whole poll at once (its `poll`, as RowDecoder has): its batch handler and `after_commit` then
    take them; the per-event paths always have envelopes.
    """

    def __init__(self, *, name: str, sessions: async_sessionmaker[AsyncSession], table: Table,
                 handlers: Mapping[str, EventHandler],
                 after_commit: Callable[[Envelope | DecodedT], Awaitable[None]] | None = None,
                 batch_handler: Callable[[AsyncSession, Sequence[DecodedT]], Awaitable[None]] | None = None,
                 decode: Callable[[Message], Envelope] | None = None,
                 decode_batch: Callable[[Message], DecodedT] | None = None,
                 prepare: Callable[[Sequence[DecodedT]], PreparedBatch[DecodedT]] | None = None) -> None:
        self.name = name
        # How messages become envelopes (raises DeadLetter); decode_fast unless the consumer says otherwise.
        self.decode = decode or decode_fast
        if (decode_batch is not None or prepare is not None) and batch_handler is None:
            raise ValueError("decode_batch and prepare need a batch_handler: the per-event handlers take "
                             "envelopes, one at a time")
        self.decode_batch: Callable[[Message], DecodedT] = decode_batch or cast(
            Callable[[Message], DecodedT], self.decode)
        self.sessions = sessions
        self.table = table
        self.handlers = dict(handlers)
        self.after_commit = after_commit
        self.batch_handler = batch_handler
        # Run on a large poll's events in the decoding thread; what it makes applies the new ones in place of
        # the batch handler (which takes them when `prepare` raised and some were applied before).
        self.prepare = prepare
        self.applied = 0
        self.skipped = 0

    async def __call__(self, message: Message) -> None:
        envelope = self.decode(message)  # raises DeadLetter
        token = event_id.set(envelope.id)
        try:
            applied = await self.apply(envelope)
        finally:
            event_id.reset(token)
        if applied and self.after_commit is not None:
            await self.after_commit(envelope)

    async def apply(self, envelope: Envelope) -> bool:
        handler = self.handlers.get(envelope.type)
        t = self.table
        try:
            async with self.sessions() as session, session.begin():
                seen = (await session.execute(
                    select(t.c.event_id).where(t.c.consumer == self.name, t.c.event_id == envelope.id)
                )).first()
                if seen is not None:
                    self.skipped += 1
                    CONSUMED.labels(consumer=self.name, type=envelope.type, outcome="duplicate").inc()
                    return False
                await session.execute(t.insert().values(consumer=self.name, event_id=envelope.id))
                if handler is not None:
                    await handler(session, envelope)
        except DeadLetter:
            raise
        except NotFound as exc:
            raise DeadLetter(f"{envelope.type} {envelope.id}: {exc}") from exc
        except Exception as exc:
            if is_transient(exc):
                _log_refusal(self.name, exc)
                raise
            # An integrity error from a concurrent duplicate is a duplicate, not a poison message.
            if _is_duplicate_key(exc):
                self.skipped += 1
                return False
            raise DeadLetter(f"{envelope.type} {envelope.id}: handler failed: {exc!r}"[:2000]) from exc
        self.applied += 1
        CONSUMED.labels(consumer=self.name, type=envelope.type, outcome="applied").inc()
        return True


    async def batch(self, messages: Sequence[Message]) -> list[tuple[Message, str]]:
        """Apply a poll's messages in one transaction; returns the dead letters (message, reason).

        The new events' ids are recorded with one statement that also says which ones are new
        (`record_new`), and the batch handler (else each event's
        handler, in order) applies them in the same transaction. A transient error raises: the
        bus retries the whole batch, and whatever had committed is skipped as seen. Any other
        error rolls the batch back and applies its events in halves, each in its own
        transaction, halving again the half that fails, down to single events applied as
        `apply` does: a poison message is dead-lettered alone and every other one still applies
        exactly once, in about 2 log2(n) transactions instead of n (a poll may hold 10,000).

        A large poll is decoded in a worker thread while its ids, read from the headers, are
        being recorded (decision 0014): the database's work and the decoding overlap instead of
        taking turns. The outcome is the same as decoding first: an id recorded for a message
        that then turns out to be a dead letter is taken back in the same transaction.
        """
        early = self._header_ids(messages) if len(messages) >= OVERLAP_MIN else []
        decoding: asyncio.Future[_Polled[DecodedT]] | None = None
        if early:
            decoding = asyncio.ensure_future(asyncio.to_thread(self._decode_poll, messages))
        else:
            polled = self._decode_poll(messages, prepare=False)
            if not polled.events:
                return polled.dead
        try:
            if decoding is None:
                fresh = await self._apply_together(polled.events)
            else:
                fresh, polled = await self._apply_overlapped(early, decoding)
        except Exception as exc:
            if is_transient(exc):
                _log_refusal(self.name, exc)
                if decoding is not None:
                    # The session may have failed before the decoding was awaited: let the thread finish
                    # first (a retry decodes again, never beside it); its outcome is the retry's business.
                    with contextlib.suppress(Exception):
                        await decoding
                raise
            if decoding is not None:
                polled = await decoding
            dead = polled.dead
            log.warning("batch failed; applying its events in halves",
                        extra={"consumer": self.name, "events": len(polled.events), "error": repr(exc)[:500]})
            for half in _halves(polled.events):
                await self._apply_apart(half, polled, dead)
            return dead
        if self.after_commit is not None:
            for event in fresh:
                await self.after_commit(event)
        return polled.dead

    async def _apply_apart(self, events_: Sequence[DecodedT], polled: _Polled[DecodedT],
                           dead: list[tuple[Message, str]]) -> None:
        """Some events of a failed poll in a transaction of their own; in halves again if that fails, and a
        single event as one message is applied (its dead letter added to `dead`). Transient errors raise."""
        if not events_:
            return
        if len(events_) > 1:
            try:
                fresh = await self._apply_together(events_)
            except Exception as exc:
                if is_transient(exc):
                    _log_refusal(self.name, exc)
                    raise
                for half in _halves(events_):
                    await self._apply_apart(half, polled, dead)
                return
            if self.after_commit is not None:
                for event in fresh:
                    await self.after_commit(event)
            return
        # A single event: its message through the per-event path (decoded again by `decode`, so a row
        # becomes the envelope the per-event handlers take), its dead letter kept with the poll's.
        message = polled.message(events_[0])
        try:
            await self(message)
        except DeadLetter as letter:
            dead.append((message, str(letter)))

    def _decode_poll(self, messages: Sequence[Message], *, prepare: bool = True) -> _Polled[DecodedT]:
        """The poll decoded (and prepared, when the consumer has `prepare` and `prepare` is true): no I/O."""
        dead: list[tuple[Message, str]] = []
        envelopes: list[DecodedT] = []
        kept: list[Message] = []
        origin: dict[str, int] = {}
        decode = self.decode_batch
        poll: Callable[[Sequence[Message]], list[DecodedT | DeadLetter]] | None = getattr(decode, "poll", None)
        outcomes = poll(messages) if poll is not None else [_outcome(decode, message) for message in messages]
        for message, envelope in zip(messages, outcomes, strict=True):
            if isinstance(envelope, DeadLetter):
                dead.append((message, str(envelope)))
                continue
            if envelope.id in origin:
                self._skip(envelope)  # the same event twice in one poll
                continue
            origin[envelope.id] = len(envelopes)
            envelopes.append(envelope)
            kept.append(message)
        prepared: PreparedBatch[DecodedT] | Exception | None = None
        if prepare and self.prepare is not None and envelopes:
            try:
                prepared = self.prepare(envelopes)
            except Exception as exc:  # raised when it is applied, as the batch handler would raise it
                prepared = exc
        return _Polled(dead, envelopes, kept, origin, prepared)

    @staticmethod
    def _header_ids(messages: Sequence[Message]) -> list[str]:
        """The ids the messages' ce_id headers carry (each once, recordable ones only), before decoding.

        This runs on the event loop before the poll's work can overlap (a tenth of a poll's CPU
        when each id was checked on its own): the values are checked together (codec.are_event_ids),
        and one at a time only when that fails.
        """
        values: list[bytes] = []
        for message in messages:
            headers = message.headers
            if headers and headers[0][0] == "ce_id":  # the relay puts it first
                values.append(headers[0][1])
                continue
            for name, value in headers:
                if name == "ce_id":
                    values.append(value)
                    break
        if not are_event_ids(values):
            values = [value for value in values if is_event_id(value)]
        return list(dict.fromkeys(map(bytes.decode, values)))

    async def _apply_overlapped(self, early: list[str], decoding: asyncio.Future[_Polled[DecodedT]]) -> tuple[
            Sequence[DecodedT], _Polled[DecodedT]]:
        """_apply_together for a poll being decoded meanwhile: its header ids recorded first."""
        async with self.sessions() as session, session.begin():
            try:
                new = await record_new(session, self.table, self.name, early)
            finally:
                polled = await decoding  # never leave the thread's work behind, whatever happened
            envelopes, origin = polled.events, polled.origin
            # (Set operations on the poll's ids, in C: this is the event loop's share of the poll.)
            # An envelope whose id was not in its headers (a structured-mode message) is recorded now...
            late = origin.keys() - set(early)
            if late:
                new |= await record_new(session, self.table, self.name, sorted(late))
            # ...and an id recorded from headers that no envelope of the poll carries (its message is a
            # dead letter, or its decoder read another id) is taken back: a redelivery is dead-lettered
            # again, as it would have been had the poll been decoded first.
            wrong = new - origin.keys()
            if wrong:
                await forget(session, self.table, self.name, sorted(wrong))
                new -= wrong
            fresh, stale = _split(envelopes, new, origin)
            await self._apply_new(session, fresh, stale, polled.prepared)
        self._count(envelopes, stale, len(fresh))
        return fresh, polled

    async def _apply_together(self, envelopes: Sequence[DecodedT]) -> Sequence[DecodedT]:
        async with self.sessions() as session, session.begin():
            new = await record_new(session, self.table, self.name, [e.id for e in envelopes])
            fresh, stale = _split(envelopes, new)
            await self._apply_new(session, fresh, stale)
        self._count(envelopes, stale, len(fresh))
        return fresh

    async def _apply_new(self, session: AsyncSession, fresh: Sequence[DecodedT], stale: Sequence[DecodedT],
                         prepared: PreparedBatch[DecodedT] | Exception | None = None) -> None:
        """Apply the new events (`fresh`) of a poll whose other events (`stale`) were applied before."""
        if isinstance(prepared, Exception) and not stale:
            raise prepared  # what the batch handler would have raised on these events
        if prepared is not None and not isinstance(prepared, Exception):
            if fresh:
                await prepared(session, fresh, stale)
        elif self.batch_handler is not None and fresh:
            await self.batch_handler(session, fresh)
        else:
            for envelope in fresh:
                handler = self.handlers.get(envelope.type)
                if handler is not None:
                    # Envelopes only: rows come with a batch handler (decode_batch needs one).
                    await handler(session, cast(Envelope, envelope))

    def _count(self, envelopes: Sequence[DecodedT], stale: Sequence[DecodedT], applied: int) -> None:
        """The metrics of a poll applied: `stale` of its `envelopes` were duplicates, the others applied."""
        duplicates = Counter(map(_TYPE, stale))
        for kind, n in Counter(map(_TYPE, envelopes)).items():
            if n > duplicates[kind]:
                CONSUMED.labels(consumer=self.name, type=kind, outcome="applied").inc(n - duplicates[kind])
            if duplicates[kind]:
                CONSUMED.labels(consumer=self.name, type=kind, outcome="duplicate").inc(duplicates[kind])
        self.applied += applied
        self.skipped += len(stale)

    def _skip(self, envelope: DecodedT) -> None:
        self.skipped += 1
        CONSUMED.labels(consumer=self.name, type=envelope.type, outcome="duplicate").inc()


async def record_new(session: AsyncSession, table: Table, consumer: str, ids: Sequence[str]) -> set[str]:
    """Record event ids as processed by `consumer`, in the caller's transaction; the ones not recorded before.

    On PostgreSQL one statement records them: for fewer than PLAIN_INSERT_MIN ids, INSERT .. ON
    CONFLICT DO NOTHING RETURNING; for more, it looks each id up and inserts the ones not found
    with a plain INSERT (decision 0020): ON CONFLICT DO NOTHING inserts each row speculatively, at twice a
    plain insert's cost in the server, which is the other half of a poll's time. The plain insert
    meets an id another transaction recorded since the look-up (two instances during a
    rebalance) as a unique violation: in a savepoint, so the ids are then recorded again with ON
    CONFLICT DO NOTHING, which waits for the other transaction and says which ids it took. The
    ids travel as one parameter (INSERT .. SELECT unnest): the statement is the same for every
    batch, so it is prepared once, where a multi-row VALUES list is a new statement of two
    parameters a row for each batch size (a tenth of the cost, measured in bench/scoring.py).
    A row per event id stays: a producer may publish the same event twice at different offsets
    (an outbox relay that crashed before marking what it sent), so an offset mark alone would
    apply it twice.
    """
    if not ids:
        return set()
    if dialect_name(session) == "postgresql":
        # The answer is the ids already recorded (usually none): one row holding an empty array,
        # where RETURNING the new ones would hand a row per event back through the driver.
        # The ids travel as one text, a line each, split by the server: asyncpg encodes an array
        # element by element, checking each against collections.abc's classes (a tenth of a poll's
        # CPU, decision 0018). An event id never holds a line break (printable ASCII, codec.is_event_id);
        # a list with one, or with an empty id, goes as an array.
        lines = "\n".join(ids)
        as_lines = lines.count("\n") == len(ids) - 1 and all(ids)
        params = {"consumer": consumer, "ids": lines if as_lines else list(ids)}

        async def seen_by(plain: bool) -> list[str] | None:
            """The ids recorded before (an array, usually empty): by the plain path's statement or ON CONFLICT's."""
            statement = _record_statement(table.name, lines=as_lines, plain=plain)
            seen: list[str] | None = (await session.execute(statement, params)).scalar_one()
            return seen

        if len(ids) < PLAIN_INSERT_MIN:
            return set(ids).difference(await seen_by(False) or ())
        # A savepoint of the driver's own (session.begin_nested costs as much Python as the statement).
        connection = await session.connection()
        await connection.exec_driver_sql("SAVEPOINT record_new")
        try:
            seen = await seen_by(True)
        except IntegrityError as exc:
            # The savepoint held this statement alone, and it inserts only ids: any unique violation is one.
            if not any(getattr(e, "sqlstate", None) == "23505" for e in _chain(exc.orig)):
                raise
            await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT record_new")
            seen = await seen_by(False)
        else:
            await connection.exec_driver_sql("RELEASE SAVEPOINT record_new")
        return set(ids).difference(seen or ())
    insert = insert_for(session)
    stmt = insert(table).on_conflict_do_nothing(index_elements=["consumer", "event_id"]).returning(table.c.event_id)
    return set((await session.execute(stmt, [{"consumer": consumer, "event_id": i} for i in ids])).scalars())


async def forget(session: AsyncSession, table: Table, consumer: str, ids: Sequence[str]) -> None:
    """Take back ids recorded in the caller's transaction (messages that turned out to be dead letters)."""
    await session.execute(delete(table).where(table.c.consumer == consumer, table.c.event_id.in_(ids)))


@functools.lru_cache(maxsize=16)
def _record_statement(table_name: str, *, lines: bool, plain: bool) -> TextClause:
    """record_new's PostgreSQL statement for a table, built once: text() parses its SQL on every call.

    Either answers with the ids recorded before (an array, usually empty). `lines`: the ids come
    as one text, a line each, instead of an array. `plain`: the ids not found are inserted with a
    plain INSERT (a unique violation when another transaction recorded one meanwhile); else with
    ON CONFLICT DO NOTHING, which waits for that transaction and skips what it recorded.
    """
    ids = "string_to_array(:ids, E'\\n')" if lines else ":ids"
    # The look-up is a subquery the planner cannot turn into a join (OFFSET 0): each id one probe of the
    # primary key. As a semi-join, a table that grew faster than it was analysed (a replay into an empty
    # read model) is thought empty and read whole into a hash table for every poll (49 ms against 3.5 for
    # 500 ids and 80,000 rows never analysed).
    if plain:
        sql = (f"WITH ids AS (SELECT unnest({ids}) AS i), "
               f"seen AS (SELECT i FROM ids WHERE EXISTS (SELECT FROM {table_name} p "
               f"WHERE p.consumer = :consumer AND p.event_id = ids.i OFFSET 0)), "
               f"new AS (INSERT INTO {table_name} (consumer, event_id) "
               f"SELECT :consumer, i FROM ids WHERE i NOT IN (SELECT i FROM seen)) "
               f"SELECT array_agg(i) FROM seen")
    else:
        sql = (f"WITH new AS (INSERT INTO {table_name} (consumer, event_id) SELECT :consumer, unnest({ids}) "
               f"ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id) "
               f"SELECT array_agg(i) FROM unnest({ids}) AS i WHERE i NOT IN (SELECT event_id FROM new)")
    return text(sql).bindparams(bindparam("ids", type_=String if lines else ARRAY(String)),
                                bindparam("consumer", type_=String))


# The CloudEvents headers decode_fast understands; a message with any other ce_ header takes the SDK's path.
_KNOWN_CE_HEADERS = frozenset({"ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_partitionkey"})


def decode_fast(message: Message) -> Envelope:
    """`codec.decode` without the CloudEvents SDK's round trip, for the well-formed binary-mode message.

    The SDK parses the headers into an event, the time with dateutil, the data with json and
    then pydantic validates a dict: about 0.6 ms a message, a hundred times the cost of the
    model's own JSON validation. Anything this path does not recognise (a missing or unknown
    header, another content type, a schema error) goes through `decode`, so a dead letter
    reads exactly as before.
    """
    headers: dict[str, bytes] = {}
    for k, v in message.headers:
        if k.startswith("ce_") and k not in _KNOWN_CE_HEADERS:
            return decode(message)
        headers[k] = v
    try:
        model = events.EVENT_MODELS[headers["ce_type"].decode()]
        ident, source = headers["ce_id"].decode(), headers["ce_source"].decode()
        if not is_event_id(headers["ce_id"]) or not source or headers.get("ce_specversion") != b"1.0" \
                or headers.get("content-type") != b"application/json":
            return decode(message)
        moment = datetime.fromisoformat(headers["ce_time"].decode())
        data = model.model_validate_json(message.value)
        key = message.key.decode() if message.key else headers.get("ce_partitionkey", b"").decode()
    # ValueError includes UnicodeDecodeError and pydantic's ValidationError; AttributeError is a header
    # without a value (Kafka allows null). Whatever it is, decode() says why in a DeadLetter: an error
    # raised from here would be taken for a transient one and the poll retried for ever.
    except (KeyError, ValueError, AttributeError, TypeError):
        return decode(message)
    return Envelope(id=ident, source=source, type=model.__event_type__, time=moment, topic=message.topic, key=key,
                    data=data)


# decode_lean takes the relay's messages as they are (codec.encode_stored, and the SDK's to_binary): exactly
# these headers, in this order.
_RELAY_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "content-type", "ce_partitionkey")
# The event models by their type as the ce_type header carries it.
_MODELS = {kind.encode(): model for kind, model in events.EVENT_MODELS.items()}
_Model = TypeVar("_Model", bound=BaseModel)


def decode_lean(message: Message) -> Envelope:
    """`decode_fast` for the outbox relay's messages at two thirds of its cost: the batch consumers' decoder.

    A replay is millions of small feedback events. The data is still validated by its model's
    JSON validator (pydantic's own, in Rust: no Python check of ours was cheaper, measured in
    bench/scoring.py); what goes is the Python around it: the envelope is built from values that
    are already what its fields hold (str, a datetime, the validated model) instead of being
    validated again, and the headers are read in the relay's order. A message with any other
    header, or its headers in another order, or whatever fails here, goes through `decode_fast`,
    so it decodes, or is dead-lettered, exactly as before; tests hold the two to the same envelopes.
    """
    try:
        relayed = _relayed(message)
        if relayed is None:
            return decode_fast(message)
        ident, source, kind, moment, key = relayed
        model = _MODELS[kind]
        data = model.model_validate_json(message.value)
    # As in decode_fast: ValueError includes UnicodeDecodeError and pydantic's ValidationError, AttributeError
    # is a header without a value. decode_fast (and so decode) says what is wrong in a DeadLetter.
    except (KeyError, ValueError, AttributeError, TypeError):
        return decode_fast(message)
    return _built(Envelope, {"id": ident, "source": source, "type": model.__event_type__, "time": moment,
                             "topic": message.topic, "key": key, "data": data})


def _relayed(message: Message) -> tuple[str, str, bytes, datetime, str] | None:
    """(id, source, type as sent, time, key) of a message with the relay's headers in its order, each checked.

    None for any other message; what a header that does not decode raises (ValueError,
    AttributeError, TypeError) propagates: the callers take either as the sign to go through
    decode_fast. The id is checked as codec.is_event_id checks it, inline (a tenth of the cost).
    """
    headers = message.headers
    if len(headers) != 7:
        return None
    (n0, ident), (n1, source), (n2, kind), (n3, version), (n4, moment), (n5, content), (n6, partition) = headers
    if (n0, n1, n2, n3, n4, n5, n6) != _RELAY_HEADERS or version != b"1.0" or content != b"application/json" \
            or not ident or len(ident) > MAX_ID_BYTES or not ident.isascii() or not source:
        return None
    text = ident.decode()
    if not text.isprintable():
        return None
    key = message.key.decode() if message.key else partition.decode()
    return text, source.decode(), kind, datetime.fromisoformat(moment.decode()), key


class RowDecoder:
    """A batch path's decoder (IdempotentConsumer's decode_batch): a Row for `types`, decode_lean's envelope else.

    The message is checked exactly as decode_lean checks it (every header, the time, the key), and
    its data by a TypedDict validator built from the event model's fields, their types and
    constraints (`rows_of`): it accepts and refuses what the model does, without building the
    model and its envelope. Whatever fails here goes through decode_fast, so a dead letter reads
    as before (tests hold the three to the same outcome). `poll` decodes a whole poll at once.
    """

    def __init__(self, types: Iterable[str]) -> None:
        self.validators = {kind.encode(): (kind, TypeAdapter(rows_of(events.EVENT_MODELS[kind])).validator)
                           for kind in types}

    def __call__(self, message: Message) -> Decoded:
        try:
            relayed = _relayed(message)
            if relayed is None:
                return decode_fast(message)
            row = self.validators.get(relayed[2])
            if row is None:
                return decode_lean(message)
            return _NEW_ROW(Row, (relayed[0], row[0], row[1].validate_json(message.value)))
        except (KeyError, ValueError, AttributeError, TypeError):
            return decode_fast(message)

    def poll(self, messages: Sequence[Message]) -> list[Decoded | DeadLetter]:
        """Each message's outcome as this decoder gives it one message at a time: its event or its DeadLetter.

        `_relayed` and `__call__` in one loop, without their calls (about a tenth of the decoding's cost,
        decision 0019); any message this loop does not take as the relay writes it goes through
        `__call__`, which gives it its exact outcome.
        """
        validators, new_row, relay, fromisoformat = self.validators, _NEW_ROW, _RELAY_HEADERS, datetime.fromisoformat
        decoded: list[Decoded | DeadLetter] = []
        append = decoded.append
        for message in messages:
            try:
                (n0, ident), (n1, source), (n2, kind), (n3, version), (n4, moment), (n5, content), (n6, partition) \
                    = message.headers
                row = validators[kind]
                if (n0, n1, n2, n3, n4, n5, n6) == relay and version == b"1.0" and content == b"application/json" \
                        and ident and len(ident) <= MAX_ID_BYTES and ident.isascii() and source:
                    text = ident.decode()
                    if text.isprintable():
                        message.key.decode() if message.key else partition.decode()
                        source.decode()
                        fromisoformat(moment.decode())
                        append(new_row(Row, (text, row[0], row[1].validate_json(message.value))))
                        continue
            except (KeyError, ValueError, AttributeError, TypeError):
                pass
            append(_outcome(self, message))
        return decoded


_NEW_ROW = tuple.__new__  # Row(...) without its Python-level __new__


def _outcome(decode_: Callable[[Message], DecodedT], message: Message) -> DecodedT | DeadLetter:
    """What decoding the message gives: its event, or the DeadLetter raised."""
    try:
        return decode_(message)
    except DeadLetter as letter:
        return letter


@functools.cache
def rows_of(model: type[events.Event]) -> Any:
    """A TypedDict of the model's fields, their annotations and constraints: its rows validate as the model does.

    Only for models whose fields say everything (no validators, aliases or custom config beyond
    ignoring unknown fields): anything else raises, so a model changed that way is noticed here
    rather than validated differently.
    """
    decorators = model.__pydantic_decorators__
    if any((decorators.validators, decorators.field_validators, decorators.root_validators,
            decorators.model_validators, decorators.field_serializers, decorators.computed_fields)):
        raise TypeError(f"{model.__name__} has validators: its rows would not validate as it does")
    # The events' config (unknown fields ignored, frozen) and nothing else: any other setting (strictness,
    # stripping or lowering strings, ...) would change what the model accepts or holds, and not the rows.
    if model.model_config.get("extra") != "ignore" or not set(model.model_config) <= {"extra", "frozen"}:
        raise TypeError(f"{model.__name__}'s config is not the events' (unknown fields ignored, frozen, nothing else)")
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.alias or field.validation_alias or field.discriminator:
            raise TypeError(f"{model.__name__}.{name} is not a plain field: its rows would not validate as it does")
        annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        fields[name] = Required[annotation] if field.is_required() else NotRequired[annotation]
    return TypedDict(f"{model.__name__}Row", fields)  # type: ignore[operator]


def _built(model: type[_Model], values: dict[str, Any]) -> _Model:
    """`model(**values)` for values that are already what its fields hold, without validating them again.

    Set as pydantic sets a validated instance (every field given, no extras, no private state);
    model_construct does the same in Python at several times the cost.
    """
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def _split(events_: Sequence[DecodedT], new: set[str], origin: Mapping[str, int] | None = None) -> tuple[
        Sequence[DecodedT], Sequence[DecodedT]]:
    """The events whose ids are `new` and the others, each in order (`new` holds ids of these events only).

    `origin` (each id's place among the events) finds the others, usually none or a few, without a
    look at every event: a poll of 10,000 is split in slices.
    """
    if len(new) == len(events_):
        return events_, []
    if origin is None:
        return [e for e in events_ if e.id in new], [e for e in events_ if e.id not in new]
    places = sorted(origin[i] for i in origin.keys() - new)
    fresh: list[DecodedT] = []
    start = 0
    for place in places:
        fresh += events_[start:place]
        start = place + 1
    fresh += events_[start:]
    return fresh, [events_[place] for place in places]


def _halves(items: Sequence[DecodedT]) -> list[Sequence[DecodedT]]:
    middle = (len(items) + 1) // 2
    return [items[:middle], items[middle:]] if len(items) > 1 else [items]


def _is_duplicate_key(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "processed_events" in text and ("unique" in text or "duplicate" in text)
