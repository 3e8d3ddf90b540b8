"""Every query of feedback-intake."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    false,
    func,
    not_,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from feedback_intake.models import audit, feedback, ratings, survey_responses, surveys
from yardstick.db import bulk_insert, dialect_name, driver, insert_for, xact_lock


async def lock_device(session: AsyncSession, device: str) -> None:
    """Serialise one kiosk's batches so suppression sees every earlier press."""
    if dialect_name(session) == "postgresql":
        await xact_lock(session, f"kiosk:{device}")
    elif dialect_name(session) == "sqlite":
        # No advisory locks: take the database's write lock first, with a write that changes
        # nothing, so the reads that follow already see every batch committed before this one
        # (otherwise two concurrent batches of one kiosk both miss each other's presses).
        await session.execute(update(ratings).where(false()).values(id=ratings.c.id))


@functools.cache
def _stored_and_presses(with_presses: bool) -> Any:
    """stored_and_presses' statement on SQLite, built once per shape: building one and its cache key
    cost about 0.35 ms, more than running it."""
    stmt: Any = select(ratings.c.id, null().cast(ratings.c.rated_at.type).label("rated_at")).where(
        ratings.c.id.in_(bindparam("ids", expanding=True)))
    if with_presses:
        at = ratings.c.rated_at
        stmt = union_all(stmt, select(null().cast(String).label("id"), at).where(
            ratings.c.device == bindparam("device"), at >= bindparam("start", type_=at.type),
            at <= bindparam("end", type_=at.type)))
    return stmt


# On PostgreSQL, on the driver (db.driver): one array parameter, where an IN list of 100 would be a new
# statement for every length.
_STORED_SQL = "SELECT id, NULL::timestamptz AS rated_at FROM ratings WHERE id = ANY($1::varchar[])"
_PRESSES_SQL = (" UNION ALL SELECT NULL::varchar AS id, rated_at FROM ratings"
                " WHERE device = $2 AND rated_at >= $3 AND rated_at <= $4")


async def stored_and_presses(session: AsyncSession, ids: Sequence[str], device: str,
                             span: tuple[datetime, datetime] | None) -> tuple[set[str], list[datetime]]:
    """The ids among these already stored, and the kiosk's presses within span (inclusive): one round trip."""
    raw = await driver(session)
    if raw is not None:
        sql = _STORED_SQL if span is None else _STORED_SQL + _PRESSES_SQL
        rows: Any = await raw.fetch(sql, *([list(ids)] if span is None else [list(ids), device, *span]))
    else:
        params: dict[str, Any] = {"ids": list(ids)}
        if span is not None:
            params.update(device=device, start=span[0], end=span[1])
        rows = await session.execute(_stored_and_presses(span is not None), params)
    stored: set[str] = set()
    presses: list[datetime] = []
    for rating_id, rated_at in rows:
        if rating_id is not None:
            stored.add(rating_id)
        else:
            presses.append(rated_at)
    return stored, presses


