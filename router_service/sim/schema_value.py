"""A value conforming to a JSON Schema: what the sim puts in tool arguments and JSON answers.

Pure and deterministic (strings echo a seed text), so tests can assert exact output. It covers
what chat APIs accept in tool `parameters` and `response_format.json_schema` (the subset OpenAI's
structured outputs documents): `type` (one name or a list), `enum`, `const`, `properties`,
`required`, `items`, `minItems`/`maxItems`, `minLength`/`maxLength`, `minimum`/`maximum` (and the
exclusive forms), `anyOf`/`oneOf`/`allOf` (the first branch; `allOf` merged), and local `$ref`s
(`#/$defs/...`, `#/definitions/...`). Not a validator: an unsatisfiable schema gets a best effort.

Objects get every declared property down to `_FULL_DEPTH` levels, then only the required ones, so
a recursive schema (a tree through `$ref`) ends; an array gets `minItems` items, at least one near
the top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_FULL_DEPTH = 3  # objects deeper than this get only their required properties
_MAX_DEPTH = 32  # past this every value is null: a schema cannot make the generator loop
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def value_for(schema: object, text: str = "sim") -> Any:
    """A JSON-compatible value that `schema` accepts; strings are (a prefix of) `text`."""
    root = schema if isinstance(schema, Mapping) else {}
    return _Generator(root, text or "sim").value(root, 0)


class _Generator:
    def __init__(self, root: Mapping[str, Any], text: str) -> None:
        self._root = root
        self._text = text

    def value(self, schema: object, depth: int) -> Any:
        if depth > _MAX_DEPTH or not isinstance(schema, Mapping):
            return None if depth > _MAX_DEPTH else self._text
        schema = self._resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.value(_merge(schema, branches[0], key), depth + 1)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in all_of:
                merged = _merge(merged, self._resolve(part, depth) if isinstance(part, Mapping) else {}, "")
            return self.value(merged, depth + 1)
        kind = _pick_type(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return _integer(schema)
        if kind == "number":
            return _number(schema)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema)

    def _resolve(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        """Follow local `$ref`s (siblings of a `$ref` add to the target, as in 2019-09+)."""
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen <= _MAX_DEPTH:
            target = _pointer(self._root, schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**(target if isinstance(target, Mapping) else {}), **rest}
            seen += 1
        return schema

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = [name for name in schema.get("required") or () if isinstance(name, str)]
        names = list(props) if depth < _FULL_DEPTH else [n for n in props if n in required]
        out = {name: self.value(props[name], depth + 1) for name in names}
        for name in required:  # required but not described: any value will do
            if name not in out:
                out[name] = self._text
        return out

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), max(low, 1))
        count = max(low, min(1 if depth < _FULL_DEPTH else 0, high))
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        out: list[Any] = []
        for i in range(count):
            if isinstance(prefix, list) and i < len(prefix):
                out.append(self.value(prefix[i], depth + 1))
            else:
                out.append(self.value(items if isinstance(items, Mapping) else {"type": "string"}, depth + 1))
        return out

    def _string(self, schema: Mapping[str, Any]) -> str:
        low = _int(schema.get("minLength"), 0)
        high = _int(schema.get("maxLength"), max(low, len(self._text)))
        text = self._text[:high]
        if len(text) < low:
            text += "x" * (low - len(text))
        return text


def _pick_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        names = [k for k in kind if isinstance(k, str)]
        # A nullable field ("type": ["string", "null"]) gets a real value, not null.
        return next((k for k in _TYPE_ORDER if k in names and k != "null"), "null" if names else "string")
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _integer(schema: Mapping[str, Any]) -> int:
    low = _bound(schema, "minimum", "exclusiveMinimum", +1)
    high = _bound(schema, "maximum", "exclusiveMaximum", -1)
    value = 1
    if low is not None:
        value = max(value, math.ceil(low))
    if high is not None:
        value = min(value, math.floor(high))
    return value


def _number(schema: Mapping[str, Any]) -> float:
    low = _bound(schema, "minimum", "exclusiveMinimum", +1)
    high = _bound(schema, "maximum", "exclusiveMaximum", -1)
    value = 1.5
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return float(value)


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, step: int) -> float | None:
    """The tightest bound of either kind; an exclusive one moved inside by one (or a hair)."""
    bounds: list[float] = []
    value = _finite(schema.get(inclusive))
    if value is not None:
        bounds.append(value)
    value = _finite(schema.get(exclusive))
    if value is not None:
        bounds.append(value + step * (1 if value.is_integer() else 1e-9))
    if not bounds:
        return None
    return max(bounds) if step > 0 else min(bounds)


def _finite(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _merge(base: Mapping[str, Any], branch: object, drop: str) -> dict[str, Any]:
    out = {k: v for k, v in base.items() if k != drop}
    if isinstance(branch, Mapping):
        for key, value in branch.items():
            known = out.get(key)
            if key == "properties" and isinstance(known, Mapping) and isinstance(value, Mapping):
                out["properties"] = {**known, **value}
            elif key == "required" and isinstance(out.get("required"), list) and isinstance(value, list):
                out["required"] = [*out["required"], *value]
            else:
                out[key] = value
    return out


def _pointer(root: Mapping[str, Any], ref: str) -> object:
    """A local JSON pointer ("#/$defs/node"); anything else resolves to {} (any value)."""
    if not ref.startswith("#"):
        return {}
    node: object = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node
