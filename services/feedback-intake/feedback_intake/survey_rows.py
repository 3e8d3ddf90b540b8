"""Household survey rows: incremental NDJSON and CSV parsing and the checks each row must pass."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from yardstick.text import check_storable

MAX_LINE = 1024 * 1024  # one household rating 80 units is about 2 KiB; this only stops runaway lines


@dataclass(frozen=True)
class SurveyRow:
    row: int
    respondent_id: str
    stratum: str
    ratings: dict[str, int | None]


class RowError(ValueError):
    pass


async def numbered_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """Lines of a streamed UTF-8 body, numbered from 1; memory holds one network chunk and one line.

    A byte order mark at the start is dropped (utf-8-sig): Excel writes one before a CSV's header.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    pending = ""
    number = 0
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        if len(pending) > MAX_LINE and "\n" not in pending:
            raise RowError(f"line {number + 1} is longer than {MAX_LINE} characters")
        *complete, pending = pending.split("\n")
        for line in complete:
            number += 1
            yield number, line.rstrip("\r")
    pending += decoder.decode(b"", final=True)
    if pending.strip():
        yield number + 1, pending.rstrip("\r")


def _level(unit_id: str, value: Any) -> int | None:
    if value is None or value == "unknown":
        return None
    if isinstance(value, bool):
        raise RowError(f"unit {unit_id}: level must be 1..5 or \"unknown\"")
    # ASCII digits only: str.isdigit() is also true of "³" or "²", which int() refuses; and at most
    # a few, as int() refuses over 4,300 digits.
    if isinstance(value, str) and (digits := value.strip()).isascii() and digits.isdigit() and len(digits) <= 3:
        value = int(digits)
    if isinstance(value, int) and 1 <= value <= 5:
        return value
    raise RowError(f"unit {unit_id}: level must be 1..5 or \"unknown\", got {str(value)[:20]!r}")


def check(row: int, respondent_id: Any, stratum: Any, ratings: Any, *, strata: Collection[str],
          units: Collection[str]) -> SurveyRow:
    if not isinstance(respondent_id, str) or not respondent_id.strip() or len(respondent_id) > 100:
        raise RowError("respondent_id must be a non-empty string of at most 100 characters")
    try:
        check_storable(respondent_id)
    except ValueError as exc:
        raise RowError(f"respondent_id {exc}") from None
    if not isinstance(stratum, str) or stratum not in strata:
        raise RowError(f"unknown stratum {str(stratum)[:50]!r}")
    if not isinstance(ratings, dict) or not ratings:
        raise RowError("ratings must be an object naming at least one unit")
    levels: dict[str, int | None] = {}
    for unit_id, value in ratings.items():
        if unit_id not in units:
            raise RowError(f"unknown unit {str(unit_id)[:100]!r}")
        levels[unit_id] = _level(unit_id, value)
    return SurveyRow(row=row, respondent_id=respondent_id.strip(), stratum=stratum, ratings=levels)


def parse_ndjson(row: int, line: str, *, strata: Collection[str], units: Collection[str]) -> SurveyRow:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RowError(f"not valid JSON: {exc.msg}") from None
    except ValueError:  # the only other ValueError: an integer over int()'s 4,300 digits
        raise RowError("not valid JSON: a number over 4,300 digits long") from None
    except RecursionError:
        raise RowError("not valid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise RowError("a line must be a JSON object")
    return check(row, value.get("respondent_id"), value.get("stratum"), value.get("ratings"),
                 strata=strata, units=units)


def _csv_fields(line: str) -> list[str]:
    """One CSV line's fields; RowError where the csv module refuses it (a field over its 131,072
    characters, which no valid field comes near)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error as exc:
        raise RowError(f"not valid CSV: {exc}") from None


def parse_csv_header(line: str) -> list[str]:
    header = _csv_fields(line)
    if header[:2] != ["respondent_id", "stratum"] or len(header) < 3:
        raise RowError("the CSV header must be respondent_id,stratum,<unit_id>,...")
    return header


def parse_csv(row: int, line: str, header: list[str], *, strata: Collection[str],
              units: Collection[str]) -> SurveyRow:
    fields = _csv_fields(line)
    if len(fields) != len(header):
        raise RowError(f"expected {len(header)} fields, got {len(fields)}")
    # An empty cell means the household was not asked about that unit: no answer at all.
    ratings = {unit: value for unit, value in zip(header[2:], fields[2:], strict=True) if value.strip()}
    return check(row, fields[0], fields[1], ratings, strata=strata, units=units)
