"""Group commit: many writes in one transaction, all or nothing; local commits stay durable.

The sync driver wraps each burst of received batches in ``Repo.group``; a burst of local commits
goes in a ``group(durable=True)``. These scenarios pin down what callers may rely on: the group
is one atomic write, subscribers hear of it only once it committed, and the repo's caches agree
with the store after a group that failed. On SQLite, remote writes commit without an fsync and
local commits with one (``synchronous``), a durable group with one for all its commits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import native
from store.errors import InvalidInput, StorageError
from store.repo import Repo, RepoEvent, SpaceStored, StoreEvent
from store_helpers import FILE_DOC, NOW_MS, OTHER_DOC, append, read_text, shared_space, sync


def single_change_batches(source: Repo, space: bytes, doc: bytes) -> list[tuple[list[native.DecodedChange], list]]:
    """Each of the source's changes of ``doc`` as the live push of its commit: the change and a tip."""
    tips = {tip.change_hash: tip for tip in source.tips(space, doc)}
    changes = [native.decode_change(raw) for raw in source.changes_since(space, doc, [])]
    return [([change], [tips[change.hash]] if change.hash in tips else []) for change in changes]


@pytest.fixture
def pushes(make_repo, alice, bob) -> tuple[Repo, Repo, bytes, list]:
    """Alice's three appends, one tip each, for Bob to apply: (alice, bob, space, batches)."""
    alice_repo, bob_repo = make_repo(alice, name="alice"), make_repo(bob, name="bob")
    space = shared_space(alice_repo, bob_repo)
    batches = []
    for word in ("one ", "two ", "three"):
        append(alice_repo, space, FILE_DOC, word)
        batches += single_change_batches(alice_repo, space, FILE_DOC)[len(batches) :]
    return alice_repo, bob_repo, space, batches


def test_a_group_of_remote_batches_is_stored_and_announced_once_it_commits(pushes) -> None:
    alice_repo, bob_repo, space, batches = pushes
    heard: list[StoreEvent] = []
    bob_repo.subscribe(heard.append)
    with bob_repo.group():
        for changes, tips in batches:
            assert bob_repo.apply(space, FILE_DOC, changes, tips, now_ms=NOW_MS) == [changes[0].hash]
        assert bob_repo.heads(space, FILE_DOC) == alice_repo.heads(space, FILE_DOC)  # visible inside
        assert heard == []  # not committed yet
    assert [event.hashes for event in heard] == [tuple(c.hash for c in changes) for changes, _ in batches]
    assert [event.version for event in heard] == [1, 2, 3]
    assert read_text(bob_repo, space, FILE_DOC) == "one two three"
    assert bob_repo.tips(space, FILE_DOC) == alice_repo.tips(space, FILE_DOC)
    assert bob_repo.verify() == []


def test_a_group_that_fails_stores_none_of_its_batches(pushes) -> None:
    alice_repo, bob_repo, space, batches = pushes
    first, *rest = batches
    bob_repo.apply(space, FILE_DOC, *first, now_ms=NOW_MS)
    assert read_text(bob_repo, space, FILE_DOC) == "one "  # the document is cached now
    heard: list[StoreEvent] = []
    bob_repo.subscribe(heard.append)
    with pytest.raises(RuntimeError, match="crash"), bob_repo.group():
        for changes, tips in rest:
            bob_repo.apply(space, FILE_DOC, changes, tips, now_ms=NOW_MS)
        raise RuntimeError("crash before the commit")
    assert heard == []
    assert bob_repo.heads(space, FILE_DOC) == [first[0][0].hash] and bob_repo.version(space) == 1
    assert read_text(bob_repo, space, FILE_DOC) == "one "
    assert not bob_repo.has_change(space, FILE_DOC, rest[0][0][0].hash)
    assert [tip.change_hash for tip in bob_repo.tips(space, FILE_DOC)] == [first[0][0].hash]
    # Nothing of the failed group lingers in a cache: the same batches apply again, in full.
    assert sync(alice_repo, bob_repo, space, FILE_DOC) == [changes[0].hash for changes, _ in rest]
    assert read_text(bob_repo, space, FILE_DOC) == "one two three" and bob_repo.version(space) == 2
    assert bob_repo.verify() == []


