"""scoring's decoders against decode_fast: the same envelopes, rows or dead letters.

decode_lean (one message) must make the very envelope decode_fast makes; the batch path's row
decoder (consumers.DECODE_BATCH, yardstick.consumer.RowDecoder) the same event's fields as a row,
and exactly the same dead letters.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict

from scoring import consumers
from scoring.app import create_app
from scoring.settings import ScoringSettings
from yardstick import consumer, events
from yardstick.bus import DeadLetter, Message
from yardstick.bus.codec import encode, encode_stored
from yardstick.bus.memory import MemoryBus
from yardstick.consumer import Decoded, Row
from yardstick.runtime import SQLITE_POLL_MAX

_text = st.text(max_size=12)
_moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                        timezones=st.none() | st.sampled_from([UTC, timezone(timedelta(hours=8)),
                                                               timezone(timedelta(hours=-5, minutes=-30))]))
_channels = st.sampled_from(["window", "web", "mobile", "hotline", "social", "open311", "survey"])
_received = st.fixed_dictionaries(
    {"feedback_id": _text, "unit_id": _text, "channel": _channels, "occurred_at": _moments,
     "year": st.integers(1900, 2200)},
    optional={"level": st.none() | st.integers(1, 5), "window_id": st.none() | _text,
              "category_id": st.none() | _text, "district_id": st.none() | _text,
              "reasons": st.lists(_text, max_size=3), "has_text": st.booleans(), "device": st.none() | _text})
_reassigned = st.fixed_dictionaries(
    {"feedback_id": _text, "from_unit_id": _text, "unit_id": _text, "channel": _channels, "occurred_at": _moments,
     "year": st.integers(1900, 2200)},
    optional={"level": st.none() | st.integers(1, 5), "category_id": st.none() | _text,
              "revision": st.integers(1, 9)})
_follow_up = st.fixed_dictionaries(
    {"feedback_id": _text, "unit_id": _text, "level": st.integers(1, 5), "occurred_at": _moments,
     "year": st.integers(1900, 2200)}, optional={"category_id": st.none() | _text})
_events = st.one_of(
    st.tuples(st.just(events.FeedbackReceived), _received),
    st.tuples(st.just(events.FeedbackReassigned), _reassigned),
    st.tuples(st.just(events.FeedbackFollowUp), _follow_up),
)
# JSON values of every kind, for a field the producer got wrong.
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                 max_size=3), max_leaves=5)


# Events that are not rows.
_OTHERS = [
    events.SurveyDefined(survey_id="s", year=2026, title="Household survey",
                         strata=[events.Stratum(id="a", population=10)]),
    events.NoticeOverdue(notice_id="n", unit_id="finance", step="respond", deadline=date(2026, 3, 1)),
    events.FeedbackResponded(feedback_id="f", unit_id="finance", responded_at=datetime(2026, 3, 1, tzinfo=UTC),
                             due=date(2026, 3, 4), overdue=False),
]


def _relayed(model: type[events.Event], fields: dict[str, Any], *, body: str, event_id: str = "e-1",
             source: str = "feedback-intake", key: str = "finance",
             time: str = "2026-03-01T09:00:00.250000Z") -> Message:
    """A message as the outbox relay writes it (codec.encode_stored) around `body`."""
    return encode_stored(event_id=event_id, source=source, event_type=model.__event_type__, time=time, key=key,
                         value=body.encode(), topic=model.__topic__)


_GOOD = _relayed(events.FeedbackReceived, {}, body=events.FeedbackReceived(
    feedback_id="f", unit_id="finance", channel="window", occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    year=2026, level=4).model_dump_json())


def _bodies(model: type[events.Event], fields: dict[str, Any]) -> list[str]:
    """The JSON a producer may write for these fields: the model's own, or only the fields given, plus one unknown."""
    data = model(**fields)
    given_only = json.loads(data.model_dump_json(include=set(fields)))
    return [data.model_dump_json(), json.dumps(given_only), json.dumps({**given_only, "added_later": [1, "x"]})]


