"""A hedge race: the first choice, and the next deployment if the first has not answered in time.

The first good answer wins and the loser is cancelled, unless the loser's deployment has answered
nothing since the loser was sent. Then the loser is left to finish (or hit its own attempt
timeout) in the background: a hung deployment behind a hedging policy must still fail its attempts
and be taken out of rotation, instead of only ever losing races (which say nothing about health)
while keeping its traffic. Its attempt event is published when it ends, with its real outcome and,
when it answered, the cost of that unused answer (`RequestRecorder.detach`). `HedgeRaces.aclose`
cancels the losers still running at shutdown.

The engine owns the attempts (`AttemptCall`: one upstream call with its timeout, outcome recorded);
this module only decides when to start the second one and what becomes of the loser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from router_service.attempt_recorder import Attempt, RequestRecorder
from router_service.catalog import Deployment
from router_service.clock import Clock
from router_service.domain import ChatResult
from router_service.errors import ProviderError
from router_service.governance import Hold
from router_service.limits.governor import Admission
from router_service.resilience.live_state import LiveState
from router_service.targets import Targets

__all__ = ["AttemptCall", "HedgeRaces", "Outcome", "Outcomes"]

log = logging.getLogger(__name__)

Outcome = tuple[ChatResult | None, ProviderError | None]
Outcomes = list[tuple[Deployment, Outcome]]  # racers' outcomes, in the order they ended
AttemptCall = Callable[[Attempt, float], Coroutine[Any, Any, Outcome]]  # (attempt, its timeout) -> outcome


class HedgeRaces:
    """Runs an engine's hedge races and keeps the losers left to finish until they end."""

    def __init__(self, live: LiveState, clock: Clock) -> None:
        self._live = live
        self._clock = clock
        self._detached: set[asyncio.Task[Outcome]] = set()  # hedge losers left to finish

    async def aclose(self) -> None:
        """Cancel the hedge losers still running in the background (at shutdown)."""
        tasks = list(self._detached)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def race(
        self,
        call: AttemptCall,
        run: RequestRecorder,
        targets: Targets,
        first: Deployment,
        delay_s: float,
        hold: Hold,
    ) -> Outcomes:
        """If `first` has not answered after `delay_s`, race the next deployment. The first good
        answer wins; the loser is cancelled or left to finish (the module docstring). Under limits
        the hedge reserves its own worst case first (a refusal means no hedge); that reservation
        is the loser's: settled with its unused answer when it is left to finish, else released."""
        racers: dict[asyncio.Task[Outcome], Attempt] = {}
        reservation: Admission | None = None  # the hedge's

        def start(d: Deployment, hedged: bool) -> None:
            timeout = targets.timeout_for(d)
            attempt = run.start(d, hedged=hedged)
            racers[asyncio.create_task(call(attempt, timeout))] = attempt

        start(first, False)
        outcomes: Outcomes = []
        try:
            with contextlib.suppress(TimeoutError):
                async with self._clock.timeout(delay_s):
                    await asyncio.wait(racers)
            second = None if any(task.done() for task in racers) else targets.peek_hedge()
            if second is not None:
                max_output, policy = run.request.params.max_output_tokens, run.decision_or_raise().policy
                reservation = await hold.hedge(run.ctx, second, max_output, policy)
                if reservation is None or any(task.done() for task in racers):
                    second = None
            if second is not None:
                # From now on the first choice races too: both attempts are marked hedged, the
                # loser as well as the winner (events.proto AttemptEvent.hedged).
                for attempt in racers.values():
                    attempt.hedged = True
                start(second, True)
            outcomes = await _first_answer(racers)
            return outcomes
        finally:
            won = any(result is not None for _, (result, _) in outcomes)
            await self._end(run, racers, won, hold, reservation)

    async def _end(
        self,
        run: RequestRecorder,
        racers: dict[asyncio.Task[Outcome], Attempt],
        won: bool,
        hold: Hold,
        reservation: Admission | None,
    ) -> None:
        """The racers still running once the race is decided (or abandoned): cancelled, or the
        loser left to finish when its deployment answered nothing since it was sent."""
        cancelled = []
        for task, attempt in racers.items():
            if task.done():
                continue
            if won and not self._live.answered_since(attempt.deployment.key, attempt.started):
                self._detach(run, task, attempt, hold, reservation)
                reservation = None  # the loser's end settles it
            else:
                task.cancel()
                cancelled.append(task)
        if reservation is not None:
            hold.release_other(reservation)
        await asyncio.gather(*cancelled, return_exceptions=True)

    def _detach(
        self,
        run: RequestRecorder,
        task: asyncio.Task[Outcome],
        attempt: Attempt,
        hold: Hold,
        reservation: Admission | None,
    ) -> None:
        run.detach(attempt)
        self._detached.add(task)
        task.add_done_callback(self._forget)
        if reservation is not None:
            task.add_done_callback(hold.loser_end(reservation, attempt.deployment))

    def _forget(self, task: asyncio.Task[Outcome]) -> None:
        self._detached.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("hedge loser failed unexpectedly", exc_info=exc)


async def _first_answer(racers: Mapping[asyncio.Task[Outcome], Attempt]) -> Outcomes:
    """The racers' outcomes as they end, until one answers: then that one alone."""
    outcomes: Outcomes = []
    pending = set(racers)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            outcome = task.result()
            outcomes.append((racers[task].deployment, outcome))
            if outcome[0] is not None:
                return [(racers[task].deployment, outcome)]
    return outcomes
