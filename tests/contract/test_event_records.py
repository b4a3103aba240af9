"""The contract's event parser reads events of a newer router: fields are only ever added."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from router_contract._gen.router.v1 import events_pb2
from router_contract.event_records import CONTENT_TYPES, decode

HEADERS = [("content-type", CONTENT_TYPES["json"].encode())]


def _attempt_event_json() -> dict[str, object]:
    event = events_pb2.Event(event_id="e1", request_id="r1")
    event.attempt.provider, event.attempt.model = "openai", "gpt-4o"
    return json_format.MessageToDict(event)


def test_a_field_this_contract_does_not_know_is_skipped_not_refused() -> None:
    data = _attempt_event_json()
    data["attempt"]["someFieldFromLater"] = True  # type: ignore[index]
    data["fieldFromLater"] = {"nested": 1}
    event = decode(json.dumps(data).encode(), HEADERS)
    assert (event.request_id, event.attempt.provider, event.attempt.model) == ("r1", "openai", "gpt-4o")


def test_a_known_field_of_the_wrong_type_is_still_refused() -> None:
    data = _attempt_event_json()
    data["attempt"]["hedged"] = "not a bool"  # type: ignore[index]
    with pytest.raises(json_format.ParseError):
        decode(json.dumps(data).encode(), HEADERS)
