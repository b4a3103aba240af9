"""Keeps secrets and PII out of event content, caller tags and error messages.

Prompts and answers only reach Kafka when the config opts in (`ContentPolicy.include_content`),
and even then every known secret shape (provider API keys, bearer tokens, `api_key=...` pairs,
AWS/GitHub/Slack/Google keys, JWTs, private keys) plus the configured PII patterns (pii.py: by
default all of email, card, phone, IBAN, US SSN, UK NI number) are replaced by a marker first.
Caller tags and error messages are always published, so they always go through the same
redactor, whatever `include_content` says. Regexes catch shapes, not meaning: this lowers the
risk of leaking a secret that a user pasted into a prompt, it does not make content safe to share.

Standard library only and pure: the publisher applies the policy off the request path.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping

from router_service.telemetry.events import (
    CompletionEvent,
    ErrorEvent,
    EventBody,
    EventContext,
    FeedbackEvent,
    RequestContext,
    TelemetryEvent,
)
from router_service.telemetry.pii import DEFAULT_PII, PII_PATTERNS, PiiPattern

REDACTED = "[REDACTED]"
TRUNCATED = "...[TRUNCATED]"
_MAX_PASSES = 4  # a bound, not a budget: hostile text cannot make redaction loop

# Secret shapes redacted from everything the policy scrubs. A pattern with a named group "secret"
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


class Redactor:
    """Replaces every match of the built-in secret patterns and the given extra patterns.

    A pattern is a regex, or a PiiPattern whose validator decides whether a match is redacted
    (a card number's Luhn check). Patterns run in order, each over the previous one's output.
    """

    def __init__(self, patterns: Iterable[str | PiiPattern] = (), *, include_secrets: bool = True) -> None:
        sources = [*(PiiPattern(s) for s in SECRET_PATTERNS if include_secrets), *map(_as_pattern, patterns)]
        # Compiled once at startup: an invalid configured regex fails there, not per event.
        self._patterns = tuple((re.compile(p.regex), _replacer(p.validator)) for p in sources)
        # Caller tags repeat (a few features, envs, plans): each distinct short text is
        # scrubbed once. Bounded; tag keys and values are at most 256 bytes (api/codec.py).
        self.redact_short = functools.lru_cache(maxsize=4096)(self.redact)

    def redact(self, text: str) -> str:
        # Until nothing changes: a redaction changes what its neighbours look like. A phone-like
        # run that went on into a card number was too long to be a phone; once the card is a
        # marker, the rest is one. Text with nothing to redact (most) takes one pass.
        for _ in range(_MAX_PASSES):
            redacted = self._pass(text)
            if redacted == text:
                break
            text = redacted
        return text

    def _pass(self, text: str) -> str:
        for pattern, replace in self._patterns:
            text = pattern.sub(replace, text)
        return text


def _as_pattern(pattern: str | PiiPattern) -> PiiPattern:
    return pattern if isinstance(pattern, PiiPattern) else PiiPattern(pattern)


def _replacer(validator: Callable[[str], bool] | None) -> Callable[[re.Match[str]], str]:
    if validator is None:
        return _replace_match
    check = validator

    def replace_if_valid(match: re.Match[str]) -> str:
        return _replace_match(match) if check(match.group(0)) else match.group(0)

    return replace_if_valid


def _replace_match(match: re.Match[str]) -> str:
    if "secret" not in match.re.groupindex:
        return REDACTED
    start, end = match.span("secret")
    whole_start = match.start()
    return match.group(0)[: start - whole_start] + REDACTED + match.group(0)[end - whole_start :]


def pii_patterns(names: Iterable[str]) -> tuple[PiiPattern, ...]:
    """The PII_PATTERNS for the given names, in PII_PATTERNS' order (see there); an unknown
    name is a config error."""
    wanted = set(names)
    unknown = sorted(wanted - PII_PATTERNS.keys())
    if unknown:
        raise ValueError(f"unknown PII pattern names {unknown}; known: {sorted(PII_PATTERNS)}")
    return tuple(pattern for name, pattern in PII_PATTERNS.items() if name in wanted)


def build_redactor(pii: Iterable[str] = DEFAULT_PII, patterns: Iterable[str] = ()) -> Redactor:
    """The secret shapes, the named built-in PII patterns, then the custom regexes."""
    return Redactor((*pii_patterns(pii), *patterns))


@dataclasses.dataclass(frozen=True, slots=True)
class ContentPolicy:
    """What caller text may leave the process, and how it is scrubbed when it does.

    Prompt and answer text only with `include_content`, redacted. Caller tags (on every event's
    envelope, and on feedback) and error messages always go, so they are always redacted, with
    the same redactor: a caller who puts a token or an email into a tag must not find it on
    Kafka or in the spool.
    """

    include_content: bool = False
    redactor: Redactor = dataclasses.field(default_factory=build_redactor)
    # Longer texts are cut (after redaction): one huge prompt must not exceed the broker's
    # record size limit, which would drop the whole completion event.
    max_chars: int = 16_384

    def apply(self, event: TelemetryEvent) -> TelemetryEvent:
        """The event with content removed (not configured) or redacted, and its tags redacted."""
        context = event.context
        if context.tags:
            tags = self._scrub_tags(context.tags)
            if tags is not context.tags:
                event = event._replace(context=_with_tags(context, tags))
        body = self._scrub_body(event.body)
        return event if body is event.body else event._replace(body=body)

    def _scrub_body(self, body: EventBody) -> EventBody:
        if isinstance(body, CompletionEvent):
            return self._scrub_completion(body)
        if isinstance(body, FeedbackEvent) and body.tags:
            tags = self._scrub_tags(body.tags)
            return body if tags is body.tags else dataclasses.replace(body, tags=tags)
        if isinstance(body, ErrorEvent):
            # Messages are built by the router, but may quote caller or upstream text.
            message = self.redactor.redact(body.message[: self.max_chars])
            return body if message == body.message else dataclasses.replace(body, message=message)
        return body

    def _scrub_completion(self, body: CompletionEvent) -> CompletionEvent:
        if body.prompt_text is None and body.completion_text is None:
            return body
        if not self.include_content:
            return dataclasses.replace(body, prompt_text=None, completion_text=None)
        return dataclasses.replace(
            body, prompt_text=self._scrub(body.prompt_text), completion_text=self._scrub(body.completion_text)
        )

    def _scrub_tags(self, tags: Mapping[str, str]) -> Mapping[str, str]:
        """The tags with keys and values redacted; the same object when nothing changed (the
        common case: it costs two cache lookups a tag)."""
        redact = self.redactor.redact_short
        scrubbed = {redact(key): redact(value) for key, value in tags.items()}
        if len(scrubbed) == len(tags) and all(tags.get(key) == value for key, value in scrubbed.items()):
            return tags
        return scrubbed

    def _scrub(self, text: str | None) -> str | None:
        if text is None:
            return None
        # Redact before cutting so a secret straddling the cut is still recognised whole; the
        # pre-cut keeps regex time bounded on huge texts (margin: the longest secret shape, a PEM key).
        text = self.redactor.redact(text[: self.max_chars + 8192])
        return text if len(text) <= self.max_chars else text[: self.max_chars] + TRUNCATED


def _with_tags(context: EventContext, tags: Mapping[str, str]) -> RequestContext:
    return RequestContext(
        request_id=context.request_id,
        trace_id=context.trace_id,
        span_id=context.span_id,
        api_key_id=context.api_key_id,
        team=context.team,
        customer=context.customer,
        user=context.user,
        tags=tags,
    )
