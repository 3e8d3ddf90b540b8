"""Every query of feedback-intake."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import false, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from yardstick.db import dialect_name, insert_for

from feedback_intake.models import ratings


async def lock_device(session: AsyncSession, device: str) -> None:
    """Serialise one kiosk's batches so suppression sees every earlier press."""
    if dialect_name(session) == "postgresql":
        key = zlib.crc32(f"kiosk:{device}".encode()) - 2**31
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    elif dialect_name(session) == "sqlite":
        # No advisory locks: take the database's write lock first, with a write that changes
        # nothing, so the reads that follow already see every batch committed before this one
        # (otherwise two concurrent batches of one kiosk both miss each other's presses).
        await session.execute(update(ratings).where(false()).values(id=ratings.c.id))


async def existing_rating_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = await session.execute(select(ratings.c.id).where(ratings.c.id.in_(list(ids))))
    return {r[0] for r in rows}


async def device_presses(session: AsyncSession, device: str, start: datetime, end: datetime) -> list[datetime]:
    rows = await session.execute(
        select(ratings.c.rated_at).where(ratings.c.device == device, ratings.c.rated_at >= start,
                                         ratings.c.rated_at <= end))
    return [r[0] for r in rows]


async def insert_ratings(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert, skipping ids stored meanwhile; returns the ids actually inserted."""
    if not rows:
        return set()
    insert = insert_for(session)
    # One multi-row INSERT: RETURNING names the rows that were new.
    stmt = insert(ratings).values(rows).on_conflict_do_nothing(index_elements=["id"]).returning(ratings.c.id)
    return {r[0] for r in await session.execute(stmt)}


async def get_rating(session: AsyncSession, rating_id: str) -> Any:
    return (await session.execute(select(ratings).where(ratings.c.id == rating_id))).first()
