"""Every query of scoring."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Executable, Table, bindparam, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.models import (
    adjustments,
    assessments,
    audit,
    channel_days,
    channel_years,
    complaint_weeks,
    configs,
    emitted,
    feedback_months,
    late_after_final,
    leader_grades,
    notice_views,
    objections,
    processed_events,
    projects,
    published,
    scorecards,
    survey_cells,
    survey_strata,
    surveys,
    target_points,
    target_titles,
    target_values,
    targets,
    years,
)
from yardstick.consumer import record_new
from yardstick.db import dialect_name, insert_for, try_xact_lock, xact_lock

# --- years ---------------------------------------------------------------------------------


async def touch_year(session: AsyncSession, year: int, *, ratings_only: bool = False) -> str:
    """Bump the year's version (every instance's cache sees the change) and return its status.

    The upsert takes the year's row lock, so a finalize and an event of the same year never
    interleave: whichever comes second sees the other's outcome. A change of anything but
    ratings bumps inputs_version too (a recompute then reads every input again).
    """
    insert = insert_for(session)
    stmt = insert(years).values(year=year, version=1, emitted_version=0, status="live", inputs_version=1)
    bump: dict[str, Any] = {"version": years.c.version + 1}
    if not ratings_only:
        bump["inputs_version"] = years.c.inputs_version + 1
    stmt = stmt.on_conflict_do_update(index_elements=["year"], set_=bump)
    status = (await session.execute(stmt.returning(years.c.status))).scalar_one()
    return str(status)


async def year_row(session: AsyncSession, year: int) -> dict[str, Any] | None:
    row = (await session.execute(select(years).where(years.c.year == year))).mappings().first()
    return dict(row) if row else None


async def set_year(session: AsyncSession, year: int, **values: Any) -> None:
    await session.execute(update(years).where(years.c.year == year).values(**values))


async def year_versions(session: AsyncSession) -> list[tuple[int, int, int, str]]:
    rows = await session.execute(select(years.c.year, years.c.version, years.c.emitted_version, years.c.status))
    return [(int(y), int(v), int(e), str(s)) for y, v, e, s in rows]


async def compute_states(session: AsyncSession) -> list[tuple[int, int, int, str, date | None, int]]:
    """Per year: version, the version its stored scorecards were computed from, status, their day, inputs version."""
    y = years.c
    rows = await session.execute(select(y.year, y.version, y.computed_version, y.status, y.computed_on,
                                        y.inputs_version))
    return [(int(a), int(v), int(c), str(s), on, int(i)) for a, v, c, s, on, i in rows]


async def lock_recompute(session: AsyncSession) -> bool:
    """One instance recomputes the scorecards at a time (the others skip their pass)."""
    return await try_xact_lock(session, "scoring-recompute")


async def wait_recompute_lock(session: AsyncSession) -> None:
    await xact_lock(session, "scoring-recompute")


async def lock_emitter(session: AsyncSession) -> bool:
    """One instance emits scorecard.updated at a time."""
    return await try_xact_lock(session, "scoring-emitter")


# --- read model writes ---------------------------------------------------------------------


# One table's additive upsert: the table, its key, the columns added to, the rows (sorted by the key).
Upsert = tuple[Table, tuple[str, ...], tuple[str, ...], list[dict[str, Any]]]
_SUMS = ("n", "sum_s", "sum_s2")


async def add_ratings(session: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add per (unit, channel, day) deltas: n, sum_s, sum_s2 (negative for a reassigned item's old unit).

    The same deltas go into the unit's yearly sums per channel, in the same transaction.
    """
    await add_all(session, rating_upserts(rows))


