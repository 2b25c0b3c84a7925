"""Repo as a ChangeStore, beyond the contract every store meets
(tests/protocol/test_change_store_contract.py): changes authored by Repos reach another Repo
shuffled and it verifies clean; ``save_document`` serves its snapshot."""

from __future__ import annotations

import random

import native
from protocol.memory import MemoryChangeStore
from protocol.store_api import ChangeStore
from store.repo import Repo
from store_helpers import FILE_DOC, NOW_MS, append, shared_space


def answers(store: ChangeStore, space: bytes) -> tuple[object, ...]:
    return (
        store.doc_ids(space),
        store.heads(space, FILE_DOC),
        store.changes_since(space, FILE_DOC, []),
        sorted((t.author, t.change_hash) for t in store.tips(space, FILE_DOC)),
        sorted(native.Document.load(store.save_document(space, FILE_DOC)).heads()),
    )


def test_repo_and_the_protocols_memory_store_give_the_same_answers(make_repo, alice, bob, carol) -> None:
    """Alice and carol edit; their changes reach bob's repo and a MemoryChangeStore in shuffled
    batches (some before their deps): both end with the same heads, changes, tips and save."""
    alice_repo, carol_repo, bob_repo = make_repo(alice, "alice"), make_repo(carol, "carol"), make_repo(bob, "bob")
    space = shared_space(alice_repo, carol_repo, bob_repo)
    append(alice_repo, space, FILE_DOC, "alice ")
    carol_repo.apply(
        space,
        FILE_DOC,
        [native.decode_change(r) for r in alice_repo.changes_since(space, FILE_DOC, [])],
        alice_repo.tips(space, FILE_DOC),
        now_ms=NOW_MS,
    )
    for word in ("one ", "two ", "three "):
        append(alice_repo, space, FILE_DOC, word)
        append(carol_repo, space, FILE_DOC, word.upper())
    deliveries = [
        ([native.decode_change(r) for r in author.changes_since(space, FILE_DOC, [])], author.tips(space, FILE_DOC))
        for author in (alice_repo, carol_repo)
    ]
    rng = random.Random(7)
    memory: ChangeStore = MemoryChangeStore()
    stores: list[ChangeStore] = [bob_repo, memory]
    for _ in range(3):
        for changes, tips in deliveries:
            batch = rng.sample(changes, k=len(changes) // 2 + 1)
            results = [store.apply(space, FILE_DOC, batch, tips) for store in stores]
            assert results[0] == results[1]
    for changes, tips in deliveries:
        assert bob_repo.apply(space, FILE_DOC, changes, tips) == memory.apply(space, FILE_DOC, changes, tips)

    assert answers(bob_repo, space) == answers(memory, space)
    assert bob_repo.verify() == []


def test_save_document_serves_the_current_snapshot_without_saving_again(make_repo, alice) -> None:
    repo: Repo = make_repo(alice, snapshot_every=2)
    space = repo.create_space("project", NOW_MS).space_id
    append(repo, space, FILE_DOC, "a")
    append(repo, space, FILE_DOC, "b")
    snapshot = repo.backend.doc_snapshot(space, FILE_DOC)
    assert snapshot is not None
    assert repo.save_document(space, FILE_DOC) == b"".join(repo.block(cid) for cid in snapshot.chunks)
    append(repo, space, FILE_DOC, "c")
    saved = native.Document.load(repo.save_document(space, FILE_DOC))
    assert sorted(saved.heads()) == repo.heads(space, FILE_DOC)
