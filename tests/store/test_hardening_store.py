"""Issue 12, classes 7 and 8 in the store: nothing grows without bound over weeks, and the
database is private.

- the document cache is bounded (count and approximate bytes), yet reads and edits still work;
- ``maintain`` compacts what snapshots hold (``changes_since`` still serves every change, byte
  for byte) and prunes sync states of docs not held, of peers long gone, beyond a per-peer cap;
- the database and its -wal/-shm are 0600, also when an older version left them readable.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import native
from store import db, doc_cache, maintenance
from store.doc_cache import CACHED_DOC_BASE_BYTES, MAX_CACHED_DOCS
from store.maintenance import SYNC_STATE_MAX_AGE_MS, SYNC_STATE_PRUNE_INTERVAL_MS
from store.repo import Repo
from store.sqlite_backend import SqliteBackend
from store_helpers import FILE_DOC, NOW_MS, OTHER_DOC, append, read_text, shared_space, sync

OPENED_DOCS = 5_000
GROUP_COMMITS = 500  # one fsync per this many local commits, so the test writes 5,000 docs quickly
DAY_MS = 24 * 3600 * 1000


def doc_id(number: int) -> bytes:
    return number.to_bytes(16, "big")


def test_the_document_cache_stays_bounded_over_five_thousand_docs_and_reads_still_work(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("many", NOW_MS).space_id
    largest = 0
    for start in range(0, OPENED_DOCS, GROUP_COMMITS):
        with repo.group(durable=True):
            for number in range(start, start + GROUP_COMMITS):
                append(repo, space, doc_id(number), f"doc {number}\n")
                largest = max(largest, repo.cache_stats()[0])
    assert largest <= MAX_CACHED_DOCS
    assert read_text(repo, space, doc_id(0)) == "doc 0\n"  # evicted long ago: loads again
    assert read_text(repo, space, doc_id(OPENED_DOCS - 1)) == f"doc {OPENED_DOCS - 1}\n"
    assert repo.cache_stats()[0] <= MAX_CACHED_DOCS


def test_a_document_a_caller_holds_is_not_evicted_so_its_edit_is_committed(make_repo, alice, monkeypatch) -> None:
    monkeypatch.setattr(doc_cache, "MAX_CACHED_DOCS", 4)
    repo = make_repo(alice)
    space = repo.create_space("held", NOW_MS).space_id
    append(repo, space, FILE_DOC, "held\n")
    held = repo.document(space, FILE_DOC)
    for number in range(1, 20):  # far more docs than the cache keeps, all used after the held one
        append(repo, space, doc_id(number), "x")
    text = held.get(native.ROOT, "text")
    assert isinstance(text, native.ObjectRef)
    held.splice_text(text.id, held.length(text.id), 0, "edited\n")
    assert repo.commit(space, FILE_DOC, "edit", now_ms=NOW_MS) is not None
    assert repo.cache_stats()[0] <= 4 + 1  # the bound, and the held one beyond it
    del held, text
    append(repo, space, doc_id(99), "x")
    assert repo.cache_stats()[0] <= 4
    assert read_text(repo, space, FILE_DOC) == "held\nedited\n"


def test_the_cache_is_bounded_by_approximate_bytes_too(make_repo, alice, monkeypatch) -> None:
    limit = 3 * CACHED_DOC_BASE_BYTES
    monkeypatch.setattr(doc_cache, "MAX_CACHED_BYTES", limit)
    repo = make_repo(alice)
    space = repo.create_space("bytes", NOW_MS).space_id
    for number in range(50):
        append(repo, space, doc_id(number), "some text\n")
        docs, size = repo.cache_stats()
        assert size <= limit or docs == 1
    assert all(read_text(repo, space, doc_id(number)) == "some text\n" for number in range(50))


def test_maintain_compacts_what_snapshots_hold_and_every_change_is_still_served(make_repo, alice, bob, carol) -> None:
    alice_repo, carol_repo = make_repo(alice, name="alice"), make_repo(carol, name="carol")
    bob_repo = make_repo(bob, name="bob", snapshot_every=10)
    space = shared_space(alice_repo, bob_repo, carol_repo)
    for number in range(25):
        append(alice_repo, space, FILE_DOC, f"{number}\n")
    sync(alice_repo, bob_repo, space, FILE_DOC)

    assert bob_repo.maintain(NOW_MS) == 1
    assert bob_repo.last_maintenance.compacted == 25
    assert all(row.raw is None for row in bob_repo.backend.changes(space, FILE_DOC))
    assert bob_repo.changes_since(space, FILE_DOC, []) == alice_repo.changes_since(space, FILE_DOC, [])
    sync(bob_repo, carol_repo, space, FILE_DOC)  # a new peer fetches the whole doc from bob
    assert read_text(carol_repo, space, FILE_DOC) == read_text(alice_repo, space, FILE_DOC)
    assert bob_repo.verify() == [] and carol_repo.verify() == []
    bob_repo.maintain(NOW_MS)
    assert bob_repo.last_maintenance.compacted == 0


def test_maintain_prunes_sync_states_of_unheld_docs_gone_peers_and_beyond_the_per_peer_cap(make_repo, alice, monkeypatch) -> None:
    monkeypatch.setattr(maintenance, "SYNC_STATES_PER_PEER_MAX", 2)
    now = [NOW_MS]
    repo = make_repo(alice, clock=lambda: now[0])
    space = repo.create_space("states", NOW_MS).space_id
    held = [doc_id(number) for number in range(3)]
    for doc in held:
        append(repo, space, doc, "x")
    gone, busy, junk = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
    repo.save_sync_state(gone, space, held[0], b"gone")
    now[0] += SYNC_STATE_MAX_AGE_MS + DAY_MS
    for offset, doc in enumerate(held):  # busy's oldest goes beyond the cap of 2
        now[0] += offset
        repo.save_sync_state(busy, space, doc, b"busy")
    repo.save_sync_state(junk, space, bytes([0xEE]) * 16, b"junk")  # a doc this store does not hold
    repo.save_sync_state(junk, space, held[0], b"junk")

    repo.maintain(now[0])

    assert repo.last_maintenance.pruned_sync_states == 3
    assert repo.load_sync_state(gone, space, held[0]) is None
    assert [repo.load_sync_state(busy, space, doc) for doc in held] == [None, b"busy", b"busy"]
    assert repo.load_sync_state(junk, space, bytes([0xEE]) * 16) is None and repo.load_sync_state(junk, space, held[0]) == b"junk"
    repo.save_sync_state(junk, space, bytes([0xEF]) * 16, b"junk")
    repo.maintain(now[0] + 1)  # pruning waits its interval
    assert repo.load_sync_state(junk, space, bytes([0xEF]) * 16) == b"junk"
    repo.maintain(now[0] + SYNC_STATE_PRUNE_INTERVAL_MS)
    assert repo.load_sync_state(junk, space, bytes([0xEF]) * 16) is None


def test_a_schema_one_database_migrates_with_its_sync_states_stamped_now(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in db._statements(db.MIGRATIONS[0]):
        connection.execute(statement)
    connection.execute("PRAGMA user_version = 1")
    connection.execute("INSERT INTO spaces VALUES (?, ?, 0)", (bytes(32), b"genesis"))
    connection.execute("INSERT INTO sync_states VALUES (?, ?, ?, ?)", (bytes(32), bytes(32), bytes(16), b"state"))
    connection.close()
    backend = SqliteBackend(path)
    try:
        [key] = backend.sync_state_keys()
        assert key.seen_ms > NOW_MS  # stamped at the migration, so not pruned as ancient
        assert backend.sync_state(bytes(32), bytes(32), bytes(16)) == b"state"
    finally:
        backend.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_are_private_even_when_left_readable(tmp_path: Path, alice) -> None:
    path = tmp_path / "node.db"
    with Repo.open(path, alice) as repo:
        append(repo, repo.create_space("private", NOW_MS).space_id, FILE_DOC, "secret\n")
    for file in (path, path.with_name("node.db-wal"), path.with_name("node.db-shm")):
        file.touch()
        os.chmod(file, 0o644)  # as an older version, or a loose umask, left them
    with Repo.open(path, alice) as repo:
        space = repo.spaces()[0].space_id
        append(repo, space, OTHER_DOC, "more\n")
        for file in (path, path.with_name("node.db-wal"), path.with_name("node.db-shm")):
            assert mode(file) == 0o600, file


def test_a_new_database_is_private_whatever_the_umask(tmp_path: Path, alice) -> None:
    previous = os.umask(0o022)
    try:
        path = tmp_path / "fresh.db"
        with Repo.open(path, alice) as repo:
            append(repo, repo.create_space("fresh", NOW_MS).space_id, FILE_DOC, "x")
            assert {mode(file) for file in tmp_path.iterdir() if file.name.startswith("fresh.db")} == {0o600}
    finally:
        os.umask(previous)


def test_sync_states_are_kept_for_the_most_recent_peers_only(make_repo, alice, monkeypatch) -> None:
    """Keys cost nothing: the states of peers beyond the cap, least recently synced first, go."""
    monkeypatch.setattr(maintenance, "SYNC_STATE_PEERS_MAX", 3)
    now = [NOW_MS]
    repo = make_repo(alice, clock=lambda: now[0])
    space = repo.create_space("peers", NOW_MS).space_id
    doc = doc_id(0)
    append(repo, space, doc, "x")
    peers = [bytes([i + 1]) * 32 for i in range(5)]
    for peer in peers:
        now[0] += 1
        repo.save_sync_state(peer, space, doc, b"state")
    repo.maintain(now[0])
    assert [repo.load_sync_state(peer, space, doc) for peer in peers] == [None, None, b"state", b"state", b"state"]
