"""Hypothesis strategies built from protobuf descriptors: any message, every field of it.

Every field kind is covered (scalars at their extremes, floats with NaN and Infinity, enums with
numbers the proto does not define, long and unusual unicode strings, nested messages, oneofs,
repeated fields, maps), so a new field in the proto is fuzzed without touching this file.
Well-known types (Struct, Value, Duration, Money) are just messages here too: a Struct gets
NaN numbers and unknown NullValue numbers the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)

# Strings that have broken parsers and validators elsewhere: control characters, NUL, RTL
# overrides, combining marks, astral planes, a BOM, and a long one (100 KB, under the 4 MiB
# receive limit even repeated a few times).
_WEIRD_STRINGS = st.sampled_from(
    [
        "",
        "\x00",
        "\u202e\u0000\ufeff",
        "e\u0301\u0301\u0301",
        "\U0001f600" * 64,
        "%s%n{}${x}",
        "\r\n\t",
        "a" * 100_000,
        "\u00e9" * 20_000,
    ]
)
STRINGS = st.one_of(st.text(st.characters(codec="utf-8"), max_size=40), _WEIRD_STRINGS)


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    extremes = st.sampled_from(sorted({lo, hi, 0, -1 if lo < 0 else 1, 1}))
    return st.one_of(extremes, st.integers(lo, hi))


_DOUBLES = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e308, -1e308, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_DOUBLE: _DOUBLES,
    FieldDescriptor.TYPE_FLOAT: _FLOATS,
    FieldDescriptor.TYPE_INT32: _ints(*_I32),
    FieldDescriptor.TYPE_SINT32: _ints(*_I32),
    FieldDescriptor.TYPE_SFIXED32: _ints(*_I32),
    FieldDescriptor.TYPE_INT64: _ints(*_I64),
    FieldDescriptor.TYPE_SINT64: _ints(*_I64),
    FieldDescriptor.TYPE_SFIXED64: _ints(*_I64),
    FieldDescriptor.TYPE_UINT32: _ints(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: _ints(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: _ints(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: _ints(0, 2**64 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: STRINGS,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
}


def _enum_numbers(field: FieldDescriptor) -> st.SearchStrategy[int]:
    """Defined numbers most of the time, else any int32 (proto3 enums are open: 541 decodes)."""
    defined = st.sampled_from([v.number for v in field.enum_type.values])
    return st.one_of(defined, defined, _ints(*_I32))


def messages(descriptor: Descriptor, max_depth: int = 5, max_repeated: int = 3) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type: each field set or not, sub-messages to `max_depth`."""
    return _message(descriptor, max_depth, max_repeated)


@st.composite
def _message(draw: Callable[..., Any], descriptor: Descriptor, depth: int, max_repeated: int) -> Message:
    message = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if field.message_type is not None and depth <= 0:
            continue
        if draw(st.booleans()):
            _set(draw, message, field, depth, max_repeated)
    return message


def _value(field: FieldDescriptor, depth: int, max_repeated: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(field.message_type, depth - 1, max_repeated)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_numbers(field)
    return _SCALARS[field.type]


def _set(
    draw: Callable[..., Any], message: Message, field: FieldDescriptor, depth: int, max_repeated: int
) -> None:
    target = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field, value_field = (
            field.message_type.fields_by_name["key"],
            field.message_type.fields_by_name["value"],
        )
        entries = draw(
            st.dictionaries(
                _value(key_field, depth, max_repeated),
                _value(value_field, depth, max_repeated),
                max_size=max_repeated,
            )
        )
        for key, value in entries.items():
            if value_field.message_type is not None:
                target[key].CopyFrom(value)
            else:
                target[key] = value
        return
    if field.is_repeated:
        values = draw(st.lists(_value(field, depth, max_repeated), max_size=max_repeated))
        if field.message_type is not None:
            for value in values:
                target.add().CopyFrom(value)
        else:
            target.extend(values)
        return
    value = draw(_value(field, depth, max_repeated))
    if field.message_type is not None:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)
