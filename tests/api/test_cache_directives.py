"""The caller's cache directives at the edge: CacheDirectives -> cache.rules.Directives, bad values
refused with the field named, in the same InvalidRequestError as the chat's violations."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from router_contract._gen.router.v1 import router_pb2 as pb
from router_service.api import codec
from router_service.cache.rules import NO_DIRECTIVES, Directives
from router_service.errors import InvalidRequestError

CHAT = pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content="hi")])


def directives(cache: pb.CacheDirectives | None) -> Directives:
    return codec.cached_call_from_proto("", CHAT, cache)[1]


def violations(cache: pb.CacheDirectives, chat: pb.ChatRequest = CHAT, request_id: str = "") -> set[str]:
    with pytest.raises(InvalidRequestError) as caught:
        codec.cached_call_from_proto(request_id, chat, cache)
    return {v.field for v in caught.value.violations}


def test_absent_or_empty_directives_are_none() -> None:
    assert directives(None) is NO_DIRECTIVES
    assert directives(pb.CacheDirectives()) is NO_DIRECTIVES


def test_each_directive_converts() -> None:
    assert directives(pb.CacheDirectives(no_cache=True)) == Directives(no_cache=True)
    assert directives(pb.CacheDirectives(no_store=True)) == Directives(no_store=True)
    age = pb.CacheDirectives(max_age=Duration(seconds=90, nanos=500_000_000))
    assert directives(age) == Directives(max_age_s=90.5)
    # Zero is present (never from the cache), not "unset".
    assert directives(pb.CacheDirectives(max_age=Duration())) == Directives(max_age_s=0.0)


@pytest.mark.parametrize(
    "age",
    [Duration(seconds=-1), Duration(nanos=-1), Duration(seconds=1, nanos=-5), Duration(seconds=10**12)],
)
def test_a_negative_or_malformed_max_age_is_refused_by_name(age: Duration) -> None:
    assert violations(pb.CacheDirectives(max_age=age)) == {"cache.max_age"}


def test_directive_violations_come_with_the_chats_and_the_ids() -> None:
    bad = pb.CacheDirectives(max_age=Duration(seconds=-1))
    found = violations(bad, pb.ChatRequest(), request_id="bad id!")
    assert found == {"cache.max_age", "chat.messages", "request_id"}
