"""The strategy contract and what every strategy may read.

A strategy orders a group of eligible candidates (indices into `RankContext.table`).
Scoring strategies (cost, latency, quality) sort by a score and treat candidates within a tolerance
of the best as tied, handing each tied band to the next strategy in the composition (`tie_break`);
that is how "cheapest, then spread the load" or "best quality, then cheapest" compose. Final
strategies (round_robin, weighted, priority) order a whole group themselves and end a composition.

Scores are "higher is better" and are what `Route` shows per candidate. Strategies are pure: the
round-robin position, the random sample and the time all come in through the context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from router_service.domain import TaskType
from router_service.routing.candidate import CandidateTable, task_index
from router_service.routing.learning.posterior import Posterior, PosteriorConfig, prior_posterior
from router_service.routing.signals import LiveSignals, QualityView

TieBreak = Callable[[list[int]], Iterable[int]]


@dataclass(frozen=True, slots=True)
class StrategyParams:
    # cost: candidates within this fraction of the cheapest count as equally cheap.
    cost_tolerance: float = 0.10
    # latency: candidates within this fraction of the fastest P95 count as equally fast.
    latency_tolerance: float = 0.10
    # quality: candidates within this absolute score of the best count as equally good.
    quality_tolerance: float = 0.02
    # weighted: deployment key ("provider/model") or model name -> weight; unlisted weigh 0.
    weights: Mapping[str, float] = field(default_factory=dict)
    # latency: P95 assumed for a deployment with too little data; None: the median of those with data.
    cold_start_p95_s: float | None = None

    def __post_init__(self) -> None:
        tolerances = (self.cost_tolerance, self.latency_tolerance, self.quality_tolerance)
        if min(tolerances) < 0:
            raise ValueError("tolerances must be >= 0")
        negative = [k for k, w in self.weights.items() if w < 0]
        if negative:
            raise ValueError(f"negative weights for {', '.join(negative)}")


class RankContext:
    """Everything a strategy may read for one request. Built by the planner, once per request.

    Per-candidate values are lists indexed like `table`; qualities and P95s are computed on first
    use, once per request, since most policies need neither.
    """

    __slots__ = (
        "_known",
        "_p95s",
        "_posteriors",
        "_qualities",
        "cost_nanos",
        "explored",
        "floor",
        "live",
        "now",
        "quality_view",
        "random_value",
        "streaming",
        "table",
        "task",
        "ticket",
    )

    def __init__(
        self,
        table: CandidateTable,
        cost_nanos: Sequence[int],
        task: TaskType,
        now: float,
        *,
        live: LiveSignals | None = None,
        quality_view: QualityView | None = None,
        streaming: bool = False,
        random_value: float = 0.0,
        ticket: int = 0,
        floor: float | None = None,
    ) -> None:
        self.table = table
        self.cost_nanos = cost_nanos
        self.task = task
        self.now = now
        self.live = live
        self.quality_view = quality_view
        self.streaming = streaming
        self.random_value = random_value
        self.ticket = ticket
        # The request's quality floor (the stricter of policy and hints), for strategies that
        # exploit only what clears it and probe the rest (`learned`).
        self.floor = floor
        # The candidate a strategy picked as an exploration probe, -1 if none: for `Route`.
        self.explored = -1
        self._posteriors: Sequence[Posterior] | None = None
        self._qualities: Sequence[float] | None = None
        self._known: Sequence[bool] | None = None
        self._p95s: list[float | None] | None = None

    @property
    def qualities(self) -> Sequence[float]:
        """Quality per candidate for this task: the prior, refined by the QualityView if there is one."""
        if self._qualities is None:
            priors = self.table.quality_by_task[task_index(self.task)]
            view = self.quality_view
            if view is None:
                self._qualities = priors  # the table's own tuple: read-only, no copy needed
            else:
                task = self.task
                self._qualities = [
                    view.quality(k, task, p) for k, p in zip(self.table.keys, priors, strict=True)
                ]
        return self._qualities

    @property
    def posteriors(self) -> Sequence[Posterior]:
        """Per candidate: the posterior of its quality for this task, from a view that learns
        (`PosteriorQualityView`), else the prior alone with the default uncertainty."""
        if self._posteriors is None:
            priors = self.table.quality_by_task[task_index(self.task)]
            view = self.quality_view
            bulk = getattr(view, "posteriors", None)  # PosteriorQualityView's bulk read
            if bulk is not None:
                self._posteriors = bulk(self.table.keys, self.task, priors, self.now)
            elif (posterior := getattr(view, "posterior", None)) is not None:
                task, now = self.task, self.now
                self._posteriors = [
                    posterior(k, task, p, now) for k, p in zip(self.table.keys, priors, strict=True)
                ]
            else:
                self._posteriors = [_prior_posterior(p) for p in priors]
        return self._posteriors

    @property
    def posteriors_read(self) -> bool:
        """Whether `posteriors` were computed for this request (`Route` then shows them)."""
        return self._posteriors is not None

    @property
    def quality_known(self) -> Sequence[bool]:
        """Per candidate: whether its quality estimate is known (a configured prior, or feedback
        for this task when the QualityView says so), i.e. whether quality floors apply to it."""
        if self._known is None:
            table = self.table
            observed = getattr(self.quality_view, "observed", None)  # ObservedQualityView
            if not table.unknown_quality or observed is None:
                self._known = table.quality_known  # the table's own tuple: the common case
            else:
                known = list(table.quality_known)
                keys, task = table.keys, self.task
                for i in table.unknown_quality:
                    known[i] = observed(keys[i], task)
                self._known = known
        return self._known

    @property
    def p95s(self) -> list[float | None]:
        """Rolling P95 per candidate (time to first token when streaming); None: no data."""
        if self._p95s is None:
            self._p95s = self._read_p95s()
        return self._p95s

    def _read_p95s(self) -> list[float | None]:
        live, now, keys = self.live, self.now, self.table.keys
        if live is None:
            return [None] * len(keys)
        totals = live.latency_p95s(keys, now)
        if not self.streaming:
            return totals
        ttfts = live.ttft_p95s(keys, now)
        return [t if t is not None else total for t, total in zip(ttfts, totals, strict=True)]


_DEFAULT_POSTERIOR = PosteriorConfig()
_PRIOR_POSTERIORS: dict[float, Posterior] = {}


def _prior_posterior(prior: float) -> Posterior:
    found = _PRIOR_POSTERIORS.get(prior)
    if found is None:
        if len(_PRIOR_POSTERIORS) > 1024:  # priors come from config: few distinct values
            _PRIOR_POSTERIORS.clear()
        found = _PRIOR_POSTERIORS[prior] = prior_posterior(prior, _DEFAULT_POSTERIOR)
    return found


class Strategy(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def final(self) -> bool:
        """Orders a whole group itself: nothing after it in a composition would ever run."""
        ...

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        """One score per member of `group`, higher is better."""
        ...

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> Iterable[int]:
        """`group` best first, possibly lazily, given its `scores` (from `scores`, or the same
        up to a common factor); ties (within tolerance) are ordered by `tie_break`."""
        ...


StrategyFactory = Callable[[StrategyParams], Strategy]


def order_in_bands(
    group: Sequence[int],
    scores: Sequence[float],
    band_floor: Callable[[float], float],
    tie_break: TieBreak,
) -> Iterator[int]:
    """Best score first; the members scoring at least `band_floor(best)` form a band of ties,
    ordered by `tie_break`; then the next band starts at the best of the rest.

    Lazy: the planner stops pulling once its chain is full, so only the leading bands are ever
    tie-broken (most of the work with 50 candidates and a handful of attempts).
    """
    count = len(group)
    if len(scores) != count:
        raise ValueError(f"{len(scores)} scores for a group of {count}")
    # Positions in `group`, best score first. Sorting plain ints by their score builds no
    # (score, member) pair per member; a reverse sort is still stable, so ties keep group order.
    ranked = sorted(range(count), key=scores.__getitem__, reverse=True)
    start = 0
    while start < count:
        floor = band_floor(scores[ranked[start]])
        end = start + 1
        while end < count and scores[ranked[end]] >= floor:
            end += 1
        if end - start == 1:
            yield group[ranked[start]]
        else:
            yield from tie_break([group[p] for p in ranked[start:end]])
        start = end


def relative_band(tolerance: float) -> Callable[[float], float]:
    """For ratio scores in (0, 1] (best value / this value): within `tolerance` of the best
    value, e.g. at most 10% more expensive or slower."""
    factor = 1.0 / (1.0 + tolerance)
    return lambda best: best * factor


def absolute_band(tolerance: float) -> Callable[[float], float]:
    return lambda best: best - tolerance
