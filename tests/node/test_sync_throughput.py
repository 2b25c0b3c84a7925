"""Batching in the sync driver, over real libp2p TCP on 127.0.0.1, in one process.

Two ends: a sender pushes the commits of a doc made between two checkpoints as one batch, and
a receiver stores a burst of batches in one transaction. When the commit of such a group fails,
the receiver must not believe it holds what it lost: it starts over from its store, and sync
repairs the rest.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import trio

import native
from node.events import ChangesApplied
from node.local_commits import LocalCommitQueue
from protocol.tips import coverage
from store.repo import Repo, StoreEvent
from sync_helpers import NOW_MS, Node, cluster, genesis_of, identity_of

BURST = 300


def commits_of(repo: Repo) -> list[str]:
    """Start recording every transaction the repo's SQLite connection commits."""
    committed: list[str] = []
    repo.backend._db.set_trace_callback(lambda sql: committed.append(sql) if sql == "COMMIT" else None)  # type: ignore[attr-defined]
    return committed


def applied_batches(node: Node) -> list[int]:
    """The size of every batch the node's driver applied, oldest first."""
    return [applied.changes for applied in node.reports(ChangesApplied)]


async def test_commits_to_a_doc_between_checkpoints_are_pushed_as_one_batch(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        alice.workspace(space).write("typed.txt", "", now_ms=NOW_MS)
        await nodes.converged(space)
        before = len(applied_batches(bob))
        typed = alice.workspace(space)
        for _ in range(BURST):  # no checkpoint in between
            typed.splice("typed.txt", 0, 0, "x", now_ms=NOW_MS)
        await nodes.converged(space)
        assert bob.workspace(space).read("typed.txt") == "x" * BURST
        assert applied_batches(bob)[before:] == [BURST]


async def test_a_burst_of_pushes_is_stored_in_a_few_transactions(tmp_path: Path, figures: Callable[[str, str], None]) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        for name in ("one.txt", "two.txt"):
            alice.workspace(space).write(name, "", now_ms=NOW_MS)
        await nodes.converged(space)
        before = len(applied_batches(bob))
        committed = commits_of(bob.repo)
        typed = alice.workspace(space)
        started = trio.current_time()
        for i in range(BURST):  # alternating docs: no commit continues the one before, so no merging
            typed.splice(("one.txt", "two.txt")[i % 2], 0, 0, "x", now_ms=NOW_MS)
        await nodes.converged(space)
        elapsed_s = trio.current_time() - started
        assert bob.workspace(space).read("one.txt") == bob.workspace(space).read("two.txt") == "x" * (BURST // 2)
        assert len(applied_batches(bob)[before:]) == BURST
        assert len(committed) <= BURST // 4, f"{len(committed)} transactions for {BURST} pushes"
        assert not bob.repo.verify()
        figures("sync burst", f"{BURST} single-change pushes stored in {len(committed)} transactions, {BURST / elapsed_s:.0f}/s end to end")


async def test_a_failed_group_commit_restarts_sync_from_what_the_store_holds(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        alice.workspace(space).write("before.txt", "stored", now_ms=NOW_MS)
        await nodes.converged(space)
        driver = bob.network.driver
        opened = driver.stats["sessions_opened"]
        # Another writer holds Bob's database: his next group commit fails at once.
        bob.repo.backend._db.execute("PRAGMA busy_timeout = 0")  # type: ignore[attr-defined]
        blocker = sqlite3.connect(bob.path / "store.sqlite", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            alice.workspace(space).write("during.txt", "lost once, then repaired", now_ms=NOW_MS)
            await nodes.until(lambda: driver.stats["group_commit_failures"] >= 1)
            assert not bob.workspace(space).exists("during.txt")
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        await nodes.converged(space)
        assert bob.workspace(space).read("during.txt") == "lost once, then repaired"
        assert driver.stats["sessions_opened"] > opened  # the stream was dropped and opened again
        assert not bob.repo.verify()


def test_queued_commits_merge_into_one_batch_that_its_newest_tip_covers() -> None:
    """Even across a remote change: Automerge links each local change to the author's previous
    one, so the newest tip reaches every merged change through the hash links."""
    genesis = genesis_of()
    space, doc = genesis.space_id, bytes(16)
    alice, bob = Repo.open(None, identity_of("alice")), Repo.open(None, identity_of("bob"))
    for repo in (alice, bob):
        repo.add_space(genesis)
    queue = LocalCommitQueue(alice)
    alice.subscribe(lambda event: queue.add(event) if isinstance(event, StoreEvent) and event.origin == "local" else None)

    def append(repo: Repo, text: str) -> bytes:
        document = repo.document(space, doc)
        found = document.get(native.ROOT, "text")
        obj = found.id if isinstance(found, native.ObjectRef) else document.put_object(native.ROOT, "text", "text")
        document.splice_text(obj, document.length(obj), 0, text)
        change = repo.commit(space, doc, now_ms=NOW_MS)
        assert change is not None
        return change

    def sync(source: Repo, target: Repo) -> None:
        changes = [native.decode_change(raw) for raw in source.changes_since(space, doc, target.heads(space, doc))]
        target.apply(space, doc, changes, source.tips(space, doc), now_ms=NOW_MS)

    append(alice, "a")
    append(alice, "b")
    sync(alice, bob)
    remote = append(bob, "r")
    sync(bob, alice)  # a remote change, which Alice's driver does not push
    newest = append(alice, "c")
    [batch] = queue.queued
    changes = [native.decode_change(raw) for raw in batch.changes]
    assert len(changes) == 3 and batch.tip.change_hash == newest and remote not in {c.hash for c in changes}
    result = coverage(space, doc, changes, [batch.tip], is_stored=lambda change_hash: change_hash == remote)
    assert len(result.covered) == 3 and not result.uncovered
