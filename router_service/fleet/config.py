"""Settings of the router's fleet view (the `fleet:` section of the config file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FleetConfig:
    health_topic: str = "llmrouter.health.v1"
    quality_topic: str = "llmrouter.quality.v1"
    costs_topic: str = "llmrouter.costs.v1"
    # A topic whose newest record (consumers write a checkpoint every snapshot interval, even
    # when idle) is older than this is stale, and the router ignores it.
    stale_after_s: float = 20.0
    # How often the subscriber rebuilds the view from the records it has read.
    refresh_interval_s: float = 1.0
    # Health: fleet data counts once a deployment has this many judged attempts (successes plus
    # provider errors) in the window; fewer says too little to act on.
    min_attempts: int = 10
    # Health: only the newest part of the consumers' window (300 s by default) counts, so a
    # recovered deployment's old errors stop demoting it sooner.
    health_window_s: float = 120.0
    # Health score (router_contract/health_score.py) below which a deployment is demoted: it leads the
    # fallback chain for only part of the requests it would win and goes behind the healthy
    # candidates for the rest. The share falls linearly from 1 at `demote_below` to `min_share`
    # at `floor_score` and below.
    demote_below: float = 0.9
    floor_score: float = 0.5
    min_share: float = 0.02
    # Quality: the observed mean replaces the configured prior by the consumer's confidence
    # (count / (count + 10)), and only from this many feedback scores on.
    min_feedback: int = 5
    # At start, the router serves only once it has read the snapshot topics to their end offsets
    # (a cold instance then routes its first request on what the fleet knows), or after this many
    # seconds without that (it logs a warning; llmrouter_fleet_view_ready stays 0). 0: no waiting.
    startup_wait_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.floor_score < self.demote_below <= 1:
            raise ValueError("fleet: need 0 <= floor_score < demote_below <= 1")
        if not 0 < self.min_share <= 1:
            raise ValueError("fleet: min_share must be in (0, 1]")
        if min(self.stale_after_s, self.refresh_interval_s, self.health_window_s) <= 0:
            raise ValueError("fleet: stale_after_s, refresh_interval_s and health_window_s must be > 0")
        if self.startup_wait_s < 0:
            raise ValueError("fleet: startup_wait_s must be >= 0")

    def traffic_share(self, score: float) -> float:
        """The share of the requests a deployment with this health score still leads."""
        if score >= self.demote_below:
            return 1.0
        if score <= self.floor_score:
            return self.min_share
        share = (score - self.floor_score) / (self.demote_below - self.floor_score)
        return max(self.min_share, share)
