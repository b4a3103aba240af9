"""When the router itself, not the upstream, made an attempt time out.

An attempt's timeout is a timer on the router's event loop. When the loop is blocked (a long
garbage-collection pause, a synchronous call, a starved CPU), every timer due during the block fires
late and together: each attempt whose deadline fell inside it times out, although its answer may
already be waiting in the socket buffer. Counted against the deployments, one such pause opens the
breaker of every healthy deployment at once and the router refuses all traffic. How late the timer
fired tells the two apart: asyncio runs a due timer within a loop turn, so being late by a real
share of the timeout means the loop, not the upstream, was not running at the deadline.

Such an attempt is still a timeout for the caller (it did not get an answer in time, and the
request falls back as for any timeout), but it is no evidence about the deployment.
"""

from __future__ import annotations

# Late by more than this, and by more than this share of the attempt's own timeout. Ordinary loop
# turns on a loaded router take a few milliseconds; the share keeps a long attempt timeout from
# being excused by a lateness that is small next to it.
STALL_MIN_S = 0.05
STALL_SHARE = 0.25


def stalled_at_deadline(timeout_s: float, overdue_s: float) -> bool:
    """Did a timeout of `timeout_s` fire `overdue_s` after its deadline because the loop stalled?"""
    return overdue_s > max(STALL_MIN_S, STALL_SHARE * timeout_s)
