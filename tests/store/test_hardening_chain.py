"""Issue 12, class 1: changes that are signed and well formed but break Automerge's rules for the
doc are refused by ``Repo.apply`` and nothing of them is stored, so the doc keeps loading (also
after a restart) and honest changes keep arriving.

The attacks: an author forks its own chain (two changes, one seq, a valid tip for each); a change
skips a seq; a change whose ops name an actor the doc has never seen (Automerge panics half-way).
"""

from __future__ import annotations

import pytest

import native
from protocol.errors import UnusableChanges
from protocol.tips import SignedTip
from store.errors import InvalidInput, RefusedChanges, StoreError
from store.repo import Repo
from store_helpers import FILE_DOC, NOW_MS, append, forked_pair, read_text, shared_space, sync, without_deps


def tip(repo: Repo, space: bytes, change: native.DecodedChange) -> SignedTip:
    return SignedTip.sign(repo.identity, space, FILE_DOC, change.hash)


def test_refused_changes_are_both_a_store_error_and_the_protocols_unusable_changes() -> None:
    assert issubclass(RefusedChanges, StoreError) and issubclass(RefusedChanges, UnusableChanges)


@pytest.mark.parametrize("together", [False, True], ids=["one-then-the-other", "in-one-batch"])
def test_a_forked_author_chain_is_refused_and_the_doc_still_loads_after_a_restart(
    make_repo, backend_kind, alice, bob, carol, together
) -> None:
    alice_repo, bob_repo, carol_repo = make_repo(alice, name="alice"), make_repo(bob, name="bob"), make_repo(carol, name="carol")
    space = shared_space(alice_repo, bob_repo, carol_repo)
    append(alice_repo, space, FILE_DOC, "base\n")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    left, right = forked_pair(alice_repo, space, FILE_DOC)
    assert (left.seq, left.actor) == (right.seq, right.actor) and left.hash != right.hash
    heads = bob_repo.heads(space, FILE_DOC)

    if together:
        batches = [([left, right], [tip(alice_repo, space, left), tip(alice_repo, space, right)])]
    else:
        assert bob_repo.apply(space, FILE_DOC, [left], [tip(alice_repo, space, left)], now_ms=NOW_MS) == [left.hash]
        heads = bob_repo.heads(space, FILE_DOC)
        batches = [([right], [tip(alice_repo, space, right)])]
    for changes, tips in batches:
        with pytest.raises(RefusedChanges, match=f"{right.hash.hex()}.*forked author chain"):
            bob_repo.apply(space, FILE_DOC, changes, tips, now_ms=NOW_MS)

    assert not bob_repo.has_change(space, FILE_DOC, right.hash)
    assert bob_repo.heads(space, FILE_DOC) == heads
    assert read_text(bob_repo, space, FILE_DOC) == "base\n"
    assert bob_repo.verify() == []
    reopened = make_repo(bob, name="bob") if backend_kind == "sqlite" else bob_repo  # memory has nothing to reopen
    assert read_text(reopened, space, FILE_DOC) == "base\n" and reopened.heads(space, FILE_DOC) == heads
    # an honest author still gets through, on the reopened store too
    sync(reopened, carol_repo, space, FILE_DOC)
    append(carol_repo, space, FILE_DOC, "carol\n")
    sync(carol_repo, reopened, space, FILE_DOC)
    assert read_text(reopened, space, FILE_DOC) == "base\ncarol\n"


def test_a_change_that_skips_a_seq_is_refused(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, name="alice"), make_repo(bob, name="bob")
    space = shared_space(alice_repo, bob_repo)
    append(alice_repo, space, FILE_DOC, "one\n")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    append(alice_repo, space, FILE_DOC, "two\n")
    third = alice_repo.backend.change(space, FILE_DOC, append(alice_repo, space, FILE_DOC, "three\n"))
    assert third is not None and third.raw is not None and third.seq == 3
    skipping = without_deps(third.raw)  # seq 3, and nothing it waits for: only the gap stops it
    with pytest.raises(RefusedChanges, match="a gap"):
        bob_repo.apply(space, FILE_DOC, [skipping], [tip(alice_repo, space, skipping)], now_ms=NOW_MS)
    assert not bob_repo.has_change(space, FILE_DOC, skipping.hash)
    assert sync(alice_repo, bob_repo, space, FILE_DOC)  # the honest chain follows
    assert read_text(bob_repo, space, FILE_DOC) == "one\ntwo\nthree\n"


