"""JSON answers encoded in one pass, for read routes on hot paths.

A route that returns a dict has FastAPI validate it against the return annotation and serialise
it through pydantic: for a unit's ten targets that cost more than the database read (1.4 ms of the
read's 7 ms in process). A route that returns `JSONBody(data)` skips it: the standard library's
encoder with the events' rules (`events.dumps_json`), which write what FastAPI wrote (dates ISO
8601, UTC as Z, NaN refused). Declare it with `response_class=JSONBody, response_model=None` so the
OpenAPI document says JSON.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from yardstick.events import dumps_json


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps_json(content).encode("utf-8")
