"""The ChangeStore contract (protocol/store_api.py), one suite run on every implementation.

As automerge-repo's storage-adapter tests: the protocol relies on these answers, so every store
it runs on must give them — the protocol's in-memory store, the Repo on each backend, and the
node's write-behind adapter over a Repo. What only one of them does is tested with it
(tests/protocol/test_memory_change_store.py, tests/store/test_repo_*.py,
tests/node/test_replica_store.py).

Changes are authored in MemoryChangeStores (alice and carol) and delivered to the store under
test, which belongs to bob.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import native
from harness import edits, identity_of, text_doc_id
from node.replica_store import ReplicaStore
from protocol.capabilities import Grant, Revocation, Role
from protocol.clock import FIXED_NOW_MS
from protocol.errors import CapabilityError, UnusableChanges
from protocol.events import LocalCommit
from protocol.memory import MemoryChangeStore
from protocol.space import INDEX_DOC_ID, Genesis
from protocol.store_api import ChangeStore
from store.capabilities import change_paths
from store.repo import Repo
from store.tree import DIR, FILE, TEXT, IndexEdit, file_id_of

alice, bob, carol = identity_of("alice"), identity_of("bob"), identity_of("carol")
GENESIS = Genesis.create(alice, "contract space", FIXED_NOW_MS, nonce=bytes(16))
SPACE = GENESIS.space_id
PRIVATE = Genesis.create(alice, "private contract space", FIXED_NOW_MS, nonce=bytes(16), private=True)
DOC = text_doc_id("notes")
OTHER_DOC = text_doc_id("other")
UNKNOWN_HASH = b"\x09" * 32

IMPLEMENTATIONS = ("memory", "repo-memory", "repo-sqlite", "replica-store")


@pytest.fixture(params=IMPLEMENTATIONS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChangeStore]:
    """Bob's store, holding the space (a Repo only stores changes of spaces it holds)."""
    if request.param == "memory":
        yield MemoryChangeStore(change_paths, geneses=[GENESIS, PRIVATE])
        return
    path = None if request.param == "repo-memory" else tmp_path / "bob.db"
    repo = Repo.open(path, bob, clock=lambda: FIXED_NOW_MS)
    repo.add_space(GENESIS)
    repo.add_space(PRIVATE)
    yield ReplicaStore(repo) if request.param == "replica-store" else repo
    repo.close()


def decoded(commit: LocalCommit) -> list[native.DecodedChange]:
    return [native.decode_change(raw) for raw in commit.changes]


class Author:
    """Someone editing elsewhere: each ``commit`` is one signed batch to deliver."""

    def __init__(self, name: str) -> None:
        self.identity = identity_of(name)
        self.store = MemoryChangeStore()

    def commit(self, *texts: str, doc: bytes = DOC) -> LocalCommit:
        return self.store.commit(self.identity, SPACE, doc, edits(list(texts)), now_ms=FIXED_NOW_MS)

    def learn(self, other: Author, doc: bytes = DOC) -> None:
        raw = other.store.changes_since(SPACE, doc, [])
        self.store.apply(SPACE, doc, [native.decode_change(r) for r in raw], other.store.tips(SPACE, doc))


def deliver(store: ChangeStore, commit: LocalCommit, doc: bytes = DOC) -> list[bytes]:
    return store.apply(SPACE, doc, decoded(commit), [commit.tip])


# ----- an empty store -----


def test_an_empty_store_knows_nothing(store: ChangeStore) -> None:
    assert store.doc_ids(SPACE) == []
    assert store.heads(SPACE, DOC) == [] and store.changes_since(SPACE, DOC, []) == []
    assert not store.has_change(SPACE, DOC, UNKNOWN_HASH)
    assert store.author_seq(SPACE, DOC, alice.public_key) == 0
    assert store.tips(SPACE, DOC) == []
    assert store.load_sync_state(carol.public_key, SPACE, DOC) is None


# ----- apply -----


