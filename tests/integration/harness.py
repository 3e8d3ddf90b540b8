"""Harness for the integration tests: the services as processes, Kafka and PostgreSQL control."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# YARDSTICK_TEST_PORT_BASE lets two test runs share a machine (each its own four ports).
_BASE = int(os.environ.get("YARDSTICK_TEST_PORT_BASE", "18000"))
PORTS = {"feedback-intake": _BASE + 1, "target-tracker": _BASE + 2, "scoring": _BASE + 3, "notices": _BASE + 4}
PREFIX_OF = {"feedback-intake": "INTAKE", "target-tracker": "TARGETS", "scoring": "SCORING",
             "notices": "NOTICES"}


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the integration tests with `make test`, which starts "
                    "Kafka and PostgreSQL (or point the variables at running ones)", pytrace=False)
    return value


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.25,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@dataclass
class System:
    run_id: str
    env: dict[str, str]
    secret: str
    prefix: str
    db_urls: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def start(self, service: str) -> None:
        log = open(self.logs / f"{service}.log", "ab")
        self.procs[service] = subprocess.Popen(
            [str(BIN / "yardstick"), "serve", service], env=self.env, stdout=log, stderr=log,
            cwd=REPO)
        wait_for(lambda: httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200,
                 timeout=90, what=f"{service} /readyz (log: {self.logs / (service + '.log')})")

    def stop(self, service: str, sig: int = signal.SIGTERM) -> int:
        proc = self.procs.pop(service)
        proc.send_signal(sig)
        return proc.wait(timeout=30)

    def get(self, service: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kw.pop("headers", {})}
        return httpx.get(self.url(service) + path, headers=headers, timeout=10, **kw)

    def post(self, service: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kw.pop("headers", {})}
        return httpx.post(self.url(service) + path, headers=headers, timeout=30, **kw)

    def metric(self, of: str, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample of service `of` over the series matching the labels."""
        total = 0.0
        for line in self.get(of, "/metrics").text.splitlines():
            if not line.startswith(name + "{"):
                continue
            series, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total


def control(kind: str, action: str) -> None:
    script = os.environ.get(f"YARDSTICK_TEST_{kind}_CONTROL")
    if not script:
        pytest.fail(f"this test stops and starts {kind}: run it through `make test`", pytrace=False)
    env = dict(os.environ)
    if kind == "PG":
        env["PG_FAST"] = "1"
    subprocess.run(["bash", str(REPO / script), action], check=True, env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL)


async def _create_databases(admin_url: str, names: list[str]) -> None:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for name in names:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_databases(admin_url: str, names: list[str]) -> None:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


