"""target-tracker's use cases: no HTTP, no SQL."""

from __future__ import annotations

import asyncio
import bisect
import csv
import io
import logging
import operator
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from target_tracker import cadence, forecast, repository
from target_tracker.schemas import BatchReportIn, ProgressIn, TargetIn, TargetPatch
from target_tracker.settings import TargetsSettings
from yardstick import events
from yardstick.auth import Principal, ensure_unit
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime

log = logging.getLogger(__name__)

# A target or report row as the database returns it (RowMapping) or as a plain dict.
Row = Mapping[Any, Any]

READERS = ("leader",)
# The fields a target.defined / target.changed event carries (scoring recomputes r from them).
EDITABLE = ("title", "unit_of_measure", "direction", "baseline", "target", "weight", "cadence", "due",
            "valid_range", "public_commitment", "milestones")


def today_in(runtime: ServiceRuntime, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(runtime.city.timezone).date()


def actor(principal: Principal) -> str:
    return principal.subject or principal.token_id


# validation -----------------------------------------------------------------------------


def target_problems(fields: Row) -> list[str]:
    """The method's validity rules (scoring-method.md) and the trajectory's: every problem, not just the first."""
    problems = []
    kind, baseline, target, direction = fields["kind"], fields["baseline"], fields["target"], fields["direction"]
    if kind == "milestone":
        if (baseline, target) != (0, 1):
            problems.append("a milestone goes from baseline 0 (not done) to target 1 (done)")
        if direction != "increase":
            problems.append("a milestone's direction is increase (from 0 to 1)")
    elif target == baseline:
        problems.append("target equals baseline: attainment would be undefined")
    elif (target > baseline) != (direction == "increase"):
        problems.append(f"direction {direction} disagrees with target - baseline = {target - baseline:g}")
    valid_range = fields.get("valid_range")
    if valid_range is not None and valid_range[0] >= valid_range[1]:
        problems.append("valid_range must be [min, max] with min < max")
    due = fields.get("due")
    if due is not None and due.year != fields["year"]:
        problems.append(f"due {due.isoformat()} is not in {fields['year']}")
    if fields.get("milestones") is not None and kind == "milestone":
        problems.append("monthly milestones are a numeric target's trajectory")
    return problems


def _row_for(body: TargetIn, principal: Principal, today: date) -> dict[str, Any]:
    row = body.model_dump()
    row["valid_range"] = list(body.valid_range) if body.valid_range else None
    approved = principal.is_commission()
    row.update(id=uuid.uuid4().hex, approved=approved, approved_on=today if approved else None,
               created_by=actor(principal), created_at=datetime.now(UTC))
    # No status announced yet (target.defined carries none): the first comes with the first report, or
    # from the sweep once that report is overdue (_to_announce).
    row["status"] = None
    return row


def _check_new(runtime: ServiceRuntime, body: TargetIn) -> list[str]:
    problems = [] if body.unit_id in runtime.city.unit_ids else [f"unit {body.unit_id!r} is not in the city profile"]
    return problems + target_problems(body.model_dump())


# events -----------------------------------------------------------------------------------


def _fields(row: Row) -> dict[str, Any]:
    return dict(target_id=row["id"], unit_id=row["unit_id"], year=row["year"], code=row["code"],
                title=row["title"], kind=row["kind"], direction=row["direction"], baseline=row["baseline"],
                target=row["target"], weight=row["weight"], cadence=row["cadence"], due=row["due"],
                approved=row["approved"], withdrawn=bool(row.get("withdrawn")),
                public_commitment=row["public_commitment"])


def _defined(runtime: ServiceRuntime, row: Row) -> events.Envelope:
    return events.Envelope.of(events.TargetDefined(**_fields(row)), source=runtime.service, key=row["unit_id"])


def _changed(runtime: ServiceRuntime, row: Row, changes: list[str]) -> events.Envelope:
    return events.Envelope.of(events.TargetChanged(**_fields(row), changes=changes), source=runtime.service,
                              key=row["unit_id"])


def _audit(target_id: str, principal: Principal, action: str, **extra: Any) -> dict[str, Any]:
    return {"target_id": target_id, "at": datetime.now(UTC), "action": action, "actor_role": principal.role,
            "actor": actor(principal), **extra}


# definition and review --------------------------------------------------------------------


async def define(*, runtime: ServiceRuntime, principal: Principal, body: TargetIn) -> dict[str, Any]:
    if body.unit_id in runtime.city.unit_ids and not principal.covers_unit(body.unit_id):
        raise ApiError(403, f"this token does not cover unit {body.unit_id}")
    problems = _check_new(runtime, body)
    if problems:
        raise ApiError(422, "; ".join(problems), details=problems)
    row = _row_for(body, principal, today_in(runtime))
    try:
        async with runtime.transaction() as session:
            await repository.insert_targets(session, [row])
            await repository.add_audit(session, [_audit(row["id"], principal, "defined" if row["approved"]
                                                        else "proposed")])
            if row["approved"]:
                await runtime.emit(session, [_defined(runtime, row)])
    except IntegrityError as exc:
        if not _duplicate(exc):
            raise  # another constraint: a bug, not the client's conflict
        raise ApiError(409, f"unit {body.unit_id} already has a target {body.code!r} in {body.year}") from exc
    return await get(runtime=runtime, settings=_settings(runtime), principal=principal, target_id=row["id"])


def _duplicate(exc: IntegrityError) -> bool:
    """Whether a unique key refused the row: (unit, year, code) is taken."""
    sqlstate = getattr(exc.orig, "sqlstate", None)  # PostgreSQL (asyncpg)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_UNIQUE"


def _settings(runtime: ServiceRuntime) -> TargetsSettings:
    settings = runtime.settings
    assert isinstance(settings, TargetsSettings)
    return settings


def _state(row: Row) -> str:
    if row["withdrawn"]:
        return "withdrawn"
    if row["approved"]:
        return "approved"
    return "rejected" if row["rejected"] else "proposed"


async def _load(session: Any, target_id: str, *, for_update: bool = False) -> Row:
    row = await repository.get_target(session, target_id, for_update=for_update)
    if row is None:
        raise ApiError(404, f"no target {target_id}")
    return row


async def review(*, runtime: ServiceRuntime, principal: Principal, target_id: str, decision: str,
                 reason: str | None) -> dict[str, Any]:
    """approve, reject or withdraw (commission only; the route checks the role)."""
    async with runtime.transaction() as session:
        row = dict(await _load(session, target_id, for_update=True))
        state = _state(row)
        if decision == "approve":
            if state not in ("proposed", "rejected"):
                raise ApiError(409, f"target {target_id} is {state}; only a proposal can be approved")
            # The clock of the first report starts now: nothing could be reported on a proposal.
            approval = {"approved": True, "rejected": False, "approved_on": today_in(runtime)}
            row.update(approval)
            await repository.update_target(session, target_id, approval)
            await runtime.emit(session, [_defined(runtime, row)])
        elif decision == "reject":
            if state != "proposed":
                raise ApiError(409, f"target {target_id} is {state}; only a proposal can be rejected")
            await repository.update_target(session, target_id, {"rejected": True})
        else:
            if state == "withdrawn":
                raise ApiError(409, f"target {target_id} is already withdrawn")
            row["withdrawn"] = True
            await repository.update_target(session, target_id, {"withdrawn": True})
            if row["approved"]:
                await runtime.emit(session, [_changed(runtime, row, ["withdrawn"])])
        action = {"approve": "approved", "reject": "rejected", "withdraw": "withdrawn"}[decision]
        await repository.add_audit(session, [_audit(target_id, principal, action, reason=reason)])
    return await get(runtime=runtime, settings=_settings(runtime), principal=principal, target_id=target_id)


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


async def change(*, runtime: ServiceRuntime, settings: TargetsSettings, principal: Principal, target_id: str,
                 body: TargetPatch, now: datetime | None = None) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)
    reason = given.pop("reason", None)
    async with runtime.transaction() as session:
        row = dict(await _load(session, target_id, for_update=True))
        if row["withdrawn"]:
            raise ApiError(409, f"target {target_id} is withdrawn")
        new = {k: (list(v) if k == "valid_range" and v is not None else v) for k, v in given.items()}
        diff = {k: [_jsonable(row[k]), _jsonable(v)] for k, v in new.items() if row[k] != v}
        if diff:
            merged = {**row, **new}
            problems = target_problems(merged)
            if problems:
                raise ApiError(422, "; ".join(problems), details=problems)
            values = {k: new[k] for k in diff}
            previous_status = row["status"]
            row.update(values)
            today = today_in(runtime, now)
            if {"baseline", "target", "direction", "cadence", "milestones", "due"} & set(diff):
                series = await repository.year_series(session, [target_id])
                values.update(await _judge(_Tracked.of(row, series[target_id]), settings, today, refit=False))
                row.update(values)
            await repository.update_target(session, target_id, values)
            await repository.add_audit(session, [_audit(target_id, principal, "changed", reason=reason,
                                                        changes=diff)])
            if row["approved"]:
                envelopes: list[events.Envelope | events.Prepared] = [_changed(runtime, row, sorted(diff))]
                if row["status"] != previous_status:
                    envelopes.append(_status_changed(runtime, row, previous_status, row["status"], today))
                await runtime.emit(session, envelopes)
    return await get(runtime=runtime, settings=settings, principal=principal, target_id=target_id)


