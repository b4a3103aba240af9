"""A cached answer as bytes: compact JSON, zlib-compressed, behind a one-byte format tag.

zlib (the standard library) rather than zstd: on answer-sized JSON (a few KiB) it decompressed
faster here, and its decompressor takes an output bound, so a corrupt or hostile value in a shared
store cannot inflate without limit. The value repeats its own cache key, and `decode` refuses a
value stored under another key: an entry reaches only the tenant whose key it was written for,
even if something copied values between keys.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from router_service.cache.entry import CachedAnswer
from router_service.domain import FinishReason, TaskType, ToolCall, Usage

_FORMAT = b"\x01"
_LEVEL = 1  # fastest: the store path runs after the answer, but on the router's CPU


class CorruptEntryError(ValueError):
    """A stored value that is not an entry of this key (or too large once inflated)."""


def encode(key: str, entry: CachedAnswer) -> bytes:
    u = entry.usage
    payload: dict[str, Any] = {
        "k": key,
        "c": entry.content,
        "t": [[c.id, c.name, c.arguments_json] for c in entry.tool_calls],
        "f": entry.finish_reason.value,
        "u": [u.input_tokens, u.output_tokens, u.cached_input_tokens],
        "d": entry.deployment,
        "m": entry.upstream_model,
        "at": entry.created_at,
    }
    if entry.task_type is not None:
        payload["tt"] = entry.task_type.value
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return _FORMAT + zlib.compress(text.encode("utf-8", "surrogatepass"), _LEVEL)


def decode(key: str, data: bytes, max_inflated_bytes: int) -> CachedAnswer:
    if data[:1] != _FORMAT:
        raise CorruptEntryError("unknown entry format")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data[1:], max_inflated_bytes)
        if inflater.unconsumed_tail or not inflater.eof:
            raise CorruptEntryError("entry inflates past its bound, or is truncated")
        p = json.loads(raw.decode("utf-8", "surrogatepass"))
        if p["k"] != key:
            raise CorruptEntryError("entry stored under another key")
        return CachedAnswer(
            content=str(p["c"]),
            tool_calls=tuple(ToolCall(str(i), str(n), str(a)) for i, n, a in p["t"]),
            finish_reason=FinishReason(p["f"]),
            usage=Usage(int(p["u"][0]), int(p["u"][1]), int(p["u"][2])),
            deployment=str(p["d"]),
            upstream_model=str(p["m"]),
            created_at=float(p["at"]),
            task_type=TaskType(p["tt"]) if "tt" in p else None,
        )
    except CorruptEntryError:
        raise
    except (zlib.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CorruptEntryError(f"unreadable entry ({type(exc).__name__})") from None