def rating_upserts(rows: Iterable[Mapping[str, Any]]) -> list[Upsert]:
    """add_ratings' two upserts: the days' cells and the same deltas in the unit's yearly sums."""
    daily: dict[tuple[str, str, date], list[Any]] = {}
    yearly: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        # One row per key: an upsert may not touch a row twice (a day's cell keeps its first year).
        day = daily.setdefault((r["unit_id"], r["channel"], r["day"]), [r["year"], 0, 0.0, 0.0])
        cell = yearly.setdefault((r["unit_id"], r["channel"], r["year"]), [0, 0.0, 0.0])
        day[1] += r["n"]
        day[2] += r["sum_s"]
        day[3] += r["sum_s2"]
        cell[0] += r["n"]
        cell[1] += r["sum_s"]
        cell[2] += r["sum_s2"]
    return [
        (channel_days, ("unit_id", "channel", "day"), _SUMS,
         [{"unit_id": u, "channel": c, "day": d, "year": y, "n": int(n), "sum_s": s, "sum_s2": s2}
          for (u, c, d), (y, n, s, s2) in sorted(daily.items())]),
        (channel_years, ("unit_id", "channel", "year"), _SUMS,
         [{"unit_id": u, "channel": c, "year": y, "n": int(n), "sum_s": s, "sum_s2": s2}
          for (u, c, y), (n, s, s2) in sorted(yearly.items())]),
    ]


async def add_to(session: AsyncSession, table: Table, key: list[str], summed: list[str],
                 rows: list[dict[str, Any]]) -> None:
    """Upsert rows that add their `summed` columns to the row of the same key (insert it when there is none).

    Rows must all have the same keys and be sorted by `key` (two instances then lock in the same order).
    """
    await add_all(session, [(table, tuple(key), tuple(summed), rows)])


async def add_all(session: AsyncSession, upserts: Iterable[Upsert]) -> None:
    """add_to for several tables, in the order given.

    On PostgreSQL one statement whatever the number of rows and tables: each table's upsert is a
    CTE and each of its columns travels as one array (INSERT .. SELECT FROM unnest), so the
    statement is prepared once per shape and a poll's aggregates take one round trip (four
    before: on a loaded machine each small statement cost 2-6 ms, most of it the trip). The
    driver's executemany would run the upsert once per row, and a multi-row VALUES list is a new
    statement for each batch size.
    """
    present = [u for u in upserts if u[3]]
    if not present:
        return
    if dialect_name(session) == "postgresql":
        stmt = _unnest_upserts(tuple((table, tuple(rows[0]), key, summed) for table, key, summed, rows in present))
        await session.execute(stmt, {f"{table.name}_{c}": [r[c] for r in rows]
                                     for table, _key, _summed, rows in present for c in rows[0]})
        return
    insert = insert_for(session)
    for table, key, summed, rows in present:
        lite = insert(table)
        await session.execute(lite.on_conflict_do_update(
            index_elements=list(key), set_={c: table.c[c] + lite.excluded[c] for c in summed}), rows)


