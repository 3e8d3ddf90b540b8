"""`yardstick migrate SERVICE|all` as the Kubernetes Job and the compose one-shot run it: a real process,
on SQLite and on fresh PostgreSQL databases made through the admin URL."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

from yardstick import db

REPO = Path(__file__).resolve().parents[2]
YARDSTICK = str(Path(sys.executable).parent / "yardstick")
SERVICES = {  # service: (settings prefix, migrations folder, SQLite file name)
    "feedback-intake": ("INTAKE", REPO / "services/feedback-intake/migrations", "intake.db"),
    "target-tracker": ("TARGETS", REPO / "services/target-tracker/migrations", "targets.db"),
    "scoring": ("SCORING", REPO / "services/scoring/migrations", "scoring.db"),
    "notices": ("NOTICES", REPO / "services/notices/migrations", "notices.db"),
}


def head(service: str) -> str:
    revision = ScriptDirectory(str(SERVICES[service][1])).get_current_head()
    assert revision
    return revision


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    return {**env, **extra}


def migrate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([YARDSTICK, "migrate", *args], capture_output=True, text=True, env=env,
                          timeout=180, cwd=REPO)


# ------------------------------------------------------------------------------------ SQLite


def sqlite_revision(path: Path) -> str | None:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return rows[0][0] if rows else None


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_all_on_sqlite_is_idempotent(tmp_path: Path) -> None:
    env = clean_env(YARDSTICK_DATA_DIR=str(tmp_path))
    first = migrate("all", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"{name}: at revision {head(name)}" for name in SERVICES]
    for name, (_, _, file) in SERVICES.items():
        assert sqlite_revision(tmp_path / file) == head(name)
        # Every service's database has its outbox and its processed-event log after migrating.
        assert {"outbox", "processed_events"} <= sqlite_tables(tmp_path / file), name
    second = migrate("all", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


def test_migrate_one_service_touches_only_its_database(tmp_path: Path) -> None:
    out = migrate("scoring", env=clean_env(YARDSTICK_DATA_DIR=str(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"scoring: at revision {head('scoring')}"
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["scoring.db"]


def test_migrate_a_database_whose_url_holds_percent_escapes(tmp_path: Path) -> None:
    """A URL spells some characters as %XX (a user name `svc@corp` is `svc%40corp`, a folder `50% off` is
    `50%25 off`): Alembic's configuration would read them as interpolations and refuse to migrate."""
    folder = tmp_path / "50% off"
    folder.mkdir()
    url = f"sqlite+aiosqlite:///{folder / 'intake.db'}"
    out = migrate("feedback-intake", env=clean_env(YARDSTICK_INTAKE_DATABASE_URL=url))
    assert out.returncode == 0, out.stderr
    assert sqlite_revision(folder / "intake.db") == head("feedback-intake")


def test_migrate_rejects_unknown_service(tmp_path: Path) -> None:
    out = migrate("billing", env=clean_env(YARDSTICK_DATA_DIR=str(tmp_path)))
    assert out.returncode == 2
    assert "invalid choice: 'billing'" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_migrate_reports_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens there, the connection is refused at once.
    url = "postgresql+asyncpg://yardstick:s3cret-pw@127.0.0.1:9/yardstick_notices"
    out = migrate("all", env=clean_env(YARDSTICK_DATA_DIR=str(tmp_path), YARDSTICK_NOTICES_DATABASE_URL=url))
    assert out.returncode == 1
    # The services before notices were migrated; notices failed with a one-line reason.
    assert out.stdout.splitlines() == [f"{name}: at revision {head(name)}" for name in list(SERVICES)[:3]]
    assert "notices: migration failed:" in out.stderr
    assert "yardstick:***@127.0.0.1:9/yardstick_notices" in out.stderr
    assert "s3cret-pw" not in out.stderr + out.stdout


# -------------------------------------------------------------------------------- PostgreSQL


def _admin_url() -> str:
    value = os.environ.get("YARDSTICK_TEST_PG_ADMIN_URL")
    if not value:
        pytest.fail("YARDSTICK_TEST_PG_ADMIN_URL is not set: run with `make test`, which starts PostgreSQL "
                    "(or point it at a running cluster)", pytrace=False)
    return value


async def _sql(url: str, statements: list[str]) -> list[list[asyncpg.Record]]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return [await conn.fetch(statement) for statement in statements]
    finally:
        await conn.close()


