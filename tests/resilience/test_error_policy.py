"""The per-class table: defaults that follow the field, overrides from config, loud typos."""

from __future__ import annotations

import pytest

from router_service.errors import ErrorClass
from router_service.resilience.error_policy import DEFAULT_ERROR_POLICY, ErrorPolicy, ErrorRule, Fallback


@pytest.mark.parametrize(
    ("error_class", "retry", "health", "cooldown", "fallback"),
    [
        (ErrorClass.RATE_LIMITED, False, True, True, Fallback.NEXT),
        (ErrorClass.OVERLOADED, True, True, False, Fallback.NEXT),
        (ErrorClass.TIMEOUT, True, True, False, Fallback.NEXT),
        (ErrorClass.CONNECTION, True, True, False, Fallback.NEXT),
        (ErrorClass.AUTH, False, True, True, Fallback.NEXT),
        (ErrorClass.INVALID_REQUEST, False, False, False, Fallback.NONE),
        (ErrorClass.CONTEXT_LENGTH_EXCEEDED, False, False, False, Fallback.LARGER_CONTEXT),
        (ErrorClass.CONTENT_FILTERED, False, False, False, Fallback.NEXT),
        (ErrorClass.BAD_RESPONSE, True, True, False, Fallback.NEXT),
        (ErrorClass.CANCELLED, False, False, False, Fallback.NONE),
    ],
)
def test_defaults(
    error_class: ErrorClass, retry: bool, health: bool, cooldown: bool, fallback: Fallback
) -> None:
    rule = DEFAULT_ERROR_POLICY.rule(error_class)
    assert (rule.retry, rule.counts_against_health, rule.cooldown, rule.fallback) == (
        retry,
        health,
        cooldown,
        fallback,
    )


def test_auth_cools_down_for_longer_than_the_default() -> None:
    assert DEFAULT_ERROR_POLICY.rule(ErrorClass.AUTH).cooldown_s == 300.0
    assert DEFAULT_ERROR_POLICY.rule(ErrorClass.RATE_LIMITED).cooldown_s is None  # Retry-After decides


def test_overrides_change_only_the_named_flags() -> None:
    policy = ErrorPolicy.with_overrides(
        {"timeout": {"retry": False, "fallback": "none"}, "auth": {"cooldown_s": 60}}
    )
    assert policy.rule(ErrorClass.TIMEOUT) == ErrorRule(
        retry=False, counts_against_health=True, cooldown=False, fallback=Fallback.NONE
    )
    assert policy.rule(ErrorClass.AUTH).cooldown_s == 60.0
    assert policy.rule(ErrorClass.OVERLOADED) == DEFAULT_ERROR_POLICY.rule(ErrorClass.OVERLOADED)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"teapot": {"retry": True}}, r"error_policy.teapot: unknown error class"),
        ({"timeout": {"retries": True}}, r"error_policy.timeout: unknown flags \['retries'\]"),
        ({"timeout": {"retry": "yes"}}, r"error_policy.timeout.retry: must be true or false"),
        (
            {"timeout": {"fallback": "sideways"}},
            r"error_policy.timeout.fallback: unknown fallback 'sideways'",
        ),
        ({"auth": {"cooldown_s": -1}}, r"error_policy.auth.cooldown_s: must be a non-negative number"),
    ],
)
def test_bad_overrides_fail_with_the_config_path(
    overrides: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ErrorPolicy.with_overrides(overrides)


def test_every_class_needs_a_rule() -> None:
    with pytest.raises(ValueError, match="no rule for"):
        ErrorPolicy({ErrorClass.TIMEOUT: DEFAULT_ERROR_POLICY.rule(ErrorClass.TIMEOUT)})
