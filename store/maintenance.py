"""Keeping a store small and quick to open: snapshots, compaction, and pruning sync states.

A doc whose changes since its last snapshot reach ``snapshot_every`` is due a snapshot: it is
saved as blocks under a new signed space manifest (store/snapshots.py), and the blocks the new
snapshot replaces are deleted. ``Repo.commit`` takes a due snapshot at once (the document is
live, so it costs one ``save()``); docs that grew by remote changes are snapshotted by
``Repo.maintain``, which the node calls when idle. Maintenance then compacts (drops the change
bytes a checked snapshot holds; ``Repo.changes_since`` regenerates them from the document) and
prunes the sync states of peers long gone or beyond a per-peer cap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import native
from protocol.identity import Identity
from store import snapshots
from store.backend import Backend
from store.errors import CorruptionError, InvalidInput
from store.records import Compaction, DocRow, DocSnapshot, SpaceSnapshot, SyncStateKey, WriteBatch

# A peer not synced with for this long has left (or lost its store): its sync states only make a
# reconnect cheaper, so dropping them costs one full reconciliation should it come back.
SYNC_STATE_MAX_AGE_MS = 30 * 24 * 3600 * 1000
# Sync states kept per peer (newest first): twice the docs of a large space (10,000), so an
# honest peer sharing a few large spaces keeps all of its states while one naming junk docs
# cannot grow the table without bound (issue 12: 2.6 MB sent made 50k rows).
SYNC_STATES_PER_PEER_MAX = 20_000
# Peers whose sync states are kept, the most recently synced first: every peer a node syncs
# with in a month, many times over; keys that come and go cannot grow the table past it.
SYNC_STATE_PEERS_MAX = 1024
# Pruning reads every sync state's key (~50 ms at 50k rows); hourly bounds the table well.
SYNC_STATE_PRUNE_INTERVAL_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class Maintenance:
    """What one ``Repo.maintain`` did."""

    snapshots: int = 0  # docs snapshotted
    compacted: int = 0  # change bytes dropped (held by snapshots)
    pruned_sync_states: int = 0
    damaged_docs: int = 0  # skipped: the doc does not load or its snapshot does not check out (verify says why)


class Maintainer:
    """Snapshots, compaction and sync-state pruning over a backend, for one repo.

    It keeps, per doc, how many changes its snapshot holds and how far it is compacted (every
    commit asks the first); ``forget`` drops both after a write it did not see through.

    Args:
        document: ``(space, doc)`` -> a document holding exactly the doc's stored changes,
            without caching one not cached yet (maintenance visits every due doc once).
        latest_version: ``space`` -> its newest local version number (a manifest records it).
        stored_spaces: every space with a stored genesis, damaged or not (their snapshots hold
            blocks a new manifest must not delete).
    """

    def __init__(
        self,
        backend: Backend,
        identity: Identity,
        *,
        block: Callable[[bytes], bytes],
        document: Callable[[bytes, bytes], native.Document],
        latest_version: Callable[[bytes], int],
        stored_spaces: Callable[[], Iterable[bytes]],
    ) -> None:
        self._backend = backend
        self._identity = identity
        self._block = block
        self._document = document
        self._latest_version = latest_version
        self._stored_spaces = stored_spaces
        self._snapshotted: dict[tuple[bytes, bytes], int] = {}  # per doc: the changes its snapshot holds
        self._manifest_roots: dict[bytes, tuple[bytes, list[bytes]]] = {}  # per space: its manifest root's pages
        self._compacted: dict[tuple[bytes, bytes], int] = {}  # per doc: compacted below this position
        self._sync_states_pruned_ms: int | None = None

    def forget(self) -> None:
        self._snapshotted.clear()
        self._compacted.clear()

    def maintain(self, spaces: Iterable[bytes], snapshot_every: int, now_ms: int) -> Maintenance:
        """Snapshot every doc of ``spaces`` due one, compact them, and prune sync states at most
        every SYNC_STATE_PRUNE_INTERVAL_MS; a damaged doc is skipped and counted."""
        spaces = list(spaces)
        saved = compacted = 0
        damaged: list[bytes] = []
        for space in spaces:
            due = self.lagging(space, snapshot_every)
            if due:
                saved += self.snapshot_docs(space, due, now_ms, damaged=damaged)
            compacted += self.compact(space, self._uncompacted(space), damaged=damaged)
        pruned = 0
        if self._sync_states_pruned_ms is None or now_ms - self._sync_states_pruned_ms >= SYNC_STATE_PRUNE_INTERVAL_MS:
            pruned = self.prune_sync_states(spaces, now_ms)
        return Maintenance(saved, compacted, pruned, len(set(damaged)))

    # ----- snapshots -----

    def snapshot_lag(self, row: DocRow) -> int:
        """Changes of the doc beyond its snapshot; every commit asks, so the count is cached."""
        key = (row.space, row.doc)
        if key not in self._snapshotted:
            snapshot = self._backend.doc_snapshot(row.space, row.doc)
            self._snapshotted[key] = snapshot.change_count if snapshot else 0
        return row.change_count - self._snapshotted[key]

    def lagging(self, space: bytes, at_least: int) -> list[DocRow]:
        """The space's docs holding at least ``at_least`` changes beyond their snapshot."""
        snapshotted = {s.doc: s.change_count for s in self._backend.doc_snapshots(space)}
        return [row for row in self._backend.docs(space) if row.change_count - snapshotted.get(row.doc, 0) >= at_least]

    def snapshot_docs(self, space: bytes, rows: Iterable[DocRow], now_ms: int, *, damaged: list[bytes] | None = None) -> int:
        """Save the docs of ``rows`` as blocks, sign a new space manifest, and drop what they
        replace (a paged manifest's old pages too); returns how many were saved. A doc that does
        not load raises CorruptionError, or, given ``damaged``, is skipped and listed there. A
        space past a manifest's budgets (more than MAX_MANIFEST_DOCS docs) gets no snapshot."""
        batch = WriteBatch()
        replaced: list[bytes] = []
        for row in rows:
            doc = row.doc
            try:
                document = self._document(space, doc)
            except CorruptionError:
                if damaged is None:
                    raise
                damaged.append(doc)
                continue
            new, blocks = snapshots.save_doc(space, doc, document, row.change_count, now_ms)
            old = self._backend.doc_snapshot(space, doc)
            replaced.extend(old.chunks if old else ())
            batch.doc_snapshots.append(new)
            batch.blocks.extend((block.cid, block.data) for block in blocks)
        if not batch.doc_snapshots:
            return 0
        current = {s.doc: s for s in self._backend.doc_snapshots(space)}
        current.update((s.doc, s) for s in batch.doc_snapshots)
        try:
            signed = snapshots.Manifest.sign(self._identity, space, list(current.values()), now_ms)
        except InvalidInput:
            return 0  # past a manifest's budgets (store/snapshots.py): no reader would take it, so no snapshot; docs load from changes
        *pages, manifest = signed.to_blocks()
        batch.blocks.extend((block.cid, block.data) for block in [*pages, manifest])
        batch.space_snapshots.append(SpaceSnapshot(space, manifest.cid, self._latest_version(space), now_ms))
        old_manifest = self._backend.space_snapshot(space)
        replaced.extend([old_manifest.manifest_cid, *self._pages_of(space, old_manifest.manifest_cid)] if old_manifest else [])
        new_pages = [page.cid for page in pages]
        batch.deleted_blocks = sorted(set(replaced) - self._referenced_blocks(batch, {space: new_pages}))
        self._backend.write(batch)
        self._manifest_roots[space] = (manifest.cid, new_pages)
        self._snapshotted.update(((s.space, s.doc), s.change_count) for s in batch.doc_snapshots)
        return len(batch.doc_snapshots)

    def _referenced_blocks(self, batch: WriteBatch, new_pages: dict[bytes, list[bytes]]) -> set[bytes]:
        """Every block a snapshot or manifest still links to once ``batch`` is written."""
        written = {(s.space, s.doc): s for s in batch.doc_snapshots}
        manifests = {s.space: s.manifest_cid for s in batch.space_snapshots}
        referenced: set[bytes] = set()
        for space in self._stored_spaces():
            for snapshot in self._backend.doc_snapshots(space):
                referenced.update(written.get((space, snapshot.doc), snapshot).chunks)
            latest = self._backend.space_snapshot(space)
            if space not in manifests and latest is not None:
                referenced.update([latest.manifest_cid, *self._pages_of(space, latest.manifest_cid)])
        for snapshot in written.values():
            referenced.update(snapshot.chunks)
        referenced.update(manifests.values())
        referenced.update(cid for pages in new_pages.values() for cid in pages)
        return referenced

    def _pages_of(self, space: bytes, root: bytes) -> list[bytes]:
        """The pages a space's manifest root links to (none if it is one block), decoded once per root."""
        cached = self._manifest_roots.get(space)
        if cached is None or cached[0] != root:
            cached = self._manifest_roots[space] = (root, snapshots.manifest_pages(root, self._backend.block(root)))
        return cached[1]

    # ----- compaction -----

    def compact(self, space: bytes, due: Sequence[DocSnapshot] | None = None, *, damaged: list[bytes] | None = None) -> int:
        """Drop the bytes of changes that the checked snapshots of ``due`` (default: all of the
        space's) hold; returns how many were dropped. A snapshot that does not check out
        raises CorruptionError, or, given ``damaged``, is skipped and its doc listed there."""
        compactions = []
        dropped = 0
        for snapshot in self._backend.doc_snapshots(space) if due is None else due:
            try:
                snapshots.load_checked(snapshot, self._block)
            except CorruptionError:
                if damaged is None:
                    raise
                damaged.append(snapshot.doc)
                continue
            rows = self._backend.changes(space, snapshot.doc)[: snapshot.change_count]
            dropped += sum(1 for change in rows if change.raw is not None)
            compactions.append(Compaction(space, snapshot.doc, snapshot.change_count))
        if compactions:
            self._backend.write(WriteBatch(compactions=compactions))
            self._compacted.update(((space, c.doc), c.below_position) for c in compactions)
        return dropped

    def _uncompacted(self, space: bytes) -> list[DocSnapshot]:
        """The doc snapshots that hold change bytes not yet dropped. Compaction drops every
        byte below a snapshot's count at once, so the change just below it tells: one read per
        snapshot, and none for a snapshot already compacted in this process."""
        due = []
        for snapshot in self._backend.doc_snapshots(space):
            key = (space, snapshot.doc)
            if self._compacted.get(key) == snapshot.change_count or not snapshot.change_count:
                continue
            rows = self._backend.changes(space, snapshot.doc, snapshot.change_count - 1)
            if rows and rows[0].raw is not None:
                due.append(snapshot)
            else:
                self._compacted[key] = snapshot.change_count
        return due

    # ----- sync states -----

    def prune_sync_states(self, spaces: Iterable[bytes], now_ms: int) -> int:
        """Delete the sync states of docs not held in ``spaces``, of peers not synced with for
        SYNC_STATE_MAX_AGE_MS or beyond the SYNC_STATE_PEERS_MAX most recent, and each peer's
        oldest beyond SYNC_STATES_PER_PEER_MAX; returns how many."""
        held = {(space, row.doc) for space in spaces for row in self._backend.docs(space)}
        by_peer: dict[bytes, list[SyncStateKey]] = defaultdict(list)
        for key in self._backend.sync_state_keys():
            by_peer[key.peer].append(key)
        pruned: list[SyncStateKey] = []
        for keys in by_peer.values():
            keys.sort(key=lambda key: key.seen_ms, reverse=True)
        by_recency = sorted(by_peer.values(), key=lambda keys: keys[0].seen_ms, reverse=True)
        for rank, keys in enumerate(by_recency):
            if rank >= SYNC_STATE_PEERS_MAX or keys[0].seen_ms < now_ms - SYNC_STATE_MAX_AGE_MS:
                pruned.extend(keys)
                continue
            kept = [key for key in keys if (key.space, key.doc) in held]
            pruned.extend(key for key in keys if (key.space, key.doc) not in held)
            pruned.extend(kept[SYNC_STATES_PER_PEER_MAX:])
        if pruned:
            self._backend.write(WriteBatch(pruned_sync_states=pruned), durable=False)
        self._sync_states_pruned_ms = now_ms
        return len(pruned)


__all__ = ["Maintainer", "Maintenance"]
