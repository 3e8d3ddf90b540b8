"""`delete_topics_with_prefix`, which the benchmarks call at the end of a run, on the real broker: it deletes
the run's topics and nothing else, and refuses an empty prefix (which would name every topic)."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kafka_tools import bootstrap

from yardstick.bus.kafka import delete_topics_with_prefix


async def _topics() -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _create(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=2, replication_factor=1) for n in names])
    finally:
        await admin.close()


async def _gone(names: set[str], tries: int = 100) -> set[str]:
    """The names still listed once they are gone or after `tries` looks 0.2 s apart (deletion is asynchronous
    on the broker)."""
    for _ in range(tries):
        if not (left := names & await _topics()):
            break
        await asyncio.sleep(0.2)
    return left


async def test_only_the_runs_topics_are_deleted() -> None:
    run = f"delp{secrets.token_hex(4)}."
    # A neighbour whose name starts like ours but not with our whole prefix (no dot) must survive.
    neighbour = f"{run[:-1]}x.feedback.v1"
    ours = [f"{run}feedback.v1", f"{run}feedback.v1.dlq"]
    await _create([*ours, neighbour])
    try:
        assert set(await delete_topics_with_prefix(bootstrap(), run)) == set(ours)
        assert await _gone(set(ours)) == set()
        assert neighbour in await _topics()
        assert await delete_topics_with_prefix(bootstrap(), run) == []  # nothing left: nothing to do
    finally:
        await delete_topics_with_prefix(bootstrap(), neighbour)


async def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="every topic"):
        await delete_topics_with_prefix(bootstrap(), "")
