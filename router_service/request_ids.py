"""Request ids: the one format both doors (gRPC and the OpenAI HTTP door) give a call.

Its own module, free of gRPC and aiohttp, so that either door (and anything else that names
requests) can import it without pulling in the other's server stack.
"""

from __future__ import annotations

import os

from router_service.request_rules import REQUEST_ID_RE


def new_request_id() -> str:
    """A random UUID (version 4) as 32 hex digits, as `uuid.uuid4().hex` gives it, built from
    os.urandom directly: uuid.UUID's constructor was 5 us of every request without an id."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def request_id_for(caller_id: str) -> str:
    """The id a call goes by: the caller's when it is valid, else a new one (an invalid id is
    reported as a violation of the rule, never echoed back)."""
    return caller_id if REQUEST_ID_RE.match(caller_id) else new_request_id()
