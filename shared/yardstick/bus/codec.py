"""CloudEvents 1.0 binary-mode encoding of envelopes for Kafka, through the cloudevents SDK."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from yardstick import events
from yardstick.bus import DeadLetter, Message
from yardstick.events import ce_time

_FORMAT = JSONFormat()
# events.md: every message carries these CloudEvents headers.
REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time")
CONTENT_TYPE = b"application/json"
MAX_ID_BYTES = 64


def encode_parts(*, event_id: str, source: str, event_type: str, time: str, key: str,
                 payload: dict[str, Any], topic: str) -> Message:
    """Encode already-serialised event data (as the outbox stores it)."""
    event = CloudEvent(
        attributes={
            "id": event_id, "source": source, "type": event_type, "specversion": "1.0",
            "time": events.parse_time(time), "datacontenttype": "application/json",
            "partitionkey": key,
        },
        data=payload,
    )
    wire = ce_kafka.to_binary(event, _FORMAT)
    key_bytes = wire.key.encode() if isinstance(wire.key, str) else wire.key
    return Message(topic=topic, key=key_bytes, value=wire.value, headers=tuple(wire.headers.items()))


def encode_stored(*, event_id: str, source: str, event_type: str, time: str, key: str, value: bytes,
                  topic: str) -> Message:
    """Binary-mode headers around data already serialised as JSON (the outbox relay's hot path).

    Byte for byte the headers the SDK's `to_binary` writes (tests compare the two); the SDK
    would parse and re-serialise the stored JSON for nothing.
    """
    moment = time if time.endswith("Z") else ce_time(events.parse_time(time))
    headers = (("ce_id", event_id.encode()), ("ce_source", source.encode()), ("ce_type", event_type.encode()),
               ("ce_specversion", b"1.0"), ("ce_time", moment.encode()), ("content-type", b"application/json"),
               ("ce_partitionkey", key.encode()))
    return Message(topic=topic, key=key.encode(), value=value, headers=headers)


def encode(envelope: events.Envelope) -> Message:
    return encode_parts(
        event_id=envelope.id, source=envelope.source, event_type=envelope.type,
        time=envelope.time.isoformat(), key=envelope.key,
        payload=envelope.data.model_dump(mode="json"), topic=envelope.topic,
    )


def is_event_id(raw: bytes | None) -> bool:
    """An id a consumer can record (a 64-character column): printable ASCII, 1 to 64 bytes."""
    if not raw or len(raw) > MAX_ID_BYTES or not raw.isascii():
        return False
    return raw.decode("ascii").isprintable()


def are_event_ids(raws: Sequence[bytes | None]) -> bool:
    """`is_event_id` of every one of them, checked together in a few calls into C (a poll's 10,000 ids in a
    fraction of the time of one call each); False when any one is not, or there are none."""
    if not raws or None in raws:
        return False
    ids = cast(Sequence[bytes], raws)
    joined = b"".join(ids)
    return 0 < min(map(len, ids)) and max(map(len, ids)) <= MAX_ID_BYTES \
        and joined.isascii() and joined.decode("ascii").isprintable()


def decode(message: Message) -> events.Envelope:
    """Decode a message into a typed envelope; anything undecodable or off-schema is a DeadLetter."""
    headers = {k: v for k, v in message.headers}
    # The SDK makes up a fresh id and time when they are missing: a message without ce_id
    # would then be applied again on every redelivery, so these must come from the producer.
    missing = [name for name in REQUIRED_HEADERS if not headers.get(name)]
    if missing:
        raise DeadLetter(f"not a CloudEvents binary-mode message: missing {', '.join(missing)}")
    # events.md: the data is JSON, said so by content-type; the SDK would read it whatever the header says.
    content_type = (headers.get("content-type") or b"").split(b";", 1)[0].strip().lower()
    if content_type != CONTENT_TYPE:
        raise DeadLetter(f"content-type is not {CONTENT_TYPE.decode()}: {content_type[:100]!r}")
    if not is_event_id(headers["ce_id"]):
        raise DeadLetter(f"ce_id is not an id (printable ASCII, at most {MAX_ID_BYTES} bytes): "
                         f"{headers['ce_id'][:80]!r}")
    try:
        wire = ce_kafka.KafkaMessage(headers=headers, key=message.key, value=message.value)
        event = ce_kafka.from_binary(wire, _FORMAT, CloudEvent)
    except Exception as exc:  # the SDK raises many kinds for malformed input
        raise DeadLetter(f"not a CloudEvents binary-mode message: {exc}") from exc
    attrs = event.get_attributes()
    payload = event.get_data()
    if isinstance(payload, bytes | str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise DeadLetter(f"data is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise DeadLetter("data is not a JSON object")
    event_type = str(attrs.get("type", ""))
    try:
        data = events.parse(event_type, payload)
    except events.UnknownEventType as exc:
        raise DeadLetter(str(exc)) from exc
    except ValidationError as exc:
        # Without the input values: a value may be a comment's text, and reasons go to logs and x-error.
        problems = exc.errors(include_url=False, include_input=False)
        raise DeadLetter(f"{event_type} breaks its schema: {problems}") from exc
    try:
        key = message.key.decode() if message.key else str(attrs.get("partitionkey", ""))
        return events.Envelope(
            id=str(attrs["id"]), source=str(attrs["source"]), type=event_type,
            time=attrs["time"], topic=message.topic, key=key, data=data,
        )
    except ValidationError as exc:  # attributes the envelope refuses
        problems = exc.errors(include_url=False, include_input=False)
        raise DeadLetter(f"not a CloudEvents binary-mode message: {problems}"[:2000]) from exc
    except (ValueError, KeyError) as exc:  # a key that is not UTF-8, a missing attribute
        raise DeadLetter(f"not a CloudEvents binary-mode message: {exc}"[:2000]) from exc
