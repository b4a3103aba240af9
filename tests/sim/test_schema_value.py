"""The sim's JSON Schema value generator: every value it makes validates (checked by the
`jsonschema` library, not by the generator's own idea of a schema)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.sim.schema_value import value_for

WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "days": {"type": "integer", "minimum": 3, "maximum": 7},
        "unit": {"type": "string", "enum": ["c", "f"]},
        "hourly": {"type": "boolean"},
        "ratio": {"type": "number", "exclusiveMinimum": 2, "maximum": 9.5},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "lon": {"type": ["number", "null"]}},
            "required": ["lat", "lon"],
            "additionalProperties": False,
        },
    },
    "required": ["city", "days", "unit", "where"],
    "additionalProperties": False,
}


def test_a_tool_schema_gets_every_property_of_the_right_type() -> None:
    value = value_for(WEATHER, "Paris")
    jsonschema.validate(value, WEATHER)
    assert value == {
        "city": "Paris",
        "days": 3,
        "unit": "c",
        "hourly": True,
        "ratio": 3.0,
        "tags": ["Paris", "Paris"],
        "where": {"lat": 1.5, "lon": 1.5},
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 2},
        {"type": "string", "minLength": 50},
        {"const": {"fixed": [1, 2]}},
        {"anyOf": [{"type": "integer", "maximum": -5}, {"type": "string"}]},
        {"oneOf": [{"type": "null"}, {"type": "string"}]},
        {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}]},
        {"type": "object", "required": ["undescribed"]},
        {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "minItems": 2},
        {"type": "integer", "exclusiveMaximum": 0},
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                    "required": ["kids"],
                }
            },
            "$ref": "#/$defs/node",
        },
        {
            "definitions": {"id": {"type": "integer", "minimum": 10}},
            "type": "object",
            "properties": {"id": {"$ref": "#/definitions/id"}},
        },
        {},
        True,
    ],
)
def test_edge_schemas_validate(schema: Any) -> None:
    jsonschema.validate(value_for(schema, "seed text"), schema if schema is not True else {})


def test_a_recursive_schema_that_always_requires_more_ends() -> None:
    schema = {
        "$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "required": ["n"]}},
        "$ref": "#/$defs/n",
    }
    value = value_for(schema)  # cannot be satisfied finitely: a best effort, but it returns
    assert isinstance(value, dict)


# Random schemas of the kinds chat APIs accept, nested a few levels.
_LEAVES = st.one_of(
    st.builds(
        lambda lo, n: {"type": "integer", "minimum": lo, "maximum": lo + n},
        st.integers(-100, 100),
        st.integers(0, 5),
    ),
    st.builds(lambda lo: {"type": "number", "minimum": lo}, st.floats(-1e6, 1e6)),
    st.builds(
        lambda lo, extra: {"type": "string", "minLength": lo, "maxLength": lo + extra},
        st.integers(0, 20),
        st.integers(0, 20),
    ),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.just({"type": ["string", "null"]}),
    st.lists(st.text(max_size=5) | st.integers(), min_size=1, max_size=3, unique=True).map(
        lambda e: {"enum": e}
    ),
)


def _extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    names = st.text("abcdefgh", min_size=1, max_size=4)
    objects = st.dictionaries(names, children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required, closed: {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": not closed,
            },
            st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]),
            st.booleans(),
        )
    )
    arrays = st.builds(
        lambda items, low: {"type": "array", "items": items, "minItems": low, "maxItems": low + 2},
        children,
        st.integers(0, 3),
    )
    unions = st.lists(children, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches})
    return objects | arrays | unions


SCHEMAS = st.recursive(_LEAVES, _extend, max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(SCHEMAS, st.text(max_size=30))
def test_every_generated_value_validates_against_its_schema(schema: dict[str, Any], seed: str) -> None:
    jsonschema.validate(value_for(schema, seed), schema)
