"""Tests of the event models, the CloudEvents binary-mode codec and the checked-in JSON Schemas."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from yardstick import cli, events
from yardstick.bus import DeadLetter, Message
from yardstick.bus.codec import decode, encode

REPO = Path(__file__).resolve().parents[2]
EVENTS_MD = REPO.parent / "shared" / "contract" / "events.md"
SCHEMA_DIR = REPO / "shared" / "schemas" / "events"
CST = timezone(timedelta(hours=8))


def _contract_event_types() -> set[str]:
    """The event types named in the topic table of events.md (third column)."""
    types: set[str] = set()
    for line in EVENTS_MD.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 4 and cells[1].startswith("`") and not cells[1].startswith("`<"):
            types.update(re.findall(r"`([a-z_]+\.[a-z_]+)`", cells[3]))
    return types


def _received(**overrides: Any) -> events.FeedbackReceived:
    fields: dict[str, Any] = {
        "feedback_id": "f-1", "unit_id": "finance", "channel": "window",
        "occurred_at": datetime(2026, 3, 4, 9, 30, 15, 250000, tzinfo=CST), "year": 2026, "level": 4,
        "window_id": "finance-w1", "reasons": ["long-wait"], "device": "kiosk-7",
    }
    fields.update(overrides)
    return events.FeedbackReceived(**fields)


def _envelope(data: events.Event | None = None, **kwargs: Any) -> events.Envelope:
    kwargs.setdefault("source", "feedback-intake")
    kwargs.setdefault("key", "finance")
    kwargs.setdefault("event_id", "4d5a8a57-0f7e-4f1c-9a55-0c1f2f3b4e5d")
    kwargs.setdefault("time", datetime(2026, 3, 4, 9, 30, 16, 123456, tzinfo=CST))
    return events.Envelope.of(data or _received(), **kwargs)


# the models --------------------------------------------------------------------------


def test_the_contract_table_is_parsed() -> None:
    # Guards the parser below: the table lists 18 types over six topics.
    types = _contract_event_types()
    assert {"feedback.received", "token.revoked", "scorecard.finalized"} <= types
    assert len(types) == 18


def test_every_event_type_of_the_contract_has_a_model() -> None:
    assert set(events.EVENT_MODELS) == _contract_event_types()


@pytest.mark.parametrize("event_type", sorted(events.EVENT_MODELS))
def test_each_model_knows_its_type_and_topic(event_type: str) -> None:
    model = events.EVENT_MODELS[event_type]
    assert model.__event_type__ == event_type
    prefix = event_type.split(".")[0]
    expected_topic = {"feedback": events.FEEDBACK, "survey": events.SURVEY, "target": events.TARGETS,
                      "notice": events.NOTICES, "scorecard": events.SCORES, "token": events.AUTH}[prefix]
    assert model.__topic__ == expected_topic


def test_parse_refuses_unknown_types_and_drops_unknown_fields() -> None:
    with pytest.raises(events.UnknownEventType):
        events.parse("feedback.exploded", {})
    payload = _received().model_dump(mode="json")
    assert events.parse("feedback.received", payload) == _received()
    # An optional field added by a newer producer is a compatible change: the event is applied,
    # and what this consumer does not know is not kept (nor passed on, nor stored).
    newer = events.parse("feedback.received", {**payload, "phone": "13800000000", "priority": 2})
    assert newer == _received() and "13800000000" not in newer.model_dump_json()
    # A required field missing or of the wrong type still breaks the schema.
    with pytest.raises(ValueError, match="unit_id"):
        events.parse("feedback.received", {k: v for k, v in payload.items() if k != "unit_id"})
    with pytest.raises(ValueError, match="level"):
        events.parse("feedback.received", {**payload, "level": "very"})


def test_published_schemas_allow_added_optional_fields() -> None:
    """docs/decisions/0008: no schema says additionalProperties false, or adding a field would break it."""
    for event_type, schema in events.json_schemas().items():
        assert schema.get("additionalProperties") is not False, event_type


# the codec ---------------------------------------------------------------------------


def test_round_trip_keeps_every_attribute_and_the_data() -> None:
    envelope = _envelope()
    decoded = decode(encode(envelope))
    assert decoded.id == envelope.id
    assert decoded.source == "feedback-intake"
    assert decoded.type == "feedback.received"
    assert decoded.time == envelope.time
    assert decoded.time.utcoffset() == timedelta(hours=8)
    assert decoded.topic == events.FEEDBACK
    assert decoded.key == "finance"
    assert decoded.data == envelope.data
    assert isinstance(decoded.data, events.FeedbackReceived)
    assert decoded.data.occurred_at == datetime(2026, 3, 4, 9, 30, 15, 250000, tzinfo=CST)


@pytest.mark.parametrize("data", [
    events.TokenRevoked(token_id="t-1", revoked_at=datetime(2026, 1, 1, tzinfo=UTC)),
    events.SurveyResponse(survey_id="s", year=2026, respondent_id="r-1", stratum="urban",
                          ratings={"finance": 5, "commerce": None}),
    events.TargetStatusChanged(target_id="t", unit_id="finance", year=2026, previous=None,
                               status="at_risk", as_of=datetime(2026, 5, 1).date()),
])
def test_round_trip_of_other_types(data: events.Event) -> None:
    envelope = _envelope(data, key="k-1")
    decoded = decode(encode(envelope))
    assert decoded == envelope
    assert decoded.topic == data.__topic__


def test_headers_are_exactly_the_binary_mode_ones() -> None:
    envelope = _envelope()
    message = encode(envelope)
    headers = dict(message.headers)
    assert len(headers) == len(message.headers), "a header appears twice"
    assert set(headers) == {"ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "content-type",
                            "ce_partitionkey"}
    assert headers["ce_id"] == envelope.id.encode()
    assert headers["ce_source"] == b"feedback-intake"
    assert headers["ce_type"] == b"feedback.received"
    assert headers["ce_specversion"] == b"1.0"
    assert datetime.fromisoformat(headers["ce_time"].decode().replace("Z", "+00:00")) == envelope.time
    assert headers["content-type"] == b"application/json"
    assert headers["ce_partitionkey"] == b"finance"
    assert message.key == b"finance"
    assert message.topic == "feedback.v1"
    # The value is the data alone, as JSON (binary mode: no envelope in the body).
    assert json.loads(message.value) == envelope.data.model_dump(mode="json")


def _with_header(message: Message, name: str, value: bytes) -> Message:
    headers = tuple((k, value if k == name else v) for k, v in message.headers)
    return Message(topic=message.topic, key=message.key, value=message.value, headers=headers)


def test_garbage_bytes_are_dead_letters() -> None:
    with pytest.raises(DeadLetter):
        decode(Message(topic=events.FEEDBACK, key=b"x", value=b"\xff\xfe not an event"))


def test_a_body_that_is_not_json_is_a_dead_letter() -> None:
    good = encode(_envelope())
    with pytest.raises(DeadLetter):
        decode(Message(topic=good.topic, key=good.key, value=b"\x00{garbage", headers=good.headers))


def test_an_unknown_type_is_a_dead_letter() -> None:
    message = _with_header(encode(_envelope()), "ce_type", b"feedback.exploded")
    with pytest.raises(DeadLetter, match="unknown event type"):
        decode(message)


def test_data_that_breaks_the_schema_is_a_dead_letter() -> None:
    good = encode(_envelope())
    payload = json.loads(good.value)
    payload["level"] = 9
    bad = Message(topic=good.topic, key=good.key, value=json.dumps(payload).encode(), headers=good.headers)
    with pytest.raises(DeadLetter, match="breaks its schema"):
        decode(bad)


def test_data_missing_a_required_field_is_a_dead_letter() -> None:
    good = encode(_envelope())
    payload = json.loads(good.value)
    del payload["unit_id"]
    bad = Message(topic=good.topic, key=good.key, value=json.dumps(payload).encode(), headers=good.headers)
    with pytest.raises(DeadLetter):
        decode(bad)


@pytest.mark.parametrize("name", ["ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time"])
def test_a_missing_required_header_is_a_dead_letter(name: str) -> None:
    # Without ce_id the SDK would make up a fresh id on each decode, and a redelivered
    # message would be applied again by the idempotent consumer.
    good = encode(_envelope())
    headers = tuple((k, v) for k, v in good.headers if k != name)
    with pytest.raises(DeadLetter, match=name):
        decode(Message(topic=good.topic, key=good.key, value=good.value, headers=headers))


@pytest.mark.parametrize(("name", "value"), [("ce_time", b"yesterday"), ("ce_source", b"\xff\xfe"),
                                             ("ce_specversion", b"0.1")])
def test_a_malformed_header_is_a_dead_letter(name: str, value: bytes) -> None:
    with pytest.raises(DeadLetter):
        decode(_with_header(encode(_envelope()), name, value))


def test_a_key_that_is_not_utf8_is_a_dead_letter() -> None:
    good = encode(_envelope())
    with pytest.raises(DeadLetter):
        decode(Message(topic=good.topic, key=b"\xff\xfe", value=good.value, headers=good.headers))


@pytest.mark.parametrize("content_type", [b"text/plain", b"application/xml", b"application/octet-stream", b""])
def test_data_not_said_to_be_json_is_a_dead_letter(content_type: bytes) -> None:
    # The SDK reads the value as JSON whatever content-type says; events.md says application/json.
    with pytest.raises(DeadLetter, match="content-type"):
        decode(_with_header(encode(_envelope()), "content-type", content_type))


def test_content_type_parameters_and_case_are_accepted() -> None:
    message = _with_header(encode(_envelope()), "content-type", b"Application/JSON; charset=utf-8")
    assert decode(message).id == _envelope().id


def test_a_missing_content_type_or_a_header_without_value_is_a_dead_letter() -> None:
    good = encode(_envelope())
    without = tuple((k, v) for k, v in good.headers if k != "content-type")
    with pytest.raises(DeadLetter, match="content-type"):
        decode(Message(topic=good.topic, key=good.key, value=good.value, headers=without))
    # Kafka headers may carry no value at all (null): a dead letter, not an AttributeError that the bus
    # would take for a transient failure and retry for ever.
    with pytest.raises(DeadLetter):
        decode(Message(topic=good.topic, key=good.key, value=good.value,
                       headers=(*without, ("content-type", None))))  # type: ignore[arg-type]


@pytest.mark.parametrize("event_id", [b"x" * 65, b"id\x00", b"id\n", "ид".encode()])
def test_an_id_no_consumer_can_record_is_a_dead_letter(event_id: bytes) -> None:
    # processed_events.event_id is 64 characters: PostgreSQL would refuse it only inside the handler.
    with pytest.raises(DeadLetter, match="ce_id"):
        decode(_with_header(encode(_envelope()), "ce_id", event_id))


# the JSON Schemas --------------------------------------------------------------------


def test_checked_in_schemas_are_current() -> None:
    assert SCHEMA_DIR.is_dir()
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} == set(events.EVENT_MODELS)
    assert cli.main(["schemas", "check", "--dir", str(SCHEMA_DIR)]) == 0


def test_checked_in_schemas_match_the_models_one_by_one() -> None:
    for event_type, schema in events.json_schemas().items():
        assert json.loads((SCHEMA_DIR / f"{event_type}.json").read_text()) == schema, event_type


def test_a_changed_model_makes_the_check_fail(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    original = events.json_schemas

    def changed() -> dict[str, dict[str, Any]]:
        schemas = original()
        schema = json.loads(json.dumps(schemas["feedback.received"]))
        schema["properties"]["level"]["anyOf"][0]["maximum"] = 7
        schemas["feedback.received"] = schema
        return schemas

    monkeypatch.setattr(events, "json_schemas", changed)
    assert cli.main(["schemas", "check", "--dir", str(SCHEMA_DIR)]) == 1
    assert "feedback.received.json" in capsys.readouterr().err


def test_a_missing_schema_file_makes_the_check_fail(tmp_path: Path) -> None:
    assert cli.main(["schemas", "write", "--dir", str(tmp_path)]) == 0
    assert cli.main(["schemas", "check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "token.revoked.json").unlink()
    assert cli.main(["schemas", "check", "--dir", str(tmp_path)]) == 1


def test_a_model_with_a_new_field_makes_the_check_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    class TokenRevokedWithReason(events.TokenRevoked):
        reason: str

    monkeypatch.setitem(events.EVENT_MODELS, "token.revoked", TokenRevokedWithReason)
    assert cli.main(["schemas", "check", "--dir", str(SCHEMA_DIR)]) == 1


def test_the_relays_fast_encoding_matches_the_sdk_byte_for_byte() -> None:
    """The outbox relay writes binary-mode headers itself; the SDK's to_binary stays the reference."""
    import json as _json
    from datetime import datetime as _dt
    from datetime import timedelta as _td
    from datetime import timezone as _tz

    from yardstick import events as ev
    from yardstick.bus.codec import decode, encode, encode_stored
    from yardstick.events import ce_time

    data = ev.FeedbackReceived(feedback_id="f-1", unit_id="health-commission", channel="window",
                               occurred_at=_dt(2026, 3, 1, 9, 30, tzinfo=_tz(_td(hours=8))), year=2026, level=4,
                               window_id="health-commission-w1")
    envelope = ev.Envelope.of(data, source="feedback-intake", key="health-commission",
                              time=_dt(2026, 3, 1, 1, 30, 0, 123456, tzinfo=UTC))
    reference = encode(envelope)
    fast = encode_stored(event_id=envelope.id, source=envelope.source, event_type=envelope.type,
                         time=ce_time(envelope.time), key=envelope.key,
                         value=_json.dumps(data.model_dump(mode="json")).encode(), topic=envelope.topic)
    assert fast.headers == reference.headers
    assert fast.key == reference.key
    assert _json.loads(fast.value) == _json.loads(reference.value)
    assert decode(fast) == decode(reference) == envelope
