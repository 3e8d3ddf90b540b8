"""A client library's message repeated in a loop is written at most once per interval, with the count held
back; the services' own lines are never held back (every dead letter, for one, must log its line)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from yardstick.observability import JsonFormatter, RepeatLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, Clock]]:
    out, clock = io.StringIO(), Clock()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatLimiter(every_s=5.0, clock=clock))
    loggers = [logging.getLogger(name) for name in ("aiokafka", "yardstick.bus.kafka")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield out, clock
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_librarys_loop_writes_one_line_per_interval_with_the_count_held_back(
        logged: tuple[io.StringIO, Clock]) -> None:
    out, clock = logged
    client = logging.getLogger("aiokafka")
    for i in range(3000):  # a second of the loop seen in CI: the node's id and error vary, the template not
        clock.now += 1 / 3000
        client.error("Unable connect to node with id %s: %s", 1, f"[Errno 111] Connection refused #{i}")
        client.error("Unable to update metadata from %s", [1])
    assert [(line["message"], "repeated" in line) for line in lines(out)] == [
        ("Unable connect to node with id 1: [Errno 111] Connection refused #0", False),
        ("Unable to update metadata from [1]", False)]
    clock.now += 5.0
    client.error("Unable connect to node with id %s: %s", 1, "[Errno 111] Connection refused #3000")
    last = lines(out)[-1]
    assert last["message"].endswith("#3000") and last["repeated"] == 2999
    clock.now += 5.0
    client.error("Unable connect to node with id %s: %s", 1, "[Errno 111] Connection refused #3001")
    assert "repeated" not in lines(out)[-1]  # nothing held back since the last line


def test_a_level_or_template_of_its_own_is_another_message(logged: tuple[io.StringIO, Clock]) -> None:
    out, _ = logged
    client = logging.getLogger("aiokafka")
    client.warning("Unable connect to node with id %s", 1)
    client.error("Unable connect to node with id %s", 1)
    client.error("Heartbeat failed for group %s", "g")
    assert len(lines(out)) == 3


def test_the_services_own_lines_are_never_held_back(logged: tuple[io.StringIO, Clock]) -> None:
    out, _ = logged
    ours = logging.getLogger("yardstick.bus.kafka")
    for offset in range(500):
        ours.error("dead-lettered", extra={"offset": offset})
    assert [line["offset"] for line in lines(out)] == list(range(500))
