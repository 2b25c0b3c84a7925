"""The SQLite file: its settings, schema versioning, and what survives a reopen or a failed write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store import db
from store.backend import MemoryBackend
from store.errors import SchemaError, StorageError
from store.records import WriteBatch
from store.repo import Repo
from store_helpers import FILE_DOC, NOW_MS, append, read_text


def test_the_database_uses_wal_foreign_keys_and_the_current_schema(tmp_path: Path, alice) -> None:
    Repo.open(tmp_path / "node.db", alice).close()
    connection = db.connect(tmp_path / "node.db")
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert connection.execute("PRAGMA user_version").fetchone() == (db.SCHEMA_VERSION,)


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path, alice) -> None:
    path = tmp_path / "node.db"
    Repo.open(path, alice).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(SchemaError, match=r"newer|knows up to"):
        Repo.open(path, alice)


def test_everything_acknowledged_is_there_after_a_reopen(tmp_path: Path, alice, bob) -> None:
    path = tmp_path / "node.db"
    with Repo.open(path, alice) as repo:
        genesis = repo.create_space("project", NOW_MS)
        space = genesis.space_id
        for word in ("alpha ", "beta"):
            append(repo, space, FILE_DOC, word)
        repo.save_sync_state(bob.public_key, space, FILE_DOC, b"state")
        heads, tips, versions = repo.heads(space, FILE_DOC), repo.tips(space, FILE_DOC), repo.versions(space)

    with Repo.open(path, alice) as repo:
        assert repo.spaces() == [genesis]
        assert read_text(repo, space, FILE_DOC) == "alpha beta"
        assert (repo.heads(space, FILE_DOC), repo.tips(space, FILE_DOC), repo.versions(space)) == (heads, tips, versions)
        assert repo.load_sync_state(bob.public_key, space, FILE_DOC) == b"state"
        assert repo.verify() == []


class FailingBackend(MemoryBackend):
    """A disk that fails the next write, as a full disk would."""

    fail_next = False

    def write(self, batch: WriteBatch, *, durable: bool = True) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StorageError("disk full")
        super().write(batch, durable=durable)


def test_a_failed_commit_leaves_the_store_and_the_document_as_before(alice) -> None:
    backend = FailingBackend()
    repo = Repo(backend, alice)
    space = repo.create_space("project", NOW_MS).space_id
    first = append(repo, space, FILE_DOC, "kept")
    backend.fail_next = True
    with pytest.raises(StorageError, match="disk full"):
        append(repo, space, FILE_DOC, " lost")
    assert repo.heads(space, FILE_DOC) == [first] and repo.version(space) == 1
    assert read_text(repo, space, FILE_DOC) == "kept"  # the unacknowledged edit is gone from the cache too
    append(repo, space, FILE_DOC, " again")
    assert read_text(repo, space, FILE_DOC) == "kept again" and repo.verify() == []
