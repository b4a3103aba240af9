"""Keeps secrets and PII out of event content.

Prompts and answers only reach Kafka when the config opts in (`ContentPolicy.include_content`),
and even then every known secret shape (provider API keys, bearer tokens, `api_key=...` pairs,
AWS/GitHub/Slack/Google keys, JWTs, private keys) plus the configured PII patterns are replaced
by a marker first. Regexes catch shapes, not meaning: this lowers the risk of leaking a secret
that a user pasted into a prompt, it does not make content safe to share.

Standard library only and pure: the publisher applies the policy off the request path.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from router_service.telemetry.events import CompletionEvent, TelemetryEvent

REDACTED = "[REDACTED]"
TRUNCATED = "...[TRUNCATED]"

# Secret shapes redacted whenever content is included. A pattern with a named group "secret"
# replaces only that group, so "Authorization: Bearer abc..." keeps its readable prefix.
SECRET_PATTERNS: tuple[str, ...] = (
    # PEM private keys (any algorithm), including the armour lines.
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    # OpenAI / Anthropic / most "sk-" style provider keys (sk-..., sk-proj-..., sk-ant-api03-...).
    r"\bsk-[A-Za-z0-9_-]{16,}",
    # Bearer tokens in pasted headers or curl commands.
    r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
    # key=value / "key": "value" pairs whose name says secret (x-api-key, api_key, token, password...).
    r"(?i)\b(?:x-api-key|x-goog-api-key|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|secret[_-]?key"
    r"|client[_-]?secret|aws_secret_access_key|password|passwd|secret)\b[\"']?\s*[:=]\s*[\"']?"
    r"(?P<secret>[^\s\"',;]{6,})",
    # AWS access key ids.
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
    # Google API keys.
    r"\bAIza[0-9A-Za-z_-]{35}\b",
    # GitHub tokens (classic and fine-grained).
    r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b",
    # Slack tokens.
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    # JSON Web Tokens (three base64url parts, the first a JSON header).
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
)

# Ready-made PII patterns that configs can opt into by name (see `pii_patterns`).
PII_PATTERNS: dict[str, str] = {
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    # Card-like digit runs (13 to 19 digits with optional spaces/dashes); no Luhn check.
    "card_number": r"\b(?:\d[ -]?){12,18}\d\b",
}


class Redactor:
    """Replaces every match of the built-in secret patterns and the given extra patterns."""

    def __init__(self, patterns: Iterable[str] = (), *, include_secrets: bool = True) -> None:
        sources = [*(SECRET_PATTERNS if include_secrets else ()), *patterns]
        # Compiled once at startup: an invalid configured regex fails there, not per event.
        self._patterns = tuple(re.compile(source) for source in sources)

    def redact(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(_replace_match, text)
        return text


def _replace_match(match: re.Match[str]) -> str:
    if "secret" not in match.re.groupindex:
        return REDACTED
    start, end = match.span("secret")
    whole_start = match.start()
    return match.group(0)[: start - whole_start] + REDACTED + match.group(0)[end - whole_start :]


def pii_patterns(names: Iterable[str]) -> tuple[str, ...]:
    """The PII_PATTERNS for the given names; an unknown name is a config error."""
    unknown = sorted(set(names) - PII_PATTERNS.keys())
    if unknown:
        raise ValueError(f"unknown PII pattern names {unknown}; known: {sorted(PII_PATTERNS)}")
    return tuple(PII_PATTERNS[name] for name in names)


@dataclasses.dataclass(frozen=True, slots=True)
class ContentPolicy:
    """Whether prompt/answer text may leave the process, and how it is scrubbed when it does."""

    include_content: bool = False
    redactor: Redactor = dataclasses.field(default_factory=Redactor)
    # Longer texts are cut (after redaction): one huge prompt must not exceed the broker's
    # record size limit, which would drop the whole completion event.
    max_chars: int = 16_384

    def apply(self, event: TelemetryEvent) -> TelemetryEvent:
        """The event with content removed (not configured) or redacted (configured)."""
        body = event.body
        if not isinstance(body, CompletionEvent):
            return event
        if body.prompt_text is None and body.completion_text is None:
            return event
        if self.include_content:
            body = dataclasses.replace(
                body,
                prompt_text=self._scrub(body.prompt_text),
                completion_text=self._scrub(body.completion_text),
            )
        else:
            body = dataclasses.replace(body, prompt_text=None, completion_text=None)
        return event._replace(body=body)

    def _scrub(self, text: str | None) -> str | None:
        if text is None:
            return None
        # Redact before cutting so a secret straddling the cut is still recognised whole; the
        # pre-cut keeps regex time bounded on huge texts (margin: the longest secret shape, a PEM key).
        text = self.redactor.redact(text[: self.max_chars + 8192])
        return text if len(text) <= self.max_chars else text[: self.max_chars] + TRUNCATED
