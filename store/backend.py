"""Storage backends: a dumb, synchronous persistence interface and its in-memory implementation.

As in automerge-repo's StorageAdapter, a backend holds no policy: it persists a ``WriteBatch``
atomically and answers simple reads. The repo decides what to write, when to snapshot, what is
acknowledged — and how durable each write must be: a ``durable`` write survives power loss once
``write`` returns; any other survives a crash of the process, and is made durable by the next
durable write (writes reach the disk in order, so a durable one carries every earlier one).
Writes made inside ``group()`` share one transaction: one commit for a burst of remote batches;
inside ``group(durable=True)`` durable writes join too, and the one commit is durable: one fsync
for a burst of local commits.
``SqliteBackend`` (store/sqlite_backend.py) is the durable one; ``MemoryBackend`` behaves
identically without a file, for tests and simulations. One conformance suite
(tests/store/test_backend_conformance.py) runs against both.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any, Protocol

from store.errors import InvalidInput, StorageError
from store.records import (
    CapabilityRow,
    ChangeRow,
    DocRow,
    DocSnapshot,
    QuarantineRow,
    RefusedRow,
    SpaceSnapshot,
    SyncStateKey,
    TextRow,
    TipRow,
    VersionRecord,
    WriteBatch,
)


class Backend(Protocol):
    def write(self, batch: WriteBatch, *, durable: bool = True) -> None:
        """Persist the whole batch or nothing; raise StorageError if it cannot.

        Raises:
            InvalidInput: a durable write inside a group that is not durable (its commit is not
                fsynced).
        """
        ...

    def group(self, durable: bool = False) -> AbstractContextManager[None]:
        """Make every write inside one transaction, committed when the block exits.

        The commit is durable if ``durable`` (then durable writes may join, and each is durable
        only once the group has committed), else not. Reads inside see the group's writes, in
        the order they were made. All or nothing: if the block raises, a write fails
        (StorageError from it, or from a later read, write or the exit), or the commit fails,
        none of the group's writes is stored. Groups do not nest (InvalidInput).
        """
        ...

    def spaces(self) -> list[tuple[bytes, bytes]]:
        """(space id, encoded genesis) of every space, in the order they were added."""
        ...

    def docs(self, space: bytes) -> list[DocRow]: ...

    def doc(self, space: bytes, doc: bytes) -> DocRow | None: ...

    def docs_among(self, space: bytes, docs: Sequence[bytes]) -> list[DocRow]:
        """The rows ``doc`` would answer for those of ``docs`` that have one, in a few statements."""
        ...

    def stored_hashes(self, space: bytes, doc: bytes, hashes: Collection[bytes]) -> set[bytes]:
        """The subset of ``hashes`` stored as changes of this doc."""
        ...

    def changes(self, space: bytes, doc: bytes, from_position: int = 0) -> list[ChangeRow]:
        """The doc's changes at ``from_position`` and after, in position (causal) order."""
        ...

    def change(self, space: bytes, doc: bytes, change_hash: bytes) -> ChangeRow | None: ...

    def author_seq(self, space: bytes, doc: bytes, author: bytes) -> tuple[int, bytes] | None:
        """(seq, hash) of the author's stored change with the highest seq in this doc (of two
        with that seq, the one stored first); None if the author has none. One index seek."""
        ...

    def tips(self, space: bytes, doc: bytes) -> list[TipRow]: ...

    def latest_version(self, space: bytes) -> int: ...

    def versions(self, space: bytes, since: int, limit: int | None) -> list[VersionRecord]:
        """Versions numbered above ``since``, oldest first, at most ``limit``."""
        ...

    def heads_at(self, space: bytes, version: int) -> dict[bytes, tuple[bytes, ...]]:
        """Each doc's heads after its newest version numbered at most ``version``."""
        ...

    def sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None: ...

    def sync_state_keys(self) -> list[SyncStateKey]:
        """Every stored sync state's key and last save time (not the state), for pruning."""
        ...

    def quarantined(self, space: bytes) -> list[QuarantineRow]:
        """Every change and tip quarantined in the space, in the order they were quarantined."""
        ...

    def block(self, cid: bytes) -> bytes | None: ...

    def blocks(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (cid, data), for verify."""
        ...

    def capability_records(self, space: bytes) -> list[CapabilityRow]:
        """Every capability record stored for the space, sorted by hash."""
        ...

    def refused_changes(self, space: bytes) -> list[RefusedRow]:
        """Every refused change kept for the space, oldest first (store/refused.py)."""
        ...

    def refused_hashes(self, space: bytes) -> list[bytes]:
        """The hashes of ``refused_changes``, in that order, without their bytes."""
        ...

    def doc_snapshot(self, space: bytes, doc: bytes) -> DocSnapshot | None: ...

    def doc_snapshots(self, space: bytes) -> list[DocSnapshot]: ...

    def space_snapshot(self, space: bytes) -> SpaceSnapshot | None: ...

    def text(self, space: bytes, doc: bytes) -> TextRow | None:
        """The doc's cached text row, at whatever heads it was written for (the caller compares)."""
        ...

    def close(self) -> None: ...


NOT_DURABLE_GROUP = "a durable write cannot join a group that is not durable: its commit is not fsynced"
_ABSENT: Any = object()  # a key's "value" when the dict does not hold it


def _restore(table: dict[Any, Any], key: object, value: object) -> None:
    if value is _ABSENT:
        del table[key]
    else:
        table[key] = value


class _InSpace(Protocol):
    @property
    def space(self) -> bytes: ...


class MemoryBackend:
    """Everything in dicts; ``write`` checks the whole batch first, then applies it, so it is atomic.

    It enforces what SQLite's constraints enforce (rows of unknown spaces, position and version
    number clashes), so the two backends fail alike. Positions must also be contiguous, which the
    repo always writes and which lets a doc's change list be indexed by position.
    """

    def __init__(self) -> None:
        self._spaces: dict[bytes, bytes] = {}
        self._docs: dict[tuple[bytes, bytes], DocRow] = {}
        # Insertion-ordered, and changes arrive in position order: iteration is position order.
        self._changes: dict[tuple[bytes, bytes], dict[bytes, ChangeRow]] = {}
        self._tips: dict[tuple[bytes, bytes], dict[bytes, TipRow]] = {}
        # Per doc: author -> (seq, hash) of its stored change with the highest seq (the index).
        self._authors: dict[tuple[bytes, bytes], dict[bytes, tuple[int, bytes]]] = {}
        self._quarantine: dict[bytes, dict[tuple[bytes, str, bytes, bytes], QuarantineRow]] = {}
        self._versions: dict[bytes, list[VersionRecord]] = {}
        self._sync_states: dict[tuple[bytes, bytes, bytes], tuple[bytes, int]] = {}  # -> (state, seen_ms)
        self._blocks: dict[bytes, bytes] = {}
        self._doc_snapshots: dict[tuple[bytes, bytes], DocSnapshot] = {}
        self._space_snapshots: dict[bytes, SpaceSnapshot] = {}
        self._capabilities: dict[bytes, dict[bytes, CapabilityRow]] = {}  # space -> hash -> row
        self._refused: dict[bytes, dict[bytes, RefusedRow]] = {}  # space -> hash -> row, oldest first
        self._texts: dict[tuple[bytes, bytes], TextRow] = {}
        # While a group is open: how to take back each of its writes, oldest first.
        self._undo: list[Callable[[], object]] | None = None
        self._group_durable = False  # the open group takes durable writes
        self._group_lost = False  # a write of the open group failed, as it fails SQLite's group

    # ----- writes -----

    def write(self, batch: WriteBatch, *, durable: bool = True) -> None:
        if self._undo is not None:
            if durable and not self._group_durable:
                raise InvalidInput(NOT_DURABLE_GROUP)
            if self._group_lost:
                raise StorageError("a write of this group failed: nothing of the group is written")
        try:
            self._check(batch)
        except StorageError:
            if self._undo is not None:
                self._group_lost = True
            raise
        put = self._put
        for space, genesis in batch.spaces:
            if space not in self._spaces:
                put(self._spaces, space, genesis)
        for change in batch.changes:
            rows = self._changes.setdefault((change.space, change.doc), {})
            if change.hash not in rows:
                put(rows, change.hash, change)
                authors = self._authors.setdefault((change.space, change.doc), {})
                if change.seq > authors.get(change.actor, (-1, b""))[0]:
                    put(authors, change.actor, (change.seq, change.hash))
        for tip in batch.tips:
            put(self._tips.setdefault((tip.space, tip.doc), {}), tip.author, tip)
        for doc_row in batch.docs:
            put(self._docs, (doc_row.space, doc_row.doc), doc_row)
        for version in batch.versions:
            records = self._versions.setdefault(version.space, [])
            records.append(version.record)
            if self._undo is not None:
                self._undo.append(records.pop)
        for sync in batch.sync_states:
            put(self._sync_states, (sync.peer, sync.space, sync.doc), (sync.state, sync.seen_ms))
        for key in batch.pruned_sync_states:
            if (key.peer, key.space, key.doc) in self._sync_states:
                put(self._sync_states, (key.peer, key.space, key.doc), _ABSENT)
        for cid, data in batch.blocks:
            if cid not in self._blocks:
                put(self._blocks, cid, data)
        for snapshot in batch.doc_snapshots:
            put(self._doc_snapshots, (snapshot.space, snapshot.doc), snapshot)
        for space_snapshot in batch.space_snapshots:
            put(self._space_snapshots, space_snapshot.space, space_snapshot)
        for cid in batch.deleted_blocks:
            if cid in self._blocks:
                put(self._blocks, cid, _ABSENT)
        for compaction in batch.compactions:
            rows = self._changes.get((compaction.space, compaction.doc), {})
            for change_hash, row in rows.items():
                if row.position < compaction.below_position and row.raw is not None:
                    put(rows, change_hash, row._replace(raw=None))
        for version in batch.rewritten_versions:
            records = self._versions[version.space]
            index = next(i for i, record in enumerate(records) if record.number == version.record.number)
            put(self._versions, version.space, [*records[:index], version.record, *records[index + 1 :]])
        for record in batch.capability_records:
            held = self._capabilities.setdefault(record.space, {})
            if record.hash not in held:
                put(held, record.hash, record)
        for refused in batch.refused:
            kept = self._refused.setdefault(refused.space, {})
            if refused.hash not in kept:
                put(kept, refused.hash, refused)
        for space, change_hash in batch.unrefused:
            kept = self._refused.get(space, {})
            if change_hash in kept:
                put(kept, change_hash, _ABSENT)
        for text in batch.texts:
            put(self._texts, (text.space, text.doc), text)
        self._write_quarantine(batch.quarantined)

    def _write_quarantine(self, rows: Sequence[QuarantineRow]) -> None:
        """Move changes and tips into the quarantine, renumbering each touched doc's changes."""
        put = self._put
        touched = set()
        for row in rows:
            key = (row.space, row.doc)
            quarantine = self._quarantine.setdefault(row.space, {})
            if (row.doc, row.kind, row.hash, row.actor) not in quarantine:
                put(quarantine, (row.doc, row.kind, row.hash, row.actor), row)
            if row.kind == "tip":
                tip = self._tips.get(key, {}).get(row.actor)
                if tip is not None and tip.change_hash == row.hash:
                    put(self._tips[key], row.actor, _ABSENT)
            elif row.hash in self._changes.get(key, {}):
                touched.add(key)
        quarantined = {(row.space, row.doc, row.hash) for row in rows if row.kind == "change"}
        for key in touched:
            kept = [change for change in self._changes[key].values() if (*key, change.hash) not in quarantined]
            renumbered = {change.hash: change._replace(position=i) for i, change in enumerate(kept)}
            authors: dict[bytes, tuple[int, bytes]] = {}
            for change in kept:
                if change.seq > authors.get(change.actor, (-1, b""))[0]:
                    authors[change.actor] = (change.seq, change.hash)
            put(self._changes, key, renumbered)
            put(self._authors, key, authors)

    @contextmanager
    def group(self, durable: bool = False) -> Iterator[None]:
        if self._undo is not None:
            raise InvalidInput("groups do not nest")
        self._undo = []
        self._group_durable = durable
        try:
            yield
            if self._group_lost:
                raise StorageError("a write of this group failed: nothing of the group is written")
        except BaseException:
            for undo in reversed(self._undo):
                undo()
            raise
        finally:
            self._undo = None
            self._group_durable = False
            self._group_lost = False

    def _put(self, table: dict[Any, Any], key: object, value: object) -> None:
        """``table[key] = value`` (``_ABSENT`` deletes), remembering how to undo it inside a group.

        Undoing in reverse restores every dict's order too: a key added is the last one then.
        """
        if self._undo is not None:
            self._undo.append(partial(_restore, table, key, table.get(key, _ABSENT)))
        _restore(table, key, value)

    def _check(self, batch: WriteBatch) -> None:
        """Refuse the batch, before touching anything, where SQLite's constraints would."""
        spaces = set(self._spaces) | {space for space, _ in batch.spaces}
        tables: tuple[Sequence[_InSpace], ...] = (
            batch.changes,
            batch.tips,
            batch.docs,
            batch.versions,
            batch.sync_states,
            batch.doc_snapshots,
            batch.space_snapshots,
            batch.quarantined,
            batch.capability_records,
            batch.refused,
            batch.texts,
        )
        for rows in tables:
            for row in rows:
                if row.space not in spaces:
                    raise StorageError(f"FOREIGN KEY constraint failed: unknown space {row.space.hex()[:12]}")
        next_position: dict[tuple[bytes, bytes], int] = {}
        for change in batch.changes:
            key = (change.space, change.doc)
            stored = self._changes.get(key, {})
            if change.hash in stored:
                continue
            expected = next_position.get(key, len(stored))
            if change.position != expected:
                raise StorageError(f"UNIQUE constraint failed: position {change.position} (the next free is {expected})")
            next_position[key] = expected + 1
        next_number: dict[bytes, int] = {}
        for version in batch.versions:
            lowest = next_number.get(version.space, self.latest_version(version.space) + 1)
            if version.record.number < lowest:
                raise StorageError(f"UNIQUE constraint failed: version {version.record.number} exists")
            next_number[version.space] = version.record.number + 1
        for version in batch.rewritten_versions:
            if all(record.number != version.record.number for record in self._versions.get(version.space, [])):
                raise StorageError(f"no version {version.record.number} to rewrite")

    # ----- reads -----

    def spaces(self) -> list[tuple[bytes, bytes]]:
        return list(self._spaces.items())

    def docs(self, space: bytes) -> list[DocRow]:
        return sorted((row for (row_space, _), row in self._docs.items() if row_space == space), key=lambda r: r.doc)

    def doc(self, space: bytes, doc: bytes) -> DocRow | None:
        return self._docs.get((space, doc))

    def docs_among(self, space: bytes, docs: Sequence[bytes]) -> list[DocRow]:
        return [row for doc in docs if (row := self._docs.get((space, doc))) is not None]

    def stored_hashes(self, space: bytes, doc: bytes, hashes: Collection[bytes]) -> set[bytes]:
        rows = self._changes.get((space, doc), {})
        return {change_hash for change_hash in hashes if change_hash in rows}

    def changes(self, space: bytes, doc: bytes, from_position: int = 0) -> list[ChangeRow]:
        rows = list(self._changes.get((space, doc), {}).values())
        return rows[from_position:]

    def change(self, space: bytes, doc: bytes, change_hash: bytes) -> ChangeRow | None:
        return self._changes.get((space, doc), {}).get(change_hash)

    def author_seq(self, space: bytes, doc: bytes, author: bytes) -> tuple[int, bytes] | None:
        return self._authors.get((space, doc), {}).get(author)

    def tips(self, space: bytes, doc: bytes) -> list[TipRow]:
        return sorted(self._tips.get((space, doc), {}).values(), key=lambda tip: tip.author)

    def latest_version(self, space: bytes) -> int:
        records = self._versions.get(space)
        return records[-1].number if records else 0

    def versions(self, space: bytes, since: int, limit: int | None) -> list[VersionRecord]:
        newer = [record for record in self._versions.get(space, []) if record.number > since]
        return newer if limit is None else newer[:limit]

    def heads_at(self, space: bytes, version: int) -> dict[bytes, tuple[bytes, ...]]:
        heads: dict[bytes, tuple[bytes, ...]] = {}
        for record in self._versions.get(space, []):
            if record.number > version:
                break
            heads[record.doc] = record.heads
        return heads

    def sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None:
        found = self._sync_states.get((peer, space, doc))
        return found[0] if found else None

    def sync_state_keys(self) -> list[SyncStateKey]:
        return [SyncStateKey(*key, seen_ms) for key, (_, seen_ms) in self._sync_states.items()]

    def quarantined(self, space: bytes) -> list[QuarantineRow]:
        return list(self._quarantine.get(space, {}).values())

    def block(self, cid: bytes) -> bytes | None:
        return self._blocks.get(cid)

    def blocks(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._blocks.items()))

    def capability_records(self, space: bytes) -> list[CapabilityRow]:
        return sorted(self._capabilities.get(space, {}).values(), key=lambda row: row.hash)

    def refused_changes(self, space: bytes) -> list[RefusedRow]:
        return list(self._refused.get(space, {}).values())

    def refused_hashes(self, space: bytes) -> list[bytes]:
        return list(self._refused.get(space, {}))

    def doc_snapshot(self, space: bytes, doc: bytes) -> DocSnapshot | None:
        return self._doc_snapshots.get((space, doc))

    def doc_snapshots(self, space: bytes) -> list[DocSnapshot]:
        return sorted((s for (s_space, _), s in self._doc_snapshots.items() if s_space == space), key=lambda s: s.doc)

    def space_snapshot(self, space: bytes) -> SpaceSnapshot | None:
        return self._space_snapshots.get(space)

    def text(self, space: bytes, doc: bytes) -> TextRow | None:
        return self._texts.get((space, doc))

    def close(self) -> None:
        """Nothing to release; the data goes with the object."""

    # ----- test hooks: damage stored bytes the way a bad disk would -----

    def corrupt_change(self, space: bytes, doc: bytes, change_hash: bytes, raw: bytes) -> None:
        rows = self._changes[space, doc]
        rows[change_hash] = rows[change_hash]._replace(raw=raw)

    def corrupt_block(self, cid: bytes, data: bytes) -> None:
        self._blocks[cid] = data
