"""`yardstick dlq TOPIC` on the real broker: a consumer dead-letters a message through the real Kafka bus,
and the command prints its headers and reason, never its payload."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from yardstick.bus import Message, Subscription
from yardstick.bus.codec import decode, encode_parts
from yardstick.bus.deadletters import physical_dlq
from yardstick.bus.kafka import KafkaBus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
YARDSTICK = str(Path(sys.executable).parent / "yardstick")
PHONE = "13800138000"


def bootstrap() -> str:
    value = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not value:
        pytest.fail("KAFKA_BOOTSTRAP_SERVERS is not set: run with `make test`, which starts Kafka "
                    "(or point it at a running broker)", pytrace=False)
    return value


async def _admin(action: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        if action == "create":
            await admin.create_topics([NewTopic(name=f"{prefix}{t}", num_partitions=3, replication_factor=1)
                                       for t in ("x", "x.dlq")])
        else:
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine)
    finally:
        await admin.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    """Topics `<prefix>x` and `<prefix>x.dlq`; every topic of the prefix is deleted afterwards."""
    value = f"tdlq{secrets.token_hex(4)}."
    asyncio.run(_admin("create", value))
    try:
        yield value
    finally:
        asyncio.run(_admin("delete", value))


def feedback(event_id: str, **extra: object) -> Message:
    payload = {"feedback_id": f"fb-{event_id}", "unit_id": "health-commission", "channel": "web",
               "occurred_at": "2026-03-01T08:00:00Z", "year": 2026, **extra}
    return encode_parts(event_id=event_id, source="feedback-intake", event_type="feedback.received",
                        time="2026-03-01T08:00:01Z", key="health-commission", payload=payload, topic="x")


async def dead_letter_through_the_bus(prefix: str, messages: list[Message], expect: int) -> None:
    """Produce to `<prefix>x`, consume with the real KafkaBus (decode is the handler), wait for `expect`
    dead letters on `<prefix>x.dlq`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), acks="all")
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(f"{prefix}x", value=m.value, key=m.key, headers=list(m.headers))
    finally:
        await producer.stop()

    async def handler(message: Message) -> None:
        decode(message)

    bus = KafkaBus(bootstrap(), client_id="dlq-test", prefix=prefix, retry_max_s=1)
    bus.subscribe(Subscription(group="dlq-test", topics=["x"], handler=handler))
    await bus.start()
    try:
        from yardstick.bus.deadletters import read

        for _ in range(240):
            total, _found = await read(bootstrap(), physical_dlq("x", prefix), limit=1)
            if total >= expect:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for {expect} dead letters")
    finally:
        await bus.stop()


def dlq(*args: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap(), "YARDSTICK_TOPIC_PREFIX": prefix})
    return subprocess.run([YARDSTICK, "dlq", *args], capture_output=True, text=True, env=env, timeout=120)


def test_dlq_prints_headers_and_reason_but_no_payload(prefix: str) -> None:
    # A value of the wrong type that carries personal data (unknown fields are ignored, decision 0008).
    bad_extra = feedback("ev-extra", year=f"call me on {PHONE}")
    bad_level = feedback("ev-level", level=9)  # out of range
    good = feedback("ev-good", level=4)
    asyncio.run(dead_letter_through_the_bus(prefix, [bad_extra, good, bad_level], expect=2))

    out = dlq("x", prefix=prefix)
    assert out.returncode == 0, out.stderr
    assert f"{prefix}x.dlq: 2 dead-lettered message(s), 2 shown" in out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    by_id = {row["headers"]["ce_id"]: row for row in rows}
    assert set(by_id) == {"ev-extra", "ev-level"}
    for event_id, source in (("ev-extra", bad_extra), ("ev-level", bad_level)):
        row = by_id[event_id]
        assert row["topic"] == f"{prefix}x.dlq"
        assert row["consumer"] == "dlq-test"
        assert row["attempts"] == "1"
        assert row["key"] == "health-commission"
        assert row["headers"]["ce_type"] == "feedback.received"
        assert row["headers"]["ce_source"] == "feedback-intake"
        assert row["payload_bytes"] == len(source.value)
        assert "x-error" not in row["headers"]
    assert by_id["ev-extra"]["error"].startswith("feedback.received breaks its schema")
    assert "int_parsing" in by_id["ev-extra"]["error"] and "'year'" in by_id["ev-extra"]["error"]
    assert "less_than_equal" in by_id["ev-level"]["error"]
    # Neither the payload nor a value from it: the comment's phone number is nowhere in the output.
    assert PHONE not in out.stdout + out.stderr
    assert "fb-ev-extra" not in out.stdout

    # The same topic named as its dead-letter topic, and a limit.
    limited = dlq("x.dlq", "--limit", "1", prefix=prefix)
    assert limited.returncode == 0, limited.stderr
    assert len(limited.stdout.splitlines()) == 1
    assert json.loads(limited.stdout)["headers"]["ce_id"] in by_id
    assert f"{prefix}x.dlq: 2 dead-lettered message(s), 1 shown" in limited.stderr


def test_dlq_of_a_missing_topic_says_so(prefix: str) -> None:
    out = dlq("nothing-here.v1", prefix=prefix)
    assert out.returncode == 2
    assert f"no topic {prefix}nothing-here.v1.dlq on the broker" in out.stderr
    assert out.stdout == ""


def test_dlq_with_the_broker_unreachable_fails_clearly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:9"
    out = subprocess.run([YARDSTICK, "dlq", "feedback.v1"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert "broker at 127.0.0.1:9 unreachable" in out.stderr
