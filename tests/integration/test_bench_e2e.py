"""bench/e2e.py in its quick mode on the test Kafka and PostgreSQL: it runs, prints its figures, cleans up."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from harness import _BASE, REPO, _require

NUMBER = r"([\d,]+(?:\.\d+)?)"


def figure(pattern: str, output: str) -> list[float]:
    found = re.search(pattern, output)
    assert found, f"no line matching {pattern!r} in the bench's output:\n{output}"
    return [float(g.replace(",", "")) for g in found.groups()]


async def leftovers(admin_url: str, bootstrap: str, run_id: str) -> tuple[list[str], list[str]]:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        databases = [r["datname"] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"bench_e2e_{run_id}_%")]
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(f"bench{run_id}.")]
    finally:
        await admin.close()
    return databases, topics


def test_e2e_bench_quick_mode_prints_its_figures_and_cleans_up() -> None:
    bootstrap = _require("KAFKA_BOOTSTRAP_SERVERS")
    admin_url = _require("YARDSTICK_TEST_PG_ADMIN_URL")
    # Ports clear of the session's services (base+1..4) and of other modules.
    result = subprocess.run([sys.executable, "-P", "bench/e2e.py", "--quick", "--port-base", str(_BASE + 60)],
                            cwd=REPO, capture_output=True, text=True, timeout=1500,
                            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                                 "YARDSTICK_TEST_PG_ADMIN_URL": admin_url})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    run = re.search(r"e2e bench run ([0-9a-f]{8}):", output)
    assert run, output
    assert "method: each batch's end-to-end time runs from its 202" in output
    offered, achieved = figure(rf"offered {NUMBER} ratings/s, achieved {NUMBER} ratings/s", output)
    assert offered == 200 and 0 < achieved <= offered
    p50, p95, p99 = figure(rf"202 -> scorecard: p50 {NUMBER} ms\s+p95 {NUMBER} ms\s+p99 {NUMBER} ms", output)
    assert 0 < p50 <= p95 <= p99
    figure(rf"request \(scheduled send -> 202\): p50 {NUMBER} ms", output)
    figure(r"consumer lag on feedback.v1\): max \{'outbox': (\d+), 'scoring': (\d+), 'notices': (\d+)\}", output)
    intake, = figure(rf"capacity \(closed loop.*?\): intake {NUMBER} ratings/s", output)
    pipeline, = figure(rf"end to end \(accepted ratings / time until the last showed.*?\): {NUMBER} ratings/s", output)
    bare, kafka = figure(rf"ceilings: bare FastAPI {NUMBER} ratings/s.*?Kafka ProducerPerformance {NUMBER} records/s",
                         output)
    assert min(intake, pipeline, bare, kafka) > 0
    ratio, = figure(rf"intake capacity / bare FastAPI\s+{NUMBER}", output)
    assert abs(ratio - intake / bare) <= 0.01 + 0.02 * ratio  # the printed ratio is of the printed figures
    figure(rf"end-to-end capacity / Kafka producer\s+{NUMBER}", output)
    assert "cleaned up:" in output
    databases, topics = asyncio.run(leftovers(admin_url, bootstrap, run[1]))
    assert databases == [] and topics == []
