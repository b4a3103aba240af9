"""The built-in PII patterns: shapes of personal data, each with an optional checksum validator.

A regex alone over-matches numbers: about one in ten 16-digit runs passes a Luhn check, and any
long run of digits looks like some card. So a pattern may name a validator, and a match is only
redacted when the validator accepts its text (the Luhn check for cards, ISO 13616 mod-97 for
IBANs). Phone patterns have no checksum: their shapes are narrow instead (a leading +country
code, or a national format with its separators) so that years, prices, dates, versions and
ordinary counts stay readable; tests/telemetry/test_pii.py holds the tables of both.

A redaction must not make its neighbours match on the next pass (redaction is idempotent), so
the boundaries count the marker's brackets as word characters: a shape glued to a redacted one
("4111...1111+44 20...", redacted first as a card) is judged the same way both times.

Every quantifier is bounded, so a hostile text costs time linear in its length (no regex here
backtracks over more than a few dozen characters from one starting position).

Standard library only and pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PiiPattern:
    regex: str
    # The match is PII only if this accepts its text; None: every match is.
    validator: Callable[[str], bool] | None = None


def luhn_valid(text: str) -> bool:
    """A payment card number: 13 to 19 digits (separators ignored) whose Luhn checksum is 0."""
    digits = [int(char) for char in text if "0" <= char <= "9"]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """An IBAN (ISO 13616): 15 to 34 characters (spaces ignored) whose mod-97 check gives 1."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isascii() or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _digit_count_between(low: int, high: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return low <= sum("0" <= char <= "9" for char in text) <= high

    return check


# No digit before (and no "<digit>." or "<digit>,": the fraction of a decimal number is not a card).
_NO_DIGIT_BEFORE = r"(?<![0-9\]])(?<![0-9][.,])"
_NO_DIGIT_AFTER = r"(?![0-9\[])"
# Word boundaries that also count the brackets of the marker as word characters.
_START = r"(?<![\w\]])"
_END = r"(?![\w\[])"

# Applied in this order, whatever order a config lists them in: each runs over the text its
# predecessors left, so the narrow shapes go first (an IBAN's digit groups would otherwise pass
# for a phone number; "+49 151..." is a phone, not a card).
PII_PATTERNS: dict[str, PiiPattern] = {
    # Bounded local part and domain labels: linear time on long runs of word characters.
    "email": PiiPattern(r"(?<![\w.%+\]-])[\w.%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}" + _END),
    # IBAN, compact or in groups of four: country, check digits, then the account (BBAN).
    # Upper case only (as printed). Only mod-97-valid ones are redacted.
    "iban": PiiPattern(
        _START + r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?" + _END,
        iban_valid,
    ),
    # UK National Insurance number: two prefix letters (D, F, I, Q, U, V never; O not second;
    # BG, GB, KN, NK, NT, TN, ZZ not allocated), six digits, a suffix A-D; spaces optional.
    "uk_nino": PiiPattern(
        _START + r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
        r" ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]" + _END
    ),
    # US Social Security number, dashed (a bare 9-digit run is too often something else); the
    # area, group and serial numbers never issued (000, 666, 9xx; 00; 0000) are not matched.
    "us_ssn": PiiPattern(r"(?<![\w\]-])(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![\w\[-])"),
    # International: "+" and a country code, then 2-6 groups (optionally in parentheses) with
    # single separators; E.164 allows at most 15 digits, and fewer than 8 is not a phone number.
    "phone": PiiPattern(
        r"(?<![\w+\]])\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,6}" + _NO_DIGIT_AFTER,
        _digit_count_between(8, 15),
    ),
    # National formats. North America: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567.
    "phone_national": PiiPattern(
        r"(?<![\w.,\]-])(?:\([0-9]{3}\) ?|[0-9]{3}[-. ])[0-9]{3}[-. ][0-9]{4}"
        + _NO_DIGIT_AFTER
        # Trunk prefix 0 (UK, Germany, France...): 020 7946 0958, 07700 900123, 030-1234567,
        # 06 12 34 56 78, 0612345678.
        + r"|(?<![\w.,\]-])0[1-9](?:[0-9]{1,4}[ -]?[0-9]{3,4}[ -]?[0-9]{3,4}"
        + r"|(?P<fr_sep>[ .-]?)[0-9]{2}(?:(?P=fr_sep)[0-9]{2}){3})"
        + _NO_DIGIT_AFTER,
        _digit_count_between(10, 11),
    ),
    # Card numbers as they are written: 13-19 digits in one run, 4-4-4-(1..7) digit groups, or the
    # 4-6-5 / 4-6-4 groups of Amex and Diners; one separator kind (space or dash) throughout.
    # Only Luhn-valid ones are redacted.
    "card_number": PiiPattern(
        _NO_DIGIT_BEFORE + r"(?:[0-9]{13,19}"
        r"|[0-9]{4}(?P<card_sep>[ -])[0-9]{4}(?P=card_sep)[0-9]{4}(?P=card_sep)[0-9]{1,7}"
        r"|[0-9]{4}(?P<amex_sep>[ -])[0-9]{6}(?P=amex_sep)[0-9]{4,5})" + _NO_DIGIT_AFTER,
        luhn_valid,
    ),
}

# All of them, the default when content is included and for caller tags (config turns any off).
DEFAULT_PII: tuple[str, ...] = tuple(PII_PATTERNS)
