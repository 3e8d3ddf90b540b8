"""Every query of notices."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from yardstick.db import insert_for

from notices.models import negative_days, rating_days


def _insert(session: AsyncSession) -> Any:
    return insert_for(session)


async def add_rating(session: AsyncSession, *, kind: str, subject_id: str, unit_id: str, day: date,
                     satisfied: bool, sign: int = 1) -> None:
    stmt = _insert(session)(rating_days).values(subject_kind=kind, subject_id=subject_id, day=day,
                                                unit_id=unit_id, n=sign, satisfied=sign * int(satisfied))
    stmt = stmt.on_conflict_do_update(
        index_elements=["subject_kind", "subject_id", "day"],
        set_={"n": rating_days.c.n + stmt.excluded.n,
              "satisfied": rating_days.c.satisfied + stmt.excluded.satisfied})
    await session.execute(stmt)


async def add_negative(session: AsyncSession, *, unit_id: str, category_id: str, day: date,
                       sign: int = 1) -> None:
    stmt = _insert(session)(negative_days).values(unit_id=unit_id, category_id=category_id, day=day,
                                                  count=sign)
    stmt = stmt.on_conflict_do_update(index_elements=["unit_id", "category_id", "day"],
                                      set_={"count": negative_days.c.count + stmt.excluded.count})
    await session.execute(stmt)


async def rating_totals(session: AsyncSession, kind: str, subject_id: str) -> tuple[int, int]:
    c = rating_days.c
    row = (await session.execute(
        select(func.coalesce(func.sum(c.n), 0), func.coalesce(func.sum(c.satisfied), 0))
        .where(c.subject_kind == kind, c.subject_id == subject_id))).one()
    return int(row[0]), int(row[1])
