"""The replication of the topics the services create (YARDSTICK_KAFKA_REPLICATION_FACTOR)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from yardstick.bus.kafka import KafkaBus
from yardstick.runtime import make_bus
from yardstick.settings import ServiceSettings


class FakeAdmin:
    created: ClassVar[list[Any]] = []

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[Any]) -> None:
        FakeAdmin.created = topics


@pytest.mark.parametrize(("replicas", "configs"), [
    ("3", {"retention.ms": "-1", "min.insync.replicas": "2"}),
    (None, {"retention.ms": "-1"}),  # one broker: nothing more to ask
])
async def test_the_services_create_topics_with_the_replication_they_are_given(
        monkeypatch: pytest.MonkeyPatch, replicas: str | None, configs: dict[str, str]) -> None:
    if replicas is None:
        monkeypatch.delenv("YARDSTICK_KAFKA_REPLICATION_FACTOR", raising=False)
    else:
        monkeypatch.setenv("YARDSTICK_KAFKA_REPLICATION_FACTOR", replicas)
    monkeypatch.setattr("yardstick.bus.kafka.AIOKafkaAdminClient", FakeAdmin)
    bus = make_bus(ServiceSettings(service="scoring", bus="kafka"))
    assert isinstance(bus, KafkaBus)
    await bus.ensure_topics()
    assert len(FakeAdmin.created) == 12
    assert {(t.replication_factor, tuple(sorted(t.topic_configs.items()))) for t in FakeAdmin.created} == {
        (int(replicas or 1), tuple(sorted(configs.items())))}


def test_a_replication_factor_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YARDSTICK_KAFKA_REPLICATION_FACTOR", "0")
    with pytest.raises(ValueError, match=r"greater than or equal to 1"):
        ServiceSettings(service="scoring", bus="kafka")
