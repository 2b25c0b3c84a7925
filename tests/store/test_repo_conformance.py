"""The Repo API as the workspace layer and the sync protocol use it, on both backends.

Every test runs twice (``make_repo`` is parametrised over SQLite and memory): the in-memory store
must be a faithful stand-in for the durable one.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
from protocol.identity import Identity
from protocol.space import INDEX_DOC_ID, Genesis
from protocol.tips import SignedTip
from store import ingest
from store.errors import ClosedError, InvalidInput, UnknownSpace
from store.repo import Repo, RepoEvent, SpaceStored, StoreEvent
from store_helpers import FILE_DOC, NOW_MS, OTHER_DOC, append, read_text, shared_space, sync, text_obj

# ----- spaces -----


def test_alice_creates_a_space_and_bob_joins_it_from_its_genesis(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    genesis = alice_repo.create_space("project", NOW_MS)
    assert genesis.creator == alice.public_key
    assert alice_repo.spaces() == [genesis] and alice_repo.genesis(genesis.space_id) == genesis
    bob_repo.add_space(genesis)
    bob_repo.add_space(genesis)  # joining twice changes nothing
    assert bob_repo.spaces() == [genesis]


def test_a_forged_genesis_is_refused_and_nothing_is_stored(make_repo, alice, bob) -> None:
    genesis = Genesis.create(alice, "project", NOW_MS)
    forged = Genesis(bob.public_key, genesis.name, genesis.nonce, genesis.created_ms, genesis.signature)
    repo = make_repo(bob)
    heard: list[RepoEvent] = []
    repo.subscribe(heard.append)
    with pytest.raises(InvalidInput, match="does not verify"):
        repo.add_space(forged)
    assert repo.spaces() == [] and heard == []


def test_a_space_newly_stored_is_announced_once_whether_created_or_joined(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    alice_heard: list[RepoEvent] = []
    bob_heard: list[RepoEvent] = []
    alice_repo.subscribe(alice_heard.append)
    bob_repo.subscribe(bob_heard.append)
    genesis = alice_repo.create_space("project", NOW_MS)
    assert alice_heard == [SpaceStored(genesis.space_id, genesis)]
    bob_repo.add_space(genesis)  # joined, or fetched from a peer: the same call
    bob_repo.add_space(genesis)  # already held: nothing new is stored, nothing announced
    assert bob_heard == [SpaceStored(genesis.space_id, genesis)]


def test_spaces_already_in_the_store_are_not_announced_again_on_reopen(tmp_path, alice) -> None:
    with Repo.open(tmp_path / "alice.db", alice) as repo:
        genesis = repo.create_space("project", NOW_MS)
    with Repo.open(tmp_path / "alice.db", alice) as reopened:
        heard: list[RepoEvent] = []
        reopened.subscribe(heard.append)
        reopened.add_space(genesis)
        assert reopened.spaces() == [genesis] and heard == []


def test_bad_names_and_ids_get_clear_errors(make_repo, alice) -> None:
    repo = make_repo(alice)
    with pytest.raises(InvalidInput):
        repo.create_space("", NOW_MS)
    with pytest.raises(UnknownSpace):
        repo.genesis(bytes(32))
    space = repo.create_space("project", NOW_MS).space_id
    with pytest.raises(InvalidInput, match="space id is 32 bytes"):
        repo.document(b"short", FILE_DOC)
    with pytest.raises(InvalidInput, match="doc id is 16 bytes"):
        repo.document(space, b"short")
    with pytest.raises(InvalidInput, match="peer id"):
        repo.save_sync_state(b"short", space, FILE_DOC, b"state")


# ----- local edits -----


def test_a_commit_is_one_signed_change_with_a_version_and_an_event(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    events: list[StoreEvent] = []
    repo.subscribe(events.append)

    change = append(repo, space, FILE_DOC, "hello", now_ms=NOW_MS + 1_500)

    assert repo.heads(space, FILE_DOC) == [change]
    assert repo.doc_ids(space) == [FILE_DOC]
    decoded = native.decode_change(repo.changes_since(space, FILE_DOC, [])[0])
    assert (decoded.actor, decoded.time, decoded.message) == (alice.public_key, (NOW_MS + 1_500) // 1000, "append 'hello'")
    [tip] = repo.tips(space, FILE_DOC)
    tip.verify()
    assert (tip.author, tip.change_hash) == (alice.public_key, change)
    [record] = repo.versions(space)
    assert (record.number, record.doc, record.heads, record.hashes, record.origin, record.time_ms) == (
        1,
        FILE_DOC,
        (change,),
        (change,),
        "local",
        NOW_MS + 1_500,
    )
    raw = repo.changes_since(space, FILE_DOC, [])[0]
    assert events == [StoreEvent(space, FILE_DOC, 1, (change,), "local", tip, (raw,))]  # the tip and the change travel with it


def test_commit_with_nothing_pending_returns_none_and_makes_no_version(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    assert repo.commit(space, FILE_DOC, now_ms=NOW_MS) is None
    assert repo.version(space) == 0 and repo.doc_ids(space) == []


def test_rollback_drops_pending_ops(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    append(repo, space, FILE_DOC, "kept")
    document = repo.document(space, FILE_DOC)
    document.splice_text(text_obj(document), 0, 0, "dropped ")
    repo.rollback(space, FILE_DOC)
    assert read_text(repo, space, FILE_DOC) == "kept"
    assert repo.commit(space, FILE_DOC, now_ms=NOW_MS) is None


def test_a_change_automerge_closed_on_its_own_is_still_persisted_and_signed(make_repo, alice) -> None:
    """Reading heads mid-edit makes Automerge commit the pending ops; commit() must not lose them."""
    repo = make_repo(alice, "alice")
    space = repo.create_space("project", NOW_MS).space_id
    document = repo.document(space, FILE_DOC)
    obj = text_obj(document)
    document.heads()  # closes the transaction holding the text object
    document.splice_text(obj, 0, 0, "typed")
    last = repo.commit(space, FILE_DOC, "edit", now_ms=NOW_MS)
    assert repo.heads(space, FILE_DOC) == [last]
    assert len(repo.changes_since(space, FILE_DOC, [])) == 2
    assert repo.verify() == []


def test_a_change_by_another_actor_on_the_document_is_refused(make_repo, alice, bob) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    document = repo.document(space, FILE_DOC)
    stranger = native.Document(bob.public_key)
    stranger.put(native.ROOT, "k", 1)
    stranger.commit()
    document.apply_changes(stranger.get_changes())
    with pytest.raises(InvalidInput, match="another actor"):
        repo.commit(space, FILE_DOC, now_ms=NOW_MS)
    assert repo.heads(space, FILE_DOC) == [] and repo.document(space, FILE_DOC).heads() == []


# ----- remote changes (the ChangeStore interface) -----


def test_bob_applies_alices_changes_and_reads_the_same_text(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    space = shared_space(alice_repo, bob_repo)
    hashes = [append(alice_repo, space, FILE_DOC, word) for word in ("one ", "two ", "three")]
    events: list[StoreEvent] = []
    bob_repo.subscribe(events.append)

    assert sync(alice_repo, bob_repo, space, FILE_DOC) == hashes
    assert sync(alice_repo, bob_repo, space, FILE_DOC) == []  # already stored: nothing new

    assert bob_repo.heads(space, FILE_DOC) == alice_repo.heads(space, FILE_DOC)
    assert read_text(bob_repo, space, FILE_DOC) == "one two three"
    assert bob_repo.tips(space, FILE_DOC) == alice_repo.tips(space, FILE_DOC)
    assert events == [StoreEvent(space, FILE_DOC, 1, tuple(hashes), "remote")]
    assert [r.origin for r in bob_repo.versions(space)] == ["remote"]
    assert all(bob_repo.has_change(space, FILE_DOC, h) for h in hashes)
    assert bob_repo.verify() == []


def test_a_change_whose_deps_are_missing_waits_outside_the_store(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    space = shared_space(alice_repo, bob_repo)
    first, second, third = (append(alice_repo, space, FILE_DOC, word) for word in "abc")
    changes = [native.decode_change(raw) for raw in alice_repo.changes_since(space, FILE_DOC, [])]
    tips = alice_repo.tips(space, FILE_DOC)

    assert bob_repo.apply(space, FILE_DOC, changes[1:], tips) == []
    assert bob_repo.heads(space, FILE_DOC) == [] and not bob_repo.has_change(space, FILE_DOC, second)
    assert bob_repo.tips(space, FILE_DOC) == []  # a tip whose change is not stored is not kept

    assert bob_repo.apply(space, FILE_DOC, list(reversed(changes)), tips) == [first, second, third]
    assert read_text(bob_repo, space, FILE_DOC) == "abc"


def test_only_the_newest_tip_of_each_author_is_kept(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    space = shared_space(alice_repo, bob_repo)
    first = append(alice_repo, space, FILE_DOC, "a")
    old_tip = alice_repo.tips(space, FILE_DOC)
    second = append(alice_repo, space, FILE_DOC, "b")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    assert [t.change_hash for t in bob_repo.tips(space, FILE_DOC)] == [second]

    [first_change] = [native.decode_change(r) for r in alice_repo.changes_since(space, FILE_DOC, [])][:1]
    assert bob_repo.apply(space, FILE_DOC, [first_change], old_tip) == []
    assert [t.change_hash for t in bob_repo.tips(space, FILE_DOC)] == [second] != [first]


def test_a_tip_for_another_doc_or_author_is_refused_and_nothing_is_stored(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    space = shared_space(alice_repo, bob_repo)
    change = append(alice_repo, space, FILE_DOC, "a")
    changes = [native.decode_change(r) for r in alice_repo.changes_since(space, FILE_DOC, [])]

    other_doc_tip = SignedTip.sign(alice, space, OTHER_DOC, change)
    with pytest.raises(InvalidInput, match="another space or doc"):
        bob_repo.apply(space, FILE_DOC, changes, [other_doc_tip])
    wrong_author_tip = SignedTip.sign(bob, space, FILE_DOC, change)
    with pytest.raises(InvalidInput, match="names a change by"):
        bob_repo.apply(space, FILE_DOC, changes, [wrong_author_tip])
    assert bob_repo.heads(space, FILE_DOC) == [] and bob_repo.version(space) == 0


def test_remote_changes_wait_while_a_local_edit_is_pending_and_both_survive(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    space = shared_space(alice_repo, bob_repo)
    append(alice_repo, space, FILE_DOC, "shared ")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    append(alice_repo, space, FILE_DOC, "alice")

    document = bob_repo.document(space, FILE_DOC)
    document.splice_text(text_obj(document), 0, 0, "bob:")  # pending, not committed
    sync(alice_repo, bob_repo, space, FILE_DOC)
    assert document.pending_ops() > 0  # applying did not close bob's pending edit
    bob_repo.commit(space, FILE_DOC, "bob edits", now_ms=NOW_MS)

    assert read_text(bob_repo, space, FILE_DOC) == "bob:shared alice"
    sync(bob_repo, alice_repo, space, FILE_DOC)
    assert read_text(alice_repo, space, FILE_DOC) == "bob:shared alice"
    assert bob_repo.verify() == [] and alice_repo.verify() == []


def test_a_cached_document_shows_remote_changes_when_asked_for_again(make_repo, alice, bob, monkeypatch) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob")
    space = shared_space(alice_repo, bob_repo)
    append(alice_repo, space, FILE_DOC, "a")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    held = bob_repo.document(space, FILE_DOC)
    append(alice_repo, space, FILE_DOC, "b")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    assert read_text(bob_repo, space, FILE_DOC) == "ab"

    monkeypatch.setattr(ingest, "MAX_WAITING_CHANGES", 1)  # now every batch is applied at once
    append(alice_repo, space, FILE_DOC, "c")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    assert held.text(text_obj(held)) == "abc"


def test_changes_since_ignores_unknown_heads_and_keeps_causal_order(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    hashes = [append(repo, space, FILE_DOC, word) for word in "abcd"]
    all_changes = repo.changes_since(space, FILE_DOC, [])
    assert [native.decode_change(raw).hash for raw in all_changes] == hashes
    assert repo.changes_since(space, FILE_DOC, [hashes[1], bytes(32)]) == all_changes[2:]
    assert repo.changes_since(space, OTHER_DOC, []) == []
    assert repo.heads(space, OTHER_DOC) == []


# ----- versions and events -----


def test_versions_number_every_step_and_heads_at_reads_any_of_them(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    a1 = append(repo, space, FILE_DOC, "a")
    b1 = append(repo, space, OTHER_DOC, "b")
    a2 = append(repo, space, FILE_DOC, "c")

    assert repo.version(space) == 3
    assert [r.number for r in repo.versions(space)] == [1, 2, 3]
    assert [r.number for r in repo.versions(space, since=1, limit=1)] == [2]
    assert repo.heads_at(space, 0) == {}
    assert repo.heads_at(space, 1) == {FILE_DOC: [a1]}
    assert repo.heads_at(space, 2) == {FILE_DOC: [a1], OTHER_DOC: [b1]}
    assert repo.heads_at(space, 3) == {FILE_DOC: [a2], OTHER_DOC: [b1]}
    with pytest.raises(InvalidInput, match="versions 0 to 3"):
        repo.heads_at(space, 4)
    with pytest.raises(InvalidInput):
        repo.versions(space, since=-1)


def test_an_unsubscribed_callback_hears_nothing_more(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    events: list[StoreEvent] = []
    unsubscribe = repo.subscribe(events.append)
    append(repo, space, FILE_DOC, "a")
    unsubscribe()
    unsubscribe()
    append(repo, space, FILE_DOC, "b")
    assert len(events) == 1


def test_a_closed_repo_refuses_every_call(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    repo.close()
    repo.close()
    with pytest.raises(ClosedError):
        repo.document(space, FILE_DOC)
    with pytest.raises(ClosedError):
        repo.spaces()


# ----- convergence under any interleaving -----

_examples = itertools.count()
_steps = st.lists(
    st.tuples(st.sampled_from(["alice", "bob", "sync-ab", "sync-ba"]), st.text("xyz", min_size=1, max_size=3)),
    max_size=12,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps)
def test_any_interleaving_of_edits_and_syncs_converges_and_verifies(make_repo, steps) -> None:
    """Edits and syncs in any order: after a final exchange both peers hold the same text."""
    peers = {name: Identity(bytes([index + 1]) * 32) for index, name in enumerate(("alice", "bob"))}
    example = next(_examples)  # a fresh SQLite file per example
    repos = {name: make_repo(identity, f"{name}-{example}") for name, identity in peers.items()}
    genesis = repos["alice"].create_space("project", NOW_MS)
    repos["bob"].add_space(genesis)
    space = genesis.space_id
    append(repos["alice"], space, INDEX_DOC_ID, "start ")
    sync(repos["alice"], repos["bob"], space, INDEX_DOC_ID)
    for action, text in steps:
        if action.startswith("sync"):
            source, target = ("alice", "bob") if action == "sync-ab" else ("bob", "alice")
            sync(repos[source], repos[target], space, INDEX_DOC_ID)
        else:
            append(repos[action], space, INDEX_DOC_ID, text)
    sync(repos["alice"], repos["bob"], space, INDEX_DOC_ID)
    sync(repos["bob"], repos["alice"], space, INDEX_DOC_ID)
    assert repos["alice"].heads(space, INDEX_DOC_ID) == repos["bob"].heads(space, INDEX_DOC_ID)
    assert read_text(repos["alice"], space, INDEX_DOC_ID) == read_text(repos["bob"], space, INDEX_DOC_ID)
    assert repos["alice"].verify() == [] and repos["bob"].verify() == []