@functools.lru_cache(maxsize=32)
def _unnest_upserts(shapes: tuple[tuple[Table, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]) -> Executable:
    """add_all's PostgreSQL statement for tables of these (table, columns, key, summed), built once (building
    it cost a tenth of a poll). Parameters are named table_column."""
    ctes = []
    for table, columns, key, summed in shapes:
        source = func.unnest(*[bindparam(f"{table.name}_{c}", type_=ARRAY(table.c[c].type)) for c in columns]) \
            .table_valued(*columns).render_derived()
        pg = pg_insert(table).from_select(list(columns), select(*[source.c[c] for c in columns]))
        upsert = pg.on_conflict_do_update(index_elements=list(key),
                                          set_={c: table.c[c] + pg.excluded[c] for c in summed})
        ctes.append(upsert.cte(f"add_{table.name}"))
    return select(literal_column("1")).add_cte(*ctes)


async def add_rating(session: AsyncSession, *, unit_id: str, channel: str, day: date, year: int,
                     s: float, sign: int = 1) -> None:
    """Add (sign 1) or take away (sign -1, a reassigned item) one rating of satisfaction s."""
    await add_ratings(session, [{"unit_id": unit_id, "channel": channel, "day": day, "year": year,
                                 "n": sign, "sum_s": sign * s, "sum_s2": sign * s * s}])


async def add_late(session: AsyncSession, *, year: int, unit_id: str, kind: str, n: int = 1) -> None:
    insert = insert_for(session)
    stmt = insert(late_after_final).values(year=year, unit_id=unit_id, kind=kind, n=n)
    stmt = stmt.on_conflict_do_update(index_elements=["year", "unit_id", "kind"],
                                      set_={"n": late_after_final.c.n + stmt.excluded.n})
    await session.execute(stmt)


async def define_survey(session: AsyncSession, *, survey_id: str, year: int,
                        strata: Mapping[str, int]) -> None:
    insert = insert_for(session)
    await session.execute(insert(surveys).values(survey_id=survey_id, year=year).on_conflict_do_nothing())
    for stratum, population in strata.items():
        stmt = insert(survey_strata).values(survey_id=survey_id, stratum=stratum, year=year,
                                            population=population, respondents=0)
        await session.execute(stmt.on_conflict_do_update(index_elements=["survey_id", "stratum"],
                                                         set_={"population": population}))


async def count_respondent(session: AsyncSession, *, survey_id: str, stratum: str) -> bool:
    """n_h += 1; False when the survey or its stratum is unknown."""
    result = await session.execute(
        update(survey_strata).where(survey_strata.c.survey_id == survey_id, survey_strata.c.stratum == stratum)
        .values(respondents=survey_strata.c.respondents + 1))
    return bool(getattr(result, "rowcount", 0))


async def add_survey_cells(session: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> None:
    values = list(rows)
    if not values:
        return
    await add_to(session, survey_cells, ["year", "unit_id", "stratum"], ["n", "sum_s", "sum_s2"],
                 [dict(r) for r in values])


async def put_target(session: AsyncSession, row: Mapping[str, Any]) -> None:
    insert = insert_for(session)
    stmt = insert(targets).values(**row)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["target_id"], set_={k: v for k, v in row.items() if k != "target_id"}))


async def put_target_value(session: AsyncSession, *, target_id: str, day: date, year: int, value: float) -> None:
    insert = insert_for(session)
    stmt = insert(target_values).values(target_id=target_id, date=day, year=year, value=value)
    await session.execute(stmt.on_conflict_do_update(index_elements=["target_id", "date"], set_={"value": value}))


async def record_new_events(session: AsyncSession, consumer: str, ids: list[str]) -> set[str]:
    """Record event ids as processed in one statement, as the live consumer does; the ones not recorded before."""
    return await record_new(session, processed_events, consumer, ids)


async def clear_read_model(session: AsyncSession, tables: Iterable[Any]) -> None:
    for table in tables:
        await session.execute(delete(table))


# --- read model reads (aggregates only) ---------------------------------------------------


async def channel_sums(session: AsyncSession, year: int) -> dict[str, dict[str, tuple[int, float, float]]]:
    """Per unit and channel, the year's (n, sum s, sum s^2), from the yearly sums."""
    c = channel_years.c
    rows = await session.execute(select(c.unit_id, c.channel, c.n, c.sum_s, c.sum_s2).where(c.year == year))
    out: dict[str, dict[str, tuple[int, float, float]]] = {}
    for unit_id, channel, n, sum_s, sum_s2 in rows:
        if n:
            out.setdefault(unit_id, {})[channel] = (int(n), float(sum_s), float(sum_s2))
    return out


async def survey_strata_of(session: AsyncSession, year: int) -> dict[str, tuple[int, int]]:
    s = survey_strata.c
    rows = await session.execute(select(s.stratum, s.population, s.respondents).where(s.year == year))
    return {str(h): (int(pop), int(n)) for h, pop, n in rows}