# CSV import -------------------------------------------------------------------------------

CSV_COLUMNS = ("unit_id", "code", "title", "unit_of_measure", "direction", "kind", "baseline", "target",
               "weight", "cadence", "due", "valid_min", "valid_max", "public_commitment", "milestones")
REQUIRED_COLUMNS = ("unit_id", "code", "title", "unit_of_measure", "direction", "baseline", "target", "weight")


def _csv_fields(raw: Mapping[str, str | None], year: int) -> dict[str, Any]:
    def cell(name: str) -> str:
        return (raw.get(name) or "").strip()

    fields: dict[str, Any] = {k: cell(k) for k in ("unit_id", "code", "title", "unit_of_measure", "direction",
                                                   "baseline", "target", "weight")}
    fields["year"] = int(cell("year")) if cell("year") else year
    fields["kind"] = cell("kind") or "numeric"
    fields["cadence"] = cell("cadence") or "daily"
    if cell("due"):
        fields["due"] = cell("due")
    if cell("valid_min") or cell("valid_max"):
        fields["valid_range"] = [cell("valid_min"), cell("valid_max")]
    flag = cell("public_commitment").lower()
    if flag not in ("", "true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"public_commitment {flag!r} is not true/false")
    fields["public_commitment"] = flag in ("true", "1", "yes")
    if cell("milestones"):
        fields["milestones"] = [m.strip() for m in cell("milestones").split(";")]
    return fields


def _unreadable(exc: csv.Error) -> str:
    # Mostly a cell over csv's field size limit (131,072 characters; the body may hold 1 MiB).
    return f"the CSV cannot be read here ({exc}): no cell may be that long; fix the line and send the file again"


def parse_import(text: str, *, year: int, unit_ids: frozenset[str],
                 existing: set[tuple[str, str]]) -> tuple[list[TargetIn], list[dict[str, Any]]]:
    """Every row of a year's CSV, validated: the targets, or every bad row with its line number."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        columns = reader.fieldnames or []
    except csv.Error as exc:
        return [], [{"row": 1, "error": _unreadable(exc)}]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        return [], [{"row": 1, "error": f"missing column(s): {', '.join(missing)}"}]
    unknown = [c for c in columns if c not in (*CSV_COLUMNS, "year")]
    if unknown:
        return [], [{"row": 1, "error": f"unknown column(s): {', '.join(unknown)}"}]
    bodies: list[TargetIn] = []
    errors: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    rows = iter(reader)
    while True:
        try:
            raw = next(rows, None)
        except csv.Error as exc:
            # The reader is lost past a line it could not read: that line is the last one reported. (The
            # DictReader counts only the lines of rows it returned; its csv reader counts every line read.)
            errors.append({"row": reader.reader.line_num,
                           "error": _unreadable(exc) + " (the lines after it were not read)"})
            break
        if raw is None:
            break
        line = reader.line_num
        if None in raw:
            errors.append({"row": line, "error": "more cells than columns"})
            continue
        try:
            body = TargetIn.model_validate(_csv_fields(raw, year))
        except ValidationError as exc:
            errors.append({"row": line, "error": "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))})
            continue
        except ValueError as exc:
            errors.append({"row": line, "error": str(exc)})
            continue
        problems = target_problems(body.model_dump())
        if body.year != year:
            problems.append(f"year {body.year} is not the year imported ({year})")
        if body.unit_id not in unit_ids:
            problems.append(f"unit {body.unit_id!r} is not in the city profile")
        key = (body.unit_id, body.code)
        if key in existing:
            problems.append(f"unit {body.unit_id} already has a target {body.code!r} in {year}")
        elif key in seen:
            problems.append(f"target {body.code!r} of {body.unit_id} repeats row {seen[key]}")
        seen.setdefault(key, line)
        if problems:
            errors.append({"row": line, "error": "; ".join(problems)})
        else:
            bodies.append(body)
    if not bodies and not errors:
        errors.append({"row": 1, "error": "the file has no targets"})
    return bodies, errors


async def import_year(*, runtime: ServiceRuntime, principal: Principal, year: int, text: str) -> dict[str, Any]:
    async with runtime.transaction() as session:
        existing = await repository.existing_codes(session, year)
        bodies, errors = parse_import(text, year=year, unit_ids=runtime.city.unit_ids, existing=existing)
        if errors:
            raise ApiError(422, f"{len(errors)} bad row(s); nothing was imported", details=errors)
        today = today_in(runtime)
        rows = [_row_for(body, principal, today) for body in bodies]
        await repository.insert_targets(session, rows)
        await repository.add_audit(session, [_audit(r["id"], principal, "defined", reason="import")
                                             for r in rows])
        await runtime.emit(session, [_defined(runtime, r) for r in rows])
    return {"year": year, "imported": len(rows), "ids": [r["id"] for r in rows]}


# progress ---------------------------------------------------------------------------------


def spec_of(row: Row) -> forecast.Spec:
    milestones = row.get("milestones")
    return forecast.Spec(kind=row["kind"], direction=row["direction"], baseline=row["baseline"],
                         target=row["target"], year=row["year"], cadence=row["cadence"], due=row["due"],
                         milestones=tuple(milestones) if milestones else None)


def _cached_projection(row: Row) -> forecast.Projection:
    return forecast.Projection(row["projection_value"], row["projection_low"], row["projection_high"],
                               row["projection_method"] or "none")


def live_status(row: Row, settings: TargetsSettings, today: date) -> str:
    """The status as of today from the state kept after the latest report (cheap: no series read)."""
    latest = (row["latest_date"], row["latest_value"]) if row["latest_date"] is not None else None
    return forecast.status(spec_of(row), latest=latest, projection=_cached_projection(row), today=today,
                           stale_days=cadence.stale_days(row["cadence"], settings.stale_days),
                           thresholds=settings.thresholds_for(row["year"]))


def _to_announce(row: Row, status: str, settings: TargetsSettings, today: date, *, reported: bool) -> str | None:
    """The status to announce (and keep as announced): `status`, or None for a target never reported
    and never announced until its first report is overdue (cadence.first_report_overdue).

    Such a target is no_data from the start, but announcing that at once would raise a notice
    (notices.md, target-off-track) on every target the day it is defined. Once the first report is
    overdue, the unit has been as silent as a reported target that went stale, and the sweep says so.
    """
    if reported or row["status"] is not None:
        return status
    overdue = cadence.first_report_overdue(
        kind=row["kind"], cadence=row["cadence"], year=row["year"], due=row["due"], approved_on=row["approved_on"],
        today=today, stale_days=cadence.stale_days(row["cadence"], settings.stale_days))
    return status if overdue else None


def _holt_params(row: Row) -> forecast.HoltParams | None:
    if row["holt_alpha"] is None:
        return None
    return forecast.HoltParams(row["holt_alpha"], row["holt_beta"], row["holt_phi"])


_DATE = operator.itemgetter(0)


@dataclass
class _Tracked:
    """A target within one transaction: its row as it becomes, and its reports by date (one year at most)."""

    row: dict[str, Any]
    points: list[tuple[date, float]]  # (date, the value reported for it), sorted by date, one per date
    # Holt's parameters were estimated in this transaction: a batch fits each target at most once.
    fitted: bool = False
    touched: bool = False

    @classmethod
    def of(cls, row: Row, series: Sequence[tuple[date, float]]) -> _Tracked:
        return cls(row=dict(row), points=[(d, v) for d, v in series])

    def _at(self, on: date) -> int:
        return bisect.bisect_left(self.points, on, key=_DATE)

    def value_on(self, on: date) -> float | None:
        i = self._at(on)
        return self.points[i][1] if i < len(self.points) and self.points[i][0] == on else None

    def put(self, on: date, value: float) -> None:
        i = self._at(on)
        if i < len(self.points) and self.points[i][0] == on:
            self.points[i] = (on, value)
        else:
            self.points.insert(i, (on, value))

    def recent(self) -> list[tuple[date, float]]:
        """The reports the projection looks at (a slice: judged after every report of a batch)."""
        return self.points[-forecast.HOLT_WINDOW:]


async def _judge(tracked: _Tracked, settings: TargetsSettings, today: date, *, refit: bool) -> dict[str, Any]:
    """The cached state of a target from its reports: latest, attainment, projection, status (and Holt's fit)."""
    row = tracked.row
    spec = spec_of(row)
    points = tracked.recent()
    values: dict[str, Any] = {}
    if spec.kind == "numeric" and len(points) >= forecast.HOLT_MIN_REPORTS and not tracked.fitted:
        count = row["report_count"]
        if refit or row["holt_fitted_at"] is None or count - row["holt_fitted_at"] >= settings.holt_refit_every:
            # The fit takes tens of milliseconds: off the event loop, amortised over holt_refit_every reports
            # (and done once per target per batch: later items of the batch use the same parameters).
            params = await asyncio.to_thread(forecast.fit_holt, [v for _, v in points])
            values.update(holt_alpha=params.alpha, holt_beta=params.beta, holt_phi=params.phi,
                          holt_fitted_at=count)
            tracked.fitted = True
    projection = forecast.project(spec, points, _holt_params({**row, **values}))
    latest = points[-1] if points else None
    values.update(
        latest_date=latest[0] if latest else None, latest_value=latest[1] if latest else None,
        attainment=forecast.attainment(spec, latest[1] if latest else None),
        projection_value=projection.value, projection_low=projection.low, projection_high=projection.high,
        projection_method=projection.method,
        status=_to_announce(row, forecast.status(spec, latest=latest, projection=projection, today=today,
                                                 stale_days=cadence.stale_days(row["cadence"], settings.stale_days),
                                                 thresholds=settings.thresholds_for(row["year"])),
                            settings, today, reported=latest is not None))
    return values


# What the target row keeps after reports (written once per target per transaction).
STATE_COLUMNS = ("latest_date", "latest_value", "attainment", "status", "projection_value", "projection_low",
                 "projection_high", "projection_method", "holt_alpha", "holt_beta", "holt_phi", "holt_fitted_at",
                 "report_count")


@dataclass(frozen=True)
class ReportOutcome:
    target_id: str
    date: date
    value: float
    correction: bool
    late: bool
    attainment: float
    status: str
    projection: forecast.Projection


def _check_report(row: Row, body: ProgressIn, today: date) -> list[str]:
    problems = []
    if body.date > today:
        problems.append(f"date {body.date.isoformat()} is in the future (today is {today.isoformat()})")
    if body.date.year != row["year"]:
        problems.append(f"date {body.date.isoformat()} is not in the target's year {row['year']}")
    if row["kind"] == "milestone" and body.value not in (0, 1):
        problems.append("a milestone's value is 1 (done) or 0 (not done)")
    valid_range = row["valid_range"]
    if valid_range is not None and not valid_range[0] <= body.value <= valid_range[1]:
        problems.append(f"value {body.value:g} is outside the valid range [{valid_range[0]:g}, {valid_range[1]:g}]")
    return problems


class _Progress:
    """Reports taken in one transaction, one at a time in order; written together by flush().

    A report here is judged exactly as if it came alone after the ones before it: the same
    checks, the same audit row, the same target.progress (and target.status_changed) event with
    the status and projection right after it. Only the writes are shared: one insert per table
    and one update per target for the whole transaction.
    """

    def __init__(self, runtime: ServiceRuntime, settings: TargetsSettings, principal: Principal,
                 now: datetime) -> None:
        self.runtime, self.settings, self.principal, self.now = runtime, settings, principal, now
        self.today = today_in(runtime, now)
        self.tracked: dict[str, _Tracked] = {}
        self.writes: dict[tuple[str, date], dict[str, Any]] = {}
        self.audit: list[dict[str, Any]] = []
        self.envelopes: list[events.Prepared] = []
        self.time = events.ce_time(now)  # every event of the request has its time

    def track(self, row: Row, series: Sequence[tuple[date, float]]) -> _Tracked:
        tracked = self.tracked[row["id"]] = _Tracked.of(row, series)
        return tracked

    async def accept(self, tracked: _Tracked, body: ProgressIn) -> ReportOutcome:
        """Take one report, or raise the ApiError the single route answers (nothing is kept then)."""
        row, today = tracked.row, self.today
        target_id = row["id"]
        state = _state(row)
        if state != "approved":
            raise ApiError(409, f"target {target_id} is {state}; progress is reported on approved targets")
        problems = _check_report(row, body, today)
        if problems:
            raise ApiError(422, "; ".join(problems), details=problems)
        earlier = tracked.value_on(body.date)
        if earlier is not None and not body.reason:
            raise ApiError(409, f"a value for {body.date.isoformat()} was reported already; a correction "
                                "needs a \"reason\"")
        late = cadence.is_late(row["cadence"], body.date, today)
        fields = {"value": body.value, "note": body.note, "evidence_url": body.evidence_url, "late": late,
                  "reported_at": self.now}
        write = self.writes.get((target_id, body.date))
        if earlier is None:
            row["report_count"] += 1
            self.writes[(target_id, body.date)] = {"new": True, "target_id": target_id, "date": body.date,
                                                   **fields, "added": 0}
        elif write is None:
            self.writes[(target_id, body.date)] = {"new": False, "target_id": target_id, "date": body.date,
                                                   **fields, "added": 1}
        else:  # a date reported (or corrected) earlier in this transaction
            write.update(fields)
            write["added"] += 1
        tracked.put(body.date, body.value)
        tracked.touched = True
        self.audit.append(_audit(
            target_id, self.principal, "report" if earlier is None else "correction", date=body.date,
            value=body.value, previous_value=earlier, late=late, reason=body.reason, note=body.note,
            evidence_url=body.evidence_url))
        values = await _judge(tracked, self.settings, today, refit=earlier is not None)
        previous_status = row["status"]
        row.update(values)
        projection = forecast.Projection(values["projection_value"], values["projection_low"],
                                         values["projection_high"], values["projection_method"])
        self.envelopes.append(events.prepare(
            events.TargetProgress, source=self.runtime.service, key=row["unit_id"], time=self.time,
            target_id=target_id, unit_id=row["unit_id"], year=row["year"], date=body.date, value=body.value,
            correction=earlier is not None, late=late, attainment=values["attainment"], status=values["status"],
            projection={"value": projection.value, "low": projection.low, "high": projection.high}))
        if values["status"] != previous_status:
            self.envelopes.append(_status_changed(self.runtime, row, previous_status, values["status"], today,
                                                  time=self.time))
        return ReportOutcome(target_id=target_id, date=body.date, value=body.value, correction=earlier is not None,
                             late=late, attainment=values["attainment"], status=values["status"],
                             projection=projection)

    async def flush(self, session: Any) -> None:
        writes = list(self.writes.values())
        await repository.insert_reports(session, [
            {k: w[k] for k in ("target_id", "date", "value", "note", "evidence_url", "late", "reported_at")}
            | {"revisions": w["added"]} for w in writes if w["new"]])
        await repository.correct_reports(session, [w for w in writes if not w["new"]])
        await repository.add_audit(session, self.audit)
        await repository.update_targets(session, [{"id": t.row["id"], **{k: t.row[k] for k in STATE_COLUMNS}}
                                                  for t in self.tracked.values() if t.touched])
        await self.runtime.emit(session, self.envelopes)


async def report(*, runtime: ServiceRuntime, settings: TargetsSettings, principal: Principal, target_id: str,
                 body: ProgressIn, now: datetime | None = None) -> ReportOutcome:
    progress = _Progress(runtime, settings, principal, now or datetime.now(UTC))
    async with runtime.transaction() as session:
        row = await _load(session, target_id, for_update=True)
        ensure_unit(principal, row["unit_id"])
        series = await repository.year_series(session, [target_id])
        outcome = await progress.accept(progress.track(row, series[target_id]), body)
        await progress.flush(session)
    return outcome


# Items of a batch judged between two turns of the event loop (about 10-50 ms of work).
BATCH_YIELD_EVERY = 200


def _rejection(index: int, exc: ApiError) -> dict[str, Any]:
    return {"index": index, "error": {"code": exc.code, "message": exc.message}}


def _validation_message(exc: ValidationError) -> str:
    # The messages only, never the input: a note may hold anything.
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))


