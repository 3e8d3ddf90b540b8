"""Fault tests: a system of its own, two instances each of scoring and notices, and a ledger of the load.

The harness of tests/integration is reused by import. The system gets ports of its own
(YARDSTICK_TEST_PORT_BASE + 21 ...), so it can run in the same pytest session as the integration
tests' system. The tests stop and start Kafka and PostgreSQL: run them through scripts/test.sh.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from harness import PORTS, System, open_system
from kiosk_load import CITY, SECOND, Ledger


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "faults" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    ports = {svc: port + 20 for svc, port in PORTS.items()}
    # The processes' logs outlive the run where CI collects them (scripts/test.sh sets the variable).
    artifacts = os.environ.get("YARDSTICK_TEST_ARTIFACTS")
    with open_system(tmp_path_factory, ports=ports, logs=Path(artifacts) / "faults" if artifacts else None,
                     start=False) as sys_:
        print(f"fault tests: logs in {sys_.logs}")
        ensure_all_running(sys_)
        yield sys_


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return Ledger(CITY)


@pytest.fixture
def full_system(system: System) -> Iterator[System]:
    """The system with every instance running, before and after the test (a scenario may kill one)."""
    ensure_all_running(system)
    yield system
    ensure_all_running(system)


def ensure_all_running(system: System) -> None:
    for name, proc in list(system.procs.items()):
        if proc.poll() is not None:
            system.procs.pop(name)
    started = [(service, service, system.ports[service]) for service in PORTS if service not in system.procs]
    started += [(name, service, port) for name, service, port in SECOND if name not in system.procs]
    for name, service, port in started:
        system.start(service, name=name, port=port, wait=False)
    for name, _, _ in started:
        system.wait_ready(name, timeout=180)
