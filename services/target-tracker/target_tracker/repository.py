"""Every query of target-tracker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from target_tracker.models import audit, progress, targets
from yardstick.db import insert_for, try_xact_lock

# Enough reports for both projections (Holt looks at the last 120 at most).
SERIES_LIMIT = 120


async def get_target(session: AsyncSession, target_id: str, *, for_update: bool = False) -> RowMapping | None:
    stmt = select(targets).where(targets.c.id == target_id)
    if for_update:
        # Serialises reports on one target (PostgreSQL); SQLite serialises every writer anyway.
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).mappings().first()


async def existing_codes(session: AsyncSession, year: int) -> set[tuple[str, str]]:
    rows = await session.execute(select(targets.c.unit_id, targets.c.code).where(targets.c.year == year))
    return {(r[0], r[1]) for r in rows}


async def insert_targets(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(targets.insert(), list(rows))


async def update_target(session: AsyncSession, target_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(targets).where(targets.c.id == target_id).values(**values))


async def set_status_if_unchanged(session: AsyncSession, row: RowMapping, status: str) -> bool:
    """The sweep's write: only if no report changed the target since the sweep read it."""
    c = targets.c
    result = await session.execute(
        update(targets).where(c.id == row["id"], c.status == row["status"],
                              c.latest_date.is_not_distinct_from(row["latest_date"]),
                              c.latest_value.is_not_distinct_from(row["latest_value"]))
        .values(status=status))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def unit_targets(session: AsyncSession, unit_id: str, year: int | None, *, after: str | None,
                       limit: int) -> Sequence[RowMapping]:
    stmt = select(targets).where(targets.c.unit_id == unit_id)
    if year is not None:
        stmt = stmt.where(targets.c.year == year)
    if after is not None:
        stmt = stmt.where(targets.c.id > after)
    return (await session.execute(stmt.order_by(targets.c.id).limit(limit))).mappings().all()


async def public_targets(session: AsyncSession, year: int | None, *, after: str | None,
                         limit: int) -> Sequence[RowMapping]:
    stmt = select(targets).where(targets.c.public_commitment.is_(True), targets.c.approved.is_(True),
                                 targets.c.withdrawn.is_(False))
    if year is not None:
        stmt = stmt.where(targets.c.year == year)
    if after is not None:
        stmt = stmt.where(targets.c.id > after)
    return (await session.execute(stmt.order_by(targets.c.id).limit(limit))).mappings().all()


async def live_targets(session: AsyncSession, *, since_year: int) -> Sequence[RowMapping]:
    """Approved, not withdrawn targets of the current and later years: what the sweep judges."""
    stmt = select(targets).where(targets.c.approved.is_(True), targets.c.withdrawn.is_(False),
                                 targets.c.year >= since_year)
    return (await session.execute(stmt)).mappings().all()


async def get_report(session: AsyncSession, target_id: str, on: date) -> RowMapping | None:
    stmt = select(progress).where(progress.c.target_id == target_id, progress.c.date == on)
    return (await session.execute(stmt)).mappings().first()


async def insert_report(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Insert the first report for a date; False (and nothing written) when that date has one already."""
    stmt = (insert_for(session)(progress).values(**row)
            .on_conflict_do_nothing(index_elements=["target_id", "date"]).returning(progress.c.date))
    return (await session.execute(stmt)).first() is not None


async def correct_report(session: AsyncSession, target_id: str, on: date, values: dict[str, Any]) -> None:
    await session.execute(update(progress).where(progress.c.target_id == target_id, progress.c.date == on)
                          .values(revisions=progress.c.revisions + 1, **values))


async def recent_series(session: AsyncSession, target_id: str, limit: int = SERIES_LIMIT) -> list[tuple[date, float]]:
    """The last `limit` reports by date, oldest first."""
    rows = (await session.execute(
        select(progress.c.date, progress.c.value).where(progress.c.target_id == target_id)
        .order_by(progress.c.date.desc()).limit(limit))).all()
    return [(r[0], r[1]) for r in reversed(rows)]


async def history(session: AsyncSession, target_id: str) -> Sequence[RowMapping]:
    rows = await session.execute(
        select(progress.c.date, progress.c.value, progress.c.late, progress.c.revisions)
        .where(progress.c.target_id == target_id).order_by(progress.c.date))
    return rows.mappings().all()


async def add_audit(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(audit.insert(), list(rows))


async def audit_trail(session: AsyncSession, target_id: str, *, after: int | None,
                      limit: int) -> Sequence[RowMapping]:
    stmt = select(audit).where(audit.c.target_id == target_id)
    if after is not None:
        stmt = stmt.where(audit.c.id > after)
    return (await session.execute(stmt.order_by(audit.c.id).limit(limit))).mappings().all()


async def try_sweep_lock(session: AsyncSession) -> bool:
    """One sweep at a time across instances; released when the transaction ends."""
    return await try_xact_lock(session, "target-tracker:sweep")