def _outcome(decoder: Any, message: Message) -> tuple[str, Any]:
    """What a decoder makes of a message, all of it: the envelope's and the data's whole state, or the dead letter."""
    try:
        envelope = decoder(message)
    except DeadLetter as exc:
        return "dead letter", str(exc)
    data = envelope.data
    return "envelope", (envelope.__getstate__(), data.__getstate__(), repr(envelope), type(data),
                        type(envelope.time.tzinfo), type(getattr(data, "occurred_at", None)),
                        type(getattr(getattr(data, "occurred_at", None), "tzinfo", None)))


def _fields(decoder: Any, message: Message) -> tuple[str, Any]:
    """What a decoder makes of a message, read as a batch handler reads it: id, type, every field and its type.

    A row holds the fields the message carried; the ones it left out read as the model's defaults.
    """
    try:
        decoded = decoder(message)
    except DeadLetter as exc:
        return "dead letter", str(exc)
    return _read(decoded)


def _read(decoded: Decoded | DeadLetter) -> tuple[str, Any]:
    """_fields of what a decoder made of a message (or the dead letter it gave instead of raising it)."""
    if isinstance(decoded, DeadLetter):
        return "dead letter", str(decoded)
    if isinstance(decoded, Row):
        model = events.EVENT_MODELS[decoded.type]
        defaults = {name: field.get_default(call_default_factory=True)
                    for name, field in model.model_fields.items() if not field.is_required()}
        fields = {**defaults, **decoded.data}
    else:
        fields = dict(decoded.data.__dict__)
    return "event", (decoded.id, decoded.type, fields, {k: type(v) for k, v in fields.items()},
                     type(getattr(fields.get("occurred_at"), "tzinfo", None)))


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[Message]:
    """The messages decode_lean handed to decode_fast (its fallback), counted."""
    calls: list[Message] = []
    original = consumer.decode_fast

    def counted(message: Message) -> events.Envelope:
        calls.append(message)
        return original(message)

    monkeypatch.setattr(consumer, "decode_fast", counted)
    return calls


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_events, st.data())
def test_the_relays_messages_decode_on_the_lean_path_to_what_decode_fast_makes(
        fast_calls: list[Message], event: tuple[type[events.Event], dict[str, Any]], data: st.DataObject) -> None:
    model, fields = event
    for body in _bodies(model, fields):
        message = _relayed(model, fields, body=body, event_id=data.draw(st.uuids().map(str)),
                           key=data.draw(st.sampled_from(["finance", ""])),
                           time=data.draw(st.sampled_from(["2026-03-01T09:00:00Z", "2026-03-01T17:00:00+08:00",
                                                           "2026-03-01T09:00:00.123456Z"])))
        fast_calls.clear()
        lean = _outcome(consumer.decode_lean, message)
        assert fast_calls == []  # not through the fallback: the lean path itself made it
        assert lean == _outcome(consumer.decode_fast, message)
        assert lean[0] == "envelope"
        fast_calls.clear()
        row = consumers.DECODE_BATCH(message)
        assert fast_calls == []  # nor the row decoder's
        assert isinstance(row, Row)  # the feedback events are rows on the batch path
        assert _fields(consumers.DECODE_BATCH, message) == _fields(consumer.decode_fast, message)


@settings(max_examples=500, deadline=None)
@given(_events, st.data())
def test_a_broken_field_is_dead_lettered_or_decoded_exactly_as_decode_fast_does(
        event: tuple[type[events.Event], dict[str, Any]], data: st.DataObject) -> None:
    model, fields = event
    body = json.loads(model(**fields).model_dump_json())
    name = data.draw(st.sampled_from(sorted(body)))
    change = data.draw(st.sampled_from(["value", "missing", "string"]))
    if change == "missing":
        del body[name]
    elif change == "string":
        body[name] = str(body[name])  # "3" for 3: pydantic's lax mode takes some of these
    else:
        body[name] = data.draw(_json)
    message = _relayed(model, fields, body=json.dumps(body))
    assert _outcome(consumer.decode_lean, message) == _outcome(consumer.decode_fast, message)
    assert _fields(consumers.DECODE_BATCH, message) == _fields(consumer.decode_fast, message)
    # In a poll, between two good messages, the same.
    poll = [_GOOD, message, _GOOD]
    assert [_read(d) for d in consumers.DECODE_BATCH.poll(poll)] == [_fields(consumer.decode_fast, m) for m in poll]


