"""MemoryChangeStore: the ChangeStore semantics the protocol relies on, without a database."""

from __future__ import annotations

import native
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import LocalProtocolError
from protocol.memory import MemoryChangeStore

from harness import edits, identity_of, make_space, text_doc_id

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


def test_apply_takes_any_order_returns_causal_order_and_skips_what_lacks_deps():
    source = MemoryChangeStore()
    commit = source.commit(alice, SPACE, DOC, edits(["a", "b", "c"]), now_ms=0)
    a, b, c = decoded(list(commit.changes))
    store = MemoryChangeStore()
    assert store.apply(SPACE, DOC, [b, c], [commit.tip]) == []  # a is missing
    assert store.tips(SPACE, DOC) == []
    assert store.apply(SPACE, DOC, [c, a, b], [commit.tip]) == [a.hash, b.hash, c.hash]
    assert store.apply(SPACE, DOC, [a], []) == []  # already stored
    assert store.heads(SPACE, DOC) == [c.hash] and store.tips(SPACE, DOC) == [commit.tip]


def test_only_the_newest_tip_per_author_is_kept():
    store = MemoryChangeStore()
    source = MemoryChangeStore()
    first = source.commit(alice, SPACE, DOC, edits(["a"]), now_ms=0)
    second = source.commit(alice, SPACE, DOC, edits(["b"]), now_ms=0)
    store.apply(SPACE, DOC, decoded([*first.changes, *second.changes]), [second.tip, first.tip])
    assert store.tips(SPACE, DOC) == [second.tip]


def test_changes_since_ignores_unknown_heads_and_save_document_holds_everything():
    store = MemoryChangeStore()
    first = store.commit(alice, SPACE, DOC, edits(["a"]), now_ms=0)
    store.commit(bob, SPACE, DOC, edits(["b"]), now_ms=0)
    since_first = store.changes_since(SPACE, DOC, [decoded(list(first.changes))[0].hash, b"\x09" * 32])
    assert len(since_first) == 1
    assert len(store.changes_since(SPACE, DOC, [])) == 2
    loaded = native.Document.load(store.save_document(SPACE, DOC))
    assert sorted(loaded.heads()) == store.heads(SPACE, DOC)


def test_sync_state_is_kept_per_peer_space_and_doc():
    store = MemoryChangeStore()
    assert store.load_sync_state(bob.public_key, SPACE, DOC) is None
    store.save_sync_state(bob.public_key, SPACE, DOC, b"state")
    assert store.load_sync_state(bob.public_key, SPACE, DOC) == b"state"
    assert store.load_sync_state(alice.public_key, SPACE, DOC) is None


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
