"""Every query of target-tracker."""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Integer, Select, bindparam, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from target_tracker.models import audit, progress, targets
from yardstick.db import dialect_name, try_xact_lock

# What the read functions run on: a request's session, or a bare connection (ServiceRuntime.reading).
Reader = AsyncSession | AsyncConnection


async def get_target(session: Reader, target_id: str, *, for_update: bool = False) -> RowMapping | None:
    if for_update:
        assert isinstance(session, AsyncSession), "a row is locked within a session's transaction"
        rows = await lock_targets(session, [target_id])
        return rows[0] if rows else None
    return (await session.execute(select(targets).where(targets.c.id == target_id))).mappings().first()


async def lock_targets(session: AsyncSession, target_ids: Collection[str], *,
                       unit_id: str | None = None) -> Sequence[RowMapping]:
    """The targets, locked until the transaction ends: reports on one target are serialised.

    PostgreSQL locks the rows (in id order, so two batches never deadlock). SQLite has one writer
    at a time but begins a transaction only at its first write, so a read before it could be
    overtaken by another writer: a write that changes nothing takes the writer's lock first.
    """
    ids = sorted(set(target_ids))
    if not ids:
        return []
    stmt = select(targets).where(targets.c.id.in_(ids)).order_by(targets.c.id)
    if unit_id is not None:
        stmt = stmt.where(targets.c.unit_id == unit_id)
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update()
    else:
        await session.execute(update(targets).where(targets.c.id.in_(ids))
                              .values(report_count=targets.c.report_count))
    return (await session.execute(stmt)).mappings().all()


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
        update(targets).where(c.id == row["id"], c.status.is_not_distinct_from(row["status"]),
                              c.latest_date.is_not_distinct_from(row["latest_date"]),
                              c.latest_value.is_not_distinct_from(row["latest_value"]))
        .values(status=status))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# What a list shows of each target (service.view): not who created it and when, nor the fit's state.
LISTED = [c for c in targets.c if c.name not in {"created_by", "created_at", "report_count", "status", "holt_alpha",
                                                  "holt_beta", "holt_phi", "holt_fitted_at"}]


@functools.cache
def _listing(public: bool, by_year: bool, after: bool) -> Select[Any]:
    """A list's statement, built once per shape: building one and its cache key cost about 0.3 ms a read."""
    if public:
        stmt = select(*LISTED).where(targets.c.public_commitment.is_(True), targets.c.approved.is_(True),
                                     targets.c.withdrawn.is_(False))
    else:
        stmt = select(*LISTED).where(targets.c.unit_id == bindparam("unit_id"))
    if by_year:
        stmt = stmt.where(targets.c.year == bindparam("year"))
    if after:
        stmt = stmt.where(targets.c.id > bindparam("after"))
    return stmt.order_by(targets.c.id).limit(bindparam("limit", type_=Integer))


async def unit_targets(session: Reader, unit_id: str, year: int | None, *, after: str | None,
                       limit: int) -> Sequence[RowMapping]:
    stmt = _listing(False, year is not None, after is not None)
    params = {"unit_id": unit_id, "year": year, "after": after, "limit": limit}
    rows: Sequence[RowMapping] = (await session.execute(stmt, params)).mappings().all()
    return rows


async def public_targets(session: Reader, year: int | None, *, after: str | None,
                         limit: int) -> Sequence[RowMapping]:
    stmt = _listing(True, year is not None, after is not None)
    rows: Sequence[RowMapping] = (await session.execute(stmt, {"year": year, "after": after, "limit": limit})
                                  ).mappings().all()
    return rows


async def live_targets(session: AsyncSession, *, since_year: int) -> Sequence[RowMapping]:
    """Approved, not withdrawn targets of the current and later years: what the sweep judges."""
    stmt = select(targets).where(targets.c.approved.is_(True), targets.c.withdrawn.is_(False),
                                 targets.c.year >= since_year)
    return (await session.execute(stmt)).mappings().all()


async def year_series(session: AsyncSession, target_ids: Sequence[str]) -> dict[str, list[tuple[date, float]]]:
    """Every current value of the targets (a target is one year: at most 366), by date."""
    out: dict[str, list[tuple[date, float]]] = {t: [] for t in target_ids}
    if not target_ids:
        return out
    rows = await session.execute(
        select(progress.c.target_id, progress.c.date, progress.c.value)
        .where(progress.c.target_id.in_(list(target_ids))).order_by(progress.c.target_id, progress.c.date))
    for target_id, on, value in rows:
        out[target_id].append((on, value))
    return out


async def insert_reports(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """First reports for their dates (the caller holds the targets' locks and knows the dates are new)."""
    if rows:
        await session.execute(progress.insert(), list(rows))


async def correct_reports(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Replace reported values: each row has target_id, date, the new fields and `added` revisions."""
    if not rows:
        return
    c = progress.c
    # Parameters named unlike the columns: SQLAlchemy keeps the columns' own names for itself.
    fields = ("value", "note", "evidence_url", "late", "reported_at")
    stmt = (update(progress).where(c.target_id == bindparam("t_id"), c.date == bindparam("t_date"))
            .values({**{k: bindparam(f"b_{k}") for k in fields}, "revisions": c.revisions + bindparam("b_added")}))
    await session.execute(stmt, [{"t_id": r["target_id"], "t_date": r["date"], "b_added": r["added"],
                                  **{f"b_{k}": r[k] for k in fields}} for r in rows])


async def update_targets(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Per target (`id`) the same set of columns: one executemany."""
    if not rows:
        return
    columns = [k for k in rows[0] if k != "id"]
    stmt = update(targets).where(targets.c.id == bindparam("t_id")).values({k: bindparam(f"b_{k}") for k in columns})
    await session.execute(stmt, [{"t_id": r["id"], **{f"b_{k}": r[k] for k in columns}} for r in rows])


async def history(session: Reader, target_id: str) -> Sequence[RowMapping]:
    rows = await session.execute(
        select(progress.c.date, progress.c.value, progress.c.late, progress.c.revisions)
        .where(progress.c.target_id == target_id).order_by(progress.c.date))
    return rows.mappings().all()


async def add_audit(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    # None at all (a batch whose every item was rejected): an empty list would insert one empty row.
    if rows:
        await session.execute(audit.insert(), list(rows))


async def audit_trail(session: Reader, target_id: str, *, after: int | None,
                      limit: int) -> Sequence[RowMapping]:
    stmt = select(audit).where(audit.c.target_id == target_id)
    if after is not None:
        stmt = stmt.where(audit.c.id > after)
    return (await session.execute(stmt.order_by(audit.c.id).limit(limit))).mappings().all()


async def try_sweep_lock(session: AsyncSession) -> bool:
    """One sweep at a time across instances; released when the transaction ends."""
    return await try_xact_lock(session, "target-tracker:sweep")