async def report_batch(*, runtime: ServiceRuntime, settings: TargetsSettings, principal: Principal, unit_id: str,
                       items: Sequence[Any], now: datetime | None = None) -> dict[str, Any]:
    """A unit's reports in one transaction, each accepted or rejected on its own (by its index)."""
    if unit_id not in runtime.city.unit_ids:
        raise ApiError(404, f"no unit {unit_id}")
    ensure_unit(principal, unit_id)
    rejected: list[dict[str, Any]] = []
    parsed: list[tuple[int, BatchReportIn]] = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            rejected.append(_rejection(index, ApiError(422, "a report must be an object")))
            continue
        try:
            parsed.append((index, BatchReportIn.model_validate(raw)))
        except ValidationError as exc:
            rejected.append(_rejection(index, ApiError(422, _validation_message(exc))))
    progress = _Progress(runtime, settings, principal, now or datetime.now(UTC))
    accepted: list[dict[str, Any]] = []
    async with runtime.transaction() as session:
        rows = await repository.lock_targets(session, [item.target_id for _, item in parsed], unit_id=unit_id)
        series = await repository.year_series(session, [r["id"] for r in rows])
        for row in rows:
            progress.track(row, series[row["id"]])
        for n, (index, item) in enumerate(parsed, start=1):
            if n % BATCH_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a batch is seconds of work: let other requests in between
            tracked = progress.tracked.get(item.target_id)
            try:
                if tracked is None:
                    raise ApiError(404, f"unit {unit_id} has no target {item.target_id}")
                outcome = await progress.accept(tracked, item)
            except ApiError as exc:
                rejected.append(_rejection(index, exc))
                continue
            accepted.append({"index": index, "target_id": outcome.target_id, "date": outcome.date,
                             "correction": outcome.correction, "late": outcome.late,
                             "attainment": outcome.attainment, "status": outcome.status})
        await progress.flush(session)
    touched = [t.row for t in progress.tracked.values() if t.touched]
    return {"accepted": len(accepted), "rejected": sorted(rejected, key=lambda r: r["index"]), "reports": accepted,
            "targets": [{"target_id": r["id"],
                         "latest": {"date": r["latest_date"], "value": r["latest_value"]} if r["latest_date"] else None,
                         "attainment": r["attainment"], "status": r["status"],
                         "projection": {"value": r["projection_value"], "low": r["projection_low"],
                                        "high": r["projection_high"], "method": r["projection_method"] or "none"}}
                        for r in touched]}


