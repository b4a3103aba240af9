"""The fake upstream itself: what it records, how it frames, and that its disconnect signal comes
only from the client closing (so the adapter tests that wait for it can fail)."""

from __future__ import annotations

import httpx
import pytest

from tests.providers.upstream import FakeUpstream, Reply, json_reply, sse_reply


async def test_requests_are_recorded_as_sent_and_scripted_replies_come_first(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.reply = json_reply({"standing": True})
    upstream.script(Reply(201, b"once"))

    first = await client.post(upstream.url + "/a/b?x=1", content=b'{"n":1}', headers={"X-Tag": "t"})
    second = await client.post(upstream.url + "/c", json={"n": 2})

    assert (first.status_code, first.content) == (201, b"once")
    assert (second.status_code, second.json()) == (200, {"standing": True})
    assert [(r.method, r.target) for r in upstream.requests] == [("POST", "/a/b?x=1"), ("POST", "/c")]
    assert upstream.requests[0].headers["x-tag"] == "t"
    assert upstream.requests[0].body == b'{"n":1}' and upstream.sent == {"n": 2}


async def test_chunks_arrive_whole_and_in_order(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.reply = sse_reply([b"data: a\n\n", b"", b"data: b\n\n"])

    response = await client.get(upstream.url + "/")

    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == b"data: a\n\ndata: b\n\n"
    assert upstream.body_bytes_sent == 18


async def test_a_hanging_answer_held_open_is_no_disconnect(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.reply = sse_reply([b"data: a\n\n"], end="hang")
    async with client.stream("GET", upstream.url + "/") as response:
        assert await anext(response.aiter_raw()) == b"data: a\n\n"
        with pytest.raises(TimeoutError):
            await upstream.wait_disconnect(timeout_s=0.2)
        assert upstream.disconnects == 0
    await upstream.wait_disconnect()  # closing the response mid-body closes the connection
    assert upstream.disconnects == 1
