from __future__ import annotations

import pytest

from router_service.telemetry import events as ev
from router_service.telemetry.redaction import REDACTED, ContentPolicy, Redactor, build_redactor, pii_patterns
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


# --- caller tags, feedback tags, error messages: always redacted ------------------------------

LEAKY_TAGS = {
    "note": "Bearer tok-abcdefgh12345678",
    "contact": "jane.doe@example.com",
    "sk-proj-AbCdEf0123456789xyzXYZ": "key as a tag key",
    "card": "4111 1111 1111 1111",
    "feature": "summarise",
}
SCRUBBED_TAGS = {
    "note": f"Bearer {REDACTED}",
    "contact": REDACTED,
    REDACTED: "key as a tag key",
    "card": REDACTED,
    "feature": "summarise",
}


@pytest.mark.parametrize("include_content", [False, True])
def test_caller_tags_are_redacted_whatever_include_content_says(include_content: bool) -> None:
    event = h.event(h.bodies()["attempt"])._replace(context=h.context(tags=LEAKY_TAGS))

    scrubbed = ContentPolicy(include_content=include_content).apply(event)

    assert dict(scrubbed.context.tags) == SCRUBBED_TAGS
    assert scrubbed.body is event.body and scrubbed.event_id == event.event_id
    context, original = scrubbed.context, event.context
    assert (context.request_id, context.trace_id, context.span_id) == (
        original.request_id,
        original.trace_id,
        original.span_id,
    )
    # The attribution comes from the key store (operator data), not from the caller: kept as is.
    assert (context.api_key_id, context.team, context.customer, context.user) == (
        original.api_key_id,
        original.team,
        original.customer,
        "u-4711",
    )


def test_feedback_tags_and_error_messages_are_redacted() -> None:
    policy = ContentPolicy()
    feedback = policy.apply(h.event(ev.FeedbackEvent(0.5, LEAKY_TAGS))).body
    error = policy.apply(
        h.event(
            ev.ErrorEvent(
                "UNAVAILABLE", "ALL_UPSTREAMS_FAILED", "upstream said: bad key sk-abcdefghijklmnop1234", 2
            )
        )
    ).body

    assert dict(feedback.tags) == SCRUBBED_TAGS  # type: ignore[union-attr]
    assert error.message == f"upstream said: bad key {REDACTED}"  # type: ignore[union-attr]


def test_events_with_nothing_to_redact_are_the_same_objects() -> None:
    policy = ContentPolicy(include_content=True)
    for body in h.bodies().values():
        event = h.event(body)  # ordinary tags {"feature": "summarise", "plan": "pro"}
        scrubbed = policy.apply(event)
        assert scrubbed.context is event.context
        assert scrubbed.body is event.body or isinstance(body, ev.CompletionEvent)


def test_included_content_has_pii_redacted_by_default() -> None:
    prompt = (
        "I am jane@example.com, card 4111 1111 1111 1111, phone +44 20 7946 0958, IBAN GB29NWBK60161331926819"
    )
    event = h.event(h.completion(prompt_text=prompt, completion_text="noted, jane@example.com"))

    body = ContentPolicy(include_content=True).apply(event).body

    assert body.prompt_text == f"I am {REDACTED}, card {REDACTED}, phone {REDACTED}, IBAN {REDACTED}"  # type: ignore[union-attr]
    assert body.completion_text == f"noted, {REDACTED}"  # type: ignore[union-attr]


def test_configured_pii_can_be_narrowed_and_extended() -> None:
    policy = ContentPolicy(True, build_redactor(pii=["email"], patterns=[r"\bEMP-\d{6}\b"]))
    event = h.event(h.completion(prompt_text="jane@example.com EMP-123456 +44 20 7946 0958"))

    body = policy.apply(event).body

    assert body.prompt_text == f"{REDACTED} {REDACTED} +44 20 7946 0958"  # type: ignore[union-attr]