def _status_changed(runtime: ServiceRuntime, row: Row, previous: str | None, status: str, today: date, *,
                    time: str | None = None) -> events.Prepared:
    return events.prepare(
        events.TargetStatusChanged, source=runtime.service, key=row["unit_id"],
        time=time or events.ce_time(datetime.now(UTC)), target_id=row["id"], unit_id=row["unit_id"],
        year=row["year"], previous=previous, status=status, as_of=forecast.as_of_date(row["year"], today))


# the stale sweep --------------------------------------------------------------------------


async def sweep(*, runtime: ServiceRuntime, settings: TargetsSettings, now: datetime | None = None
                ) -> dict[str, Any]:
    """Re-judge every live target as of today; announce each status that changed (stale, milestone due,
    first report overdue)."""
    today = today_in(runtime, now)
    async with runtime.transaction() as session:
        if not await repository.try_sweep_lock(session):
            return {"ran": False, "checked": 0, "changed": 0}
        rows = await repository.live_targets(session, since_year=today.year - 1)
        envelopes = []
        for row in rows:
            status = _to_announce(row, live_status(row, settings, today), settings, today,
                                  reported=row["latest_date"] is not None)
            if status is None or status == row["status"]:
                continue  # nothing to announce (yet)
            # A report committed since the read has judged the target itself: leave it be.
            if await repository.set_status_if_unchanged(session, row, status):
                envelopes.append(_status_changed(runtime, row, row["status"], status, today))
        await runtime.emit(session, envelopes)
    log.info("target sweep", extra={"service": runtime.service, "checked": len(rows), "changed": len(envelopes)})
    return {"ran": True, "as_of": today.isoformat(), "checked": len(rows), "changed": len(envelopes)}


