"""The request ledger on a fake clock: idempotency (window, bounds, in-flight join, failures not
stored, reuse refused) and the feedback table (window, bound). No I/O; the joins run on the test's
event loop."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.errors import RequestIdReusedError
from router_service.identity.model import UNRESTRICTED, Identity
from router_service.request_ledger import InFlight, LedgerConfig, RequestLedger, Ticket, fingerprint

FP = fingerprint(b"Complete", b"request body")
OTHER = fingerprint(b"Complete", b"another body")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ledger(**config: float) -> tuple[RequestLedger, Clock]:
    clock = Clock()
    return RequestLedger(LedgerConfig(**config), clock), clock  # type: ignore[arg-type]


def ticket(claim: object) -> Ticket:
    assert isinstance(claim, Ticket), claim
    return claim


def test_first_claim_runs_and_a_retry_gets_the_stored_answer() -> None:
    book, _ = ledger()
    ticket(book.claim("r1", FP)).store((b"answer",))
    assert book.claim("r1", FP) == (b"answer",)
    assert book.claim("r1", FP) == (b"answer",)  # as often as it is retried


def test_same_id_with_another_request_is_refused_in_flight_or_stored() -> None:
    book, _ = ledger()
    running = ticket(book.claim("r1", FP))
    with pytest.raises(RequestIdReusedError):
        book.claim("r1", OTHER)
    running.store((b"answer",))
    with pytest.raises(RequestIdReusedError) as caught:
        book.claim("r1", OTHER)
    assert caught.value.reason == "REQUEST_ID_REUSED" and caught.value.status_code == "INVALID_ARGUMENT"
    assert book.claim("r1", FP) == (b"answer",)  # the refusal changed nothing


def test_fingerprint_tells_rpcs_and_bodies_apart() -> None:
    assert fingerprint(b"Complete", b"x") == fingerprint(b"Complete", b"x")
    assert fingerprint(b"Complete", b"x") != fingerprint(b"Stream", b"x")
    assert fingerprint(b"Complete", b"x") != fingerprint(b"Complete", b"y")


def test_fingerprint_tells_keys_apart_however_long_their_ids() -> None:
    """The servicer puts the caller's key id in `kind`: all of it counts, not its first bytes."""
    team_a, team_b = b"Complete\0k_team_alpha", b"Complete\0k_team_beta"
    assert fingerprint(team_a, b"x") != fingerprint(team_b, b"x")
    assert fingerprint(b"Stream\0k_0123456789ab", b"x") != fingerprint(b"Stream\0k_0123456789ac", b"x")
    # The length prefix: where kind ends and body begins is part of what is hashed.
    assert fingerprint(b"Complete", b"\0x") != fingerprint(b"Complete\0", b"x")


def test_failure_is_not_stored_and_a_retry_runs_again() -> None:
    book, _ = ledger()
    ticket(book.claim("r1", FP)).release()
    retry = ticket(book.claim("r1", FP))
    retry.store((b"second try",))
    assert book.claim("r1", FP) == (b"second try",)


def test_store_after_release_and_release_after_store_are_ignored() -> None:
    book, _ = ledger()
    first = ticket(book.claim("r1", FP))
    first.store((b"answer",))
    first.release()  # the servicer's `finally`
    assert book.stored("r1") == (b"answer",)
    second = ticket(book.claim("r2", FP))
    second.release()
    second.store((b"late",))
    assert book.stored("r2") is None and len(book) == 1


def test_answer_expires_after_the_window_and_the_id_is_free_again() -> None:
    book, clock = ledger(idempotency_window_s=600)
    ticket(book.claim("r1", FP)).store((b"answer",))
    clock.now += 599.9
    assert book.claim("r1", FP) == (b"answer",)
    clock.now += 0.1
    # Past the window the id is a new request, with any body.
    ticket(book.claim("r1", OTHER)).store((b"new",))
    assert book.claim("r1", OTHER) == (b"new",)


