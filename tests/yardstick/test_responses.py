"""JSONBody writes what FastAPI wrote for a route returning a dict, in one pass."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from yardstick.responses import JSONBody

leaves = (st.none() | st.booleans() | st.integers(-2**53, 2**53)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text()
          | st.dates() | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])))
documents = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
# What FastAPI did with a route annotated `-> dict[str, Any]`: pydantic's serialisation of the value.
FASTAPI = TypeAdapter(Any)


@settings(max_examples=200, deadline=None)  # a deadline is a timing check: none, as in the other property tests
@given(documents)
def test_the_same_document_as_fastapi_wrote(doc: Any) -> None:
    assert json.loads(JSONBody(doc).body) == json.loads(FASTAPI.dump_json(doc))


def test_dates_and_times_as_before_utc_as_z() -> None:
    doc = {"d": date(2026, 3, 1), "t": datetime(2026, 3, 1, 8, 30, 0, 500000, tzinfo=UTC),
           "cn": datetime(2026, 3, 1, 16, 30, tzinfo=timezone(timedelta(hours=8))), "tags": ("a", "b"),
           "name": "西湖区"}
    assert json.loads(JSONBody(doc).body) == {"d": "2026-03-01", "t": "2026-03-01T08:30:00.500000Z",
                                             "cn": "2026-03-01T16:30:00+08:00", "tags": ["a", "b"],
                                             "name": "西湖区"}
    assert "西湖区".encode() in JSONBody(doc).body  # UTF-8 as is, not \u escapes


def test_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        JSONBody({"x": math.nan})
    with pytest.raises(TypeError, match="object is not JSON"):
        JSONBody({"x": object()})


def test_a_response_with_the_json_media_type() -> None:
    response = JSONBody({"items": [1]}, status_code=200)
    assert response.body == b'{"items":[1]}'
    assert response.headers["content-type"] == "application/json"
