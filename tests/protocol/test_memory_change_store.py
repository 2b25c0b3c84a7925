"""MemoryChangeStore's own part: local authoring (``commit``) and its graph walk for
``changes_since``. The ChangeStore contract it shares with the Repo and the node's adapter is
tests/protocol/test_change_store_contract.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from harness import edits, identity_of, make_space, text_doc_id
from protocol.errors import LocalProtocolError
from protocol.memory import MemoryChangeStore

SPACE = make_space()
DOC = text_doc_id("notes")
alice, bob = identity_of("alice"), identity_of("bob")


def decoded(raw: list[bytes]) -> list[native.DecodedChange]:
    return [native.decode_change(change) for change in raw]


def test_a_local_commit_stores_the_batch_and_one_tip_over_its_last_change():
    store = MemoryChangeStore()
    commit = store.commit(alice, SPACE, DOC, edits(["a", "b", "c"]), now_ms=5_000)
    hashes = [c.hash for c in decoded(list(commit.changes))]
    assert store.heads(SPACE, DOC) == [hashes[-1]]
    assert commit.tip.change_hash == hashes[-1] and store.tips(SPACE, DOC) == [commit.tip]
    assert all(store.has_change(SPACE, DOC, h) for h in hashes)
    assert store.doc_ids(SPACE) == [DOC]


def test_a_commit_of_edits_that_do_nothing_is_refused():
    store = MemoryChangeStore()
    with pytest.raises(LocalProtocolError):
        store.commit(alice, SPACE, DOC, [lambda document: None], now_ms=0)
    assert store.doc_ids(SPACE) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans()), min_size=1, max_size=30), st.randoms())
def test_changes_since_walks_the_graph_as_automerge_does(script, rng):
    """Three authors edit and merge at random; from any heads, the changes a peer lacks are
    Automerge's own answer, in an order where every change comes after its deps."""
    authors = [alice, bob, identity_of("carol")]
    stores = [MemoryChangeStore() for _ in authors]
    for step, (who, other, merge) in enumerate(script):
        if merge:
            raw = stores[other].changes_since(SPACE, DOC, [])
            stores[who].apply(SPACE, DOC, decoded(raw), stores[other].tips(SPACE, DOC))
        else:
            stores[who].commit(authors[who], SPACE, DOC, edits([f"{who}.{step}"]), now_ms=0)
    for store in stores:
        hashes = [change.hash for change in decoded(store.changes_since(SPACE, DOC, []))]
        if not hashes:
            continue
        base = rng.sample(hashes, min(len(hashes), rng.randint(1, 3)))
        since = store.changes_since(SPACE, DOC, base)
        assert sorted(since) == sorted(store.document(SPACE, DOC).get_changes(base))
        position = {change.hash: i for i, change in enumerate(decoded(since))}
        assert all(position[dep] < position[change.hash] for change in decoded(since) for dep in change.deps if dep in position)
