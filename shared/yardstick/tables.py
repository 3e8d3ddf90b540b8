"""CSV answers for the lists that offer them (api.md: the public lists and the ranking)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response


def wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def _cell(value: Any) -> Any:
    # Nested values (a plan's actions, evidence) go in as JSON, not as Python reprs.
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, dict | list) else value


def csv_response(columns: Sequence[str], rows: Iterable[dict[str, Any]], *,
                 next_cursor: str | None = None) -> Response:
    """One row per item (None as an empty cell); the next page's cursor, if any, in X-Next-Cursor."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
