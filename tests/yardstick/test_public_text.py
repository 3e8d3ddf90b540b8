"""yardstick.text.check_public: published free text carries no personal contact or identity data."""

from __future__ import annotations

import pytest

from yardstick.text import check_public

ALLOWED = ["open evening clinics", "call the 12345 hotline", "office 0571-87654321", "waits under 15 minutes",
           "a budget of 13500 yuan", "due 2026-12-31", "complaints per week < 2", "x@y", "订单号 20261130"]
REFUSED = [("联系人王五 13900001111", "mobile phone"), ("+86 139-0000-1111", "mobile phone"),
           ("139 0000 1111", "mobile phone"), ("１３９００００１１１１", "mobile phone"),  # full-width digits
           ("wangwu@example.com", "e-mail"), ("write to w＠example.com", "e-mail"),
           ("id 33010619900101123X", "identity card")]


@pytest.mark.parametrize("text", ALLOWED)
def test_institutional_numbers_and_plain_text_pass_unchanged(text: str) -> None:
    assert check_public(text) == text


@pytest.mark.parametrize(("text", "what"), REFUSED)
def test_personal_contact_or_identity_data_is_refused_saying_what(text: str, what: str) -> None:
    with pytest.raises(ValueError, match=f"is published, and must not contain an? {what}"):
        check_public(text)
