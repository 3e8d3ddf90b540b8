"""The registry of issued tokens, kept by `yardstick token` and announced on auth.v1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, String, Table, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from yardstick import auth, db, events
from yardstick.bus import Bus
from yardstick.outbox import Relay, add, outbox_table
from yardstick.settings import AuthSettings

metadata = db.new_metadata()
tokens = Table(
    "tokens", metadata,
    Column("id", String(64), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("unit_id", String(100), nullable=True),
    Column("window_id", String(100), nullable=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
outbox = outbox_table(metadata)
SOURCE = "yardstick-token"


async def add_event_count(conn: AsyncConnection) -> None:
    """The one change since the registry was first created in place (decision 0013): a registry made by
    an earlier release gets the outbox's event count, as the services' migrations add it."""
    columns = await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("outbox")})
    if "events" not in columns:
        # Every service's pods prepare the registry as they start: on PostgreSQL, a pod that lost the
        # race to another (both saw no column; this one waited for the other's lock) finds it there.
        guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
        await conn.execute(text(f"ALTER TABLE outbox ADD COLUMN {guard}events INTEGER NOT NULL DEFAULT 1"))


class Registry:
    """Issue, list and revoke; each change and its auth.v1 event commit together."""

    def __init__(self, settings: AuthSettings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or db.make_engine(settings.database_url)
        self.sessions = db.session_factory(self.engine)

    async def prepare(self) -> None:
        # A registry of one table and its outbox: created in place, no migration history yet.
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await add_event_count(conn)

    async def close(self) -> None:
        await self.engine.dispose()

    async def issue(self, *, role: str, subject: str | None = None, unit_id: str | None = None,
                    window_id: str | None = None, ttl_s: int | None = None) -> tuple[str, dict[str, Any]]:
        token, claims = auth.issue(self.settings.secret(), role=role, subject=subject, unit_id=unit_id,
                                   window_id=window_id, ttl_s=ttl_s, audience=self.settings.auth_audience)
        issued_at = datetime.fromtimestamp(claims["iat"], UTC)
        expires_at = datetime.fromtimestamp(claims["exp"], UTC) if "exp" in claims else None
        async with db.transaction(self.sessions) as session:
            await session.execute(tokens.insert().values(
                id=claims["jti"], role=role, subject=subject, unit_id=unit_id, window_id=window_id,
                issued_at=issued_at, expires_at=expires_at, revoked=False))
            await add(session, outbox, [events.Envelope.of(
                events.TokenIssued(token_id=claims["jti"], role=role, unit_id=unit_id,
                                   window_id=window_id, expires_at=expires_at),
                source=SOURCE, key=claims["jti"])])
        return token, claims

    async def revoke(self, token_id: str) -> bool:
        now = datetime.now(UTC)
        async with db.transaction(self.sessions) as session:
            result = await session.execute(
                update(tokens).where(tokens.c.id == token_id, tokens.c.revoked.is_(False))
                .values(revoked=True, revoked_at=now))
            if not result.rowcount:  # type: ignore[attr-defined]
                exists = (await session.execute(select(tokens.c.id).where(tokens.c.id == token_id))).first()
                if exists is None:
                    raise KeyError(token_id)
                return False
            await add(session, outbox, [events.Envelope.of(
                events.TokenRevoked(token_id=token_id, revoked_at=now), source=SOURCE, key=token_id)])
        return True

    async def list(self, *, role: str | None = None, window_id: str | None = None,
                   unit_id: str | None = None) -> list[dict[str, Any]]:
        query = select(tokens).order_by(tokens.c.issued_at)
        if role:
            query = query.where(tokens.c.role == role)
        if window_id:
            query = query.where(tokens.c.window_id == window_id)
        if unit_id:
            query = query.where(tokens.c.unit_id == unit_id)
        async with self.sessions() as session:
            return [dict(r) for r in (await session.execute(query)).mappings()]

    def relay(self, bus: Bus) -> Relay:
        return Relay(engine=self.engine, table=outbox, bus=bus, service="auth",
                     interval_s=self.settings.relay_interval_s, retry_max_s=self.settings.retry_max_s)