@pytest.mark.parametrize("bob_state", ["cold", "cached", "editing"])
def test_a_change_naming_an_actor_the_doc_has_not_seen_is_refused_by_the_trial_apply(
    make_repo, backend_kind, alice, bob, carol, bob_state
) -> None:
    """Carol edits alice's text, then drops the deps from her change: it names alice's objects
    in a doc that has never seen alice. Automerge panics half-way through applying it."""
    alice_repo, bob_repo, carol_repo = make_repo(alice, name="alice"), make_repo(bob, name="bob"), make_repo(carol, name="carol")
    space = shared_space(alice_repo, bob_repo, carol_repo)
    bob_repo.document(space, FILE_DOC).put(native.ROOT, "owner", "bob")  # a doc that knows no alice
    bob_repo.commit(space, FILE_DOC, "owner", now_ms=NOW_MS)
    append(alice_repo, space, FILE_DOC, "alice\n")
    sync(alice_repo, carol_repo, space, FILE_DOC)
    append(carol_repo, space, FILE_DOC, "carol\n")
    crafted = without_deps(carol_repo.document(space, FILE_DOC).get_last_local_change())
    assert crafted.deps == [] and crafted.seq == 1
    document = None
    if bob_state == "cold":
        if backend_kind == "memory":
            pytest.skip("a store in memory cannot be reopened cold")
        bob_repo = make_repo(bob, name="bob")  # reopened: nothing cached
    elif bob_state == "editing":
        document = bob_repo.document(space, FILE_DOC)
        document.put(native.ROOT, "draft", "unsaved")  # uncommitted: the trial runs on a copy
    heads = bob_repo.heads(space, FILE_DOC)

    with pytest.raises(RefusedChanges, match=f"Automerge refuses change {crafted.hash.hex()}"):
        bob_repo.apply(space, FILE_DOC, [crafted], [tip(carol_repo, space, crafted)], now_ms=NOW_MS)

    assert not bob_repo.has_change(space, FILE_DOC, crafted.hash) and bob_repo.heads(space, FILE_DOC) == heads
    if document is not None:
        assert document.pending_ops() and bob_repo.commit(space, FILE_DOC, "draft", now_ms=NOW_MS) is not None
    assert bob_repo.document(space, FILE_DOC).get(native.ROOT, "owner") == "bob"
    if backend_kind == "sqlite":
        assert make_repo(bob, name="bob").document(space, FILE_DOC).get(native.ROOT, "owner") == "bob"
    sync(alice_repo, bob_repo, space, FILE_DOC)  # honest changes, alice's first, still apply
    sync(carol_repo, bob_repo, space, FILE_DOC)
    assert read_text(bob_repo, space, FILE_DOC) == "alice\ncarol\n"


def test_author_seq_answers_from_the_store(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, name="alice"), make_repo(bob, name="bob")
    space = shared_space(alice_repo, bob_repo)
    assert bob_repo.author_seq(space, FILE_DOC, alice.public_key) == 0
    append(alice_repo, space, FILE_DOC, "one\n")
    append(alice_repo, space, FILE_DOC, "two\n")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    assert bob_repo.author_seq(space, FILE_DOC, alice.public_key) == 2
    assert bob_repo.author_seq(space, FILE_DOC, bob.public_key) == 0
    with bob_repo.group():  # inside a group, before its rows reach the database
        append(alice_repo, space, FILE_DOC, "three\n")
        sync(alice_repo, bob_repo, space, FILE_DOC)
        assert bob_repo.author_seq(space, FILE_DOC, alice.public_key) == 3


def test_a_local_edit_that_would_fork_the_nodes_own_key_is_dropped_not_stored(make_repo, alice) -> None:
    """One key on two nodes: while this node edits, the other node's change with the same seq
    arrives. Committing the edit would fork the key's chain; it is refused, the doc still loads."""
    here, elsewhere = make_repo(alice, name="here"), make_repo(alice, name="elsewhere")
    space = shared_space(here, elsewhere)
    append(here, space, FILE_DOC, "one\n")
    sync(here, elsewhere, space, FILE_DOC)
    document = here.document(space, FILE_DOC)
    document.put(native.ROOT, "draft", "open")  # an edit in progress
    append(elsewhere, space, FILE_DOC, "two\n")
    assert sync(elsewhere, here, space, FILE_DOC)  # stored; waits for the edit to end
    with pytest.raises(InvalidInput, match="is the key used on another node"):
        here.commit(space, FILE_DOC, "draft", now_ms=NOW_MS)
    assert read_text(here, space, FILE_DOC) == "one\ntwo\n" and here.verify() == []
