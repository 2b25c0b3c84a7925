"""The push tree's prune rule on its own: when a duplicate prunes its link, and what no order of
arrivals can make it do (leave an origin with no eager path to us, prune a link that keeps
winning). Sans-IO: a PushTree, connection ids and a clock passed in."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.limits import SyncConfig
from protocol.push_tree import PushTree

CONFIG = SyncConfig()
ORIGIN = b"o" * 32
LINKS = (1, 2, 3, 4)


def tree(config: SyncConfig = CONFIG) -> PushTree:
    push = PushTree(config)
    for conn in LINKS:
        push.add_link(conn)
    return push


def arrive(push: PushTree, batch: int, conn: int, now_ms: int = 0) -> bool:
    """Batch number ``batch`` of ORIGIN comes by ``conn``: whether we prune that link."""
    batch_id = batch.to_bytes(8, "big")
    first = push.first_copy(batch_id)
    if first is None:
        push.took(batch_id, conn, ORIGIN)
        return False
    return push.prune_on_duplicate(conn, first, now_ms)


def test_a_link_is_pruned_at_its_third_duplicate_in_a_row_not_its_first() -> None:
    push = tree()
    pruned = []
    for batch in range(CONFIG.prune_duplicates):
        assert not arrive(push, batch, 1)
        pruned.append(arrive(push, batch, 2))
    assert pruned == [False] * (CONFIG.prune_duplicates - 1) + [True]


def test_a_link_that_wins_now_and_then_is_never_pruned() -> None:
    push = tree()
    for batch in range(100):  # links 1 and 2 take turns to be first, as jitter makes them
        first, second = (1, 2) if batch % CONFIG.prune_duplicates else (2, 1)
        assert not arrive(push, batch, first)
        assert not arrive(push, batch, second)


def test_the_network_repeating_a_frame_is_no_duplicate_path() -> None:
    push = tree()
    for batch in range(10):
        assert not arrive(push, batch, 1)
        assert not arrive(push, batch, 1)


def grafted() -> PushTree:
    """Link 2 pruned (1 is faster), then grafted at 0 ms: it answered a want of ours."""
    push = tree()
    for batch in range(CONFIG.prune_duplicates):
        arrive(push, batch, 1)
        assert arrive(push, batch, 2) == (batch == CONFIG.prune_duplicates - 1)
    push.reply_received(2, [ORIGIN], now_ms=0)
    return push


def test_a_grafted_link_takes_more_duplicates_to_prune_within_its_hold_and_fewer_after() -> None:
    push = grafted()
    verdicts = []
    for batch in range(100, 100 + CONFIG.graft_hold_duplicates):
        arrive(push, batch, 1, now_ms=1)
        verdicts.append(arrive(push, batch, 2, now_ms=1))
    assert verdicts == [False] * (CONFIG.graft_hold_duplicates - 1) + [True]  # the path it stood in for works


def test_a_graft_whose_link_is_first_again_restarts_its_count() -> None:
    push = grafted()
    for batch in range(100, 100 + 5 * CONFIG.graft_hold_duplicates):
        first, second = (2, 1) if batch % CONFIG.graft_hold_duplicates == 0 else (1, 2)
        assert not arrive(push, batch, first, now_ms=1)
        assert not arrive(push, batch, second, now_ms=1)  # neither loses graft_hold_duplicates in a row


def test_after_the_hold_a_grafted_link_is_an_ordinary_one() -> None:
    push = grafted()
    later = CONFIG.graft_hold_ms + 1
    verdicts = []
    for batch in range(100, 100 + CONFIG.prune_duplicates):
        arrive(push, batch, 1, now_ms=later)
        verdicts.append(arrive(push, batch, 2, now_ms=later))
    assert verdicts == [False] * (CONFIG.prune_duplicates - 1) + [True]


# An arrival: (batch number, link) in any order, at any time; prunes as the tree decides.
arrivals = st.lists(st.tuples(st.integers(0, 30), st.sampled_from(LINKS), st.integers(0, 40_000)), max_size=300)


@settings(max_examples=300, deadline=None)
@given(arrivals, st.integers(1, 5), st.integers(1, 10), st.lists(st.tuples(st.sampled_from(LINKS), st.integers(0, 299)), max_size=5))
def test_no_order_of_arrivals_leaves_an_origin_without_an_eager_path_or_prunes_a_winner(
    events: list[tuple[int, int, int]], prune_duplicates: int, graft_hold_duplicates: int, grafts: list[tuple[int, int]]
) -> None:
    """Whatever comes when (in-flight copies after a prune, grafts answered at any point), at
    least one link stays unpruned for the origin, and a prune only ever hits a link whose last
    ``prune_duplicates`` copies of the origin's batches were all duplicates."""
    config = replace(CONFIG, prune_duplicates=prune_duplicates, graft_hold_duplicates=graft_hold_duplicates)
    push = tree(config)
    pruned: set[int] = set()
    streak = dict.fromkeys(LINKS, 0)  # duplicates in a row per link, as the rule counts them
    graft_at = {step: conn for conn, step in grafts}
    clock = 0
    for step, (batch, conn, at_ms) in enumerate(events):
        clock = max(clock, at_ms)
        if step in graft_at:
            push.reply_received(graft_at[step], [ORIGIN], clock)
            pruned.discard(graft_at[step])
        first = push.first_copy(batch.to_bytes(8, "big"))
        repeated = first is not None and first.conn == conn
        if first is None:
            streak[conn] = 0
        elif not repeated:
            streak[conn] += 1
        if arrive(push, batch, conn, clock):
            assert streak[conn] >= prune_duplicates
            assert first is not None and first.conn not in pruned  # the copy that won came by a live path
            pruned.add(conn)
            streak[conn] = 0
        assert pruned != set(LINKS)