async def survey_cells_of(session: AsyncSession, year: int) -> dict[str, dict[str, tuple[int, float, float]]]:
    c = survey_cells.c
    rows = await session.execute(select(c.unit_id, c.stratum, c.n, c.sum_s, c.sum_s2).where(c.year == year))
    out: dict[str, dict[str, tuple[int, float, float]]] = {}
    for unit_id, stratum, n, sum_s, sum_s2 in rows:
        out.setdefault(unit_id, {})[stratum] = (int(n), float(sum_s), float(sum_s2))
    return out


async def targets_of(session: AsyncSession, year: int, as_of: date) -> list[dict[str, Any]]:
    """Approved, not withdrawn targets of the year, each with the value of its latest report up to as_of."""
    t, v = targets.c, target_values.c
    latest = (select(v.target_id, func.max(v.date).label("day")).where(v.year == year, v.date <= as_of)
              .group_by(v.target_id).subquery())
    rows = await session.execute(
        select(t.target_id, t.unit_id, t.code, t.kind, t.direction, t.baseline, t.target, t.weight, v.value)
        .select_from(targets.outerjoin(latest, latest.c.target_id == t.target_id)
                     .outerjoin(target_values, (v.target_id == latest.c.target_id) & (v.date == latest.c.day)))
        .where(t.year == year, t.approved.is_(True), t.withdrawn.is_(False)))
    return [dict(r) for r in rows.mappings()]


async def late_counts(session: AsyncSession, year: int) -> dict[str, dict[str, int]]:
    c = late_after_final.c
    rows = await session.execute(select(c.unit_id, c.kind, c.n).where(c.year == year))
    out: dict[str, dict[str, int]] = {}
    for unit_id, kind, n in rows:
        out.setdefault(unit_id, {})[kind] = int(n)
    return out


# --- the commission's inputs --------------------------------------------------------------


async def config_body(session: AsyncSession, year: int) -> dict[str, Any] | None:
    body = (await session.execute(select(configs.c.body).where(configs.c.year == year))).scalar()
    return dict(body) if body else None


async def put_config(session: AsyncSession, year: int, body: Mapping[str, Any]) -> None:
    insert = insert_for(session)
    stmt = insert(configs).values(year=year, body=dict(body))
    await session.execute(stmt.on_conflict_do_update(index_elements=["year"], set_={"body": dict(body)}))


async def put_grade(session: AsyncSession, *, unit_id: str, year: int, leader: str, grade: float,
                    at: datetime) -> None:
    insert = insert_for(session)
    stmt = insert(leader_grades).values(unit_id=unit_id, year=year, leader=leader, grade=grade, at=at)
    await session.execute(stmt.on_conflict_do_update(index_elements=["unit_id", "year", "leader"],
                                                     set_={"grade": grade, "at": at}))


async def grades_of(session: AsyncSession, year: int) -> dict[str, list[float]]:
    g = leader_grades.c
    rows = await session.execute(select(g.unit_id, g.grade).where(g.year == year).order_by(g.unit_id, g.leader))
    out: dict[str, list[float]] = {}
    for unit_id, grade in rows:
        out.setdefault(unit_id, []).append(float(grade))
    return out


async def add_project(session: AsyncSession, **row: Any) -> None:
    await session.execute(projects.insert().values(**row))


async def project(session: AsyncSession, project_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(projects).where(projects.c.project_id == project_id))).mappings().first()
    return dict(row) if row else None


async def put_assessment(session: AsyncSession, *, project_id: str, assessor: str, points: float,
                         at: datetime) -> None:
    insert = insert_for(session)
    stmt = insert(assessments).values(project_id=project_id, assessor=assessor, points=points, at=at)
    await session.execute(stmt.on_conflict_do_update(index_elements=["project_id", "assessor"],
                                                     set_={"points": points, "at": at}))