async def sweep_forever(runtime: ServiceRuntime, settings: TargetsSettings) -> None:
    while True:
        try:
            await sweep(runtime=runtime, settings=settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("target sweep failed; next run as scheduled", extra={"service": runtime.service})
        await asyncio.sleep(settings.sweep_interval_s)


# reads ------------------------------------------------------------------------------------


def view(row: Row, settings: TargetsSettings, today: date, *, public: bool = False
         ) -> dict[str, Any]:
    spec = spec_of(row)
    out = {k: row[k] for k in ("id", "unit_id", "year", "code", "title", "unit_of_measure", "direction", "kind",
                               "baseline", "target", "weight", "cadence", "public_commitment")}
    out.update(
        due=(row["due"] or (forecast.year_end(row["year"]) if row["kind"] == "milestone" else None)),
        valid_range=row["valid_range"], milestones=row["milestones"], approved=row["approved"],
        state=_state(row),
        latest={"date": row["latest_date"], "value": row["latest_value"]} if row["latest_date"] else None,
        attainment=row["attainment"], status=live_status(row, settings, today),
        expected=forecast.expected_value(spec, forecast.as_of_date(row["year"], today)),
        projection={"value": row["projection_value"], "low": row["projection_low"],
                    "high": row["projection_high"], "method": row["projection_method"] or "none"})
    if public:
        out.pop("weight")
    return out


def _readable(principal: Principal, row: Row) -> None:
    ensure_unit(principal, row["unit_id"], readers=READERS)


async def get(*, runtime: ServiceRuntime, settings: TargetsSettings, principal: Principal, target_id: str,
              now: datetime | None = None) -> dict[str, Any]:
    async with runtime.reading() as session:
        row = await _load(session, target_id)
        _readable(principal, row)
        history = await repository.history(session, target_id)
    out = view(row, settings, today_in(runtime, now))
    out["history"] = [{"date": h["date"], "value": h["value"], "late": h["late"], "corrected": h["revisions"] > 0}
                      for h in history]
    out["trajectory"] = [{"date": d, "value": v} for d, v in forecast.trajectory(spec_of(row))]
    return out


def _page(items: Sequence[Row], limit: int, key: str = "id") -> tuple[list[Any], str | None]:
    more = len(items) > limit
    page = list(items[:limit])
    return page, (str(page[-1][key]) if more and page else None)


async def unit_list(*, runtime: ServiceRuntime, settings: TargetsSettings, principal: Principal, unit_id: str,
                    year: int | None, cursor: str | None, limit: int) -> dict[str, Any]:
    if unit_id not in runtime.city.unit_ids:
        raise ApiError(404, f"no unit {unit_id}")
    ensure_unit(principal, unit_id, readers=READERS)
    async with runtime.reading() as session:
        rows = await repository.unit_targets(session, unit_id, year, after=cursor, limit=limit + 1)
    page, next_cursor = _page(rows, limit)
    today = today_in(runtime)
    return {"items": [view(r, settings, today) for r in page], "next_cursor": next_cursor}


async def public_list(*, runtime: ServiceRuntime, settings: TargetsSettings, year: int | None,
                      cursor: str | None, limit: int) -> dict[str, Any]:
    async with runtime.reading() as session:
        rows = await repository.public_targets(session, year, after=cursor, limit=limit + 1)
    page, next_cursor = _page(rows, limit)
    today = today_in(runtime)
    return {"items": [view(r, settings, today, public=True) for r in page], "next_cursor": next_cursor}


async def audit_list(*, runtime: ServiceRuntime, principal: Principal, target_id: str, cursor: str | None,
                     limit: int) -> dict[str, Any]:
    try:
        after = int(cursor) if cursor else None
    except ValueError as exc:
        raise ApiError(400, "bad cursor") from exc
    async with runtime.reading() as session:
        row = await _load(session, target_id)
        _readable(principal, row)
        rows = await repository.audit_trail(session, target_id, after=after, limit=limit + 1)
    page, next_cursor = _page(rows, limit)
    return {"items": [dict(r) for r in page], "next_cursor": next_cursor}