def test_an_applied_batch_is_stored_with_its_tip_and_read_back_in_order(store: ChangeStore) -> None:
    commit = Author("alice").commit("a", "b", "c")
    hashes = [change.hash for change in decoded(commit)]
    assert deliver(store, commit) == hashes
    assert store.doc_ids(SPACE) == [DOC]
    assert store.heads(SPACE, DOC) == [hashes[-1]]
    assert all(store.has_change(SPACE, DOC, h) for h in hashes)
    assert store.author_seq(SPACE, DOC, alice.public_key) == 3
    assert store.author_seq(SPACE, DOC, carol.public_key) == 0
    assert store.tips(SPACE, DOC) == [commit.tip]
    assert store.changes_since(SPACE, DOC, []) == list(commit.changes)
    saved = native.Document.load(store.save_document(SPACE, DOC))
    assert sorted(saved.heads()) == store.heads(SPACE, DOC)


def test_apply_takes_any_order_returns_causal_order_and_skips_what_lacks_deps(store: ChangeStore) -> None:
    commit = Author("alice").commit("a", "b", "c")
    a, b, c = decoded(commit)
    assert store.apply(SPACE, DOC, [b, c], [commit.tip]) == []  # a is missing: nothing stored
    assert store.tips(SPACE, DOC) == [] and not store.has_change(SPACE, DOC, b.hash)
    assert store.apply(SPACE, DOC, [c, a, c, b], [commit.tip]) == [a.hash, b.hash, c.hash]
    assert store.apply(SPACE, DOC, [a], []) == []  # already stored
    assert store.heads(SPACE, DOC) == [c.hash] and store.tips(SPACE, DOC) == [commit.tip]


def test_only_the_newest_tip_per_author_is_kept(store: ChangeStore) -> None:
    author = Author("alice")
    first, second = author.commit("a"), author.commit("b")
    store.apply(SPACE, DOC, [*decoded(first), *decoded(second)], [second.tip, first.tip])
    assert store.tips(SPACE, DOC) == [second.tip]
    store.apply(SPACE, DOC, [], [first.tip])  # an older tip arriving late changes nothing
    assert store.tips(SPACE, DOC) == [second.tip]


def test_a_tip_is_kept_only_once_its_change_is_stored(store: ChangeStore) -> None:
    author = Author("alice")
    first, second = author.commit("a"), author.commit("b")
    assert deliver(store, first) and store.apply(SPACE, DOC, [], [second.tip]) == []
    assert store.tips(SPACE, DOC) == [first.tip]
    store.apply(SPACE, DOC, decoded(second), [])
    store.apply(SPACE, DOC, [], [second.tip])  # its change is stored now
    assert store.tips(SPACE, DOC) == [second.tip]


def test_docs_are_kept_apart(store: ChangeStore) -> None:
    author = Author("alice")
    deliver(store, author.commit("a"))
    other = author.commit("x", doc=OTHER_DOC)
    deliver(store, other, OTHER_DOC)
    assert store.doc_ids(SPACE) == sorted([DOC, OTHER_DOC])
    assert store.changes_since(SPACE, OTHER_DOC, []) == list(other.changes)
    assert store.author_seq(SPACE, OTHER_DOC, alice.public_key) == 1


# ----- refusals -----


def test_a_forked_author_chain_is_refused_and_nothing_of_the_batch_is_stored(store: ChangeStore) -> None:
    honest = Author("alice").commit("a")
    deliver(store, honest)
    fork = MemoryChangeStore().commit(alice, SPACE, DOC, edits(["other a"]), now_ms=FIXED_NOW_MS)  # seq 1 again
    bystander = Author("carol").commit("c")
    with pytest.raises(UnusableChanges):
        store.apply(SPACE, DOC, [*decoded(bystander), *decoded(fork)], [bystander.tip, fork.tip])
    assert store.heads(SPACE, DOC) == [decoded(honest)[0].hash]
    assert not store.has_change(SPACE, DOC, decoded(bystander)[0].hash)
    assert store.tips(SPACE, DOC) == [honest.tip] and store.author_seq(SPACE, DOC, carol.public_key) == 0
    assert deliver(store, bystander) == [decoded(bystander)[0].hash]  # the store still takes the rest


# ----- changes_since -----


