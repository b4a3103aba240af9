"""OpenTelemetry GenAI semantic-convention names, in one place (CONVENTIONS.md section 1).

Pinned to semantic conventions 1.41 (`SCHEMA_URL`), the last release before GenAI moved to its
own repository in Development status; when its renames (`migration.md`) land, this module is
what changes. Pure: names and the provider-name mapping, no OpenTelemetry import.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from router_service.providers.base import ProviderEndpoint

SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
OPERATION_CHAT = "chat"

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"

# The router's own attributes (not GenAI conventions), under one prefix.
REQUEST_ID = "llmrouter.request_id"
# The caller's identity (never the secret): the virtual key id, its team and customer.
API_KEY_ID = "llmrouter.api_key.id"
TEAM = "llmrouter.team"
CUSTOMER = "llmrouter.customer"
# The key's end user: OpenTelemetry's registry has a general attribute for it (`user.id`, which
# replaced `enduser.id`), so the standard name rather than one under our prefix.
USER_ID = "user.id"
DEPLOYMENT = "llmrouter.deployment"  # "<provider>/<model>": the catalog's key, as in metrics and events
ATTEMPT_INDEX = "llmrouter.attempt.index"
ATTEMPT_OUTCOME = "llmrouter.attempt.outcome"
ATTEMPT_HEDGED = "llmrouter.attempt.hedged"
ATTEMPT_UNUSED = "llmrouter.attempt.unused"  # a hedge loser's answer: billed, never used
COST_NANO_USD = "llmrouter.cost.nano_usd"
ROUTE_POLICY = "llmrouter.route.policy"
ROUTE_STRATEGY = "llmrouter.route.strategy"
ROUTE_CHOSEN = "llmrouter.route.chosen"
ROUTE_FALLBACKS = "llmrouter.route.fallbacks"
ERROR_REASON = "llmrouter.error.reason"

# Well-known `gen_ai.provider.name` values of OpenAI-compatible APIs, by host.
_OPENAI_COMPATIBLE_HOSTS = {
    "api.openai.com": "openai",
    "api.mistral.ai": "mistral_ai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
}


def provider_name(endpoint: ProviderEndpoint) -> str:
    """`gen_ai.provider.name` of a configured provider: the conventions' well-known value where
    there is one, else the provider's name in our config (a custom value, e.g. "local-vllm")."""
    if endpoint.kind == "anthropic":
        return "anthropic"
    if endpoint.kind == "gemini":
        return "gcp.gemini"
    if endpoint.options.get("auth") == "azure":
        return "azure.ai.openai"
    return _OPENAI_COMPATIBLE_HOSTS.get(urlsplit(endpoint.base_url).hostname or "", endpoint.name)


def server_attributes(endpoint: ProviderEndpoint) -> dict[str, str | int]:
    """`server.address` and `server.port` (the conventions require the port with the address)."""
    url = urlsplit(endpoint.base_url)
    if not url.hostname:
        return {}
    port = url.port or (443 if url.scheme == "https" else 80)
    return {SERVER_ADDRESS: url.hostname, SERVER_PORT: port}
