from __future__ import annotations

from consumers.dedupe import DedupeConfig, DedupeIndex


def test_the_second_copy_of_an_id_is_a_duplicate() -> None:
    index = DedupeIndex()
    assert index.add("a", 0, 1000)
    assert index.add("b", 1, 1000)
    assert not index.add("a", 2, 1001)
    assert index.replay_from() == 0


def test_ids_older_than_the_horizon_are_forgotten() -> None:
    index = DedupeIndex(DedupeConfig(horizon_s=10, max_ids=100))
    index.add("old", 0, 0)
    index.add("mid", 1, 5_000)
    index.add("new", 2, 10_001)  # "old" is now 10.001 s older than the newest
    assert len(index) == 2
    assert index.replay_from() == 1
    assert index.add("old", 3, 10_002)  # no longer recognised: outside the horizon


def test_the_count_cap_evicts_the_oldest_offsets() -> None:
    index = DedupeIndex(DedupeConfig(horizon_s=1e9, max_ids=3))
    for offset in range(5):
        index.add(f"id-{offset}", offset, 0)
    assert len(index) == 3
    assert index.replay_from() == 2


def test_an_empty_index_needs_no_replay() -> None:
    assert DedupeIndex().replay_from() is None
