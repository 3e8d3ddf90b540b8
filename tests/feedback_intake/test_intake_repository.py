"""The kiosk path's one-round-trip read (stored ids and the kiosk's presses), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from feedback_intake import repository
from feedback_intake.models import ratings
from yardstick import db

MIGRATIONS = str(Path(repository.__file__).resolve().parents[1] / "migrations")
T0 = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(backend: str,
                   scratch_engine: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with scratch_engine(backend, MIGRATIONS, "yt_intake_repo") as engine:
        yield db.session_factory(engine)


def rating(rating_id: str, device: str, at: datetime) -> dict[str, Any]:
    return {"id": rating_id, "window_id": "w1", "unit_id": "health-commission", "device": device, "level": 4,
            "rated_at": at, "year": at.year, "reasons": [], "status": "counted"}


async def test_stored_ids_and_presses_in_the_span_come_back_together(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    async with db.transaction(sessions) as session:
        await repository.insert_ratings(session, [
            rating("a", "kiosk-1", T0), rating("b", "kiosk-1", T0 + timedelta(seconds=30)),
            rating("c", "kiosk-1", T0 + timedelta(seconds=90)), rating("d", "kiosk-2", T0 + timedelta(seconds=30))])
    async with sessions() as session:
        # The span's ends are inclusive; another kiosk's presses and ids outside the list are not read.
        stored, presses = await repository.stored_and_presses(
            session, ["b", "d", "new-1", "new-2"], "kiosk-1", (T0, T0 + timedelta(seconds=30)))
        assert stored == {"b", "d"}
        assert sorted(p.replace(tzinfo=UTC) if p.tzinfo is None else p for p in presses) == [
            T0, T0 + timedelta(seconds=30)]
        # Without a span (every item of the batch was rejected) only the ids are read.
        assert await repository.stored_and_presses(session, ["a", "zz"], "kiosk-1", None) == ({"a"}, [])
        assert await repository.stored_and_presses(session, ["zz"], "kiosk-9", (T0, T0)) == (set(), [])
        rows = (await session.execute(ratings.select())).all()
        assert len(rows) == 4