def test_a_group_takes_no_local_commit(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    append(repo, space, FILE_DOC, "kept")
    with repo.group():
        with pytest.raises(InvalidInput, match="durable"):
            append(repo, space, OTHER_DOC, "refused, ")
    assert repo.doc_ids(space) == [FILE_DOC]  # nothing stored; the edit waits in the document
    append(repo, space, OTHER_DOC, "then committed")
    assert read_text(repo, space, OTHER_DOC) == "refused, then committed"


def synchronous_per_commit(repo: Repo) -> list[str]:
    """Start recording the ``synchronous`` level each SQLite COMMIT of the repo runs at."""
    connection = repo.backend._db  # type: ignore[attr-defined]
    levels = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    seen: list[str] = []

    def trace(statement: str) -> None:
        if statement == "COMMIT":
            seen.append(levels[connection.execute("PRAGMA synchronous").fetchone()[0]])

    connection.set_trace_callback(trace)
    return seen


def test_local_commits_are_fsynced_and_remote_applies_are_not(tmp_path: Path, alice, bob) -> None:
    with Repo.open(tmp_path / "alice.db", alice) as alice_repo, Repo.open(tmp_path / "bob.db", bob) as bob_repo:
        space = shared_space(alice_repo, bob_repo)
        append(alice_repo, space, FILE_DOC, "from alice")
        commits = synchronous_per_commit(bob_repo)
        sync(alice_repo, bob_repo, space, FILE_DOC)
        append(bob_repo, space, OTHER_DOC, "from bob")
        with bob_repo.group():
            append(alice_repo, space, FILE_DOC, " again")
            sync(alice_repo, bob_repo, space, FILE_DOC)
            bob_repo.save_sync_state(alice.public_key, space, FILE_DOC, b"state")
        append(bob_repo, space, OTHER_DOC, " and again")
        assert commits == ["NORMAL", "FULL", "NORMAL", "FULL"]  # apply, commit, group, commit


def test_a_failed_group_commit_raises_and_leaves_the_store_as_before(tmp_path: Path, alice, bob) -> None:
    with Repo.open(tmp_path / "alice.db", alice) as alice_repo, Repo.open(tmp_path / "bob.db", bob) as bob_repo:
        space = shared_space(alice_repo, bob_repo)
        append(alice_repo, space, FILE_DOC, "lost")
        other = Repo.open(tmp_path / "bob.db", bob)  # another writer holds the database's write lock
        other.backend._db.execute("PRAGMA busy_timeout = 0")  # type: ignore[attr-defined]
        bob_repo.backend._db.execute("PRAGMA busy_timeout = 0")  # type: ignore[attr-defined]
        other.backend._db.execute("BEGIN IMMEDIATE")  # type: ignore[attr-defined]
        with pytest.raises(StorageError), bob_repo.group():
            sync(alice_repo, bob_repo, space, FILE_DOC)
        other.backend._db.execute("ROLLBACK")  # type: ignore[attr-defined]
        other.close()
        assert bob_repo.heads(space, FILE_DOC) == [] and bob_repo.version(space) == 0
        sync(alice_repo, bob_repo, space, FILE_DOC)
        assert read_text(bob_repo, space, FILE_DOC) == "lost" and bob_repo.verify() == []


def test_a_durable_group_fsyncs_its_local_commits_once(tmp_path: Path, alice) -> None:
    with Repo.open(tmp_path / "alice.db", alice) as repo:
        space = repo.create_space("project", NOW_MS).space_id
        heard: list[StoreEvent] = []
        repo.subscribe(heard.append)
        commits = synchronous_per_commit(repo)
        with repo.group(durable=True):
            hashes = [append(repo, space, FILE_DOC, f"{n} ") for n in range(5)]
            hashes.append(append(repo, space, OTHER_DOC, "other"))
            repo.save_sync_state(alice.public_key, space, FILE_DOC, b"state")  # a non-durable write joins too
            assert repo.heads(space, FILE_DOC) == [hashes[4]] and heard == []
        assert commits == ["FULL"]
        assert [event.hashes for event in heard] == [(change,) for change in hashes]
    with Repo.open(tmp_path / "alice.db", alice) as reopened:
        assert read_text(reopened, space, FILE_DOC) == "0 1 2 3 4 " and read_text(reopened, space, OTHER_DOC) == "other"
        assert reopened.version(space) == 6 and reopened.verify() == []


def test_a_durable_group_that_fails_stores_none_of_its_commits(make_repo, alice) -> None:
    repo = make_repo(alice, snapshot_every=2)  # the second commit takes a snapshot inside the group
    space = repo.create_space("project", NOW_MS).space_id
    kept = append(repo, space, FILE_DOC, "kept ")
    heard: list[RepoEvent] = []
    repo.subscribe(heard.append)
    with pytest.raises(RuntimeError, match="crash"), repo.group(durable=True):
        append(repo, space, FILE_DOC, "lost ")
        assert repo.latest_snapshot(space) is not None
        append(repo, space, OTHER_DOC, "lost too")
        lost_space = repo.create_space("lost", NOW_MS).space_id
        raise RuntimeError("crash before the commit")
    assert heard == []
    assert repo.heads(space, FILE_DOC) == [kept] and repo.version(space) == 1 and repo.doc_ids(space) == [FILE_DOC]
    assert [genesis.space_id for genesis in repo.spaces()] == [space] and lost_space != space
    assert repo.latest_snapshot(space) is None
    # The cached documents held the lost changes: they are reloaded from the store.
    assert read_text(repo, space, FILE_DOC) == "kept " and read_text(repo, space, OTHER_DOC) == ""
    append(repo, space, FILE_DOC, "then more")
    assert read_text(repo, space, FILE_DOC) == "kept then more" and repo.version(space) == 2
    assert repo.verify() == []


def test_a_space_created_in_a_group_is_announced_once_the_group_commits(make_repo, alice) -> None:
    repo = make_repo(alice)
    heard: list[RepoEvent] = []
    repo.subscribe(heard.append)
    with repo.group(durable=True):
        genesis = repo.create_space("project", NOW_MS)
        append(repo, genesis.space_id, FILE_DOC, "first")
        assert heard == []
    assert [type(event) for event in heard] == [SpaceStored, StoreEvent]
    assert heard[0] == SpaceStored(genesis.space_id, genesis)


def test_durable_groups_do_not_nest_with_any_group(make_repo, alice) -> None:
    repo = make_repo(alice)
    for outer, inner in ((True, False), (False, True), (True, True)):
        with repo.group(durable=outer), pytest.raises(InvalidInput, match="nest"), repo.group(durable=inner):
            pass
