"""The built-in PII patterns: tables of what each redacts and what it must leave alone, the
checksum validators, and properties over random text."""

from __future__ import annotations

import re
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.config_schema import PiiName
from router_service.telemetry.pii import DEFAULT_PII, PII_PATTERNS, iban_valid, luhn_valid
from router_service.telemetry.redaction import REDACTED, Redactor, build_redactor, pii_patterns

PII_ONLY = Redactor(pii_patterns(DEFAULT_PII), include_secrets=False)

# (pattern name, text, the PII in it)
POSITIVES = [
    ("email", "write to jane.doe+x@example.co.uk today", "jane.doe+x@example.co.uk"),
    ("email", "mailto:ops@mail.internal.example.com.", "ops@mail.internal.example.com"),
    ("card_number", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("card_number", "card 4111-1111-1111-1111.", "4111-1111-1111-1111"),
    ("card_number", "pan=5555555555554444;", "5555555555554444"),
    ("card_number", "amex 3782 822463 10005 ok", "3782 822463 10005"),
    ("card_number", "diners 3056 930902 5904", "3056 930902 5904"),
    ("card_number", "visa13 4222222222222 x", "4222222222222"),
    ("card_number", "no.4111111111111111", "4111111111111111"),
    ("phone", "call +44 20 7946 0958 now", "+44 20 7946 0958"),
    ("phone", "US +1 (555) 123-4567", "+1 (555) 123-4567"),
    ("phone", "mobile:+4915112345678", "+4915112345678"),
    ("phone", "FR +33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("phone", "+91-98765-43210", "+91-98765-43210"),
    ("phone_national", "tel (555) 123-4567", "(555) 123-4567"),
    ("phone_national", "or 555-123-4567 or", "555-123-4567"),
    ("phone_national", "or 555.123.4567", "555.123.4567"),
    ("phone_national", "London 020 7946 0958", "020 7946 0958"),
    ("phone_national", "mobile 07700 900123", "07700 900123"),
    ("phone_national", "Berlin 030-1234567", "030-1234567"),
    ("phone_national", "Paris 06 12 34 56 78", "06 12 34 56 78"),
    ("phone_national", "Paris 0612345678", "0612345678"),
    ("iban", "pay DE89 3704 0044 0532 0130 00 EUR", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB29NWBK60161331926819 please", "GB29NWBK60161331926819"),
    ("iban", "GB29 NWBK 6016 1331 9268 19", "GB29 NWBK 6016 1331 9268 19"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "NO9386011117947", "NO9386011117947"),
    ("us_ssn", "ssn 123-45-6789.", "123-45-6789"),
    ("uk_nino", "NI AB 12 34 56 C", "AB 12 34 56 C"),
    ("uk_nino", "NI: AB123456C", "AB123456C"),
]

# Text that must come out unchanged with every built-in PII pattern on.
NEGATIVES = [
    "in 2023 and 2024, between 1999-2005",
    "it costs $1,299.99 or €1.299,00 or 12 345,67 EUR",
    "price 19.99 or 1299; 3 for 10",
    "on 2024-01-15 at 12:30:45Z (2024/01/15)",
    "version 1.2.3, build 20240115.1234",
    "pi is 3.1415926535897932384626",
    "ZIP 90210, order 12345678, invoice #20240115",
    "1 000 000 people, 8 000 000 000 in all",
    "call 911 or 112; room 101, floor 3",
    "+5 points, +100 200 (7 digits)",
    "ISBN 978-3-16-148410-0",
    "IP 192.168.100.200 port 8080",
    "bad card 4111 1111 1111 1112",  # fails Luhn
    "bad card 4111111111111112",
    "bad IBAN DE89 3704 0044 0532 0130 01",  # fails mod 97
    "ssn-shaped but never issued: 000-12-3456, 666-12-3456, 923-45-6789, 123-00-6789",
    "NI-shaped but not allocated: QQ 12 34 56 C, GB123456A, AB123456E",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "the user at the desk",
    "a@b is not an email, nor is @home",
]


@pytest.mark.parametrize(("name", "text", "pii"), POSITIVES)
def test_each_pattern_redacts_its_shape(name: str, text: str, pii: str) -> None:
    only = Redactor(pii_patterns([name]), include_secrets=False).redact(text)
    assert pii not in only
    assert only == text.replace(pii, REDACTED)
    assert PII_ONLY.redact(text) == only  # all patterns together do the same


@pytest.mark.parametrize("text", NEGATIVES)
def test_ordinary_numbers_and_text_are_left_alone(text: str) -> None:
    assert build_redactor().redact(text) == text


@pytest.mark.parametrize("name", DEFAULT_PII)
def test_every_pattern_can_be_turned_off(name: str) -> None:
    others = [other for other in DEFAULT_PII if other != name]
    for pattern_name, text, pii in POSITIVES:
        if pattern_name == name:
            # (Another pattern may still catch part of it: "+1 (555)..." keeps its "+1 ".)
            assert Redactor(pii_patterns(others), include_secrets=False).redact(text) != text.replace(
                pii, REDACTED
            )


def test_the_config_names_are_the_patterns() -> None:
    assert set(PiiName.__args__) == set(PII_PATTERNS) == set(DEFAULT_PII)  # type: ignore[attr-defined]


def test_patterns_apply_in_their_own_order_whatever_the_config_lists() -> None:
    assert pii_patterns(["card_number", "email"]) == pii_patterns(["email", "card_number"])


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("378282246310005", True),
        ("6011111111111117", True),
        ("4111111111111112", False),
        ("411111111111", False),  # 12 digits
        ("41111111111111111111", False),  # 20 digits
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89370400440532013000", True),
        ("GB29 NWBK 6016 1331 9268 19", True),
        ("gb29nwbk60161331926819", True),
        ("DE89370400440532013001", False),
        ("DE8937040044", False),  # too short
        ("DE89-3704-0044-0532-0130-00", False),
    ],
)
def test_iban_mod97(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


# --- properties -------------------------------------------------------------------------------

_DIGITS: tuple[Literal["Nd"]] = ("Nd",)  # the Unicode category of decimal digits


def _luhn_complete(body: str) -> str:
    """`body` with the check digit that makes it Luhn-valid appended."""
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(digits, as written): a Luhn-valid number of 13-19 digits, in one run or in 4-digit groups."""
    body = draw(st.text("0123456789", min_size=12, max_size=18))
    digits = _luhn_complete(draw(st.sampled_from("3456")) + body[1:])
    separator = draw(st.sampled_from(["", " ", "-"]))
    if not separator or len(digits) < 13:
        return digits, digits
    groups = [digits[i : i + 4] for i in range(0, 12, 4)] + [digits[12:]]
    return digits, separator.join(groups)


# Random text with no digits next to the number (a digit there would make it a longer number),
# nor the marker's brackets (glued to a number, "]4111..." reads as a redaction's neighbour).
_NO_DIGITS = st.text(st.characters(blacklist_categories=_DIGITS, blacklist_characters="[]"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(card=card_numbers(), before=_NO_DIGITS, after=_NO_DIGITS)
def test_a_luhn_valid_card_in_random_text_is_always_redacted(
    card: tuple[str, str], before: str, after: str
) -> None:
    digits, written = card
    redacted = build_redactor().redact(f"{before}{written}{after}")
    assert digits not in re.sub(r"[ -]", "", redacted)
    assert written not in redacted


_ANY_TEXT = st.lists(
    st.one_of(
        st.characters(),
        st.sampled_from("0123456789 -.+()@"),  # the characters PII shapes are made of, often
        st.sampled_from(["4111 1111 1111 1111", "+44 20 7946 0958", "jane@example.com", "DE89 3704"]),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_ANY_TEXT)
def test_redaction_is_idempotent(text: str) -> None:
    redactor = build_redactor()
    once = redactor.redact(text)
    assert redactor.redact(once) == once


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=_DIGITS, blacklist_characters="@"), max_size=200))
def test_text_without_digits_or_at_signs_is_unchanged_by_pii_patterns(text: str) -> None:
    assert PII_ONLY.redact(text) == text