async def projects_of(session: AsyncSession, year: int) -> dict[str, dict[str, list[float]]]:
    """Per unit, per project, its assessments' points (a project without any has an empty list)."""
    p, a = projects.c, assessments.c
    rows = await session.execute(
        select(p.unit_id, p.project_id, a.points)
        .select_from(projects.outerjoin(assessments, a.project_id == p.project_id))
        .where(p.year == year).order_by(p.project_id, a.assessor))
    out: dict[str, dict[str, list[float]]] = {}
    for unit_id, project_id, points in rows:
        marks = out.setdefault(unit_id, {}).setdefault(project_id, [])
        if points is not None:
            marks.append(float(points))
    return out


async def add_adjustment(session: AsyncSession, **row: Any) -> None:
    await session.execute(adjustments.insert().values(**row))


async def adjustments_of(session: AsyncSession, year: int) -> dict[str, list[tuple[float, str]]]:
    c = adjustments.c
    rows = await session.execute(select(c.unit_id, c.points, c.reason).where(c.year == year)
                                 .order_by(c.at, c.adjustment_id))
    out: dict[str, list[tuple[float, str]]] = {}
    for unit_id, points, reason in rows:
        out.setdefault(unit_id, []).append((float(points), str(reason)))
    return out


async def add_audit(session: AsyncSession, *, at: datetime, actor_role: str, actor: str | None, action: str,
                    year: int | None, subject: str | None, details: Mapping[str, Any]) -> None:
    await session.execute(audit.insert().values(at=at, actor_role=actor_role, actor=actor, action=action,
                                                year=year, subject=subject, details=dict(details)))


async def audit_of(session: AsyncSession, year: int | None, limit: int, after: int) -> list[dict[str, Any]]:
    c = audit.c
    query = select(audit).where(c.id > after).order_by(c.id).limit(limit)
    if year is not None:
        query = query.where(c.year == year)
    return [dict(r) for r in (await session.execute(query)).mappings()]


async def add_objection(session: AsyncSession, **row: Any) -> None:
    await session.execute(objections.insert().values(**row))


async def objection(session: AsyncSession, objection_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(objections).where(objections.c.objection_id == objection_id))
           ).mappings().first()
    return dict(row) if row else None


async def answer_objection(session: AsyncSession, objection_id: str, *, answer: str, upheld: bool,
                           at: datetime) -> None:
    await session.execute(update(objections).where(objections.c.objection_id == objection_id)
                          .values(answer=answer, upheld=upheld, answered_at=at))


async def open_objections(session: AsyncSession, year: int) -> int:
    c = objections.c
    return int((await session.execute(select(func.count()).where(c.year == year, c.answered_at.is_(None))
                                      )).scalar_one())


# --- published snapshots and emitted state ------------------------------------------------


async def put_published(session: AsyncSession, year: int, kind: str, cards: Mapping[str, Mapping[str, Any]]) -> None:
    await session.execute(delete(published).where(published.c.year == year, published.c.kind == kind))
    if cards:
        await session.execute(published.insert(), [{"year": year, "kind": kind, "unit_id": u, "body": dict(b)}
                                                    for u, b in cards.items()])


async def published_of(session: AsyncSession, year: int, kind: str) -> dict[str, dict[str, Any]]:
    c = published.c
    rows = await session.execute(select(c.unit_id, c.body).where(c.year == year, c.kind == kind))
    return {str(u): dict(b) for u, b in rows}


async def put_scorecards(session: AsyncSession, year: int, cards: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the year's precomputed scorecards (every unit's, from one pass)."""
    await session.execute(delete(scorecards).where(scorecards.c.year == year))
    if cards:
        await session.execute(scorecards.insert(), [
            {"year": year, "unit_id": u, "group_id": c["group"], "rank": c["rank"], "body": dict(c)}
            for u, c in cards.items()])


async def scorecards_of(session: AsyncSession, year: int, *, unit_id: str | None = None,
                        group: str | None = None) -> dict[str, dict[str, Any]]:
    """The year's precomputed scorecards: all, one unit's or one group's."""
    c = scorecards.c
    query = select(c.unit_id, c.body).where(c.year == year)
    if unit_id is not None:
        query = query.where(c.unit_id == unit_id)
    if group is not None:
        query = query.where(c.group_id == group)
    return {str(u): dict(b) for u, b in await session.execute(query)}