def test_changes_since_ignores_unknown_heads_and_keeps_causal_order(store: ChangeStore) -> None:
    alice_, carol_ = Author("alice"), Author("carol")
    first = alice_.commit("a")
    carol_.learn(alice_)
    deliver(store, first)
    later = [alice_.commit("b"), carol_.commit("c"), alice_.commit("d")]
    for commit in reversed(later):
        store.apply(SPACE, DOC, decoded(commit), [commit.tip])
    for commit in later:  # the reversed order left some waiting for deps: now they all arrive
        store.apply(SPACE, DOC, decoded(commit), [commit.tip])
    first_hash = decoded(first)[0].hash
    since = [native.decode_change(raw) for raw in store.changes_since(SPACE, DOC, [first_hash, UNKNOWN_HASH])]
    assert sorted(change.hash for change in since) == sorted(decoded(c)[0].hash for c in later)
    position = {change.hash: i for i, change in enumerate(since)}
    assert all(position[dep] < position[change.hash] for change in since for dep in change.deps if dep in position)
    assert len(store.changes_since(SPACE, DOC, [UNKNOWN_HASH])) == 4  # unknown heads: everything
    assert store.changes_since(SPACE, DOC, store.heads(SPACE, DOC)) == []


def test_shuffled_deliveries_from_two_authors_end_where_the_authors_are(store: ChangeStore) -> None:
    """Alice and carol edit concurrently; their batches reach the store shuffled, some before
    their deps, and again in full: it ends with the same answers as the reference store."""
    alice_, carol_ = Author("alice"), Author("carol")
    alice_.commit("alice ")
    carol_.learn(alice_)
    for word in ("one ", "two ", "three "):
        alice_.commit(word)
        carol_.commit(word.upper())
    deliveries = [
        ([native.decode_change(r) for r in author.store.changes_since(SPACE, DOC, [])], author.store.tips(SPACE, DOC))
        for author in (alice_, carol_)
    ]
    reference = MemoryChangeStore()
    rng = random.Random(7)
    for _ in range(3):
        for changes, tips in deliveries:
            batch = rng.sample(changes, k=len(changes) // 2 + 1)
            assert store.apply(SPACE, DOC, batch, tips) == reference.apply(SPACE, DOC, batch, tips)
    for changes, tips in deliveries:
        assert store.apply(SPACE, DOC, changes, tips) == reference.apply(SPACE, DOC, changes, tips)
    assert store.heads(SPACE, DOC) == reference.heads(SPACE, DOC)
    assert store.changes_since(SPACE, DOC, []) == reference.changes_since(SPACE, DOC, [])
    assert sorted((t.author, t.change_hash) for t in store.tips(SPACE, DOC)) == sorted(
        (t.author, t.change_hash) for t in reference.tips(SPACE, DOC)
    )
    assert sorted(native.Document.load(store.save_document(SPACE, DOC)).heads()) == reference.heads(SPACE, DOC)


# ----- sync states -----


def test_a_sync_state_is_kept_per_peer_space_and_doc_and_the_newest_wins(store: ChangeStore) -> None:
    deliver(store, Author("alice").commit("a"))
    store.save_sync_state(carol.public_key, SPACE, DOC, b"first")
    store.save_sync_state(carol.public_key, SPACE, DOC, b"second")
    store.save_sync_state(alice.public_key, SPACE, DOC, b"alice's")
    assert store.load_sync_state(carol.public_key, SPACE, DOC) == b"second"
    assert store.load_sync_state(alice.public_key, SPACE, DOC) == b"alice's"
    assert store.load_sync_state(carol.public_key, SPACE, OTHER_DOC) is None



# ----- capability logs and the paths a change touches (private spaces, issue 13) -----


def test_a_spaces_log_is_built_from_its_genesis(store: ChangeStore) -> None:
    opened, private = store.capability_log(SPACE), store.capability_log(PRIVATE.space_id)
    assert not opened.private and private.private
    assert private.root == alice.public_key and len(private) == 0
    assert private.admits(alice.public_key, FIXED_NOW_MS) and not private.admits(carol.public_key, FIXED_NOW_MS)


def test_records_are_held_once_and_change_the_log(store: ChangeStore) -> None:
    space = PRIVATE.space_id
    grant = Grant.issue(alice, space=space, subject=carol.public_key, role=Role.WRITE, issued_ms=FIXED_NOW_MS)
    assert store.add_capability_records(space, [grant.encode()]) == [grant.hash]
    assert store.add_capability_records(space, [grant.encode(), grant.encode()]) == []  # held: no error
    log = store.capability_log(space)
    assert grant.hash in log and log.admits(carol.public_key, FIXED_NOW_MS)
    assert log.change_refusal(carol.public_key, DOC, 1, None, FIXED_NOW_MS) is None


def test_a_bad_record_raises_and_nothing_of_its_call_is_held(store: ChangeStore) -> None:
    space = PRIVATE.space_id
    good = Grant.issue(alice, space=space, subject=carol.public_key, role=Role.READ, issued_ms=FIXED_NOW_MS)
    elsewhere = Grant.issue(alice, space=SPACE, subject=carol.public_key, role=Role.READ, issued_ms=FIXED_NOW_MS)
    forged = bytearray(good.encode())
    forged[-1] ^= 1
    for bad in (b"\x00garbage", bytes(forged), elsewhere.encode()):
        with pytest.raises(CapabilityError):
            store.add_capability_records(space, [good.encode(), bad])
        assert good.hash not in store.capability_log(space)


def test_a_revocation_takes_out_the_stored_changes_above_its_cutoff_and_what_builds_on_them(store: ChangeStore) -> None:
    space = PRIVATE.space_id
    grant = Grant.issue(alice, space=space, subject=carol.public_key, role=Role.WRITE, issued_ms=FIXED_NOW_MS)
    store.add_capability_records(space, [grant.encode()])
    carols, alices = MemoryChangeStore(), MemoryChangeStore()
    kept = carols.commit(carol, space, DOC, edits(["kept"]), now_ms=FIXED_NOW_MS)
    later = carols.commit(carol, space, DOC, edits(["after"]), now_ms=FIXED_NOW_MS)  # the revoker never saw it
    for commit in (kept, later):
        alices.apply(space, DOC, decoded(commit), [commit.tip])
    built_on = alices.commit(alice, space, DOC, edits(["alice on top"]), now_ms=FIXED_NOW_MS)
    for commit in (kept, later, built_on):
        store.apply(space, DOC, decoded(commit), [commit.tip])
    revocation = Revocation.issue(alice, space=space, subject=carol.public_key, seen=((DOC, 1),), issued_ms=FIXED_NOW_MS, parents=(grant.hash,))
    store.add_capability_records(space, [revocation.encode()])
    [kept_hash] = [change.hash for change in decoded(kept)]
    assert store.heads(space, DOC) == [kept_hash]
    assert store.changes_since(space, DOC, []) == list(kept.changes)
    assert store.author_seq(space, DOC, carol.public_key) == 1


def _index_edit(file_id: str, kind: str, parent: str, name: str) -> Callable[[native.Document], None]:
    def edit(document: native.Document) -> None:
        IndexEdit(document).add(file_id, kind, TEXT if kind == FILE else None, parent, name)  # type: ignore[arg-type]

    return edit


def _move(file_id: str, parent: str, name: str) -> Callable[[native.Document], None]:
    return lambda document: IndexEdit(document).move(file_id, parent, name)


def test_change_paths_read_the_index(store: ChangeStore) -> None:
    """A file doc is judged by its path in the index (None: no entry); an index change by the
    paths it touches before and after, a moved directory's contents included."""
    space = PRIVATE.space_id
    author = MemoryChangeStore()
    content = author.commit(alice, space, DOC, edits(["hello"]), now_ms=FIXED_NOW_MS)
    store.apply(space, DOC, decoded(content), [content.tip])
    assert store.change_paths(space, DOC, decoded(content)[0]) is None  # no index yet
    src, docs = file_id_of(b"\x01" * 16), file_id_of(b"\x02" * 16)
    made = author.commit(
        alice, space, INDEX_DOC_ID,
        [_index_edit(src, DIR, "", "src"), _index_edit(docs, DIR, "", "docs"), _index_edit(file_id_of(DOC), FILE, src, "a.md")],
        now_ms=FIXED_NOW_MS,
    )  # fmt: skip
    first, second, third = decoded(made)
    assert store.apply(space, INDEX_DOC_ID, [first, second, third], [made.tip])
    assert store.change_paths(space, INDEX_DOC_ID, third) == ["src/a.md"]
    assert store.change_paths(space, DOC, decoded(content)[0]) == ["src/a.md"]
    moved = author.commit(alice, space, INDEX_DOC_ID, [_move(src, docs, "src")], now_ms=FIXED_NOW_MS)
    assert sorted(store.change_paths(space, INDEX_DOC_ID, decoded(moved)[0]) or []) == ["docs/src", "docs/src/a.md", "src", "src/a.md"]
    store.apply(space, INDEX_DOC_ID, decoded(moved), [moved.tip])
    assert store.change_paths(space, DOC, decoded(content)[0]) == ["docs/src/a.md"]
