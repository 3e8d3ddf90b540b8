"""Reading a dead-letter topic for operators: each message's headers and reason, never its payload."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from yardstick.bus import BusUnavailable, dlq_topic

# The headers the consumer adds when it gives up on a message (bus/kafka.py), and those of a shortened copy
# (`kafka.shortened`: the broker refused the whole one).
REASON_HEADERS = ("x-error", "x-consumer", "x-attempts")
SHORTENED_HEADERS = ("x-truncated", "x-original-bytes", "x-original-sha256")


class NoSuchTopic(Exception):
    """The dead-letter topic is not on the broker (the services create it with its topic)."""


@dataclass(frozen=True)
class DeadLettered:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: str | None
    headers: dict[str, str]
    payload_bytes: int

    def as_json(self) -> dict[str, Any]:
        """What an operator sees: where it is, the reason, the CloudEvents attributes; the size of the
        payload only, since a payload may carry a citizen's comment or contact details. A shortened copy
        says so (`truncated`: the broker's refusal) and gives the original payload's size and sha256."""
        original = self.headers.get("x-original-bytes")
        return {
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
            "timestamp": self.timestamp.isoformat(), "key": self.key,
            "consumer": self.headers.get("x-consumer"), "attempts": self.headers.get("x-attempts"),
            "error": self.headers.get("x-error"),
            "headers": {k: v for k, v in self.headers.items() if k not in REASON_HEADERS + SHORTENED_HEADERS},
            "payload_bytes": int(original) if original and original.isdigit() else self.payload_bytes,
            "truncated": self.headers.get("x-truncated"), "sha256": self.headers.get("x-original-sha256"),
        }


def physical_dlq(topic: str, prefix: str = "") -> str:
    """`feedback.v1`, `feedback.v1.dlq` and `<prefix>feedback.v1.dlq` all name the same dead-letter topic."""
    name = topic if topic.endswith(".dlq") else dlq_topic(topic)
    return name if prefix and name.startswith(prefix) else f"{prefix}{name}"


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value is not None else ""


async def read(bootstrap: str, topic: str, *, limit: int, timeout_s: float = 30.0) -> tuple[int, list[DeadLettered]]:
    """How many messages the topic holds now (retention -1: every one ever dead-lettered), and the
    first `limit` of them, partition by partition, oldest first."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", request_timeout_ms=15_000)
    try:
        await consumer.start()
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise NoSuchTopic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends[tp] - starts[tp] for tp in tps)
        found: list[DeadLettered] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for tp in tps:
            consumer.seek(tp, starts[tp])
            while len(found) < limit and await consumer.position(tp) < ends[tp]:
                if loop.time() > deadline:
                    raise BusUnavailable(f"reading {topic} took longer than {timeout_s:.0f} s")
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=limit - len(found))
                found += [_entry(record) for record in batch.get(tp, []) if record.offset < ends[tp]]
        return total, found[:limit]
    except (KafkaError, OSError) as exc:
        raise BusUnavailable(f"broker at {bootstrap} unreachable: {exc!r}") from exc
    finally:
        await consumer.stop()


def _entry(record: Any) -> DeadLettered:
    return DeadLettered(
        topic=record.topic, partition=record.partition, offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        key=_text(record.key) if record.key is not None else None,
        headers={k: _text(v) for k, v in (record.headers or ())},
        payload_bytes=len(record.value or b""),
    )
