"""Every query of notices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, case, func, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notices.models import (
    category_days,
    deliveries,
    negative_days,
    negative_items,
    notice_history,
    notices,
    rating_days,
    rule_audit,
    rules,
    subscriptions,
    sweeps,
    target_reports,
    target_states,
)
from yardstick.db import dialect_name, insert_for, try_xact_lock, xact_lock


def _insert(session: AsyncSession) -> Any:
    return insert_for(session)


async def rating_totals(session: AsyncSession, kind: str, subject_id: str) -> tuple[int, int]:
    c = rating_days.c
    row = (await session.execute(
        select(func.coalesce(func.sum(c.n), 0), func.coalesce(func.sum(c.satisfied), 0))
        .where(c.subject_kind == kind, c.subject_id == subject_id))).one()
    return int(row[0]), int(row[1])


# ----- state from events -------------------------------------------------------------


# One statement per table for a whole poll's changes. On PostgreSQL the rows travel as one array
# per column through unnest (a handful of parameters, prepared once); SQLite takes the same upsert
# as executemany. Each key appears once (the caller merges per key): PostgreSQL refuses to update a
# row twice in one statement.

RatingRow = tuple[str, str, date, str, int, int]  # subject kind, subject, day, unit, ratings, satisfied
CellRow = tuple[str, str, date, int]  # unit, category, day, count
ItemRow = tuple[str, str, str, date, int]  # feedback id, unit, category, day, revision
TargetStateRow = tuple[str, str, str, date | None]  # target, unit, status, as of
TargetReportRow = tuple[str, date, str]  # target, report date, status


async def add_ratings(session: AsyncSession, rows: Sequence[RatingRow]) -> None:
    await _upsert(session, rating_days, ["subject_kind", "subject_id", "day", "unit_id", "n", "satisfied"], rows,
                  keys=3, added=["n", "satisfied"])


async def add_negatives(session: AsyncSession, rows: Sequence[CellRow]) -> None:
    await _upsert(session, negative_days, ["unit_id", "category_id", "day", "count"], rows, keys=3,
                  added=["count"])


async def add_category_items(session: AsyncSession, rows: Sequence[CellRow]) -> None:
    await _upsert(session, category_days, ["unit_id", "category_id", "day", "n"], rows, keys=3, added=["n"])


async def put_negative_items(session: AsyncSession, rows: Sequence[ItemRow]) -> None:
    """Record which unit each item is with; of two records of one item, the higher revision stands.

    A reassignment travels under its new unit's key, so it may be read before the item itself or
    before an earlier reassignment: the revision, not the order of arrival, decides.
    """
    await _upsert(session, negative_items, ["feedback_id", "unit_id", "category_id", "day", "revision"], rows,
                  keys=1, replaced=["unit_id", "category_id", "revision"], unless_lower="revision")


async def put_target_states(session: AsyncSession, rows: Sequence[TargetStateRow]) -> None:
    await _upsert(session, target_states, ["target_id", "unit_id", "status", "as_of"], rows, keys=1,
                  replaced=["unit_id", "status", "as_of"])


async def put_target_reports(session: AsyncSession, rows: Sequence[TargetReportRow]) -> None:
    await _upsert(session, target_reports, ["target_id", "day", "status"], rows, keys=2, replaced=["status"])


async def _upsert(session: AsyncSession, table: Table, columns: list[str], rows: Sequence[tuple[Any, ...]], *,
                  keys: int, added: Sequence[str] = (), replaced: Sequence[str] = (),
                  unless_lower: str | None = None) -> None:
    """Insert each row; where its key (the first `keys` columns) exists, add the `added` columns to the
    stored ones and overwrite the `replaced` ones (with `unless_lower`, only where the stored value of
    that column is lower than the row's)."""
    if not rows:
        return
    if dialect_name(session) == "postgresql":
        sql = _pg_sql(table, columns, keys=keys, added=added, replaced=replaced, unless_lower=unless_lower)
        await session.execute(text(sql), {c: [row[i] for row in rows] for i, c in enumerate(columns)})
        return
    stmt = sqlite_insert(table)
    sets = {c: table.c[c] + stmt.excluded[c] for c in added} | {c: stmt.excluded[c] for c in replaced}
    stmt = stmt.on_conflict_do_update(
        index_elements=columns[:keys], set_=sets,
        where=None if unless_lower is None else table.c[unless_lower] < stmt.excluded[unless_lower])
    await session.execute(stmt, [dict(zip(columns, row, strict=True)) for row in rows])


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_PG_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


def _pg_sql(table: Table, columns: list[str], *, keys: int, added: Sequence[str], replaced: Sequence[str],
            unless_lower: str | None) -> str:
    sql = _PG_SQL.get((table.name, tuple(columns)))
    if sql is None:
        def quoted(names: Sequence[str]) -> str:
            return ", ".join(f'"{c}"' for c in names)

        arrays = ", ".join(f"CAST(:{c} AS {table.c[c].type.compile(dialect=_PG)}[])" for c in columns)
        sets = [f'"{c}" = "{table.name}"."{c}" + EXCLUDED."{c}"' for c in added]
        sets += [f'"{c}" = EXCLUDED."{c}"' for c in replaced]
        sql = (f'INSERT INTO "{table.name}" ({quoted(columns)}) SELECT * FROM unnest({arrays}) '
               f"ON CONFLICT ({quoted(columns[:keys])}) DO UPDATE SET {', '.join(sets)}")
        if unless_lower is not None:
            sql += f' WHERE "{table.name}"."{unless_lower}" < EXCLUDED."{unless_lower}"'
        _PG_SQL[(table.name, tuple(columns))] = sql
    return sql


# ----- what the detectors read -------------------------------------------------------


async def first_data_day(session: AsyncSession) -> date | None:
    a = (await session.execute(select(func.min(negative_days.c.day)))).scalar()
    b = (await session.execute(select(func.min(rating_days.c.day)))).scalar()
    days = [d for d in (a, b) if d is not None]
    return min(days) if days else None


async def complaint_counts(session: AsyncSession, *, window_start: date, baseline_start: date, today: date,
                           unit_id: str | None = None, category_id: str | None = None
                           ) -> list[tuple[str, str, int, int]]:
    """(unit, category, window count, baseline count) of every cell with items in the span."""
    c = negative_days.c
    in_window = case((c.day >= window_start, c.count), else_=0)
    in_baseline = case((c.day < window_start, c.count), else_=0)
    q = (select(c.unit_id, c.category_id, func.sum(in_window), func.sum(in_baseline))
         .where(c.day >= baseline_start, c.day <= today).group_by(c.unit_id, c.category_id))
    if unit_id is not None:
        q = q.where(c.unit_id == unit_id, c.category_id == category_id)
    return [(r[0], r[1], int(r[2] or 0), int(r[3] or 0)) for r in (await session.execute(q)).all()]


async def rating_counts(session: AsyncSession, *, window_start: date, previous_start: date, today: date,
                        kind: str | None = None, subject_id: str | None = None
                        ) -> list[tuple[str, str, str, int, int, int, int]]:
    """(kind, subject, unit, n, satisfied, previous n, previous satisfied) per rated subject."""
    c = rating_days.c
    now = c.day >= window_start
    q = (select(c.subject_kind, c.subject_id, func.min(c.unit_id),
                func.sum(case((now, c.n), else_=0)), func.sum(case((now, c.satisfied), else_=0)),
                func.sum(case((now, 0), else_=c.n)), func.sum(case((now, 0), else_=c.satisfied)))
         .where(c.day >= previous_start, c.day <= today).group_by(c.subject_kind, c.subject_id))
    if kind is not None:
        q = q.where(c.subject_kind == kind, c.subject_id == subject_id)
    return [(r[0], r[1], r[2], int(r[3] or 0), int(r[4] or 0), int(r[5] or 0), int(r[6] or 0))
            for r in (await session.execute(q)).all()]


async def sample_feedback_ids(session: AsyncSession, *, unit_id: str, category_id: str, since: date, today: date,
                              limit: int = 10) -> list[str]:
    c = negative_items.c
    q = (select(c.feedback_id).where(c.unit_id == unit_id, c.category_id == category_id, c.day >= since,
                                     c.day <= today).order_by(c.day.desc(), c.feedback_id).limit(limit))
    return [r[0] for r in (await session.execute(q)).all()]


async def target_statuses(session: AsyncSession, *, today: date, limit: int, after: Mapping[str, date]
                          ) -> list[tuple[str, str, str, list[str]]]:
    """(target, unit, latest status, statuses of its last `limit` reports up to today, oldest first);
    a target in `after` counts only its reports dated after that day."""
    states = (await session.execute(select(target_states.c.target_id, target_states.c.unit_id,
                                           target_states.c.status))).all()
    out = []
    for target_id, unit_id, status in states:
        q = select(target_reports.c.status).where(target_reports.c.target_id == target_id,
                                                  target_reports.c.day <= today)
        if target_id in after:
            q = q.where(target_reports.c.day > after[target_id])
        rows = (await session.execute(q.order_by(target_reports.c.day.desc()).limit(limit))).all()
        out.append((target_id, unit_id, status, [r[0] for r in reversed(rows)]))
    return out


async def target_status(session: AsyncSession, target_id: str) -> str | None:
    row = (await session.execute(select(target_states.c.status).where(target_states.c.target_id == target_id))
           ).first()
    return None if row is None else str(row[0])


async def cell_totals(session: AsyncSession, *, unit_id: str, category_id: str, first: date, last: date
                      ) -> tuple[int, int]:
    """(negative items, all categorised items) of one cell over [first, last]."""
    n = (await session.execute(select(func.coalesce(func.sum(negative_days.c.count), 0)).where(
        negative_days.c.unit_id == unit_id, negative_days.c.category_id == category_id,
        negative_days.c.day >= first, negative_days.c.day <= last))).scalar()
    total = (await session.execute(select(func.coalesce(func.sum(category_days.c.n), 0)).where(
        category_days.c.unit_id == unit_id, category_days.c.category_id == category_id,
        category_days.c.day >= first, category_days.c.day <= last))).scalar()
    return int(n or 0), int(total or 0)


async def rating_span(session: AsyncSession, *, kind: str, subject_id: str, first: date, last: date
                      ) -> tuple[int, int]:
    c = rating_days.c
    row = (await session.execute(select(func.coalesce(func.sum(c.n), 0), func.coalesce(func.sum(c.satisfied), 0))
                                 .where(c.subject_kind == kind, c.subject_id == subject_id, c.day >= first,
                                        c.day <= last))).one()
    return int(row[0]), int(row[1])


# ----- notices -----------------------------------------------------------------------


def open_key(unit_id: str, rule: str, subject: str) -> str:
    return f"{unit_id}|{rule}|{subject}"


async def open_notice(session: AsyncSession, key: str) -> dict[str, Any] | None:
    row = (await session.execute(select(notices).where(notices.c.open_key == key))).mappings().first()
    return None if row is None else dict(row)


async def open_keys(session: AsyncSession) -> set[str]:
    rows = (await session.execute(select(notices.c.open_key).where(notices.c.open_key.is_not(None)))).all()
    return {r[0] for r in rows}


async def last_verified(session: AsyncSession, *, unit_id: str, rule: str, subject: str
                        ) -> dict[str, Any] | None:
    row = (await session.execute(
        select(notices).where(notices.c.unit_id == unit_id, notices.c.rule == rule, notices.c.subject == subject,
                              notices.c.status == "verified")
        .order_by(notices.c.verified_at.desc()).limit(1))).mappings().first()
    return None if row is None else dict(row)


async def last_verified_days(session: AsyncSession, *, rule: str, today: date) -> dict[str, date]:
    """subject -> the last day a notice of `rule` on it was verified, on or before `today`."""
    q = (select(notices.c.subject, func.max(notices.c.verified_on))
         .where(notices.c.rule == rule, notices.c.status == "verified", notices.c.verified_on <= today)
         .group_by(notices.c.subject))
    return {r[0]: r[1] for r in (await session.execute(q)).all()}


async def insert_notice(session: AsyncSession, values: dict[str, Any]) -> bool:
    """False when a notice is already open on the cell (`open_key` is unique while one is open): another
    evaluation issued it since this one looked (SQLite takes no sweep lock; it has one writer at a time)."""
    stmt = (_insert(session)(notices).values(**values).on_conflict_do_nothing(index_elements=["open_key"])
            .returning(notices.c.id))
    return (await session.execute(stmt)).scalar() is not None


async def update_notice(session: AsyncSession, notice_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(notices).where(notices.c.id == notice_id).values(**values))


async def get_notice(session: AsyncSession, notice_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = select(notices).where(notices.c.id == notice_id)
    if lock and dialect_name(session) == "postgresql":
        q = q.with_for_update()
    row = (await session.execute(q)).mappings().first()
    return None if row is None else dict(row)


async def list_notices(session: AsyncSession, *, unit_id: str | None, status: str | None, year: int | None,
                       offset: int, limit: int) -> list[dict[str, Any]]:
    q = select(notices)
    if unit_id is not None:
        q = q.where(notices.c.unit_id == unit_id)
    if status is not None:
        q = q.where(notices.c.status == status)
    if year is not None:
        q = q.where(notices.c.year == year)
    q = q.order_by(notices.c.issued_at, notices.c.id).offset(offset).limit(limit)
    return [dict(r) for r in (await session.execute(q)).mappings().all()]


async def notices_with_deadlines(session: AsyncSession) -> list[dict[str, Any]]:
    q = select(notices).where(notices.c.open_key.is_not(None), notices.c.deadline.is_not(None))
    return [dict(r) for r in (await session.execute(q)).mappings().all()]


async def add_history(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(notice_history.insert().values(**values))


async def history(session: AsyncSession, notice_id: str) -> list[dict[str, Any]]:
    q = select(notice_history).where(notice_history.c.notice_id == notice_id).order_by(notice_history.c.id)
    return [dict(r) for r in (await session.execute(q)).mappings().all()]


async def linked_to(session: AsyncSession, notice_id: str) -> list[str]:
    q = select(notices.c.id).where(notices.c.linked_notice_id == notice_id)
    return [r[0] for r in (await session.execute(q)).all()]


# ----- rules, sweeps, subscriptions, deliveries --------------------------------------


async def rule_settings(session: AsyncSession) -> dict[str, dict[str, Any]]:
    rows = (await session.execute(select(rules.c.rule_id, rules.c.settings))).all()
    return {r[0]: dict(r[1]) for r in rows}


async def put_rule(session: AsyncSession, *, rule_id: str, settings: dict[str, Any], before: dict[str, Any] | None,
                   actor: str | None, at: datetime) -> None:
    stmt = _insert(session)(rules).values(rule_id=rule_id, settings=settings, updated_at=at)
    stmt = stmt.on_conflict_do_update(index_elements=["rule_id"], set_={"settings": settings, "updated_at": at})
    await session.execute(stmt)
    await session.execute(rule_audit.insert().values(rule_id=rule_id, at=at, actor=actor, before=before,
                                                     after=settings))


async def rule_history(session: AsyncSession, rule_id: str) -> list[dict[str, Any]]:
    q = select(rule_audit).where(rule_audit.c.rule_id == rule_id).order_by(rule_audit.c.id)
    return [dict(r) for r in (await session.execute(q)).mappings().all()]


async def try_lock(session: AsyncSession, name: str) -> bool:
    """A transaction-scoped lock so one instance sweeps at a time."""
    return await try_xact_lock(session, name)


async def lock(session: AsyncSession, name: str) -> None:
    """The same lock, waiting for a sweep that holds it to finish."""
    await xact_lock(session, name)


async def last_swept(session: AsyncSession, name: str) -> date | None:
    return (await session.execute(select(sweeps.c.last_day).where(sweeps.c.name == name))).scalar()


async def set_swept(session: AsyncSession, name: str, day: date) -> None:
    stmt = _insert(session)(sweeps).values(name=name, last_day=day)
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"last_day": day})
    await session.execute(stmt)


async def add_subscription(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(subscriptions.insert().values(**values))


async def subscriptions_for(session: AsyncSession, unit_id: str) -> list[dict[str, Any]]:
    q = select(subscriptions).where(or_(subscriptions.c.unit_id.is_(None), subscriptions.c.unit_id == unit_id))
    return [dict(r) for r in (await session.execute(q)).mappings().all()]


async def get_subscription(session: AsyncSession, subscription_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(subscriptions).where(subscriptions.c.id == subscription_id))
           ).mappings().first()
    return None if row is None else dict(row)


async def add_delivery(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(deliveries.insert().values(**values))


async def due_deliveries(session: AsyncSession, *, now: datetime, max_attempts: int, limit: int = 50
                         ) -> list[dict[str, Any]]:
    q = (select(deliveries).where(deliveries.c.delivered_at.is_(None), deliveries.c.next_attempt_at <= now,
                                  deliveries.c.attempts < max_attempts)
         .order_by(deliveries.c.id).limit(limit))
    if dialect_name(session) == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return [dict(r) for r in (await session.execute(q)).mappings().all()]


async def update_delivery(session: AsyncSession, delivery_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))
