"""Strings the services accept for storing (what PostgreSQL's text can hold) and for publishing."""

from __future__ import annotations

import re
import unicodedata
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


# What marks a text as carrying someone's contact or identity: a mainland mobile number (11 digits from
# 13-19, optionally +86 and spaced or dashed 3-4-4), an e-mail address, or a resident identity number (18
# characters, the last a digit or X). Matched on the NFKC form, so full-width digits and ＠ count too.
# Office landlines (0571-8xxxxxxx) and short service numbers (12345) are not refused: they reach an
# institution, not a person.
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_IDENTITY = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])")


def check_public(value: str) -> str:
    """The string unchanged, or ValueError when it holds personal contact or identity data.

    For free text a service publishes (a notice's plan is on the public register and in events):
    events.md and notices.md allow no personal data there, and a coordinator's typed text is the
    one way it could get in. Refused with a message that says what to leave out, so nothing is
    stored or published.
    """
    folded = unicodedata.normalize("NFKC", value)
    for pattern, what in ((_EMAIL, "an e-mail address"), (_MOBILE, "a mobile phone number"),
                          (_IDENTITY, "an identity card number")):
        if pattern.search(folded):
            raise ValueError(f"is published, and must not contain {what} (personal data); "
                             "leave it out and send again")
    return value


PUBLIC = AfterValidator(check_public)
PublicText = Annotated[str, STORABLE, PUBLIC]
