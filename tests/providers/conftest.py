"""Fixtures for the adapter tests: one running fake upstream per test and the production HTTP client
stack talking to it. Test modules that need other client settings define their own `client`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.providers.upstream import FakeUpstream, http_client


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as made:
        yield made
