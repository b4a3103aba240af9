"""Where a request goes after a deployment fails: the rest of its chain, filtered by error class.

The error policy (`resilience.error_policy`) says whether to fall back at all and whether only a
larger context window can help (a context-length error would repeat on any model whose window is
not larger than the one that just failed).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from router_service.catalog import Catalog


def remaining_chain(
    chain: Sequence[str],
    failed: str,
    catalog: Catalog,
    *,
    larger_context: bool = False,
    tried: Collection[str] = (),
) -> tuple[str, ...]:
    """The chain entries after `failed` not yet tried; with `larger_context`, only those whose
    context window is larger than `failed`'s."""
    position = chain.index(failed) if failed in chain else -1
    rest = [key for key in chain[position + 1 :] if key not in tried and key != failed]
    if not larger_context:
        return tuple(rest)
    failed_deployment = catalog.by_key.get(failed)
    if failed_deployment is None:
        return tuple(rest)
    window = failed_deployment.context_window
    return tuple(
        key for key in rest if (d := catalog.by_key.get(key)) is not None and d.context_window > window
    )