async def insert_ratings(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert, skipping ids stored meanwhile; returns the ids actually inserted."""
    return set(await bulk_insert(session, ratings, rows, skip_conflicts=True, returning=ratings.c.id))


# feedback ------------------------------------------------------------------------------


async def insert_feedback(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert, skipping a row whose client id, (platform, post id) or tracking code is taken; the ids inserted."""
    return set(await bulk_insert(session, feedback, rows, skip_conflicts=True, returning=feedback.c.id))


async def feedback_where(session: AsyncSession, *conditions: ColumnElement[bool]) -> Any:
    return (await session.execute(select(feedback).where(*conditions))).first()


async def update_feedback(session: AsyncSession, feedback_id: str, values: dict[str, Any],
                          *conditions: ColumnElement[bool]) -> bool:
    """Conditional update: False when the row no longer matches (a concurrent change won)."""
    result = await session.execute(
        update(feedback).where(feedback.c.id == feedback_id, *conditions).values(**values)
        .returning(feedback.c.id))
    return result.first() is not None


def status_condition(status: str) -> ColumnElement[bool]:
    c = feedback.c
    conditions: dict[str, ColumnElement[bool]] = {
        "responded": c.responded_at.is_not(None),
        "in_rectification": and_(c.responded_at.is_(None), c.notice_id.is_not(None)),
        "routed": and_(c.responded_at.is_(None), c.notice_id.is_(None), c.unit_id.is_not(None)),
        "received": and_(c.responded_at.is_(None), c.notice_id.is_(None), c.unit_id.is_(None)),
    }
    return conditions[status]


async def list_feedback(session: AsyncSession, *, unit_id: str | None, status: str | None,
                        category_id: str | None, overdue: bool | None, today: date, after: str | None,
                        limit: int) -> list[Any]:
    """One page by id; `overdue` True keeps the unanswered items due before today, False the others."""
    c = feedback.c
    query = select(feedback).where(c.unit_id == unit_id if unit_id is not None else c.unit_id.is_(None))
    if status is not None:
        query = query.where(status_condition(status))
    if category_id is not None:
        query = query.where(c.category_id == category_id)
    late = and_(c.responded_at.is_(None), c.due.is_not(None), c.due < today)
    if overdue is not None:
        # In SQL, not after the LIMIT: filtering a page afterwards would cut it short.
        query = query.where(late if overdue else not_(late))
    if after is not None:
        query = query.where(c.id > after)
    return list(await session.execute(query.order_by(c.id).limit(limit)))


async def moves(session: AsyncSession, feedback_id: str) -> tuple[int, str]:
    """How many times the item was reassigned (its audit's reassign rows), and the unit its
    feedback.received named: the key of every move of the item, so that consumers read its moves
    after the item and in order (docs/decisions/intake-feedback.md). Called after the move's audit row."""
    q = (select(audit.c.action, audit.c.detail)
         .where(audit.c.feedback_id == feedback_id, audit.c.action.in_(("route", "reassign")))
         .order_by(audit.c.id))
    rows = (await session.execute(q)).all()
    first_action, first_detail = rows[0]
    # Routed from the commission's queue: the item was announced for the unit it was routed to;
    # else for the unit its first move took it from.
    received_by = first_detail["to"] if first_action == "route" else first_detail["from"]
    return sum(action == "reassign" for action, _ in rows), str(received_by)


async def add_audit(session: AsyncSession, *, feedback_id: str, action: str, actor: str, role: str,
                    unit_id: str | None, detail: dict[str, Any]) -> None:
    await session.execute(audit.insert().values(feedback_id=feedback_id, action=action, actor=actor, role=role,
                                                unit_id=unit_id, detail=detail))


async def audit_of(session: AsyncSession, feedback_id: str) -> list[Any]:
    return list(await session.execute(select(audit).where(audit.c.feedback_id == feedback_id).order_by(audit.c.id)))


async def link_notice(session: AsyncSession, *, notice_id: str, unit_id: str, feedback_ids: Sequence[str],
                      category_id: str | None) -> int:
    """Link the notice to the items it names and, for a complaint notice, to the unit's open items of the category."""
    c = feedback.c
    # An item already in another notice stays there.
    named = and_(c.id.in_(list(feedback_ids)), c.notice_id.is_(None)) if feedback_ids else false()
    open_in_category = (and_(c.category_id == category_id, c.responded_at.is_(None), c.notice_id.is_(None))
                        if category_id else false())
    result = await session.execute(
        update(feedback).where(c.unit_id == unit_id, or_(named, open_in_category)).values(notice_id=notice_id)
        .returning(c.id))
    return len(result.all())


# surveys -------------------------------------------------------------------------------


async def insert_survey(session: AsyncSession, row: dict[str, Any]) -> bool:
    stmt = insert_for(session)(surveys).values(**row).on_conflict_do_nothing().returning(surveys.c.id)
    return (await session.execute(stmt)).first() is not None


async def get_survey(session: AsyncSession, survey_id: str) -> Any:
    return (await session.execute(select(surveys).where(surveys.c.id == survey_id))).first()


async def insert_survey_responses(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert, skipping respondents stored before; returns the respondent ids actually inserted."""
    if not rows:
        return set()
    stmt = (insert_for(session)(survey_responses).on_conflict_do_nothing()
            .returning(survey_responses.c.respondent_id))
    return {r[0] for r in await session.execute(stmt, rows)}


async def respondents_per_stratum(session: AsyncSession, survey_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(survey_responses.c.stratum, func.count()).where(survey_responses.c.survey_id == survey_id)
        .group_by(survey_responses.c.stratum))
    return {r[0]: int(r[1]) for r in rows}