def test_window_counts_from_when_the_answer_was_stored() -> None:
    book, clock = ledger(idempotency_window_s=10)
    running = ticket(book.claim("r1", FP))
    clock.now += 60  # a long call
    running.store((b"answer",))
    clock.now += 9
    assert book.claim("r1", FP) == (b"answer",)


def test_entry_bound_evicts_the_least_recently_used() -> None:
    book, _ = ledger(idempotency_max_entries=2)
    ticket(book.claim("a", FP)).store((b"A",))
    ticket(book.claim("b", FP)).store((b"B",))
    assert book.claim("a", FP) == (b"A",)  # a is now the most recently used
    ticket(book.claim("c", FP)).store((b"C",))
    assert (book.stored("a"), book.stored("b"), book.stored("c")) == ((b"A",), None, (b"C",))
    assert len(book) == 2


def test_byte_bound_evicts_until_the_answers_fit_and_skips_one_too_large() -> None:
    per_entry = 200 + 40  # the ledger's overhead estimate for a one-message answer
    book, _ = ledger(idempotency_max_bytes=2 * (per_entry + 100))
    for name in "abc":
        ticket(book.claim(name, FP)).store((b"x" * 100,))
    assert [book.stored(n) is not None for n in "abc"] == [False, True, True]
    assert book.answer_bytes == 2 * (per_entry + 100)
    ticket(book.claim("huge", FP)).store((b"x" * 10_000,))
    assert book.stored("huge") is None and book.answer_bytes == 2 * (per_entry + 100)
    assert ticket(book.claim("huge", FP))  # not kept: a retry runs again


def test_evicted_while_in_flight_stores_nothing_but_still_answers_its_waiters() -> None:
    book, _ = ledger(idempotency_max_entries=1)
    running = ticket(book.claim("a", FP))
    waiting = book.claim("a", FP)
    assert isinstance(waiting, InFlight)
    ticket(book.claim("b", FP))  # evicts a's entry
    running.store((b"A",))
    assert book.stored("a") is None and len(book) == 1