async def scorecard_units(session: AsyncSession, year: int) -> dict[str, str]:
    """The units (and their groups) the year's stored scorecards were computed for."""
    c = scorecards.c
    rows = await session.execute(select(c.unit_id, c.group_id).where(c.year == year))
    return {str(u): str(g) for u, g in rows}


async def emitted_of(session: AsyncSession, year: int) -> dict[str, tuple[float, dict[str, float], datetime]]:
    c = emitted.c
    rows = await session.execute(select(c.unit_id, c.total, c.components, c.at).where(c.year == year))
    return {str(u): (float(t), dict(comp), at) for u, t, comp, at in rows}


async def put_emitted(session: AsyncSession, year: int, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = insert_for(session)
    stmt = insert(emitted)
    stmt = stmt.on_conflict_do_update(index_elements=["year", "unit_id"], set_={
        "total": stmt.excluded.total, "components": stmt.excluded.components, "at": stmt.excluded.at})
    await session.execute(stmt, [{"year": year, **r} for r in rows])


# --- the pages' read model -------------------------------------------------------------------


async def add_complaints(session: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add per (unit, category, week) deltas of all items and negative ones (negative for a moved item)."""
    await add_all(session, [complaint_upsert(rows)])


def complaint_upsert(rows: Iterable[Mapping[str, Any]]) -> Upsert:
    return complaint_weeks, ("unit_id", "category_id", "week", "year"), ("total", "negative"), [dict(r) for r in rows]


async def add_months(session: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> None:
    await add_all(session, [month_upsert(rows)])


def month_upsert(rows: Iterable[Mapping[str, Any]]) -> Upsert:
    return feedback_months, ("year", "month", "channel"), ("n",), [dict(r) for r in rows]


async def put_target_point(session: AsyncSession, row: Mapping[str, Any]) -> None:
    insert = insert_for(session)
    stmt = insert(target_points).values(**row)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["target_id", "date"], set_={k: v for k, v in row.items() if k not in ("target_id", "date")}))


async def put_target_title(session: AsyncSession, *, target_id: str, title: str, public_commitment: bool) -> None:
    insert = insert_for(session)
    stmt = insert(target_titles).values(target_id=target_id, title=title, public_commitment=public_commitment)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["target_id"], set_={"title": title, "public_commitment": public_commitment}))


async def put_notice(session: AsyncSession, row: Mapping[str, Any]) -> None:
    """A notice as issued; a replayed notice.issued keeps the state its later events gave it."""
    insert = insert_for(session)
    await session.execute(insert(notice_views).values(**row).on_conflict_do_nothing())


async def notice_view(session: AsyncSession, notice_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(notice_views).where(notice_views.c.notice_id == notice_id))
           ).mappings().first()
    return dict(row) if row else None


async def update_notice(session: AsyncSession, notice_id: str, **values: Any) -> None:
    await session.execute(update(notice_views).where(notice_views.c.notice_id == notice_id).values(**values))


async def notices_of(session: AsyncSession, *, year: int | None = None, unit_id: str | None = None,
                     open_only: bool = False) -> list[dict[str, Any]]:
    c = notice_views.c
    query = select(notice_views).order_by(c.issued_at.desc(), c.notice_id)
    if year is not None:
        query = query.where(c.year == year)
    if unit_id is not None:
        query = query.where(c.unit_id == unit_id)
    if open_only:
        query = query.where(c.status != "verified")
    return [dict(r) for r in (await session.execute(query)).mappings()]


async def weekly_satisfaction(session: AsyncSession, *, unit_id: str, year: int) -> list[tuple[date, str, int, float]]:
    """Per day and channel of the unit's year: (day, channel, n, sum s); the caller folds days into weeks."""
    c = channel_days.c
    rows = await session.execute(select(c.day, c.channel, c.n, c.sum_s)
                                 .where(c.unit_id == unit_id, c.year == year).order_by(c.day))
    return [(d, str(ch), int(n), float(s)) for d, ch, n, s in rows]


async def complaint_cells(session: AsyncSession, *, year: int, unit_id: str | None = None
                          ) -> list[tuple[str, str, date, int, int]]:
    """(unit, category, week, total, negative) of the year, optionally for one unit."""
    c = complaint_weeks.c
    query = select(c.unit_id, c.category_id, c.week, c.total, c.negative).where(c.year == year)
    if unit_id is not None:
        query = query.where(c.unit_id == unit_id)
    rows = await session.execute(query.order_by(c.week))
    return [(str(u), str(k), w, int(t), int(n)) for u, k, w, t, n in rows]


async def complaint_weeks_of(session: AsyncSession, *, unit_id: str, category_id: str
                             ) -> list[tuple[date, int, int]]:
    """Every week of one cell, across years (a notice's effect spans the turn of a year)."""
    c = complaint_weeks.c
    rows = await session.execute(select(c.week, c.total, c.negative)
                                 .where(c.unit_id == unit_id, c.category_id == category_id).order_by(c.week))
    return [(w, int(t), int(n)) for w, t, n in rows]


async def months_of(session: AsyncSession, year: int) -> list[tuple[int, str, int]]:
    c = feedback_months.c
    rows = await session.execute(select(c.month, c.channel, c.n).where(c.year == year).order_by(c.month))
    return [(int(m), str(ch), int(n)) for m, ch, n in rows]


async def target_series(session: AsyncSession, *, unit_id: str, year: int) -> list[dict[str, Any]]:
    """The unit's targets of the year (approved, not withdrawn) with their titles and every progress point."""
    t, tt, p = targets.c, target_titles.c, target_points.c
    heads = await session.execute(
        select(t.target_id, t.code, t.kind, t.direction, t.baseline, t.target, t.weight, tt.title)
        .select_from(targets.outerjoin(target_titles, tt.target_id == t.target_id))
        .where(t.unit_id == unit_id, t.year == year, t.approved.is_(True), t.withdrawn.is_(False))
        .order_by(t.code, t.target_id))
    out = {r["target_id"]: {**dict(r), "points": []} for r in heads.mappings()}
    if out:
        rows = await session.execute(select(target_points).where(p.target_id.in_(list(out))).order_by(p.date))
        for r in rows.mappings():
            out[r["target_id"]]["points"].append(dict(r))
    return list(out.values())


async def page_stamp(session: AsyncSession) -> str:
    """Changes whenever anything a page shows may have changed (the live pages poll it).

    Both the applied version and the one the stored scorecards were computed from: a page fetched
    between an event and the recompute that includes it shows the older scorecards, and must be
    fetched again when the recompute lands.
    """
    version, computed = (await session.execute(select(func.coalesce(func.sum(years.c.version), 0),
                                                      func.coalesce(func.sum(years.c.computed_version), 0)))).one()
    notices = (await session.execute(select(func.coalesce(func.sum(notice_views.c.changes), 0)))).scalar_one()
    weeks = (await session.execute(select(func.coalesce(func.sum(complaint_weeks.c.total), 0)))).scalar_one()
    return f"{int(version)}.{int(computed)}.{int(notices)}.{int(weeks)}"


async def published_years(session: AsyncSession) -> list[tuple[int, str]]:
    """Years whose results are public (a draft or final), newest first."""
    rows = await session.execute(select(years.c.year, years.c.status).where(years.c.status.in_(("draft", "final")))
                                 .order_by(years.c.year.desc()))
    return [(int(y), str(s)) for y, s in rows]
