"""Harness for the integration tests: the services as processes, Kafka and PostgreSQL control."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    # Port of each running process by its name: a service's name, or an extra instance's.
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str, *, name: str | None = None, port: int | None = None,
              wait: bool = True) -> None:
        """Start `yardstick serve service`; `name` and `port` run another instance of it beside the first.

        Instances of one service share its database and its consumer groups. Without `wait`, call
        `wait_ready(name)` later (processes started together start faster than one by one).
        """
        name = name or service
        if port is not None:
            self.ports[name] = port
        env = {**self.env, f"YARDSTICK_{PREFIX_OF[service]}_PORT": str(self.ports[name])}
        log = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [str(BIN / "yardstick"), "serve", service], env=env, stdout=log, stderr=log, cwd=REPO)
        if wait:
            self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        def ready() -> bool:
            if self.procs[name].poll() is not None:
                raise AssertionError(f"{name} exited with {self.procs[name].returncode} "
                                     f"(log: {self.logs / (name + '.log')})")
            return httpx.get(f"{self.url(name)}/readyz", timeout=2).status_code == 200

        wait_for(ready, timeout=timeout, what=f"{name} /readyz (log: {self.logs / (name + '.log')})")

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


@contextmanager
def open_system(tmp_path_factory: pytest.TempPathFactory, *, ports: dict[str, int] | None = None,
                start: bool = True, logs: Path | None = None) -> Iterator[System]:
    """A system of its own (databases, topic prefix, secret) on the Kafka and PostgreSQL of the environment.

    `ports` gives each service another port than PORTS (a second system in the same test run);
    with `start` the four services are started; `logs` is where the processes log (default: a
    temporary folder). Whatever runs at the end is stopped.
    """
    bootstrap = _require("KAFKA_BOOTSTRAP_SERVERS")
    admin_url = _require("YARDSTICK_TEST_PG_ADMIN_URL")
    run_id = secrets.token_hex(4)
    names = {svc: f"yt_{run_id}_{PREFIX_OF[svc].lower()}" for svc in PORTS} | {"auth": f"yt_{run_id}_auth"}
    asyncio.run(_create_databases(admin_url, list(names.values())))
    base = admin_url.rsplit("/", 1)[0]
    db_urls = {svc: f"{base}/{name}" for svc, name in names.items()}
    logs = logs / run_id if logs else tmp_path_factory.mktemp("logs")
    logs.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    prefix = f"t{run_id}."
    ports = ports or dict(PORTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env.update({
        "YARDSTICK_BUS": "kafka", "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "YARDSTICK_TOPIC_PREFIX": prefix,
        "YARDSTICK_AUTH_SECRET": secret, "YARDSTICK_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "YARDSTICK_AUTH_DATABASE_URL": db_urls["auth"], "YARDSTICK_LOG_LEVEL": "INFO",
    })
    for svc, port in ports.items():
        env[f"YARDSTICK_{PREFIX_OF[svc]}_DATABASE_URL"] = db_urls[svc]
        env[f"YARDSTICK_{PREFIX_OF[svc]}_PORT"] = str(port)
        # Short backoff so recovery tests do not wait on the 10 s production ceiling.
        env[f"YARDSTICK_{PREFIX_OF[svc]}_RETRY_MAX_S"] = "1"
    sys_ = System(run_id=run_id, env=env, secret=secret, prefix=prefix, db_urls=db_urls, logs=logs,
                  ports=dict(ports))
    try:
        if start:
            for svc in PORTS:
                sys_.start(svc, wait=False)
            for svc in PORTS:
                sys_.wait_ready(svc, timeout=180)
        yield sys_
    finally:
        for name in list(sys_.procs):
            try:
                sys_.stop(name)
            except Exception:
                sys_.procs.get(name) and sys_.procs[name].kill()
        try:
            asyncio.run(_drop_databases(admin_url, list(names.values())))
        except Exception as exc:  # the cluster may be stopped by a failed test
            print(f"could not drop test databases: {exc}")


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


