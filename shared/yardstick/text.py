"""Strings the services accept for storing: what PostgreSQL's text can hold."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def check_storable(value: str) -> str:
    """The string unchanged, or ValueError when the database could not store it.

    PostgreSQL text cannot hold NUL (U+0000): the insert fails with SQLSTATE 22021, which is no
    transient error, so it was a 500 (SQLite, the quick start's database, stores it). A lone
    surrogate has no UTF-8 form and fails when it is written: pydantic's JSON parsing refuses one,
    but a value parsed by other means (a survey's NDJSON line, a CSV file) can carry it. Both are
    refused before anything is stored, with a message a pydantic error or a row rejection can name
    the field in.
    """
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000); remove it and send again")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must not contain a lone UTF-16 surrogate (U+D800..U+DFFF); "
                             "send valid Unicode text") from None
    return value


# For a field with its own limits, after them: Annotated[str, Field(max_length=...), STORABLE]. Given
# before a validator, pydantic applies a length limit as a generic check of the validated value and
# tells it in "items" ("Value should have at most 4000 items after validation").
STORABLE = AfterValidator(check_storable)
StoredText = Annotated[str, STORABLE]
