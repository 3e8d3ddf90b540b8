"""JSON logs with request and event ids, Prometheus metrics, and the health endpoints."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)

PUBLISHED = Counter("yardstick_events_published_total", "Events the relay published", ["topic"])
OUTBOX_PENDING = Gauge("yardstick_outbox_pending",
                       "Events in the outbox not yet published, as of the relay's last round (events, not rows: "
                       "a row holds up to 100)", ["service"])
CONSUMED = Counter("yardstick_events_consumed_total", "Events applied by a consumer",
                   ["consumer", "type", "outcome"])
DEAD_LETTERED = Counter("yardstick_dead_lettered_total", "Messages sent to a dead-letter topic",
                        ["consumer", "topic"])
CONSUMER_LAG = Gauge("yardstick_consumer_lag", "Messages behind the partition's end",
                     ["consumer", "topic", "partition"])
BUS_CONNECTED = Gauge("yardstick_bus_connected", "1 when the bus took the last publish", ["service"])
REQUESTS = Histogram("yardstick_http_request_seconds", "HTTP request time",
                     ["service", "method", "route", "status"])

# Keys of `extra` that may be logged. Anything else is dropped: a guard against
# someone logging a body or a contact by accident.
_ALLOWED_EXTRA = {
    "service", "consumer", "topic", "partition", "offset", "reason", "error", "attempt", "count",
    "partitions", "path", "method", "status", "duration_ms", "event_type", "unit_id", "window_id",
    "token_id", "role", "notice_id", "target_id", "feedback_id", "url", "pending", "year",
    "attempts", "delivery", "channel", "checked", "changed", "events", "messages", "repeated",
}


# PostgreSQL's DETAIL line of an error names a row's values ("Key (client_id)=(...)", "Failing row
# contains (...)": a complaint's text, a respondent's id), and the driver's message carries it: as the
# error's str, the cause in SQLAlchemy's traceback, or escaped in its repr. Withheld wherever it is
# logged; the message and the constraint before it stay.
# - As text (str, a traceback, an exception group's lines behind "| "): a value may span lines, so up to
#   the next exception of the traceback or the end. Not up to a HINT or a [SQL: line: a value's own
#   lines may read so.
_DETAIL = re.compile(
    r"^(?P<lead>[ |]*)DETAIL:.*?(?=\n[ |]*\n[ |]*(?:The above exception|During handling)|\n[ |]*\+[-+]|\Z)",
    re.MULTILINE | re.DOTALL)
# - Escaped in a repr (a line break written as backslash-n): up to the end of that line.
_ESCAPED_DETAIL = re.compile(r"\\nDETAIL:[^\n]*")
WITHHELD = "(withheld from the logs: it may name a row's values)"


def withhold_details(text: str) -> str:
    if "DETAIL:" not in text:
        return text
    text = _ESCAPED_DETAIL.sub(lambda _: f"\\nDETAIL:  {WITHHELD}", text)
    return _DETAIL.sub(lambda m: f"{m['lead']}DETAIL:  {WITHHELD}", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": withhold_details(record.getMessage()),
        }
        rid, eid = request_id.get(), event_id.get()
        if rid:
            out["request_id"] = rid
        if eid:
            out["event_id"] = eid
        for key in _ALLOWED_EXTRA:
            if key in record.__dict__:
                value = record.__dict__[key]
                if isinstance(value, BaseException):  # written as its str otherwise (json's default=str)
                    value = str(value)
                out[key] = withhold_details(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exception"] = withhold_details(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


class RepeatLimiter(logging.Filter):
    """At most one line per `every_s` of a client library's repeated message; our own lines all pass.

    With the broker down, aiokafka's fetcher can ask for metadata in a loop without a pause (when a
    partition's leader is unknown, each failed update wakes it again: aio-libs/aiokafka#1155 is the
    same kind of loop), writing two lines per try: 82,000 lines in 15 s from one process in a CI
    run. A message is its logger, level and template (its arguments vary from try to try); the
    line shown after a quiet spell says how many were held back (`repeated`).
    """

    MAX_KEYS = 1000  # a library that formats its messages itself would make each one a new key

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka", "kafka"), every_s: float = 5.0,
                 clock: Any = time.monotonic) -> None:
        super().__init__()
        self.prefixes, self.every_s, self.clock = prefixes, every_s, clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [shown at, held back since]

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.repeated = int(seen[1])
        if len(self._seen) >= self.MAX_KEYS:
            self._seen.clear()
        self._seen[key] = [now, 0]
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Database drivers log statements with their bound values (contact data, secrets) below these
    # levels: even at YARDSTICK_LOG_LEVEL=DEBUG they must not (tests/security/test_no_personal_data_in_logs.py).
    for driver, floor in (("aiosqlite", logging.INFO), ("asyncpg", logging.INFO), ("sqlalchemy", logging.WARNING)):
        logging.getLogger(driver).setLevel(floor)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class RequestMiddleware:
    """Request ids and request times, as plain ASGI.

    Starlette's `BaseHTTPMiddleware` (what `app.middleware("http")` builds) runs every request
    through an extra task and memory streams; this does the same work in the same task.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # The histogram's child a (method, route, status), looked up once: `labels()` takes a lock and
        # checks its arguments every time. Routes are the app's templates, so the keys are few.
        self._timers: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), b"")
        rid = given.decode("latin-1")[:100] or uuid.uuid4().hex
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            key = (scope.get("method", ""), getattr(scope.get("route"), "path", "unmatched"), status)
            timer = self._timers.get(key)
            if timer is None:
                timer = self._timers[key] = REQUESTS.labels(service=self.service, method=key[0], route=key[1],
                                                            status=str(status))
            timer.observe(time.perf_counter() - start)
            request_id.reset(token)