def _broken(data: st.DataObject, good: Message = _GOOD) -> Message:
    """The good message with one thing wrong: a header's value, a header missing, null, extra or moved, the body,
    the key."""
    names = [k for k, _ in good.headers]
    how = data.draw(st.sampled_from(["header value", "no header", "null header", "extra header", "order", "body",
                                     "key"]))
    if how == "header value":
        name = data.draw(st.sampled_from(names))
        value = data.draw(st.binary(max_size=70) | st.sampled_from(
            [b"feedback.reassigned", b"no.such.type", b"1.1", b"text/plain", b"application/json; charset=utf-8",
             b"2026-13-01T00:00:00Z", b"", b"x" * 65]))
        message = replace(good, headers=tuple((k, value if k == name else v) for k, v in good.headers))
    elif how == "no header":
        name = data.draw(st.sampled_from(names))
        message = replace(good, headers=tuple((k, v) for k, v in good.headers if k != name))
    elif how == "null header":
        name = data.draw(st.sampled_from(names))
        message = replace(good, headers=tuple((k, None if k == name else v)  # type: ignore[misc]
                                              for k, v in good.headers))
    elif how == "extra header":
        extra = data.draw(st.sampled_from(["ce_traceparent", "ce_dataschema", "traceparent", "ce_id"]))
        message = replace(good, headers=(*good.headers, (extra, data.draw(st.binary(min_size=1, max_size=10)))))
    elif how == "order":  # the same headers in another order: the same event, through decode_fast
        message = replace(good, headers=tuple(data.draw(st.permutations(good.headers))))
    elif how == "body":
        message = replace(good, value=data.draw(st.binary(max_size=40) | _json.map(lambda v: json.dumps(v).encode())))
    else:
        message = replace(good, key=data.draw(st.binary(max_size=8)))
    return message


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_broken_headers_and_bodies_are_dead_lettered_exactly_as_decode_fast_does(data: st.DataObject) -> None:
    message = _broken(data)
    assert _outcome(consumer.decode_lean, message) == _outcome(consumer.decode_fast, message)
    assert _fields(consumers.DECODE_BATCH, message) == _fields(consumer.decode_fast, message)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_poll_decodes_each_message_as_it_decodes_alone(data: st.DataObject) -> None:
    """RowDecoder.poll (the batch path's) against the decoder a message at a time: good messages of every kind,
    broken ones, other events, in any mix."""
    kinds = st.sampled_from(["good", "broken", "other"])
    poll: list[Message] = []
    for kind in data.draw(st.lists(kinds, min_size=1, max_size=8)):
        if kind == "other":
            other = data.draw(st.sampled_from(_OTHERS))
            poll.append(_relayed(type(other), {}, body=other.model_dump_json()))
        elif kind == "broken":
            poll.append(_broken(data))
        else:
            model, fields = data.draw(_events)
            poll.append(_relayed(model, fields, body=data.draw(st.sampled_from(_bodies(model, fields))),
                                 event_id=data.draw(st.sampled_from(["e-1", "e-2", "01a22aa8-f83d-78af"]))))
    alone = [_fields(consumers.DECODE_BATCH, m) for m in poll]
    assert [_read(d) for d in consumers.DECODE_BATCH.poll(poll)] == alone
    assert alone == [_fields(consumer.decode_fast, m) for m in poll]


@pytest.mark.parametrize("case", ["string level", "level 6", "unknown channel", "no unit", "not JSON", "a list",
                                  "no ce_time", "id too long"])
