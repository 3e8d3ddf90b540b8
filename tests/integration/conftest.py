"""Real Kafka, real PostgreSQL, and the services as real processes (`yardstick serve`)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import pytest
from harness import PORTS, PREFIX_OF, System, _create_databases, _drop_databases, _require


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    bootstrap = _require("KAFKA_BOOTSTRAP_SERVERS")
    admin_url = _require("YARDSTICK_TEST_PG_ADMIN_URL")
    run_id = secrets.token_hex(4)
    names = {svc: f"yt_{run_id}_{PREFIX_OF[svc].lower()}" for svc in PORTS} | {"auth": f"yt_{run_id}_auth"}
    asyncio.run(_create_databases(admin_url, list(names.values())))
    base = admin_url.rsplit("/", 1)[0]
    db_urls = {svc: f"{base}/{name}" for svc, name in names.items()}
    logs = tmp_path_factory.mktemp("logs")
    secret = secrets.token_urlsafe(32)
    prefix = f"t{run_id}."
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env.update({
        "YARDSTICK_BUS": "kafka", "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "YARDSTICK_TOPIC_PREFIX": prefix,
        "YARDSTICK_AUTH_SECRET": secret, "YARDSTICK_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "YARDSTICK_AUTH_DATABASE_URL": db_urls["auth"], "YARDSTICK_LOG_LEVEL": "INFO",
    })
    for svc, port in PORTS.items():
        env[f"YARDSTICK_{PREFIX_OF[svc]}_DATABASE_URL"] = db_urls[svc]
        env[f"YARDSTICK_{PREFIX_OF[svc]}_PORT"] = str(port)
        # Short backoff so recovery tests do not wait on the 10 s production ceiling.
        env[f"YARDSTICK_{PREFIX_OF[svc]}_RETRY_MAX_S"] = "1"
    sys_ = System(run_id=run_id, env=env, secret=secret, prefix=prefix, db_urls=db_urls, logs=logs)
    try:
        for svc in PORTS:
            sys_.start(svc)
        yield sys_
    finally:
        for svc in list(sys_.procs):
            try:
                sys_.stop(svc)
            except Exception:
                sys_.procs.get(svc) and sys_.procs[svc].kill()
        try:
            asyncio.run(_drop_databases(admin_url, list(names.values())))
        except Exception as exc:  # the cluster may be stopped by a failed test
            print(f"could not drop test databases: {exc}")
