"""What every adapter checks on the way out, unary and stream alike, so the rules are one:

- usage: a ChatResult's or StreamDone's usage must be plausible (usage.py); an implausible one is
  logged (provider, model and reason; never prompt content), counted in
  `llmrouter_upstream_implausible_usage_total` and raised as a BAD_RESPONSE attempt, never billed;
- errors: every ProviderError leaving the adapter has its message scrubbed of the endpoint's
  configured secrets, in every form, and of generic secret shapes (scrub.py), and cut short. That is
  the one text about an upstream failure that travels on, into logs, events and the caller's status.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from router_service.domain import ChatRequest, ChatResult, StreamDone
from router_service.errors import ProviderError
from router_service.providers.base import ProviderEndpoint
from router_service.providers.scrub import SecretScrubber, secret_values
from router_service.providers.usage import ImplausibleUsageError, check_usage
from router_service.telemetry.metrics import IMPLAUSIBLE_USAGE

log = logging.getLogger(__name__)

# A ProviderError message is a summary; nothing longer is worth carrying (or scrubbing).
MAX_MESSAGE_CHARS = 600


class AdapterBoundary:
    """One endpoint's exit checks (see the module docstring)."""

    def __init__(self, endpoint: ProviderEndpoint) -> None:
        self._provider = endpoint.name
        self._models = endpoint.models
        self._scrubber = SecretScrubber(secret_values(endpoint.api_key, endpoint.headers.items()))

    @contextlib.contextmanager
    def guard(self, upstream_model: str) -> Iterator[None]:
        """Around one adapter call: scrubs every ProviderError raised inside, and reports the
        implausible usages."""
        try:
            yield
        except ImplausibleUsageError as exc:
            self._report(exc, upstream_model)
            self._scrub(exc)
            raise
        except ProviderError as exc:
            self._scrub(exc)
            raise

    def result(self, result: ChatResult, request: ChatRequest, upstream_model: str) -> ChatResult:
        check_usage(result.usage, request, self._models.get(upstream_model))
        return result

    def done(self, done: StreamDone, request: ChatRequest, upstream_model: str) -> StreamDone:
        check_usage(done.usage, request, self._models.get(upstream_model))
        return done

    def scrub(self, text: str) -> str:
        return self._scrubber.scrub(text[:MAX_MESSAGE_CHARS])

    def _scrub(self, exc: ProviderError) -> None:
        exc.message = self.scrub(exc.message)
        exc.args = (exc.message,)

    def _report(self, exc: ImplausibleUsageError, upstream_model: str) -> None:
        IMPLAUSIBLE_USAGE.labels(provider=self._provider, reason=exc.reason).inc()
        log.warning(
            "implausible usage from provider %s model %s (%s): %s; the attempt fails as bad_response",
            self._provider,
            upstream_model,
            exc.reason,
            exc.message,
        )
