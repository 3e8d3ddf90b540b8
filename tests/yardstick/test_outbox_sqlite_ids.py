"""Two relays of one outbox never delete a row neither published, though SQLite gives its ids again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from yardstick import outbox as outbox_module
from yardstick.bus import Message
from yardstick.bus.codec import decode
from yardstick.cli import _announce
from yardstick.events import TokenRevoked
from yardstick.settings import AuthSettings
from yardstick.tokens import Registry, outbox

SECRET = "s" * 40


class Bus:
    """Records what it publishes; with a gate, holds each publish until it opens (a broker slow to ack)."""

    backend = "test"

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.reached = asyncio.Event()
        self.sent: list[Message] = []

    async def publish(self, messages: Sequence[Message]) -> None:
        self.reached.set()
        if self.gate is not None:
            await self.gate.wait()
        self.sent.extend(messages)

    async def stop(self) -> None:
        pass

    def revoked(self) -> list[str]:
        return [e.data.token_id for e in map(decode, self.sent) if isinstance(e.data, TokenRevoked)]


@asynccontextmanager
async def _registry(scratch_engine: Any, backend: str) -> AsyncIterator[tuple[Registry, AuthSettings]]:
    async with scratch_engine(backend, MetaData(), "yt_registry") as engine:
        url = engine.url.render_as_string(hide_password=False)
        settings = AuthSettings(database_url=url, auth_secret=SECRET, bus="kafka")
        registry = Registry(settings, engine)
        await registry.prepare()
        yield registry, settings


async def _rows(registry: Registry) -> list[tuple[int, str]]:
    async with registry.engine.connect() as conn:
        return [(r[0], r[1]) for r in (await conn.execute(select(outbox.c.id, outbox.c.event_id)))]


async def test_a_relay_slow_to_be_acked_leaves_the_revocation_that_took_its_rows_id(scratch_engine: Any) -> None:
    async with _registry(scratch_engine, "sqlite") as (registry, settings):
        _, first = await registry.issue(role="commission", subject="a", ttl_s=3600)
        _, second = await registry.issue(role="commission", subject="b", ttl_s=3600)
        while await registry.relay(Bus()).publish_once():  # the token.issued events out of the way
            pass
        await registry.revoke(first["jti"])
        [(row_id, _)] = await _rows(registry)
        # A service's token relay reads that row and waits for the broker's acks...
        gate = asyncio.Event()
        service_bus, cli_bus = Bus(gate), Bus()
        held = asyncio.create_task(registry.relay(service_bus).publish_once())
        await service_bus.reached.wait()
        # ...while `yardstick token revoke` publishes and deletes it; the next revocation takes its id.
        await _announce(registry, settings, lambda _: cli_bus)
        await registry.revoke(second["jti"])
        [(reused, second_event)] = await _rows(registry)
        assert reused == row_id  # SQLite gave the id again: the case this is about
        gate.set()
        await held
        assert await _rows(registry) == [(row_id, second_event)], "a revocation deleted unpublished"
        after = Bus()
        await registry.relay(after).publish_once()
        assert set(service_bus.revoked() + cli_bus.revoked() + after.revoked()) == {first["jti"], second["jti"]}
        assert await _rows(registry) == []


async def test_a_large_round_on_sqlite_deletes_every_row_it_published(
        scratch_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "SQLITE_DELETE_ROWS", 2)  # a round's delete in several statements
    async with _registry(scratch_engine, "sqlite") as (registry, _):
        for n in range(5):
            await registry.issue(role="commission", subject=f"s{n}", ttl_s=3600)
        bus = Bus()
        assert not await registry.relay(bus).publish_once()
        assert len(bus.sent) == 5
        assert await _rows(registry) == []


async def test_the_token_command_publishes_as_the_registrys_one_relay(scratch_engine: Any) -> None:
    """On PostgreSQL `yardstick token` takes the relay's lock: while a service's relay holds it, that
    relay publishes and the command does not publish beside it."""
    async with _registry(scratch_engine, "postgresql") as (registry, settings):
        service_bus, cli_bus = Bus(), Bus()
        service = registry.relay(service_bus)
        await service.start()
        try:
            for _ in range(200):
                if service.holds_lock:
                    break
                await asyncio.sleep(0.02)
            assert service.holds_lock
            _, claims = await registry.issue(role="commission", subject="a", ttl_s=3600)
            await registry.revoke(claims["jti"])
            await _announce(registry, settings, lambda _: cli_bus)
            assert cli_bus.sent == []
            service.wake()
            for _ in range(200):
                if service_bus.revoked():
                    break
                await asyncio.sleep(0.02)
            assert service_bus.revoked() == [claims["jti"]]
        finally:
            await service.stop()
        # The lock let go: the command publishes.
        _, other = await registry.issue(role="commission", subject="b", ttl_s=3600)
        await registry.revoke(other["jti"])
        await _announce(registry, settings, lambda _: cli_bus)
        assert cli_bus.revoked() == [other["jti"]]
        assert await _rows(registry) == []
