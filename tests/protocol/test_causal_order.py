"""protocol.causal.causal_order: the one sort both change stores use for an incoming batch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.causal import causal_order

# a <- b <- d, a <- c <- d (a diamond), e depends on x, which nobody has.
DEPS = {b"d": [b"b", b"c"], b"b": [b"a"], b"c": [b"a"], b"a": [], b"e": [b"x"]}


def test_a_batch_in_any_order_comes_out_each_change_after_its_deps() -> None:
    ordered = causal_order(DEPS, known=set())
    assert set(ordered) == {b"a", b"b", b"c", b"d"}  # e waits for x
    assert ordered.index(b"a") < ordered.index(b"b") < ordered.index(b"d")
    assert ordered.index(b"c") < ordered.index(b"d")


def test_known_changes_are_skipped_and_count_as_deps() -> None:
    assert causal_order({b"b": [b"a"], b"a": []}, known={b"a"}) == [b"b"]
    assert causal_order({b"e": [b"x"]}, known={b"x"}) == [b"e"]


@given(st.permutations(sorted(DEPS)))
def test_every_order_of_the_batch_gives_a_causal_order_of_the_same_changes(order: list[bytes]) -> None:
    ordered = causal_order({change: DEPS[change] for change in order}, known=set())
    assert sorted(ordered) == [b"a", b"b", b"c", b"d"]
    for position, change in enumerate(ordered):
        assert all(dep in ordered[:position] for dep in DEPS[change])
