from __future__ import annotations

import pytest

from router_service.telemetry.redaction import REDACTED, ContentPolicy, Redactor, pii_patterns
from tests.telemetry import helpers as h

SECRET_CASES = [
    # (text, the secret that must disappear, text that must survive)
    ("my key is sk-proj-AbCdEf0123456789xyzXYZ ok", "sk-proj-AbCdEf0123456789xyzXYZ", "my key is"),
    (
        "anthropic sk-ant-api03-abcdefghijklmnopQRST_-1234",
        "sk-ant-api03-abcdefghijklmnopQRST_-1234",
        "anthropic",
    ),
    ("Authorization: Bearer eyJhbGciOi.abc.def-ghi", "eyJhbGciOi.abc.def-ghi", "Authorization: Bearer"),
    ("curl -H 'x-api-key: 0123456789abcdef'", "0123456789abcdef", "x-api-key"),
    ('{"api_key": "s3cr3t-value-42"}', "s3cr3t-value-42", '"api_key"'),
    ("password=hunter2hunter2", "hunter2hunter2", "password="),
    ("aws AKIAIOSFODNN7EXAMPLE id", "AKIAIOSFODNN7EXAMPLE", "aws"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG",
        "aws_secret",
    ),
    ("gh token ghp_" + "a" * 36, "ghp_" + "a" * 36, "gh token"),
    ("google AIza" + "B" * 35, "AIza" + "B" * 35, "google"),
    ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij", "slack"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "eyJzdWIiOiIxMjM0In0", "jwt"),
    (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nthanks",
        "MIIEow",
        "thanks",
    ),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SECRET_CASES)
def test_secrets_are_redacted_and_context_kept(text: str, secret: str, kept: str) -> None:
    redacted = Redactor().redact(text)

    assert secret not in redacted
    assert REDACTED in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "a plain question about sorting lists in python",
        "the word secret alone, or skip-list, or task-1234",
        "Bearer with no token",
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert Redactor().redact(text) == text


@pytest.mark.parametrize(
    ("names", "text", "gone"),
    [
        (["email"], "write to jane.doe+x@example.co.uk today", "jane.doe+x@example.co.uk"),
        (["card_number"], "card 4111 1111 1111 1111 exp", "4111 1111 1111 1111"),
    ],
)
def test_configured_pii_patterns(names: list[str], text: str, gone: str) -> None:
    assert gone in Redactor().redact(text)  # PII is only redacted when configured
    assert gone not in Redactor(pii_patterns(names)).redact(text)


def test_custom_regex_and_unknown_pii_name() -> None:
    assert Redactor([r"\bEMP-\d{6}\b"]).redact("employee EMP-123456") == f"employee {REDACTED}"
    with pytest.raises(ValueError, match="unknown PII"):
        pii_patterns(["nope"])


def test_content_is_removed_unless_configured() -> None:
    event = h.event(h.completion(prompt_text="sk-abcdefghijklmnop1234", completion_text="answer"))

    body = ContentPolicy(include_content=False).apply(event).body
    assert (body.prompt_text, body.completion_text) == (None, None)  # type: ignore[union-attr]


def test_included_content_is_redacted_and_truncated() -> None:
    event = h.event(h.completion(prompt_text="key sk-abcdefghijklmnop1234", completion_text="x" * 50))

    body = ContentPolicy(include_content=True, max_chars=20).apply(event).body
    assert body.prompt_text == f"key {REDACTED}"  # type: ignore[union-attr]
    assert body.completion_text == "x" * 20 + "...[TRUNCATED]"  # type: ignore[union-attr]


def test_events_without_content_pass_through_unchanged() -> None:
    event = h.event(h.bodies()["attempt"])
    assert ContentPolicy(include_content=True).apply(event) is event
