"""Hands consumer-group rebalances to the runner: flush and commit on revoke, restore on assign."""

from __future__ import annotations

from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener


class RebalanceTarget(Protocol):
    async def partitions_revoked(self, partitions: set[Any]) -> None: ...

    async def partitions_assigned(self, partitions: set[Any]) -> None: ...


class RebalanceHandler(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka awaits these between fetches: nothing of a revoked partition is lost or fetched twice."""

    def __init__(self, target: RebalanceTarget) -> None:
        self._target = target

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._target.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        await self._target.partitions_assigned(assigned)
