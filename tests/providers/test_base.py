"""The error mapping every adapter shares: status classes, Retry-After, transport failures."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from router_service.errors import ErrorClass
from router_service.providers.base import (
    bad_response,
    classify_status,
    error_from_response,
    error_from_transport,
    error_summary,
    parse_retry_after,
)

NOW = 1_750_000_000.0  # a fixed "now" for HTTP-date Retry-After values


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, '{"error":{"code":"context_length_exceeded"}}', ErrorClass.CONTEXT_LENGTH_EXCEEDED),
        (400, "This model's maximum context length is 128000 tokens.", ErrorClass.CONTEXT_LENGTH_EXCEEDED),
        (
            400,
            '{"message":"prompt is too long: 210000 tokens > 200000 maximum"}',
            ErrorClass.CONTEXT_LENGTH_EXCEEDED,
        ),
        (400, "The input token count (1200000) exceeds the maximum", ErrorClass.CONTEXT_LENGTH_EXCEEDED),
        (422, "too many tokens in prompt", ErrorClass.CONTEXT_LENGTH_EXCEEDED),
        (400, '{"error":{"code":"content_filter"}}', ErrorClass.CONTENT_FILTERED),
        (400, "The response was filtered due to our content management policy", ErrorClass.CONTENT_FILTERED),
        (400, '{"error":{"message":"Unrecognized request argument: foo"}}', ErrorClass.INVALID_REQUEST),
        (400, "", ErrorClass.INVALID_REQUEST),
        (401, "", ErrorClass.AUTH),
        (403, "", ErrorClass.AUTH),
        (404, '{"error":{"code":"model_not_found"}}', ErrorClass.AUTH),
        (400, '{"error":{"message":"invalid safety_settings value"}}', ErrorClass.INVALID_REQUEST),
        (408, "", ErrorClass.TIMEOUT),
        (409, "", ErrorClass.OVERLOADED),
        (413, "", ErrorClass.CONTEXT_LENGTH_EXCEEDED),
        (422, "", ErrorClass.INVALID_REQUEST),
        (429, "", ErrorClass.RATE_LIMITED),
        (429, "maximum context length", ErrorClass.RATE_LIMITED),  # the body only refines 400/413/422
        (500, "", ErrorClass.OVERLOADED),
        (502, "<html>Bad Gateway</html>", ErrorClass.OVERLOADED),
        (503, "", ErrorClass.OVERLOADED),
        (529, '{"type":"overloaded_error"}', ErrorClass.OVERLOADED),
        (500, "context length", ErrorClass.OVERLOADED),
        (418, "", ErrorClass.BAD_RESPONSE),
        (302, "", ErrorClass.BAD_RESPONSE),
    ],
)
def test_classify_status(status: int, body: str, expected: ErrorClass) -> None:
    assert classify_status(status, body) is expected


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "20"}, 20.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),  # the precise header wins
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),  # garbage ms falls back
        ({"retry-after": _http_date(NOW + 30)}, 30.0),
        ({"retry-after": _http_date(NOW - 30)}, 0.0),  # a date in the past: retry now
        ({"retry-after": "Sun, 15 Jun 2025 15:07:10 -0000"}, 30.0),  # naive date is UTC
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "inf"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers), now=NOW) == expected


def test_naive_date_fixture_is_thirty_seconds_after_now() -> None:
    # Guards the "-0000" row above: it must name the same instant as NOW + 30 s in UTC.
    assert email.utils.parsedate_to_datetime("Sun, 15 Jun 2025 15:07:10 GMT").timestamp() == NOW + 30


def test_naive_retry_after_date_ignores_the_local_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        delay = parse_retry_after(httpx.Headers({"retry-after": "Sun, 15 Jun 2025 15:07:10 -0000"}), now=NOW)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert delay == 30.0


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("connect timed out"), ErrorClass.TIMEOUT),
        (httpx.ReadTimeout("read timed out"), ErrorClass.TIMEOUT),
        (httpx.WriteTimeout("write timed out"), ErrorClass.TIMEOUT),
        (httpx.PoolTimeout("no connection available"), ErrorClass.TIMEOUT),
        (httpx.ConnectError("[Errno 111] Connection refused"), ErrorClass.CONNECTION),
        (httpx.ReadError("connection reset"), ErrorClass.CONNECTION),
        (httpx.WriteError("broken pipe"), ErrorClass.CONNECTION),
        (httpx.RemoteProtocolError("peer closed connection"), ErrorClass.CONNECTION),
        (httpx.LocalProtocolError("illegal header"), ErrorClass.CONNECTION),
        (httpx.ProxyError("proxy refused"), ErrorClass.CONNECTION),
        (
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'"),
            ErrorClass.CONNECTION,
        ),
    ],
)
def test_error_from_transport(exc: httpx.HTTPError, expected: ErrorClass) -> None:
    error = error_from_transport(exc)

    assert error.error_class is expected
    assert error.status_code == 0
    assert error.message == f"{type(exc).__name__}: {exc}"


def test_error_from_response_keeps_status_retry_after_and_a_short_summary() -> None:
    body = '{"error":{"message":"' + "x" * 1000 + '"}}'

    error = error_from_response(429, httpx.Headers({"retry-after": "7"}), body)

    assert (error.error_class, error.status_code, error.retry_after_s) == (ErrorClass.RATE_LIMITED, 429, 7.0)
    assert error.message == "HTTP 429: " + "x" * 200 + "..."


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        # OpenAI
        (
            '{"error": {"message": "Incorrect API key", "type": "invalid_request_error", "param": null,'
            ' "code": "invalid_api_key"}}',
            "[invalid_request_error/invalid_api_key] Incorrect API key",
        ),
        # Anthropic
        (
            '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
            "[overloaded_error] Overloaded",
        ),
        # Google
        (
            '{"error": {"code": 429, "message": "Quota\\nexceeded", "status": "RESOURCE_EXHAUSTED"}}',
            "[429/RESOURCE_EXHAUSTED] Quota exceeded",
        ),
        ('{"error": "plain string"}', "plain string"),
        ("<html>\n<b>Bad   gateway</b>\x00</html>", "<html> <b>Bad gateway</b> </html>"),
        ("", "(no message)"),
        ('{"error": {"type": {"nested": 1}}}', "(no message)"),
    ],
)
def test_error_bodies_are_summarised_never_quoted_whole(body: str, summary: str) -> None:
    assert error_summary(body) == summary


def test_bad_response_is_its_own_class() -> None:
    error = bad_response("choices is missing")

    assert (error.error_class, error.message) == (
        ErrorClass.BAD_RESPONSE,
        "malformed upstream response: choices is missing",
    )
