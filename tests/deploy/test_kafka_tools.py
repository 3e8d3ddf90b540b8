"""The Kafka commands docs/operations.md gives for replaying a topic, run as written (deploy/kafka.sh
consumer-groups / topics, i.e. Kafka's own tools from .cache/kafka/tools) against the real broker."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "deploy" / "kafka.sh"
PARTITIONS = 6


def bootstrap() -> str:
    value = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not value:
        pytest.fail("KAFKA_BOOTSTRAP_SERVERS is not set: run with `make test`, which starts Kafka "
                    "(or point it at a running broker)", pytrace=False)
    return value


def kafka_sh(*args: str, tz: str = "UTC") -> subprocess.CompletedProcess[str]:
    # The first call may fetch the tools from Maven Central (about half a minute, once).
    return subprocess.run(["bash", str(KAFKA_SH), *args], capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "TZ": tz})


async def _admin_topics(action: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        if action == "create":
            await admin.create_topics([NewTopic(name=f"{prefix}feedback.v1", num_partitions=PARTITIONS,
                                                replication_factor=1, topic_configs={"retention.ms": "-1"})])
        else:
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine)
            await admin.delete_consumer_groups([f"{prefix}scoring"])
    finally:
        await admin.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    value = f"tops{secrets.token_hex(4)}."
    asyncio.run(_admin_topics("create", value))
    try:
        yield value
    finally:
        try:
            asyncio.run(_admin_topics("delete", value))
        except Exception as exc:  # a group that never committed cannot be deleted; the topics are gone
            print(f"cleanup: {exc!r}")


async def produce(topic: str, keys: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), acks="all")
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(topic, value=b"{}", key=key.encode())
    finally:
        await producer.stop()


async def consume_all_and_commit(topic: str, group: str, expect: int) -> None:
    """What a service's consumer does: read, then commit the offsets, then leave the group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap(), group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen = 0
        deadline = time.monotonic() + 60
        while seen < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += sum(len(records) for records in batch.values())
            await consumer.commit()
        assert seen == expect
    finally:
        await consumer.stop()


async def committed(group: str) -> int:
    """The sum of the group's committed offsets over all partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(meta.offset for meta in offsets.values())
    finally:
        await admin.close()


def test_describe_and_reset_a_consumer_group(prefix: str) -> None:
    topic, group = f"{prefix}feedback.v1", f"{prefix}scoring"
    keys = [f"unit-{i}" for i in range(12)]
    asyncio.run(produce(topic, keys[:6]))
    time.sleep(1.5)
    # The replay point: messages after it are replayed, messages before it are not.
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    time.sleep(1.5)
    asyncio.run(produce(topic, keys[6:]))
    asyncio.run(consume_all_and_commit(topic, group, expect=12))
    assert asyncio.run(committed(group)) == 12

    topics = kafka_sh("topics", "--bootstrap-server", bootstrap(), "--describe", "--topic", topic)
    assert topics.returncode == 0, topics.stderr
    assert f"PartitionCount: {PARTITIONS}" in topics.stdout
    assert "retention.ms=-1" in topics.stdout

    listing = kafka_sh("consumer-groups", "--bootstrap-server", bootstrap(), "--list")
    assert listing.returncode == 0, listing.stderr
    assert group in listing.stdout.split()

    describe = kafka_sh("consumer-groups", "--bootstrap-server", bootstrap(), "--describe", "--group", group)
    assert describe.returncode == 0, describe.stderr
    rows = [line.split() for line in describe.stdout.splitlines() if line.startswith(group)]
    assert len(rows) == PARTITIONS
    header = next(line.split() for line in describe.stdout.splitlines() if line.startswith("GROUP"))
    lag = header.index("LAG")
    assert sum(int(r[lag]) for r in rows) == 0

    reset = ["consumer-groups", "--bootstrap-server", bootstrap(), "--group", group, "--topic", topic,
             "--reset-offsets"]
    dry = kafka_sh(*reset, "--to-earliest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "NEW-OFFSET" in dry.stdout
    assert asyncio.run(committed(group)) == 12  # a dry run changes nothing

    # With its zone (Z) the time means the same whatever the operator's machine's zone is.
    since_run = kafka_sh(*reset, "--to-datetime", since, "--execute", tz="Asia/Shanghai")
    assert since_run.returncode == 0, since_run.stderr
    assert asyncio.run(committed(group)) == 6  # the six produced after `since` are read again

    earliest = kafka_sh(*reset, "--to-earliest", "--execute")
    assert earliest.returncode == 0, earliest.stderr
    assert asyncio.run(committed(group)) == 0


def test_reset_is_refused_while_the_group_has_members(prefix: str) -> None:
    """Why the doc says to stop the consumers (scale to 0) first."""
    topic, group = f"{prefix}feedback.v1", f"{prefix}scoring"
    asyncio.run(produce(topic, ["unit-a", "unit-b"]))

    async def reset_while_consuming() -> subprocess.CompletedProcess[str]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap(), group_id=group,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            deadline = time.monotonic() + 60
            while not consumer.assignment() and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=500)
            await consumer.commit({TopicPartition(topic, p): 0 for p in range(PARTITIONS)})
            return await asyncio.to_thread(
                kafka_sh, "consumer-groups", "--bootstrap-server", bootstrap(), "--group", group, "--topic", topic,
                "--reset-offsets", "--to-latest", "--execute")
        finally:
            await consumer.stop()

    out = asyncio.run(reset_while_consuming())
    assert "can only be reset if the group" in out.stdout + out.stderr
    assert "inactive" in out.stdout + out.stderr
    assert asyncio.run(committed(group)) == 0


def test_a_time_without_zone_is_utc_and_needs_milliseconds(prefix: str) -> None:
    """docs/operations.md: without a zone the tool reads the time as UTC (not the machine's zone), and a time
    without milliseconds is refused with an error on its output, yet exit status 0."""
    topic, group = f"{prefix}feedback.v1", f"{prefix}scoring"
    keys = [f"unit-{i}" for i in range(12)]
    asyncio.run(produce(topic, keys[:6]))
    time.sleep(1.5)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]  # no zone
    time.sleep(1.5)
    asyncio.run(produce(topic, keys[6:]))
    asyncio.run(consume_all_and_commit(topic, group, expect=12))
    reset = ["consumer-groups", "--bootstrap-server", bootstrap(), "--group", group, "--topic", topic,
             "--reset-offsets", "--execute", "--to-datetime"]

    no_millis = kafka_sh(*reset, since[:-4], tz="Asia/Shanghai")
    assert no_millis.returncode == 0  # sic: the tool does not fail its exit status
    assert "Unparseable date" in no_millis.stdout + no_millis.stderr
    assert asyncio.run(committed(group)) == 12  # nothing changed

    # Read in Shanghai's zone it would be 8 hours earlier, before all twelve (committed 0).
    utc = kafka_sh(*reset, since, tz="Asia/Shanghai")
    assert utc.returncode == 0, utc.stderr
    assert asyncio.run(committed(group)) == 6
