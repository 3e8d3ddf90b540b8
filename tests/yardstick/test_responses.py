"""JSONBody writes what FastAPI's own encoding of a returned dict writes, in one pass."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from hypothesis import given
from hypothesis import strategies as st

from yardstick.responses import JSONBody, dumps

leaves = (st.none() | st.booleans() | st.integers(-2**53, 2**53)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text()
          | st.dates() | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])))
documents = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


@given(documents)
def test_the_same_document_as_fastapis_encoding(doc: Any) -> None:
    assert json.loads(dumps(doc)) == json.loads(json.dumps(jsonable_encoder(doc)))


def test_dates_times_and_the_other_types_a_row_holds() -> None:
    doc = {"d": date(2026, 3, 1), "t": datetime(2026, 3, 1, 8, 30, tzinfo=UTC), "clock": time(9, 15),
           "n": Decimal("1.5"), "id": uuid.UUID(int=7), "tags": ("a", "b"), "name": "西湖区"}
    assert json.loads(dumps(doc)) == {"d": "2026-03-01", "t": "2026-03-01T08:30:00+00:00", "clock": "09:15:00",
                                      "n": 1.5, "id": str(uuid.UUID(int=7)), "tags": ["a", "b"], "name": "西湖区"}
    assert "西湖区".encode() in dumps(doc)  # UTF-8 as is, not \u escapes


def test_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        dumps({"x": math.nan})
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        dumps({"x": object()})


def test_a_response_with_the_json_media_type() -> None:
    response = JSONBody({"items": [1]}, status_code=200)
    assert response.body == b'{"items":[1]}'
    assert response.headers["content-type"] == "application/json"
