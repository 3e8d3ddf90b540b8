"""Hypothesis-generated malformed CloudEvents on the real topics, between valid events: each malformed
one ends in `<topic>.dlq` once per consumer group (with x-error, x-consumer, x-attempts), each valid one
is applied, and no consumer stops (every group's lag returns to zero)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness import System, wait_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka_tools import group_lag, produce, read_all
from kiosk_load import CITY, Ledger, commission, notices_n, scoring_n

from yardstick import events
from yardstick.bus import Message
from yardstick.bus.codec import encode

# The consumer groups that read each topic (events.md), and so dead-letter a message of it.
GROUPS = {events.FEEDBACK: {"scoring", "notices"}, events.TARGETS: {"scoring", "notices"},
          events.NOTICES: {"scoring", "feedback-intake-notices"}}
CE_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "content-type")
CASE = "x-test-case"  # our own marker: the dead letter keeps every header of the message


@dataclass(frozen=True)
class Malformed:
    """How to break a valid message, as drawn by hypothesis."""

    how: str
    topic: str
    header: str = ""
    raw: bytes = b""
    payload: Any = None
    garble_key: bool = False


def _valid_payload(unit: str, window: str) -> dict[str, Any]:
    return events.FeedbackReceived(
        feedback_id=str(uuid.uuid4()), unit_id=unit, channel="window", occurred_at=datetime.now(UTC),
        year=datetime.now(UTC).year, level=4, window_id=window).model_dump(mode="json")


def _not_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
# (An unknown field is not among them: events ignore fields they do not know, so that a producer may add one.)
_payload_breaks = st.one_of(
    st.sampled_from(["feedback_id", "unit_id", "channel", "occurred_at", "year"]).map(lambda f: ("drop", f)),
    # values each field refuses (an integer would be a valid time, a small one a valid year)
    st.sampled_from([("level", "five"), ("level", 9), ("level", -1), ("level", [1]), ("occurred_at", "not a time"),
                     ("occurred_at", [1]), ("occurred_at", {"a": 1}), ("channel", "kiosk"), ("channel", 9),
                     ("year", "five"), ("year", [1]), ("unit_id", None)]).map(lambda fv: ("set", fv)),
)

malformed = st.one_of(
    # a required CloudEvents header (or content-type) missing
    st.builds(Malformed, how=st.just("drop_header"), topic=st.sampled_from(sorted(GROUPS)),
              header=st.sampled_from(CE_HEADERS)),
    # a header that is not UTF-8 at all
    st.builds(Malformed, how=st.just("garble_header"), topic=st.sampled_from(sorted(GROUPS)),
              header=st.sampled_from(CE_HEADERS),
              raw=st.binary(min_size=1, max_size=30).map(lambda b: b"\xff" + b)),
    # headers that are text but wrong: spec version, time, id, content type
    st.builds(Malformed, how=st.just("set_header"), topic=st.sampled_from(sorted(GROUPS)),
              header=st.just("ce_specversion"), raw=st.sampled_from([b"0.1", b"2.0", b"1", b"v1.0", b"one"])),
    st.builds(Malformed, how=st.just("set_header"), topic=st.sampled_from(sorted(GROUPS)),
              header=st.just("ce_time"), raw=_text.filter(lambda t: not any(c.isdigit() for c in t) and t != "")
              .map(str.encode)),
    st.builds(Malformed, how=st.just("set_header"), topic=st.sampled_from(sorted(GROUPS)),
              header=st.just("ce_id"), raw=st.one_of(st.binary(min_size=65, max_size=300).map(lambda b: b"x" + b),
                                                      st.just(b"id\x00"), st.just(b"id\n"))),
    st.builds(Malformed, how=st.just("set_header"), topic=st.sampled_from(sorted(GROUPS)),
              header=st.just("content-type"),
              raw=st.sampled_from([b"text/plain", b"application/xml", b"application/octet-stream",
                                   b"application/cloudevents+json", b"json"])),
    # an event type no one knows
    st.builds(Malformed, how=st.just("set_header"), topic=st.sampled_from(sorted(GROUPS)),
              header=st.just("ce_type"),
              raw=_text.filter(lambda t: t.strip() != "" and t not in events.EVENT_MODELS).map(str.encode)),
    # a value that is not JSON, or JSON that is not an object
    st.builds(Malformed, how=st.just("value"), topic=st.sampled_from(sorted(GROUPS)),
              raw=st.binary(max_size=200).filter(_not_json)),
    st.builds(Malformed, how=st.just("value"), topic=st.sampled_from(sorted(GROUPS)),
              raw=st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.none(), _text)
              .map(lambda v: json.dumps(v).encode())),
    # JSON that breaks the event's schema
    st.builds(Malformed, how=st.just("schema"), topic=st.sampled_from(sorted(GROUPS)), payload=_payload_breaks),
    # huge: a schema-breaking field of 100 to 400 kB
    st.builds(Malformed, how=st.just("huge"), topic=st.sampled_from(sorted(GROUPS)),
              payload=st.integers(min_value=100_000, max_value=400_000)),
).flatmap(lambda m: st.booleans().map(lambda k: Malformed(m.how, m.topic, m.header, m.raw, m.payload, k)))


def _build(m: Malformed, *, case: str, topic: str, unit: str, window: str) -> Message:
    good = encode(events.Envelope.of(events.FeedbackReceived.model_validate(_valid_payload(unit, window)),
                                     source="fault-tests", key=unit))
    headers = dict(good.headers)
    value: bytes | None = good.value
    if m.how == "drop_header":
        del headers[m.header]
    elif m.how in ("garble_header", "set_header"):
        headers[m.header] = m.raw
    elif m.how == "value":
        value = m.raw
    elif m.how == "schema":
        payload = json.loads(good.value)
        kind, what = m.payload
        if kind == "drop":
            del payload[what]
        else:
            payload[what[0]] = what[1]
        value = json.dumps(payload).encode()
    elif m.how == "huge":
        payload = json.loads(good.value)
        payload["level"] = "x" * m.payload  # a level of 100 to 400 kB breaks the schema
        value = json.dumps(payload).encode()
    key = b"\xff\xfe" + unit.encode() if m.garble_key else good.key
    return Message(topic=topic, key=key, value=value,  # type: ignore[arg-type]
                   headers=(*headers.items(), (CASE, case.encode())))


@dataclass
class Sent:
    case: str
    topic: str
    value: bytes | None


def test_malformed_events_go_to_the_dlq_and_never_stop_a_consumer(full_system: System, ledger: Ledger) -> None:
    system = full_system
    unit = ledger.units(1)[0]
    windows = [w.id for w in CITY.windows_of(unit)]
    run = uuid.uuid4().hex[:8]
    sent: list[Sent] = []
    valid = Counter[str]()

    @settings(max_examples=6, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(malformed, min_size=4, max_size=8))
    def produce_example(cases: list[Malformed]) -> None:
        # Each malformed message goes between two valid ones on the same partition (same key): a consumer
        # stuck on it would hold the valid one behind it.
        out: list[Message] = []
        for i, m in enumerate(cases):
            case = f"{run}-{len(sent)}"
            topic = system.prefix + m.topic
            window = windows[(len(sent) + i) % len(windows)]
            bad = _build(m, case=case, topic=topic, unit=unit, window=window)
            good = encode(events.Envelope.of(events.FeedbackReceived.model_validate(_valid_payload(unit, window)),
                                             source="fault-tests", key=unit))
            out += [bad, Message(topic=system.prefix + events.FEEDBACK, key=good.key, value=good.value,
                                 headers=good.headers)]
            sent.append(Sent(case, m.topic, bad.value))
            valid[window] += 1
        # One producer a topic; each topic's messages in their order.
        for topic in dict.fromkeys(m.topic for m in out):
            asyncio.run(produce(topic, [m for m in out if m.topic == topic]))

    produce_example()
    token = commission(system)
    year = datetime.now(UTC).year
    total_valid = sum(valid.values())
    wait_for(lambda: scoring_n(system, unit, year, token) >= total_valid
             and sum(notices_n(system, "window", w, token) for w in windows) >= total_valid,
             timeout=180, what=f"the {total_valid} valid events to be applied")

    def letters() -> dict[str, list[Message]]:
        out: dict[str, list[Message]] = {}
        for topic in GROUPS:
            for m in asyncio.run(read_all(system.prefix + topic + ".dlq", timeout_s=15)):
                case = m.header(CASE)
                if case and case.decode().startswith(run):
                    out.setdefault(case.decode(), []).append(m)
        return out

    expected = sum(len(GROUPS[s.topic]) for s in sent)
    dead = wait_for(lambda: (got := letters()) and sum(map(len, got.values())) >= expected and got,
                    timeout=180, interval=2, what=f"{expected} dead letters")
    for s in sent:
        got = dead.get(s.case, [])
        consumers = Counter(m.header("x-consumer").decode() for m in got)  # type: ignore[union-attr]
        assert consumers == Counter(GROUPS[s.topic]), (s.case, s.topic, consumers)
        for m in got:
            assert m.topic == system.prefix + s.topic + ".dlq"
            assert m.value == s.value
            assert m.header("x-error"), m.headers
            assert m.header("x-attempts") == b"1"

    # Every consumer moved on: each group has committed up to the end of what it reads.
    for group in ("scoring", "notices", "feedback-intake-notices"):
        topics = [system.prefix + t for t in topics_of(group)]
        wait_for(lambda g=group, t=topics: asyncio.run(group_lag(system.prefix + g, t)) == 0, timeout=120,
                 what=f"{group}'s lag to be zero")
    # The valid events were applied once each, none twice, none lost behind a malformed one.
    assert scoring_n(system, unit, year, token) == total_valid
    assert {w: notices_n(system, "window", w, token) for w in windows} == {w: valid[w] for w in windows}
    print(f"\nmalformed events: {len(sent)} malformed ({dict(Counter(s.topic for s in sent))}) and "
          f"{total_valid} valid events; {sum(map(len, dead.values()))} dead letters")


def topics_of(group: str) -> list[str]:
    return sorted(t for t, groups in GROUPS.items() if group in groups) + (
        [events.SURVEY] if group == "scoring" else [])

