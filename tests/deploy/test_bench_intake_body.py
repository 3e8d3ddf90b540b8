"""bench/intake.py writes a kiosk's batch as text: it must be the batch a kiosk sends, which intake accepts whole."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import TypeAdapter

from feedback_intake.schemas import RatingItem

# Loaded by path, and sys.path put back after: bench/ is not a package, and the module adds its folder
# to sys.path, where its scoring.py would hide the service's from every later import.
_SPEC = importlib.util.spec_from_file_location("bench_intake",
                                               Path(__file__).resolve().parents[2] / "bench" / "intake.py")
assert _SPEC is not None and _SPEC.loader is not None
bench_intake = importlib.util.module_from_spec(_SPEC)
_PATH = list(sys.path)
try:
    _SPEC.loader.exec_module(bench_intake)
finally:
    sys.path[:] = _PATH


def test_the_bench_kiosk_body_is_a_batch_of_100_distinct_random_ratings_10_s_apart() -> None:
    base = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)
    window = 'w-"quoted"\\window'  # any text a profile's id may hold is escaped
    raw = json.loads(bench_intake.kiosk_body(window, base))
    assert list(raw) == ["ratings"]
    items = TypeAdapter(list[RatingItem]).validate_python(raw["ratings"])
    assert len(items) == 100
    assert {i.window_id for i in items} == {window}
    assert [i.level for i in items] == [1 + j % 5 for j in range(100)]
    assert [i.rated_at for i in items] == [base + timedelta(seconds=10 * j) for j in range(100)]
    ids = [uuid.UUID(i.id) for i in items]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in ids)
    assert [str(u) for u in ids] == [i.id for i in items]  # written as uuid4() writes them
    again = json.loads(bench_intake.kiosk_body(window, base))["ratings"]
    assert len({i.id for i in items} | {r["id"] for r in again}) == 200  # a new draw each batch


def test_random_uuids_are_version_4_and_cover_every_random_digit() -> None:
    ids = bench_intake.random_uuids(2000)
    assert len(set(ids)) == 2000
    assert all(str(uuid.UUID(text)) == text and uuid.UUID(text).version == 4 for text in ids)
    digits = [{text.replace("-", "")[i] for text in ids} for i in range(32)]
    assert digits[12] == {"4"} and digits[16] == set("89ab")
    assert all(len(d) == 16 for i, d in enumerate(digits) if i not in (12, 16))
