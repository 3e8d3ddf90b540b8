"""target-tracker's migrations on a database holding targets from before them (SQLite, and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import MetaData, text

from target_tracker.app import MIGRATIONS
from yardstick import db


def _upgrade_to(conn: Any, revision: str) -> None:
    from alembic import command

    command.upgrade(db.alembic_config(conn, MIGRATIONS, str(conn.engine.url)), revision)


def _target(target_id: str, *, kind: str = "numeric", approved: bool = True, status: str = "no_data",
            latest_date: date | None = None) -> dict[str, Any]:
    return {"id": target_id, "unit_id": "finance", "year": 2026, "code": target_id, "title": "t",
            "unit_of_measure": "u", "direction": "increase", "kind": kind, "baseline": 0, "target": 1, "weight": 1,
            "cadence": "daily", "public_commitment": False, "approved": approved, "created_by": "staff",
            "created_at": datetime(2026, 2, 3, 4, 5, tzinfo=UTC), "status": status, "latest_date": latest_date}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def test_0005_starts_the_first_report_clock_of_existing_targets(backend: str, scratch_engine: Any) -> None:
    """Targets never reported had a status stored but never announced: it is cleared, so the sweep
    announces no_data once their first report is overdue; the ones announced keep theirs."""
    async with scratch_engine(backend, MetaData(), "tt_migrate") as engine:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0004")
        rows = [_target("silent"), _target("silent-milestone", kind="milestone", status="on_track"),
                _target("announced-milestone", kind="milestone", status="off_track"),
                _target("reported", status="on_track", latest_date=date(2026, 2, 10)),
                _target("proposal", approved=False)]
        columns = ", ".join(rows[0])
        async with engine.begin() as conn:
            await conn.execute(text(f"INSERT INTO targets ({columns}) VALUES ({', '.join(':' + c for c in rows[0])})"),
                               rows)
            # A proposal approved later: the clock starts on the day of its approval, not of the proposal.
            await conn.execute(text("INSERT INTO audit (target_id, at, action, actor_role, actor) "
                                    "VALUES ('reported', :at, 'approved', 'commission', 'staff')"),
                               {"at": datetime(2026, 3, 4, 5, tzinfo=UTC)})
        await db.migrate(engine, MIGRATIONS)
        async with engine.connect() as conn:
            found = {r.id: (r.status, r.approved_on) for r in
                     await conn.execute(text("SELECT id, status, approved_on FROM targets"))}
    def day(on: date) -> date | str:
        return on if backend == "postgresql" else on.isoformat()  # SQLite's text, read raw here

    defined = day(date(2026, 2, 3))
    assert found == {"silent": (None, defined), "silent-milestone": (None, defined),
                     "announced-milestone": ("off_track", defined), "reported": ("on_track", day(date(2026, 3, 4))),
                     "proposal": (None, None)}