@pytest.fixture
def pg_urls() -> Iterator[dict[str, str]]:
    """A fresh, empty PostgreSQL database per service, dropped afterwards."""
    admin = _admin_url()
    run_id = secrets.token_hex(4)
    names = {name: f"ym_{run_id}_{prefix.lower()}" for name, (prefix, _, _) in SERVICES.items()}
    asyncio.run(_sql(admin, [f'CREATE DATABASE "{db}"' for db in names.values()]))
    base = admin.rsplit("/", 1)[0]
    try:
        yield {name: f"{base}/{db}" for name, db in names.items()}
    finally:
        asyncio.run(_sql(admin, [f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)' for db in names.values()]))


def pg_env(urls: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = clean_env(YARDSTICK_DATA_DIR=str(tmp_path))
    for name, url in urls.items():
        env[f"YARDSTICK_{SERVICES[name][0]}_DATABASE_URL"] = url
    return env


def pg_revision(url: str) -> str | None:
    exists, = asyncio.run(_sql(url, ["SELECT to_regclass('alembic_version') IS NOT NULL AS present"]))
    if not exists[0]["present"]:
        return None
    rows, = asyncio.run(_sql(url, ["SELECT version_num FROM alembic_version"]))
    return rows[0]["version_num"] if rows else None


@pytest.mark.integration
def test_migrate_on_fresh_postgres(pg_urls: dict[str, str], tmp_path: Path) -> None:
    env = pg_env(pg_urls, tmp_path)
    assert all(pg_revision(url) is None for url in pg_urls.values())

    one = migrate("target-tracker", env=env)
    assert one.returncode == 0, one.stderr
    assert pg_revision(pg_urls["target-tracker"]) == head("target-tracker")
    assert pg_revision(pg_urls["scoring"]) is None

    out = migrate("all", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"{name}: at revision {head(name)}" for name in SERVICES]
    for name, url in pg_urls.items():
        assert pg_revision(url) == head(name), name
        tables, = asyncio.run(_sql(url, ["SELECT tablename FROM pg_tables WHERE schemaname = 'public'"]))
        assert {"outbox", "processed_events", "alembic_version"} <= {r["tablename"] for r in tables}, name
    # No password in what an operator's terminal or a Job's log shows.
    assert "yardstick:***@" in out.stderr and ":yardstick@" not in out.stderr


@pytest.mark.integration
def test_concurrent_migrations_on_postgres_wait_for_each_other(pg_urls: dict[str, str], tmp_path: Path) -> None:
    """A Job and a pod's start-up (or two Jobs) migrating the same fresh database at once: the advisory
    lock makes one wait for the other, and both end at head without a duplicate-table error."""
    env = pg_env(pg_urls, tmp_path)
    procs = [subprocess.Popen([YARDSTICK, "migrate", "all"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=REPO) for _ in range(3)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert stdout.splitlines() == [f"{name}: at revision {head(name)}" for name in SERVICES]
    for name, url in pg_urls.items():
        assert pg_revision(url) == head(name), name


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_downgrading_below_shared_outbox_rows_waits_until_none_is_left(
        service: str, backend: str, scratch_engine: Any) -> None:
    """A release before decision 0013 would read a shared row as one event: the downgrade refuses while
    one waits, and goes through once they are published."""
    script = str(SERVICES[service][1])
    revision = next(r for r in ScriptDirectory(script).walk_revisions() if "shared rows" in (r.doc or ""))
    async with scratch_engine(backend, script, "yt_downgrade") as engine:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO outbox (event_id, topic, key, type, source, time, payload, events) VALUES "
                "('e-1', 'feedback.v1', 'u', 'feedback.received', 's', '2026-01-01T00:00:00Z', '[]', 2)"))
        with pytest.raises(RuntimeError, match="rows of several events"):
            async with engine.begin() as conn:
                await conn.run_sync(_downgrade, script, str(engine.url), revision.down_revision)
        async with engine.begin() as conn:  # refused: nothing changed
            assert (await conn.execute(text("SELECT events FROM outbox"))).scalar_one() == 2
            await conn.execute(text("DELETE FROM outbox"))  # published
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, script, str(engine.url), revision.down_revision)
        async with engine.connect() as conn:
            columns = await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("outbox")})
        assert "events" not in columns and "payload" in columns


def _downgrade(conn: Any, script: str, url: str, revision: str) -> None:
    command.downgrade(db.alembic_config(conn, script, url), revision)


@pytest.mark.integration
@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_the_outbox_compresses_a_shared_row_with_lz4_on_postgresql(service: str, scratch_engine: Any) -> None:
    """Decision 0028: a kiosk batch's hundred events (about 48 kB of JSON in one row) cost PostgreSQL
    half the CPU with lz4 as with pglz. The migration sets it; its downgrade gives the default back."""
    from yardstick.events import Prepared
    from yardstick.outbox import add, outbox_table

    script = str(SERVICES[service][1])
    revision = next(r for r in ScriptDirectory(script).walk_revisions() if "outbox lz4" in (r.doc or ""))
    outbox = outbox_table(MetaData())
    data = json.dumps({"feedback_id": "f", "unit_id": "unit-a", "channel": "window", "level": 3,
                       "window_id": "w-1", "reasons": [], "device": "kiosk-1", "year": 2026})

    async def stored_with() -> str:
        events = [Prepared(id=f"e-{secrets.token_hex(8)}", topic="feedback.v1", key="unit-a",
                           type="feedback.received", source=service, time="2026-01-01T00:00:00Z", payload=data)
                  for _ in range(100)]
        async with AsyncSession(engine) as session, session.begin():
            await add(session, outbox, events)
        async with engine.connect() as conn:
            method = (await conn.execute(text(
                "SELECT pg_column_compression(payload) FROM outbox ORDER BY id DESC LIMIT 1"))).scalar_one()
        return str(method)

    async with scratch_engine("postgresql", script, "yt_lz4") as engine:
        assert await stored_with() == "lz4"
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, script, str(engine.url), revision.down_revision)
        assert await stored_with() == "pglz"  # the server's default (deploy/postgres.sh leaves it)
