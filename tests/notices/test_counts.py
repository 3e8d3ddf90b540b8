"""notices' notion of a negative item (notices.md, Counting)."""

from __future__ import annotations

import pytest

from yardstick.events import is_negative


@pytest.mark.parametrize(("level", "has_text", "negative"), [
    # A level of 2 or less is negative, with or without a text.
    (1, False, True),
    (1, True, True),
    (2, False, True),
    (2, True, True),
    # A level of 3 or more is not, even with a (complaining) text.
    (3, False, False),
    (3, True, False),
    (4, False, False),
    (4, True, False),
    (5, False, False),
    (5, True, False),
    # No level: a text complaint is negative; nothing at all is not.
    (None, True, True),
    (None, False, False),
])
def test_is_negative(level: int | None, has_text: bool, negative: bool) -> None:
    assert is_negative(level, has_text) is negative
