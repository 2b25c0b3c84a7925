"""Loaded documents: Automerge documents built from the store, and a bounded cache of them.

The store is the truth; a document is a cache of it, built from the doc's newest snapshot plus
the tail of later changes (``load_document``) and kept while it is used. A cached document may
run ahead of the store (uncommitted local ops) or behind it (stored remote changes ``waiting``
to be applied once it holds no uncommitted work); ``CachedDoc`` records how far it agrees.

The cache is bounded by count and by approximate memory, least recently used first out; a
document with uncommitted work, or one a caller still holds, stays.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import native
from store import snapshots, verify
from store.backend import Backend
from store.errors import CorruptionError
from store.records import DocRow

# Loaded documents the repo keeps, least recently used dropped first. Even a tiny doc costs
# ~16 KB loaded (+78 MB per 5,000 small docs, issue 12) and a node may hold tens of thousands:
# 1,000 keep an editing session's working set (the index doc, the files open) in ~16 MB.
MAX_CACHED_DOCS = 1_000
# ... and their approximate memory, estimated per op: a 100k-op text doc loads to ~47 MB here
# (~470 B per op). 256 MiB holds a few large docs at once and bounds the total on a small machine.
MAX_CACHED_BYTES = 256 * 1024 * 1024
CACHED_DOC_BASE_BYTES = 16_000
CACHED_BYTES_PER_OP = 470
# References to a cached document when only the cache holds it: the CachedDoc slot and
# sys.getrefcount's own argument. More means a caller holds it (to edit, then commit): evicting
# it then would make that commit load a fresh copy and lose the edit.
_CACHE_ONLY_REFS = 2

DocKey = tuple[bytes, bytes]  # (space, doc)


@dataclass(slots=True)
class CachedDoc:
    """A loaded document and how far it agrees with the store.

    ``synced_heads`` are the document's heads when it last held exactly the stored changes;
    ``waiting`` are stored remote changes not yet applied because the document was not clean.
    """

    key: DocKey
    document: native.Document
    synced_heads: list[bytes]
    waiting: list[bytes] = field(default_factory=list)
    size_bytes: int = 0  # the estimate counted in DocCache's total

    def clean(self) -> bool:
        """Whether the document holds exactly stored changes (plus ``waiting`` ones to apply)."""
        return not self.document.pending_ops() and self.document.heads() == self.synced_heads


class DocCache:
    """The loaded documents, least recently used first, within MAX_CACHED_DOCS and MAX_CACHED_BYTES."""

    def __init__(self) -> None:
        self._docs: OrderedDict[DocKey, CachedDoc] = OrderedDict()
        self._bytes = 0

    def get(self, key: DocKey) -> CachedDoc | None:
        """The cached document, if any, without counting it as used."""
        return self._docs.get(key)

    def use(self, key: DocKey) -> CachedDoc | None:
        """The cached document, if any, now the most recently used."""
        cached = self._docs.get(key)
        if cached is not None:
            self._docs.move_to_end(key)
        return cached

    def __contains__(self, key: DocKey) -> bool:
        return key in self._docs

    def keep(self, cached: CachedDoc) -> CachedDoc:
        """Cache a document as the most recently used, then drop the least used beyond the bounds."""
        self.drop(cached.key)
        self._docs[cached.key] = cached
        self.resize(cached)
        self._evict()
        return cached

    def resize(self, cached: CachedDoc) -> None:
        """Re-estimate a cached document's memory (it grows with every change applied)."""
        if self._docs.get(cached.key) is not cached:
            return
        size = CACHED_DOC_BASE_BYTES + CACHED_BYTES_PER_OP * cached.document.stats()["ops"]
        self._bytes += size - cached.size_bytes
        cached.size_bytes = size

    def drop(self, key: DocKey) -> None:
        cached = self._docs.pop(key, None)
        if cached is not None:
            self._bytes -= cached.size_bytes

    def clear(self) -> None:
        self._docs.clear()
        self._bytes = 0

    def stats(self) -> tuple[int, int]:
        """(documents, approximate bytes) the cache holds now."""
        return len(self._docs), self._bytes

    def catch_up(self, cached: CachedDoc) -> None:
        """Apply waiting remote changes once the document holds no uncommitted local work.

        Raises:
            CorruptionError: Automerge refuses them although they passed the trial (a change by
                the local key arrived from elsewhere while a local change was open); the
                document is dropped from the cache, and reloading it shows the damage.
        """
        if not cached.waiting or not cached.clean():
            return  # uncommitted ops, or a change it closed on its own: commit() persists that first
        try:
            cached.document.apply_changes(cached.waiting)
        except native.AutomergeError as error:
            self.drop(cached.key)
            raise CorruptionError(f"doc {cached.key[1].hex()}: stored changes do not apply: {error}") from error
        cached.waiting = []
        cached.synced_heads = cached.document.heads()
        self.resize(cached)

    def _evict(self) -> None:
        """Drop least recently used documents while over a bound, never the newest, nor one with
        uncommitted work or held by a caller (see _CACHE_ONLY_REFS)."""
        for key in list(self._docs)[:-1]:
            if len(self._docs) <= MAX_CACHED_DOCS and self._bytes <= MAX_CACHED_BYTES:
                return
            cached = self._docs[key]
            if cached.clean() and sys.getrefcount(cached.document) <= _CACHE_ONLY_REFS:
                self.drop(key)


def load_document(
    backend: Backend, row: DocRow | None, actor: bytes, block: Callable[[bytes], bytes], *, space: bytes, doc: bytes
) -> native.Document:
    """Build the document from its newest snapshot plus the later changes, checking both.

    ``row`` is the doc's stored row (None: no changes yet, an empty document); ``block`` reads
    a block checked against its CID.

    Raises:
        CorruptionError: a block, change or the resulting heads do not match what was stored.
    """
    if row is None:
        return native.Document(actor=actor)
    snapshot = backend.doc_snapshot(space, doc)
    saved = snapshots.read_chunks(snapshot, block) if snapshot else b""
    tail = backend.changes(space, doc, snapshot.change_count if snapshot else 0)
    compacted = [change for change in tail if change.raw is None]
    if compacted:
        raise CorruptionError(f"doc {doc.hex()}: change {compacted[0].hash.hex()} lost its bytes but no snapshot holds it")
    try:
        document = native.Document.load(saved + b"".join(change.raw or b"" for change in tail), actor)
    except native.AutomergeError as error:
        verify.raise_for_corrupt_change(tail)
        raise CorruptionError(f"doc {doc.hex()} in space {space.hex()[:12]} does not load: {error}") from error
    if tuple(sorted(document.heads())) != row.heads:
        verify.raise_for_corrupt_change(tail)
        raise CorruptionError(f"doc {doc.hex()} in space {space.hex()[:12]} loads to other heads than stored")
    return document


__all__ = ["MAX_CACHED_BYTES", "MAX_CACHED_DOCS", "CachedDoc", "DocCache", "DocKey", "load_document"]
