"""The overhead bench's router configs: one function builds the base, each variant (a router row)
deep-merges its own additions into it (bench/overhead.py)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.overhead_clients import API_KEY, MODEL
from bench.servers import free_port
from router_service.identity import key_secret
from router_service.identity.model import Identity
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.file_store import write_key_file

PLAIN = "router/aiohttp"  # what the other router rows are compared with
EVENTS_VARIANT = "router/aiohttp+events"
VOLATILE_VARIANT = "router/aiohttp+events-volatile"  # events.durable: false, for the log's cost
AUTH_VARIANT = "router/aiohttp+auth"
DOOR_VARIANT = "door/aiohttp"
LIMITS_VARIANT = "router/aiohttp+limits"
LIMITS_REDIS_VARIANT = "router/aiohttp+limits-redis"
# The modes: the full run, or one comparison alone of these routers, closed loop, nothing else.
FULL, TELEMETRY, DOOR, LIMITS = "full", "telemetry", "door", "limits"
FOCUSED_TARGETS = {
    TELEMETRY: (PLAIN, EVENTS_VARIANT, VOLATILE_VARIANT),
    DOOR: (PLAIN, DOOR_VARIANT),
    LIMITS: (PLAIN, LIMITS_VARIANT, LIMITS_REDIS_VARIANT),
}


@dataclass(frozen=True)
class RouterVariant:
    """One router row. `extra` is deep-merged into the base config (e.g. Kafka telemetry on)."""

    name: str
    extra: dict[str, Any]
    metadata: tuple[tuple[str, str], ...] = ()  # sent with every call (the auth variant's key)
    door_port: int = 0  # measured through its OpenAI HTTP door on this port instead of gRPC
    tree: Path | None = None  # served from this source tree (--baseline), not this checkout

    def config(self, sim_base_url: str, port: int) -> dict[str, Any]:
        return deep_merge(base_router_config(sim_base_url, port), self.extra)

    @property
    def transport(self) -> str:
        return str(deep_merge(on_aiohttp(), self.extra)["http"]["transport"])


def base_router_config(sim_base_url: str, port: int) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{port}", "workers": 1, "grace_period_s": 1},
        "metrics": {"listen": ""},
        "http": {"transport": "aiohttp"},
        "providers": {"sim": {"kind": "openai", "base_url": sim_base_url, "api_key": API_KEY}},
        "models": [
            {
                "name": MODEL,
                "provider": "sim",
                "price_per_mtok": {"input": "0.15", "output": "0.60"},
                "capabilities": ["streaming"],
            }
        ],
        "policies": {"default": {"models": [MODEL]}},
    }


def on_aiohttp(**sections: Any) -> dict[str, Any]:
    """A variant's extra: the aiohttp transport (router/aiohttp's), plus the given config sections."""
    return {"http": {"transport": "aiohttp"}, **sections}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def events_extra(bootstrap: str, spool_dir: Path, durable: bool = True) -> dict[str, Any]:
    """Telemetry on: every request publishes its decision, attempt and completion events, each
    written to the spool before the call answers (`durable`, the default) or kept in memory until
    the broker acks it (`durable=False`)."""
    return on_aiohttp(
        events={
            "bootstrap_servers": bootstrap,
            "enable_idempotence": False,  # the embedded Tansu broker lacks it
            "create_topic_partitions": 3,
            "spool_dir": str(spool_dir),
            "durable": durable,
        }
    )


def door_variant() -> RouterVariant:
    """router/aiohttp's config with the OpenAI door on a free port; its calls go through the door."""
    port = free_port()
    extra = on_aiohttp(server={"openai_http": {"listen": f"127.0.0.1:{port}"}})
    return RouterVariant(DOOR_VARIANT, extra, door_port=port)


def limits_extra(redis_url: str = "") -> dict[str, Any]:
    """Governance on for every call (auth is off, so the global level is the one that binds): a
    budget and requests/tokens/concurrency limits far above what the run uses, so every call
    reserves and settles three counters and none is refused."""
    store: dict[str, Any] = {"store": "memory"}
    if redis_url:
        store = {"store": "redis", "redis_url": redis_url, "store_timeout_s": 1.0}
    return on_aiohttp(
        limits={
            **store,
            "budgets": [{"level": "global", "usd": "9000000", "period": "month"}],
            "rate_limits": [
                {
                    "level": "global",
                    "requests_per_minute": 10**9,
                    "tokens_per_minute": 10**12,
                    "concurrent": 10**6,
                }
            ],
        }
    )


def limits_variants(redis_url: str) -> list[RouterVariant]:
    """Governance in the in-process store and in Redis, otherwise router/aiohttp's config."""
    return [
        RouterVariant(LIMITS_VARIANT, limits_extra()),
        RouterVariant(LIMITS_REDIS_VARIANT, limits_extra(redis_url)),
    ]


def auth_variant(tmp: Path) -> RouterVariant:
    """`auth.mode: required` over a key file of 1,000 keys; every call presents one of them (the
    same one: the verified-secret cache is warm after the first call, as for a real caller)."""
    records, secret = [], ""
    for i in range(1000):
        key_id = f"k_bench_{i}"
        candidate = key_secret.new_secret(key_id)
        secret = secret or candidate
        credential = Credential(key_secret.hash_secret(candidate))
        records.append(KeyRecord(Identity(key_id=key_id, team="bench", customer="bench"), (credential,)))
    path = tmp / "keys.yaml"
    write_key_file(path, records)
    extra = on_aiohttp(auth={"mode": "required", "keys_file": str(path)})
    return RouterVariant(AUTH_VARIANT, extra, (("authorization", f"Bearer {secret}"),))


def events_variants(events: dict[str, Any]) -> list[RouterVariant]:
    """Events on, durable (the default) and volatile: their difference is the durable log's cost."""
    spool = f"{events['events']['spool_dir']}-volatile"  # each router locks its own spool
    volatile = deep_merge(events, {"events": {"durable": False, "spool_dir": spool}})
    return [RouterVariant(EVENTS_VARIANT, events), RouterVariant(VOLATILE_VARIANT, volatile)]


def extra_variant(extra_yaml: str, name: str) -> RouterVariant:
    """--router-config-extra: a YAML mapping, inline or `@file`."""
    text = Path(extra_yaml[1:]).read_text() if extra_yaml.startswith("@") else extra_yaml
    extra = yaml.safe_load(text) or {}
    if not isinstance(extra, dict):
        raise SystemExit("--router-config-extra must be a YAML mapping")
    return RouterVariant(name, extra)


def router_variants(
    extra_yaml: str | None,
    extra_name: str,
    events: dict[str, Any] | None,
    telemetry_only: bool = False,
    auth: RouterVariant | None = None,
    door: RouterVariant | None = None,
) -> list[RouterVariant]:
    variants = [RouterVariant(PLAIN, on_aiohttp())]
    if not telemetry_only:
        variants.append(RouterVariant("router/httpx", {"http": {"transport": "httpx"}}))
        variants += [v for v in (auth, door) if v is not None]
    if events is not None:
        variants += events_variants(events)
    if extra_yaml:
        variants.append(extra_variant(extra_yaml, extra_name))
    return variants
