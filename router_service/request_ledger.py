"""What this router process remembers about caller request ids, so two promises hold.

- **Idempotency** (the `answers` table): a `Complete` or `Stream` retried with the same caller
  request id and the same request gets the first call's answer back (the same serialized
  response messages) instead of a second upstream call, second bill and second set of events; a
  retry that arrives while the first call still runs waits for it. Only successes are stored:
  after a failure (or a cancelled or interrupted call) a retry runs again. The same id with a
  different request is refused (`RequestIdReusedError`). An answer is kept for
  `idempotency_window_s` after it was stored, within `idempotency_max_entries` and
  `idempotency_max_bytes`, least recently used evicted first.
- **Feedback** (the `seen` table): every request id this router served, successful or failed, for
  `feedback_window_s` from when it first arrived, and who made it, so that `Feedback` can refuse
  ids it never saw and scorers who may not score them (identity/access.py `may_score`). Kept: the
  id, its expiry and a reference to the owner's Identity (the gate's object for the key, shared
  by all its requests: no copy per request); past `feedback_max_entries` the oldest go first.
  The first caller of an id owns it: a later call with the same id from another key is refused
  (REQUEST_ID_REUSED) and changes nothing.

Keyed by the caller's request id; the idempotency fingerprint includes the caller's key id
(api/servicer.py), so two tenants' equal ids and requests never share an answer.

Per process, in memory: another replica or `--workers` process has tables of its own. Time comes
from the injected monotonic `clock`, so the unit tests drive expiry exactly. Waiting for an
in-flight call is the only asyncio here; a waiter that is cancelled leaves the first call alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from router_service.errors import RequestIdReusedError
from router_service.identity.model import UNRESTRICTED, Identity

__all__ = [
    "Answer",
    "InFlight",
    "LedgerConfig",
    "RequestLedger",
    "Ticket",
    "fingerprint",
]

# A stored answer: the serialized response messages, in order (one for Complete; routing,
# deltas and end for Stream).
Answer = tuple[bytes, ...]

# What an answer costs beyond its bytes: the bytes object of each message and the entry itself.
# An estimate (CPython: 33 bytes per bytes object, ~100 per entry), so the byte bound stays close
# to the memory it bounds.
_PER_MESSAGE_BYTES = 40
_PER_ENTRY_BYTES = 200


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    idempotency_window_s: float = 600.0
    idempotency_max_entries: int = 20_000
    idempotency_max_bytes: int = 64 << 20
    feedback_window_s: float = 86_400.0
    feedback_max_entries: int = 200_000


def fingerprint(kind: bytes, body: bytes) -> bytes:
    """What identifies a request's content: the RPC (`kind`, with the caller's key id) and its
    serialized request. The same id with another fingerprint is another request, not a retry.
    `kind` is hashed whole, length first: blake2b's `person` parameter (16 bytes) cut it, so two
    keys whose ids began alike ("Complete\0k_team_a..." and "...k_team_b...") shared answers."""
    digest = hashlib.blake2b(len(kind).to_bytes(4, "big"), digest_size=16)
    digest.update(kind)
    digest.update(body)
    return digest.digest()


class _Entry:
    """One caller request id in the answers table: in flight until `answer` is set."""

    __slots__ = ("answer", "expires", "fingerprint", "size", "waiters")

    def __init__(self, fingerprint: bytes) -> None:
        self.fingerprint = fingerprint
        self.answer: Answer | None = None
        self.expires = 0.0  # set with the answer
        self.size = 0
        self.waiters: list[asyncio.Future[Answer | None]] = []

    def resolve(self, answer: Answer | None) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(answer)


class Ticket:
    """The right (and duty) to run a request: end it with `store` (it succeeded) or `release`
    (it did not); whatever comes first wins, the other is ignored. Callers waiting for it get the
    answer, or None to claim again."""

    __slots__ = ("_done", "_entry", "_ledger", "request_id")

    def __init__(self, ledger: RequestLedger, request_id: str, entry: _Entry) -> None:
        self._ledger = ledger
        self.request_id = request_id
        self._entry = entry
        self._done = False

    def store(self, answer: Answer) -> None:
        if self._done:
            return
        self._done = True
        self._ledger._store(self.request_id, self._entry, answer)
        self._entry.resolve(answer)

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        self._ledger._drop(self.request_id, self._entry)
        self._entry.resolve(None)


class InFlight:
    """The same request is running in another call: `wait()` for its answer (None: it failed)."""

    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    async def wait(self) -> Answer | None:
        waiter: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._entry.waiters.append(waiter)
        try:
            return await waiter
        finally:
            # Cancelled (our caller left): only our own future goes; the first call runs on.
            if waiter in self._entry.waiters:
                self._entry.waiters.remove(waiter)


class RequestLedger:
    def __init__(
        self, config: LedgerConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or LedgerConfig()
        self._clock = clock
        self._answers: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._answer_bytes = 0
        # id -> (expiry, owner), oldest first
        self._seen: OrderedDict[str, tuple[float, Identity]] = OrderedDict()

    # --- feedback -----------------------------------------------------------------------------

    def remember(self, request_id: str, owner: Identity = UNRESTRICTED) -> None:
        """`request_id` was served here for `owner` (whatever its outcome): feedback may name it."""
        now = self._clock()
        seen = self._seen
        self._expire_seen(now)
        if request_id in seen:  # not expired (just pruned): keeps its first expiry and owner
            return
        seen[request_id] = (now + self.config.feedback_window_s, owner)
        if len(seen) > self.config.feedback_max_entries:
            seen.popitem(last=False)

    def known(self, request_id: str) -> bool:
        """Whether this router served `request_id` within the feedback window (and still holds it)."""
        return self.owner(request_id) is not None

    def owner(self, request_id: str) -> Identity | None:
        """Who made `request_id` (UNRESTRICTED: made with auth off); None when it is not known."""
        entry = self._seen.get(request_id)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _expire_seen(self, now: float) -> None:
        # Expiries grow with insertion order (one window, a monotonic clock): the expired are first.
        seen = self._seen
        while seen:
            request_id, (expires, _) = next(iter(seen.items()))
            if expires > now:
                return
            del seen[request_id]

    # --- idempotency --------------------------------------------------------------------------

    def claim(
        self, request_id: str, fingerprint: bytes, owner: Identity = UNRESTRICTED
    ) -> Ticket | Answer | InFlight:
        """A `Ticket` to run the request, its stored `Answer`, or the `InFlight` call to wait for.
        Raises RequestIdReusedError when the id is known with a different request. Remembers the
        id (and `owner`, when it is new) for feedback."""
        self.remember(request_id, owner)
        now = self._clock()
        entry = self._answers.get(request_id)
        if entry is not None and entry.answer is not None and entry.expires <= now:
            self._remove(request_id, entry)
            entry = None
        if entry is None:
            entry = self._answers[request_id] = _Entry(fingerprint)
            self._evict(now)
            return Ticket(self, request_id, entry)
        if entry.fingerprint != fingerprint:
            raise RequestIdReusedError(request_id)
        if entry.answer is None:
            return InFlight(entry)
        self._answers.move_to_end(request_id)
        return entry.answer

    async def acquire(
        self, request_id: str, fingerprint: bytes, owner: Identity = UNRESTRICTED
    ) -> Ticket | Answer:
        """`claim`, waiting out an in-flight call: its answer, or a ticket when it failed (a retry
        after a failure runs again) and this call is the first to claim again."""
        while True:
            claim = self.claim(request_id, fingerprint, owner)
            if not isinstance(claim, InFlight):
                return claim
            answer = await claim.wait()
            if answer is not None:
                return answer

    def stored(self, request_id: str) -> Answer | None:
        """The stored, unexpired answer for `request_id` (tests and diagnostics)."""
        entry = self._answers.get(request_id)
        if entry is None or entry.answer is None or entry.expires <= self._clock():
            return None
        return entry.answer

    def __len__(self) -> int:
        """Entries in the answers table, in flight or answered."""
        return len(self._answers)

    @property
    def feedback_entries(self) -> int:
        """Ids held for feedback, expired ones not yet pruned included: what the memory bound
        (`feedback_max_entries`) applies to."""
        return len(self._seen)

    @property
    def answer_bytes(self) -> int:
        return self._answer_bytes

    def _store(self, request_id: str, entry: _Entry, answer: Answer) -> None:
        if self._answers.get(request_id) is not entry:  # evicted while running: nothing to keep
            return
        size = sum(map(len, answer)) + _PER_MESSAGE_BYTES * len(answer) + _PER_ENTRY_BYTES
        if size > self.config.idempotency_max_bytes:
            self._remove(request_id, entry)
            return
        now = self._clock()
        entry.answer, entry.size, entry.expires = answer, size, now + self.config.idempotency_window_s
        self._answer_bytes += size
        self._answers.move_to_end(request_id)
        self._evict(now)

    def _drop(self, request_id: str, entry: _Entry) -> None:
        if self._answers.get(request_id) is entry:
            self._remove(request_id, entry)

    def _remove(self, request_id: str, entry: _Entry) -> None:
        del self._answers[request_id]
        self._answer_bytes -= entry.size

    def _evict(self, now: float) -> None:
        """Expired answers at the front, then least recently used ones past the bounds. An entry
        in flight may go too: its call still finishes and answers its waiters, but stores nothing."""
        answers, config = self._answers, self.config
        while answers:
            request_id, entry = next(iter(answers.items()))
            over = len(answers) > config.idempotency_max_entries or (
                self._answer_bytes > config.idempotency_max_bytes
            )
            expired = entry.answer is not None and entry.expires <= now
            if not (over or expired):
                return
            self._remove(request_id, entry)
