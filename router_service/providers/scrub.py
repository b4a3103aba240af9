"""Removes an endpoint's configured secrets, in every form, and generic secret shapes from text.

Some upstreams quote the rejected credential in their error body, and not always verbatim: JSON
escapes it (`sk\\u002d...`), a proxy URL-encodes it, another shows a prefix ("sk-proj-abc123..."),
a line wrap splits it. Matching the exact key string let all of those through to the caller's error
message, the router log and the Kafka error event. So the text is first decoded into a view with a
map back to the original: JSON and C escapes (`\\uXXXX`, `\\xXX`, `\\n`, `\\-`), URL escapes (`%XX`),
HTML character references (`&#45;`, `&#x2d;`), repeated (an escape of an escape) until nothing
changes, with whitespace left out. Every stretch of the view that contains any MIN_FRAGMENT
characters of a configured secret in a row (so every prefix, suffix or middle part that long) is
replaced, in the original text, by a marker. Secrets shorter than that are matched whole. Then the
generic shapes of telemetry/redaction.py (provider keys, bearer tokens, `api_key=...`, JWTs...) are
applied too, for secrets the endpoint does not know (a key of another account echoed back).

Pure; meant for short texts (error summaries), it does a little work per character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from router_service.telemetry.redaction import SECRET_PATTERNS

REDACTED = "[redacted]"
MIN_FRAGMENT = 8
_MAX_PASSES = 4

_GENERIC = tuple(re.compile(source) for source in SECRET_PATTERNS)
_JSON_WHITESPACE = {"n": "\n", "r": "\r", "t": "\t", "b": " ", "f": " "}
_HEX = frozenset("0123456789abcdefABCDEF")

# One character of the decoded view and the span of the original text it came from.
_Item = tuple[str, int, int]


class SecretScrubber:
    """Scrubs the given secrets (API keys, auth header values) and generic secret shapes."""

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = {s for s in secrets if s and not s.isspace()}
        self._grams = frozenset(
            s[i : i + MIN_FRAGMENT]
            for s in kept
            if len(s) >= MIN_FRAGMENT
            for i in range(len(s) - MIN_FRAGMENT + 1)
        )
        self._short = tuple(sorted((s for s in kept if len(s) < MIN_FRAGMENT), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        if self._grams or self._short:
            text = self._scrub_configured(text)
        for pattern in _GENERIC:
            text = pattern.sub(_replace_shape, text)
        return text

    def _scrub_configured(self, text: str) -> str:
        items = _decoded_view(text)
        view = "".join(ch for ch, _, _ in items)
        covered = [False] * len(view)
        if self._grams:
            for i in range(len(view) - MIN_FRAGMENT + 1):
                if view[i : i + MIN_FRAGMENT] in self._grams:
                    covered[i : i + MIN_FRAGMENT] = [True] * MIN_FRAGMENT
        for secret in self._short:
            for match in re.finditer(re.escape(secret), view):
                covered[match.start() : match.end()] = [True] * len(secret)
        spans = _original_spans(items, covered)
        for start, end in reversed(spans):
            text = text[:start] + REDACTED + text[end:]
        return text


def secret_values(api_key: str, headers: Iterable[tuple[str, str]]) -> list[str]:
    """The configured values worth scrubbing: the API key, and the values of auth-looking headers
    (and a bearer token without its scheme)."""
    values = [api_key]
    for name, value in headers:
        lowered = name.lower()
        if any(word in lowered for word in ("auth", "key", "token", "secret", "cookie")):
            values.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                values.append(token.strip())
    return [v for v in values if v]


def _original_spans(items: list[_Item], covered: list[bool]) -> list[tuple[int, int]]:
    """The original-text spans of each run of covered view characters (merged where they touch)."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(items):
        if not covered[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(items) and covered[j + 1]:
            j += 1
        start, end = items[i][1], items[j][2]
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
        i = j + 1
    return spans


def _decoded_view(text: str) -> list[_Item]:
    items: list[_Item] = [(ch, i, i + 1) for i, ch in enumerate(text)]
    for _ in range(_MAX_PASSES):
        decoded = _decode_once(items)
        if len(decoded) == len(items):
            break
        items = decoded
    return [item for item in items if not item[0].isspace()]


def _decode_once(items: list[_Item]) -> list[_Item]:
    """One pass of unescaping; each decoded character keeps the span of its whole escape."""
    out: list[_Item] = []
    i, n = 0, len(items)
    while i < n:
        ch = items[i][0]
        width, decoded = 0, ""
        if ch == "\\" and i + 1 < n:
            width, decoded = _backslash_escape(items, i)
        elif ch == "%" and i + 2 < n and items[i + 1][0] in _HEX and items[i + 2][0] in _HEX:
            width, decoded = 3, chr(int(items[i + 1][0] + items[i + 2][0], 16))
        elif ch == "&" and i + 3 < n and items[i + 1][0] == "#":
            width, decoded = _character_reference(items, i)
        if width:
            out.append((decoded, items[i][1], items[i + width - 1][2]))
            i += width
        else:
            out.append(items[i])
            i += 1
    return out


def _backslash_escape(items: list[_Item], i: int) -> tuple[int, str]:
    nxt = items[i + 1][0]
    for marker, digits in (("u", 4), ("x", 2)):
        if nxt == marker:
            hexes = "".join(item[0] for item in items[i + 2 : i + 2 + digits])
            if len(hexes) == digits and all(h in _HEX for h in hexes):
                return 2 + digits, chr(int(hexes, 16))
            return 0, ""
    return 2, _JSON_WHITESPACE.get(nxt, nxt)


def _character_reference(items: list[_Item], i: int) -> tuple[int, str]:
    """`&#45;` or `&#x2d;` (at most 8 digits)."""
    window = "".join(item[0] for item in items[i + 2 : i + 12])
    match = re.match(r"(?:[xX]([0-9a-fA-F]{1,6})|([0-9]{1,7}));", window)
    if match is None:
        return 0, ""
    code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
    if code > 0x10FFFF:
        return 0, ""
    return 2 + match.end(), chr(code)


def _replace_shape(match: re.Match[str]) -> str:
    """A generic secret shape replaced; a pattern with a "secret" group keeps its readable prefix."""
    if "secret" not in match.re.groupindex:
        return REDACTED
    start, end = match.span("secret")
    whole = match.start()
    return match.group(0)[: start - whole] + REDACTED + match.group(0)[end - whole :]
