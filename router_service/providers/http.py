"""The shared upstream HTTP client: one pooled `httpx.AsyncClient` per process.

The transport is a measured choice (see bench/overhead.py and README "Performance"): httpx's own
transport was the bottleneck under concurrency on this machine, so the default keeps httpx's API
over the aiohttp transport from `httpx-aiohttp`. `transport: httpx` remains available, and is the
one that speaks HTTP/2.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from router_service.settings import HttpConfig


def make_http_client(config: HttpConfig) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=config.connect_timeout_s,
        read=config.read_timeout_s,
        write=config.read_timeout_s,
        pool=config.connect_timeout_s,
    )
    if config.transport == "httpx":
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_keepalive_connections,
        )
        return httpx.AsyncClient(timeout=timeout, limits=limits, http2=config.http2)
    transport = AiohttpTransport(client=lambda: _aiohttp_session(config))
    return httpx.AsyncClient(timeout=timeout, transport=transport)


def _aiohttp_session(config: HttpConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=config.max_connections, ttl_dns_cache=300)
    # httpx applies its own timeouts through the transport; aiohttp's default 5-minute total
    # timeout would otherwise cut long streams.
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
