"""Snapshots, manifests and compaction: history stays whole and verifiable with fewer bytes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import native
from protocol import cbor
from store.blocks import CODEC_DAG_CBOR, CODEC_RAW, MAX_BLOCK_BYTES, codec_of
from store.errors import InvalidInput, UnknownBlock
from store.repo import Repo
from store.snapshots import Manifest
from store_helpers import FILE_DOC, NOW_MS, OTHER_DOC, append, read_text, shared_space, sync

SNAPSHOT_EVERY = 4


def test_a_doc_is_snapshotted_every_n_changes_under_a_signed_manifest(make_repo, alice) -> None:
    repo = make_repo(alice, snapshot_every=SNAPSHOT_EVERY)
    space = repo.create_space("project", NOW_MS).space_id
    for word in "abc":
        append(repo, space, FILE_DOC, word)
    assert repo.latest_snapshot(space) is None

    append(repo, space, FILE_DOC, "d", now_ms=NOW_MS + 7)

    snapshot = repo.latest_snapshot(space)
    assert snapshot is not None and (snapshot.version, snapshot.created_ms) == (4, NOW_MS + 7)
    manifest = repo.manifest(space)
    assert manifest is not None and (manifest.space, manifest.author) == (space, alice.public_key)
    [entry] = manifest.docs
    assert (entry.doc, entry.heads, entry.change_count) == (FILE_DOC, tuple(repo.heads(space, FILE_DOC)), 4)
    assert codec_of(snapshot.manifest_cid) == CODEC_DAG_CBOR and all(codec_of(c) == CODEC_RAW for c in entry.chunks)
    saved = native.Document.load(b"".join(repo.block(cid) for cid in entry.chunks))
    assert sorted(saved.heads()) == repo.heads(space, FILE_DOC)


def test_a_new_snapshot_replaces_the_old_blocks(make_repo, alice) -> None:
    repo = make_repo(alice, snapshot_every=SNAPSHOT_EVERY)
    space = repo.create_space("project", NOW_MS).space_id
    for word in "abcd":
        append(repo, space, FILE_DOC, word)
    first = repo.manifest(space)
    for word in "efgh":
        append(repo, space, FILE_DOC, word)
    second = repo.manifest(space)
    assert first is not None and second is not None and second.docs[0].change_count == 8
    with pytest.raises(UnknownBlock):
        repo.block(first.docs[0].chunks[0])
    with pytest.raises(UnknownBlock):
        repo.block(first.to_block().cid)


def test_snapshot_brings_every_doc_up_to_date(make_repo, alice) -> None:
    repo = make_repo(alice, snapshot_every=1000)
    space = repo.create_space("project", NOW_MS).space_id
    assert repo.snapshot(space, NOW_MS) is None
    append(repo, space, FILE_DOC, "a")
    append(repo, space, OTHER_DOC, "b")
    snapshot = repo.snapshot(space, NOW_MS + 1)
    assert snapshot is not None and snapshot.version == 2
    manifest = repo.manifest(space)
    assert manifest is not None and [e.doc for e in manifest.docs] == sorted([FILE_DOC, OTHER_DOC])
    assert repo.snapshot(space, NOW_MS + 2) == snapshot  # nothing new: the same snapshot


def test_the_manifest_is_dag_cbor_with_cid_links(make_repo, alice) -> None:
    repo = make_repo(alice, snapshot_every=1)
    space = repo.create_space("project", NOW_MS).space_id
    append(repo, space, FILE_DOC, "a")
    snapshot = repo.latest_snapshot(space)
    assert snapshot is not None
    fields = cbor.loads(repo.block(snapshot.manifest_cid), "manifest")
    assert fields["format"] == "distspace/snapshot/v1" and fields["space"] == space
    [link] = fields["docs"][0]["chunks"]
    assert link.tag == 42 and link.value[:1] == b"\x00"
    manifest = repo.manifest(space)
    assert manifest is not None and Manifest.from_block(manifest.to_block()) == manifest


def test_a_large_saved_doc_is_cut_into_ipfs_sized_blocks(make_repo, alice) -> None:
    repo = make_repo(alice, snapshot_every=1)
    space = repo.create_space("project", NOW_MS).space_id
    document = repo.document(space, FILE_DOC)
    document.put(native.ROOT, "blob", random.Random(7).randbytes(MAX_BLOCK_BYTES + 1))  # incompressible
    repo.commit(space, FILE_DOC, now_ms=NOW_MS)
    manifest = repo.manifest(space)
    assert manifest is not None
    chunks = manifest.docs[0].chunks
    assert len(chunks) >= 2 and all(len(repo.block(cid)) <= MAX_BLOCK_BYTES for cid in chunks)


def test_a_reopened_store_reads_snapshot_plus_tail(tmp_path: Path, alice) -> None:
    repo = Repo.open(tmp_path / "alice.db", alice, snapshot_every=SNAPSHOT_EVERY)
    space = repo.create_space("project", NOW_MS).space_id
    for word in ("one ", "two ", "three ", "four ", "five ", "six"):
        append(repo, space, FILE_DOC, word)
    heads = repo.heads(space, FILE_DOC)
    repo.close()

    with Repo.open(tmp_path / "alice.db", alice, snapshot_every=SNAPSHOT_EVERY) as reopened:
        assert reopened.backend.doc_snapshot(space, FILE_DOC).change_count == SNAPSHOT_EVERY
        assert read_text(reopened, space, FILE_DOC) == "one two three four five six"
        assert reopened.heads(space, FILE_DOC) == heads
        assert reopened.version(space) == 6


def test_compaction_drops_bytes_yet_every_change_and_signature_still_verifies(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice", snapshot_every=SNAPSHOT_EVERY), make_repo(bob, "bob")
    space = shared_space(alice_repo, bob_repo)
    for word in "abcdef":
        append(alice_repo, space, FILE_DOC, word)
    before = alice_repo.changes_since(space, FILE_DOC, [])

    assert alice_repo.compact(space) == SNAPSHOT_EVERY
    assert alice_repo.compact(space) == 0  # already compacted

    stored = alice_repo.backend.changes(space, FILE_DOC)
    assert [row.raw is None for row in stored] == [True] * SNAPSHOT_EVERY + [False] * 2
    assert alice_repo.changes_since(space, FILE_DOC, []) == before  # regenerated byte for byte
    assert alice_repo.verify() == []
    assert sync(alice_repo, bob_repo, space, FILE_DOC)
    assert read_text(bob_repo, space, FILE_DOC) == "abcdef" and bob_repo.verify() == []


def test_snapshot_every_must_be_positive(make_repo, alice) -> None:
    with pytest.raises(InvalidInput):
        make_repo(alice, snapshot_every=0)


def test_ingest_never_snapshots_and_maintain_takes_the_snapshots_due(make_repo, alice, bob) -> None:
    alice_repo, bob_repo = make_repo(alice, "alice"), make_repo(bob, "bob", snapshot_every=SNAPSHOT_EVERY)
    space = shared_space(alice_repo, bob_repo)
    for word in "abcdef":
        append(alice_repo, space, FILE_DOC, word)
    append(alice_repo, space, OTHER_DOC, "small")
    sync(alice_repo, bob_repo, space, FILE_DOC)
    sync(alice_repo, bob_repo, space, OTHER_DOC)
    assert bob_repo.latest_snapshot(space) is None  # applying stays a pure database write

    assert bob_repo.maintain(NOW_MS) == 1  # only the doc with 6 >= 4 new changes is due
    assert bob_repo.maintain(NOW_MS) == 0
    manifest = bob_repo.manifest(space)
    assert manifest is not None and [(e.doc, e.change_count) for e in manifest.docs] == [(FILE_DOC, 6)]
    assert bob_repo.verify() == []


def test_a_block_two_spaces_share_outlives_one_of_their_snapshots(make_repo, alice) -> None:
    """Equal edits by one author at one time save to equal bytes, so both manifests link one block."""
    repo = make_repo(alice, snapshot_every=1)
    first, second = (repo.create_space(name, NOW_MS).space_id for name in ("one", "two"))
    append(repo, first, FILE_DOC, "same")
    append(repo, second, FILE_DOC, "same")
    shared = repo.backend.doc_snapshot(second, FILE_DOC)
    assert shared is not None and shared.chunks == repo.backend.doc_snapshot(first, FILE_DOC).chunks

    append(repo, first, FILE_DOC, " and more")  # replaces the first space's snapshot

    assert read_text(repo, second, FILE_DOC) == "same"
    assert all(repo.block(cid) for cid in shared.chunks) and repo.verify() == []
