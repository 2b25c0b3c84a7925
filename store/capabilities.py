"""The store side of private spaces: the capability log's persistence, and the paths a change
touches (what ``CapabilityLog.change_refusal`` is asked about).

The log. Each space's signed grants and revocations are rows of ``capability_records``
(content-addressed, as received); the ``CapabilityLog`` over them is built once per space
(from the genesis and every stored record) and kept, updated as records are added. Its rules
are protocol/capabilities.py's: the store only keeps the records and hands them over.

Paths. A change is authorised by the paths it touches:

- a file doc's change: the file's path in the index now (its entry's stored parents and names,
  store/tree.py ``stored_path``: no conflict names, removal ignored), or None when the index
  has no entry for the doc (then only an unscoped writer may write it). Looked up once per
  doc and index heads: a burst of changes of one file costs one lookup.
- an index change: the paths, before and after it, of every entry it touches, read on the index
  forked at the change's deps — so every peer, whatever else it holds, computes the same
  paths. A directory's move also moves everything below it: their old and new paths count
  too (a writer scoped to ``src/*`` cannot move ``docs`` into ``src``, nor ``src/x`` out).

Only private spaces ask (protocol/ingest.py): an open space's ingest pays nothing for this.

Revocation of stored changes. Ingest refuses a revoked key's changes above the cutoff its
revocation names; but this store may hold some already, taken before the revocation reached it.
When records make a revocation effective (``revoked_changes``), those changes — the key's in
each doc with a seq above the cutoff, and every stored change that depends on one — go to the
quarantine with the reason (``REVOKED_REASON``), the docs are rebuilt from what is left, in the
same transaction as the records (store/repair.py's rewrite), and ``verify`` lists them
(``REVOKED_CHANGE``). A doc whose snapshot holds such a change is left as it is (its bytes may
exist only in the snapshot) and named in the result.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import native
from protocol.capabilities import CapabilityLog, Record, decode_record
from protocol.errors import CapabilityError
from protocol.space import INDEX_DOC_ID, Genesis
from store import repair  # a module, not its names: repair imports verify, which imports this
from store.backend import Backend
from store.records import WriteBatch
from store.tree import DIR, Entry, IndexReader, read_entry, touched_entries

REVOKED_REASON = "revoked: its author's key was revoked and the revoker had not seen it"
REVOKED_DEPENDENT_REASON = "revoked: depends on a change of a revoked key"

# Docs whose paths are remembered per space (for one index state: they are forgotten when the
# index moves). A path is a few lookups of the index; a busy space edits a few files at a time.
PATHS_CACHED = 4_096


def load_log(backend: Backend, genesis: Genesis) -> CapabilityLog:
    """A space's log from its genesis and stored records; a record that no longer decodes (a
    damaged row) is left out, and ``verify`` reports it (``damaged_records``)."""
    records: list[Record] = []
    for row in backend.capability_records(genesis.space_id):
        try:
            record = decode_record(row.data)
        except CapabilityError:
            continue
        if record.space == genesis.space_id:
            records.append(record)
    return CapabilityLog(genesis, records)


def damaged_records(backend: Backend, space: bytes) -> list[tuple[bytes, str]]:
    """(hash, what is wrong) of every stored record of the space that does not check out."""
    damaged = []
    for row in backend.capability_records(space):
        try:
            record = decode_record(row.data)
        except CapabilityError as error:
            damaged.append((row.hash, f"does not decode: {error}"))
            continue
        if record.hash != row.hash or record.space != space:
            damaged.append((row.hash, "is stored under another hash or space than its own"))
    return damaged


@dataclass(frozen=True, slots=True)
class Revoked:
    """What a newly effective revocation takes out of the stored docs (module docstring)."""

    batch: WriteBatch  # the quarantine write, for every doc touched
    changes: dict[bytes, tuple[bytes, ...]]  # doc -> hashes quarantined, in position order
    left: tuple[bytes, ...]  # docs left as they are: their snapshot holds a revoked change


def revoked_changes(backend: Backend, space: bytes, cutoffs: dict[bytes, dict[bytes, int]], now_ms: int) -> Revoked:
    """The write removing the stored changes that ``cutoffs`` (newly effective) refuse."""
    batch = WriteBatch()
    removed: dict[bytes, tuple[bytes, ...]] = {}
    left: list[bytes] = []
    for row in backend.docs(space):
        over = {key: cutoff.get(row.doc, 0) for key, cutoff in cutoffs.items()}
        newest = {key: backend.author_seq(space, row.doc, key) for key in over}
        if not any(found is not None and found[0] > over[key] for key, found in newest.items()):
            continue  # one index seek per revoked key: most docs hold nothing of theirs
        changes = backend.changes(space, row.doc)
        roots = {c.hash: REVOKED_REASON for c in changes if c.actor in over and c.seq > over[c.actor]}
        out = repair.with_dependents(changes, roots)
        snapshot = backend.doc_snapshot(space, row.doc)
        if snapshot is not None and any(change.hash in out for change in changes[: snapshot.change_count]):
            left.append(row.doc)
            continue
        doc_batch, _ = repair.quarantine_batch(backend, row, changes, out, roots, REVOKED_DEPENDENT_REASON, now_ms)
        batch.docs += doc_batch.docs
        batch.quarantined += doc_batch.quarantined
        batch.rewritten_versions += doc_batch.rewritten_versions
        removed[row.doc] = tuple(change.hash for change in changes if change.hash in out)
    return Revoked(batch, removed, tuple(left))


def is_revoked_reason(reason: str) -> bool:
    return reason.startswith("revoked: ")


class _View:
    """Entries of one index document (at its heads), read on demand: the path of one entry
    costs a read of it and of its ancestors, not of the whole index."""

    def __init__(self, index: native.Document) -> None:
        self.index = index
        self._entries: dict[str, Entry | None] = {}
        self._all: dict[str, Entry] | None = None

    def entry(self, file_id: str) -> Entry | None:
        if file_id not in self._entries:
            self._entries[file_id] = read_entry(self.index, file_id)
        return self._entries[file_id]

    def path(self, file_id: str) -> str | None:
        """The stored path of an entry (store/tree.py ``stored_path``), None if it has none."""
        if self.entry(file_id) is None:
            return None
        names: list[str] = []
        visited: set[str] = set()
        current = file_id
        while (entry := self.entry(current)) is not None and current not in visited:  # a cycle ends it
            visited.add(current)
            names.append(entry.name)
            current = entry.parent
        return "/".join(reversed(names))

    def below(self, directory: str) -> list[str]:
        """Every entry whose stored parents lead to ``directory``: read the whole index once
        (only a directory's move asks)."""
        if self._all is None:
            self._all = IndexReader().entries(self.index, self.index.heads())
        entries = self._all
        found: list[str] = []
        for file_id in entries:
            current, visited = entries[file_id].parent, {file_id}
            while current in entries and current not in visited:
                if current == directory:
                    found.append(file_id)
                    break
                visited.add(current)
                current = entries[current].parent
        return found


def index_change_paths(index: native.Document, change: native.DecodedChange) -> list[str] | None:
    """The paths an index change touches, before and after it, at its deps (module docstring).

    ``index`` must hold the change's deps. None when the change cannot be read there (its deps
    are not held, or Automerge refuses it): unknown, so only an unscoped writer may make it.
    """
    deps = list(change.deps)
    try:
        before = index.fork_at(deps)
        after = before.fork()
        after.apply_changes([change.raw])
        patches = after.diff(before.heads(), after.heads())
    except native.AutomergeError:
        return None
    old, new = _View(before), _View(after)
    paths: dict[str, None] = {}
    for file_id in sorted(touched_entries(patches)):
        old_path, new_path = old.path(file_id), new.path(file_id)
        for path in (old_path, new_path):
            if path:
                paths[path] = None
        entry = old.entry(file_id)
        if entry is not None and entry.kind == DIR and old_path and new_path and old_path != new_path:
            for moved in old.below(file_id):
                moved_path = old.path(moved)
                if moved_path is not None and moved_path.startswith(old_path + "/"):
                    paths[moved_path] = None
                    paths[new_path + moved_path[len(old_path) :]] = None
    return list(paths)


def file_doc_paths(index: native.Document, doc: bytes) -> list[str] | None:
    """A file doc's path in the index now; None if the index has no entry for it."""
    path = _View(index).path(doc.hex())
    return None if path is None else [path]


def change_paths(index: native.Document, doc: bytes, change: native.DecodedChange) -> list[str] | None:
    """The paths a change of ``doc`` touches, read in ``index`` (the space's index document,
    holding the change's deps if it is an index change): what ``ChangeStore.change_paths``
    answers, uncached — protocol.memory.MemoryChangeStore is given this."""
    if doc == INDEX_DOC_ID:
        return index_change_paths(index, change)
    return file_doc_paths(index, doc)


class PathCache:
    """File docs' paths per space, for the index heads they were read at (module docstring)."""

    def __init__(self) -> None:
        self._spaces: dict[bytes, tuple[tuple[bytes, ...], OrderedDict[bytes, list[str] | None]]] = {}

    def file_paths(
        self, space: bytes, doc: bytes, index_heads: Sequence[bytes], index: Callable[[], native.Document]
    ) -> list[str] | None:
        """``doc``'s path in the index (``index`` loads it; ``index_heads`` are its heads now)."""
        heads = tuple(index_heads)
        held = self._spaces.get(space)
        if held is None or held[0] != heads:
            held = self._spaces[space] = (heads, OrderedDict())
        paths = held[1]
        if doc in paths:
            paths.move_to_end(doc)
            return paths[doc]
        found = paths[doc] = file_doc_paths(index(), doc) if heads else None
        if len(paths) > PATHS_CACHED:
            paths.popitem(last=False)
        return found

    def forget(self, space: bytes | None = None) -> None:
        if space is None:
            self._spaces.clear()
        else:
            self._spaces.pop(space, None)
