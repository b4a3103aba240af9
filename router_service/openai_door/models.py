"""`GET /v1/models`: what the calling key may name in `model`, as OpenAI's model list.

Catalog models with at least one deployment the key may use (its model allow-list and regions),
each such deployment (`provider/model`), the aliases it may use, and `router/<policy>` for each
policy it may use. Each entry's extra field `router.kind` says which of the four it is. Pure.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from router_service.catalog import Catalog
from router_service.identity.model import Identity
from router_service.openai_door.request import AUTO_MODEL

OWNER = "llm-router"


def model_list(identity: Identity, catalog: Catalog, policies: Collection[str]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    seen_models: set[str] = set()
    for d in catalog.deployments:
        if not (identity.may_use_model(d.model, d.key) and identity.may_use_region(d.region)):
            continue
        if d.model not in seen_models:
            seen_models.add(d.model)
            entries.append(_entry(d.model, "model"))
        entries.append(_entry(d.key, "deployment"))
    entries += [_entry(a, "alias") for a in catalog.aliases if identity.may_use_alias(a)]
    entries += [_entry(f"{AUTO_MODEL}/{p}", "policy") for p in policies if identity.may_use_policy(p)]
    return {"object": "list", "data": entries}


def _entry(name: str, kind: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": OWNER, "router": {"kind": kind}}