async def test_a_retry_in_flight_waits_for_the_first_answer() -> None:
    book, _ = ledger()
    running = ticket(book.claim("r1", FP))
    retries = [asyncio.create_task(book.acquire("r1", FP)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in retries)
    running.store((b"routing", b"delta", b"end"))
    assert await asyncio.gather(*retries) == [(b"routing", b"delta", b"end")] * 3


async def test_when_the_first_call_fails_one_waiter_runs_it_again_and_the_others_wait_for_it() -> None:
    book, _ = ledger()
    running = ticket(book.claim("r1", FP))
    retries = [asyncio.create_task(book.acquire("r1", FP)) for _ in range(3)]
    await asyncio.sleep(0)
    running.release()
    await asyncio.sleep(0)
    done = [t for t in retries if t.done()]
    assert len(done) == 1  # exactly one got the ticket
    ticket(done[0].result()).store((b"second",))
    assert [await t for t in retries if t is not done[0]] == [(b"second",)] * 2


async def test_a_waiter_that_is_cancelled_leaves_the_first_call_alone() -> None:
    book, _ = ledger()
    running = ticket(book.claim("r1", FP))
    impatient = asyncio.create_task(book.acquire("r1", FP))
    patient = asyncio.create_task(book.acquire("r1", FP))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    running.store((b"answer",))
    assert await patient == (b"answer",)
    assert book.stored("r1") == (b"answer",)


def test_feedback_table_knows_ids_within_its_window() -> None:
    book, clock = ledger(feedback_window_s=100)
    book.remember("served")
    ticket(book.claim("claimed", FP)).release()  # failed requests can get feedback too
    assert book.known("served") and book.known("claimed") and not book.known("never")
    clock.now += 99
    book.remember("served")  # seen again: keeps its first expiry
    clock.now += 1
    assert not book.known("served") and not book.known("claimed")


def test_feedback_table_bound_drops_the_oldest() -> None:
    book, _ = ledger(feedback_max_entries=2)
    for request_id in ("a", "b", "c"):
        book.remember(request_id)
    assert [book.known(i) for i in "abc"] == [False, True, True]


def test_feedback_table_remembers_who_made_each_request_first_caller_owns_it() -> None:
    book, clock = ledger(feedback_window_s=100)
    alice = Identity(key_id="k_alice", team="search", customer="acme")
    bob = Identity(key_id="k_bob", team="ads", customer="acme")
    book.remember("served", alice)
    ticket(book.claim("claimed", FP, bob)).release()
    assert book.owner("served") is alice and book.owner("claimed") is bob
    book.remember("served", bob)  # seen again: keeps its first owner
    running = ticket(book.claim("held", FP, alice))
    with pytest.raises(RequestIdReusedError):  # bob's request has another fingerprint
        book.claim("held", b"bob's request", bob)
    running.release()
    assert book.owner("served") is alice and book.owner("held") is alice
    book.remember("anonymous")
    assert book.owner("anonymous") is UNRESTRICTED and book.owner("never") is None
    clock.now += 100
    assert book.owner("served") is None  # expired with its id


# --- properties -------------------------------------------------------------------------------

_IDS = st.sampled_from([f"id-{i}" for i in range(8)])
_STEPS = st.lists(st.tuples(_IDS, st.floats(min_value=0, max_value=40)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(steps=_STEPS, bound=st.integers(min_value=1, max_value=5))
def test_feedback_table_finds_an_id_iff_remembered_within_the_window_and_not_evicted(
    steps: list[tuple[str, float]], bound: int
) -> None:
    book, clock = ledger(feedback_window_s=60, feedback_max_entries=bound)
    model: list[tuple[str, float]] = []  # (id, expiry), oldest first: a naive reference
    for request_id, advance in steps:
        clock.now += advance
        book.remember(request_id)
        model = [(i, e) for i, e in model if e > clock.now]
        if request_id not in {i for i, _ in model}:
            model = [*model, (request_id, clock.now + 60)][-bound:]
        assert book.feedback_entries <= bound
        for candidate in {i for i, _ in steps}:
            assert book.known(candidate) == (candidate in {i for i, _ in model}), candidate


_OPS = st.lists(
    st.tuples(st.sampled_from(["store", "release"]), _IDS, st.floats(min_value=0, max_value=30)),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=_OPS, bound=st.integers(min_value=1, max_value=10))
def test_answers_table_stays_bounded_and_answers_only_what_was_stored_within_the_window(
    ops: list[tuple[str, str, float]], bound: int
) -> None:
    """Retries of 8 ids, each claim ending in store or release. Always: at most `bound` entries;
    an answer found is that id's, stored less than a window ago; what was just stored is found.
    With room for every id (bound >= 8) nothing is evicted: found iff stored within the window."""
    window = 60.0
    book, clock = ledger(idempotency_window_s=window, idempotency_max_entries=bound)
    stored_at: dict[str, float] = {}  # the reference: when each id's answer was last stored
    for op, request_id, advance in ops:
        clock.now += advance
        claim = book.claim(request_id, FP)
        if isinstance(claim, Ticket):
            if op == "store":
                claim.store((request_id.encode(),))
                stored_at[request_id] = clock.now
                assert book.stored(request_id) == (request_id.encode(),)
            else:
                claim.release()
        else:
            assert claim == (request_id.encode(),)
            assert clock.now - stored_at[request_id] < window
        assert len(book) <= bound
        for i in {i for _, i, _ in ops}:
            found = book.stored(i)
            fresh = i in stored_at and clock.now - stored_at[i] < window
            assert found is None or (found == (i.encode(),) and fresh)
            if bound >= 8:
                assert (found is not None) == fresh, i
