"""A flipped byte on disk: verify names the damaged object, reads of it refuse, nothing else is lost.

Scenario: alice's store holds a file doc with a snapshot (4 changes) and a tail (2 changes), and
another doc with no snapshot. One byte of one stored object is flipped behind the store's back,
then the store is reopened (so nothing is served from the document cache).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from protocol.identity import Identity
from store.backend import MemoryBackend
from store.blocks import cid_text
from store.errors import CorruptionError
from store.repo import Repo
from store.verify import ProblemKind
from store_helpers import FILE_DOC, NOW_MS, OTHER_DOC, append, read_text

SNAPSHOT_EVERY = 4


def flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


class Disk:
    """A store and a way to damage its bytes underneath it, for either backend."""

    def __init__(self, kind: str, tmp_path: Path, identity: Identity) -> None:
        self.kind, self.identity = kind, identity
        self.path = tmp_path / "alice.db"
        self.memory = MemoryBackend()
        self.repo = self.open()
        self.space = self.repo.create_space("project", NOW_MS).space_id
        self.file_hashes = [append(self.repo, self.space, FILE_DOC, f"line {n}\n") for n in range(6)]
        self.other_hashes = [append(self.repo, self.space, OTHER_DOC, word) for word in ("other ", "doc")]

    def open(self) -> Repo:
        if self.kind == "sqlite":
            return Repo.open(self.path, self.identity, snapshot_every=SNAPSHOT_EVERY)
        return Repo(self.memory, self.identity, snapshot_every=SNAPSHOT_EVERY)

    def reopen(self) -> Repo:
        self.repo.close()
        self.repo = self.open()
        return self.repo

    def _update(self, sql: str, parameters: tuple[bytes, ...]) -> None:
        connection = sqlite3.connect(self.path)
        with connection:
            assert connection.execute(sql, parameters).rowcount == 1
        connection.close()

    def flip_change(self, space: bytes, doc: bytes, change_hash: bytes) -> None:
        row = self.repo.backend.change(space, doc, change_hash)
        assert row is not None and row.raw is not None
        if self.kind == "sqlite":
            self._update("UPDATE changes SET raw = ? WHERE hash = ?", (flipped(row.raw), change_hash))
        else:
            self.memory.corrupt_change(space, doc, change_hash, flipped(row.raw))

    def flip_block(self, cid: bytes) -> None:
        data = self.repo.block(cid)
        if self.kind == "sqlite":
            self._update("UPDATE blocks SET data = ? WHERE cid = ?", (flipped(data), cid))
        else:
            self.memory.corrupt_block(cid, flipped(data))


@pytest.fixture
def disk(backend_kind: str, tmp_path: Path, alice) -> Iterator[Disk]:
    disk = Disk(backend_kind, tmp_path, alice)
    assert disk.repo.verify() == []
    yield disk
    disk.repo.close()


def kinds(problems) -> list[tuple[ProblemKind, bytes]]:
    return sorted(((p.kind, p.subject) for p in problems), key=lambda item: (item[0].value, item[1]))


def assert_refused(read: Callable[[], object], *words: str) -> None:
    with pytest.raises(CorruptionError) as caught:
        read()
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_a_flipped_byte_in_a_tail_change_is_found_and_only_that_doc_is_refused(disk: Disk) -> None:
    damaged = disk.file_hashes[5]
    disk.flip_change(disk.space, FILE_DOC, damaged)
    repo = disk.reopen()

    assert kinds(repo.verify()) == [(ProblemKind.CHANGE_DAMAGED, damaged)]
    assert_refused(lambda: repo.document(disk.space, FILE_DOC), damaged.hex(), "damaged")
    assert_refused(lambda: repo.changes_since(disk.space, FILE_DOC, []), damaged.hex())
    assert read_text(repo, disk.space, OTHER_DOC) == "other doc"
    assert repo.heads(disk.space, FILE_DOC) == [damaged]  # metadata is intact and still answers


def test_a_flipped_byte_in_a_change_of_an_unsnapshotted_doc(disk: Disk) -> None:
    damaged = disk.other_hashes[0]
    disk.flip_change(disk.space, OTHER_DOC, damaged)
    repo = disk.reopen()

    assert kinds(repo.verify()) == [(ProblemKind.CHANGE_DAMAGED, damaged)]
    assert_refused(lambda: repo.document(disk.space, OTHER_DOC), damaged.hex())
    assert read_text(repo, disk.space, FILE_DOC) == "".join(f"line {n}\n" for n in range(6))


def test_a_flipped_byte_in_a_snapshot_block_is_found_by_verify_and_by_reads(disk: Disk) -> None:
    manifest = disk.repo.manifest(disk.space)
    assert manifest is not None
    [chunk] = manifest.docs[0].chunks
    disk.flip_block(chunk)
    repo = disk.reopen()

    assert kinds(repo.verify()) == [(ProblemKind.BLOCK_DAMAGED, chunk), (ProblemKind.SNAPSHOT_DAMAGED, FILE_DOC)]
    assert_refused(lambda: repo.block(chunk), cid_text(chunk), "corrupted")
    assert_refused(lambda: repo.document(disk.space, FILE_DOC), cid_text(chunk))
    assert_refused(lambda: repo.compact(disk.space), cid_text(chunk))
    assert all(row.raw is not None for row in repo.backend.changes(disk.space, FILE_DOC))  # compaction refused
    assert read_text(repo, disk.space, OTHER_DOC) == "other doc"


def test_a_flipped_byte_in_the_manifest_leaves_the_docs_readable(disk: Disk) -> None:
    snapshot = disk.repo.latest_snapshot(disk.space)
    assert snapshot is not None
    disk.flip_block(snapshot.manifest_cid)
    repo = disk.reopen()

    found = kinds(repo.verify())
    assert found == [(ProblemKind.BLOCK_DAMAGED, snapshot.manifest_cid), (ProblemKind.MANIFEST_DAMAGED, snapshot.manifest_cid)]
    assert_refused(lambda: repo.manifest(disk.space), cid_text(snapshot.manifest_cid))
    assert read_text(repo, disk.space, FILE_DOC).startswith("line 0")


def test_once_compacted_a_damaged_snapshot_makes_its_changes_unrecoverable_here(disk: Disk) -> None:
    """verify says exactly which changes must be fetched from a peer again."""
    disk.repo.compact(disk.space)
    manifest = disk.repo.manifest(disk.space)
    assert manifest is not None
    disk.flip_block(manifest.docs[0].chunks[0])
    repo = disk.reopen()

    problems = kinds(repo.verify())
    missing = sorted((ProblemKind.CHANGE_MISSING, h) for h in disk.file_hashes[:SNAPSHOT_EVERY])
    assert [p for p in problems if p[0] is ProblemKind.CHANGE_MISSING] == missing
    assert read_text(repo, disk.space, OTHER_DOC) == "other doc"
