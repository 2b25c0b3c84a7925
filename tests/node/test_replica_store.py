"""What the node's store adapter (node/replica_store.py) adds to the Repo it wraps: sync states
written behind, and a memo of stored hashes. The ChangeStore contract it shares with the other
stores is tests/protocol/test_change_store_contract.py."""

from __future__ import annotations

from pathlib import Path

import native
from node.replica_store import ReplicaStore
from protocol.clock import FIXED_NOW_MS
from protocol.identity import Identity
from protocol.memory import MemoryChangeStore
from protocol.space import Genesis
from store.repo import Repo

alice, bob, carol = (Identity(bytes([byte]) * 32) for byte in (0xA1, 0xB0, 0xCA))
GENESIS = Genesis.create(alice, "adapter space", FIXED_NOW_MS, nonce=bytes(16))
SPACE = GENESIS.space_id
DOC = bytes([0x0F]) * 16


def bobs_repo(tmp_path: Path) -> Repo:
    repo = Repo.open(tmp_path / "bob.db", bob, clock=lambda: FIXED_NOW_MS)
    repo.add_space(GENESIS)
    return repo


def test_a_sync_state_reaches_the_repo_only_at_flush_and_reset_drops_it(tmp_path: Path) -> None:
    with bobs_repo(tmp_path) as repo:
        adapter = ReplicaStore(repo)
        adapter.save_sync_state(carol.public_key, SPACE, DOC, b"held")
        assert adapter.load_sync_state(carol.public_key, SPACE, DOC) == b"held"
        assert repo.load_sync_state(carol.public_key, SPACE, DOC) is None  # written behind
        adapter.flush()
        assert repo.load_sync_state(carol.public_key, SPACE, DOC) == b"held"
        adapter.save_sync_state(carol.public_key, SPACE, DOC, b"lost")
        adapter.reset()  # after a failed group commit: unflushed states are hints, dropped
        assert adapter.load_sync_state(carol.public_key, SPACE, DOC) == b"held"
        adapter.flush()
        assert repo.load_sync_state(carol.public_key, SPACE, DOC) == b"held"


def test_a_failed_flush_is_reported_not_raised(tmp_path: Path) -> None:
    failures: list[str] = []
    repo = bobs_repo(tmp_path)
    adapter = ReplicaStore(repo, on_failure=lambda counter, event, **fields: failures.append(counter))
    adapter.save_sync_state(carol.public_key, SPACE, DOC, b"state")
    repo.close()  # every write now fails
    adapter.flush()
    assert failures == ["state_flush_failures"]


def test_has_change_remembers_what_it_saw_stored_and_reset_forgets(tmp_path: Path) -> None:
    with bobs_repo(tmp_path) as repo:
        adapter = ReplicaStore(repo)
        commit = MemoryChangeStore().commit(alice, SPACE, DOC, [lambda d: d.put(native.ROOT, "k", "v")], now_ms=FIXED_NOW_MS)
        change = native.decode_change(commit.changes[0])
        assert not adapter.has_change(SPACE, DOC, change.hash)
        assert adapter.apply(SPACE, DOC, [change], [commit.tip]) == [change.hash]
        queries: list[bytes] = []
        real = repo.has_change
        repo.has_change = lambda space, doc, h: queries.append(h) or real(space, doc, h)  # type: ignore[method-assign]
        assert adapter.has_change(SPACE, DOC, change.hash) and queries == []  # answered from the memo
        adapter.reset()
        assert adapter.has_change(SPACE, DOC, change.hash) and queries == [change.hash]  # asked the repo again
