"""Real Kafka, real PostgreSQL, and the services as real processes (`yardstick serve`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import System, open_system


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with open_system(tmp_path_factory) as sys_:
        yield sys_