def test_what_the_schema_refuses_reads_the_same_dead_letter(case: str) -> None:
    fields = {"feedback_id": "f", "unit_id": "finance", "channel": "window", "year": 2026,
              "occurred_at": "2026-03-01T09:00:00Z", "level": 4}
    broken: dict[str, Any] = {"string level": {**fields, "level": "four"}, "level 6": {**fields, "level": 6},
                              "unknown channel": {**fields, "channel": "fax"},
                              "no unit": {k: v for k, v in fields.items() if k != "unit_id"}}
    body = {"not JSON": "{\"feedback_id\": ", "a list": "[1, 2]"}.get(case) or json.dumps(broken.get(case, fields))
    message = _relayed(events.FeedbackReceived, {}, body=body, event_id="x" * 65 if case == "id too long" else "e-1")
    if case == "no ce_time":
        message = replace(message, headers=tuple((k, v) for k, v in message.headers if k != "ce_time"))
    with pytest.raises(DeadLetter) as fast:
        consumer.decode_fast(message)
    with pytest.raises(DeadLetter) as lean:
        consumer.decode_lean(message)
    with pytest.raises(DeadLetter) as row:
        consumers.DECODE_BATCH(message)
    assert str(lean.value) == str(row.value) == str(fast.value)


def test_a_message_the_sdk_encoded_decodes_the_same(fast_calls: list[Message]) -> None:
    envelope = events.Envelope.of(events.FeedbackReceived(
        feedback_id="f", unit_id="finance", channel="web", occurred_at=datetime(2026, 3, 1, 9, tzinfo=UTC),
        year=2026, level=2, category_id="fees", has_text=True), source="feedback-intake", key="finance")
    message = encode(envelope)
    assert consumer.decode_lean(message) == envelope == consumer.decode_fast(message)


@pytest.mark.parametrize(("url", "poll_size"), [
    # Nothing connects here: the app is only built.
    ("postgresql+asyncpg://u:p@127.0.0.1:1/scoring", 10_000),
    # SQLite's one writer is held for a poll at a time: shorter ones there (decision 0021).
    ("sqlite", SQLITE_POLL_MAX),
])
def test_scorings_consumer_decodes_with_the_lean_path_and_its_polls_as_rows(tmp_path: Any, url: str,
                                                                            poll_size: int) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}" if url == "sqlite" else url
    settings_ = ScoringSettings(data_dir=tmp_path, bus="memory", auth_secret="test", database_url=url)
    app: FastAPI = create_app(settings_, bus=MemoryBus())
    [scoring] = [c for c in app.state.runtime.consumers if c.name == consumers.CONSUMER]
    assert scoring.decode is consumer.decode_lean is consumers.DECODE
    assert scoring.decode_batch is consumers.DECODE_BATCH
    [subscription] = [s for s in app.state.runtime.bus._subs if s.group == consumers.CONSUMER]
    assert consumers.POLL_SIZE == 10_000 and SQLITE_POLL_MAX == 500
    assert subscription.poll_size == poll_size


@pytest.mark.parametrize("data", _OTHERS)
def test_the_batch_decoder_gives_other_events_as_decode_lean_does(data: events.Event) -> None:
    message = _relayed(type(data), {}, body=data.model_dump_json())
    decoded = consumers.DECODE_BATCH(message)
    assert not isinstance(decoded, Row)
    assert _outcome(consumers.DECODE_BATCH, message) == _outcome(consumer.decode_lean, message) \
        == _outcome(consumer.decode_fast, message)


def test_rows_are_refused_for_a_model_they_would_not_validate_as() -> None:
    from pydantic import field_validator

    class Checked(events.FeedbackFollowUp):
        @field_validator("unit_id")
        @classmethod
        def upper(cls, value: str) -> str:
            return value.upper()

    with pytest.raises(TypeError, match="validators"):
        consumer.rows_of(Checked)

    class Stripped(events.FeedbackFollowUp):
        model_config = ConfigDict(str_strip_whitespace=True)

    with pytest.raises(TypeError, match="config"):
        consumer.rows_of(Stripped)


def test_the_summing_loop_reads_a_rows_missing_fields_as_the_models_defaults() -> None:
    """consumers.summarise reads `data.get(name)` (None) and `data.get("has_text", False)` for fields a row may lack."""
    for kind in consumers.FEEDBACK_TYPES:
        fields = events.EVENT_MODELS[kind].model_fields
        for name, default in (("level", None), ("category_id", None), ("has_text", False)):
            if name in fields and not fields[name].is_required():
                assert fields[name].default is default, (kind, name)
