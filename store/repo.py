"""The repo: one node's store of every space it holds, and the policy over a dumb backend.

The store is the truth; Automerge documents are a cache of it. A document is loaded lazily from
its newest snapshot plus the tail of later changes, and kept. Two paths write:

- ``commit`` (local): closes the pending ops of a document as one change, signs a tip for it,
  and persists change + tip + heads + a version row in one transaction. Anything the document
  holds that the store lacks is persisted with it — Automerge closes a pending transaction on
  its own when a caller reads heads or changes mid-edit, and such a change must not be lost.
- ``apply`` (remote, the protocol's ``ChangeStore``): stores changes already verified as covered
  by signed tips, with their tips, in one transaction. A change whose deps are neither stored
  nor in the batch is kept out and not reported as applied (the protocol keeps it pending).
  The stored doc heads follow from the deps, so applying never needs the document loaded.

Only after the transaction commits is a write acknowledged: the method returns and subscribers
get a ``StoreEvent``. A local commit is then durable (fsynced): it exists nowhere else. A
remote apply is not fsynced on its own: it survives a crash of the process, and a power loss can
take only the newest remote applies (never one older than a durable write), which peers send
again when they reconnect — while an fsync per apply (~1.5–4 ms) would cap ingest at a few
hundred changes a second. ``group`` goes further for a burst of remote batches: one transaction
for them all. ``group(durable=True)`` is group commit for local writes: a burst of local commits
(each still its own signed change) shares one transaction and one fsync, and is acknowledged
when the group exits.

Remote changes are tried on the document before anything is stored, and the cached document
is kept current by that trial (store/ingest.py). Loaded documents are a bounded cache
(store/doc_cache.py). Snapshots, compaction and sync-state pruning are store/maintenance.py:
``commit`` takes a due snapshot at once, ``maintain`` (the node calls it when idle) the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import native
from protocol.capabilities import CapabilityLog, Revocation
from protocol.errors import BadSignature, WireError
from protocol.identity import PUBLIC_KEY_BYTES, Identity
from protocol.space import DOC_ID_BYTES, INDEX_DOC_ID, SPACE_ID_BYTES, Genesis
from protocol.store_api import Unauthorised, decode_records
from protocol.tips import SignedTip
from store import capabilities, ingest, repair, snapshots, verify
from store import refused as refused_changes
from store.backend import Backend, MemoryBackend
from store.blocks import Block, checked, codec_of
from store.defaults import DEFAULT_SNAPSHOT_EVERY
from store.doc_cache import CachedDoc, DocCache, load_document
from store.errors import (
    ClosedError,
    CorruptionError,
    InvalidInput,
    StorageError,
    UnknownSpace,
)
from store.maintenance import Maintainer, Maintenance
from store.records import (
    CapabilityRow,
    ChangeRow,
    DocRow,
    Origin,
    RefusedRow,
    SpaceSnapshot,
    SyncStateRow,
    TextRow,
    TipRow,
    VersionRecord,
    VersionRow,
    WriteBatch,
)
from store.sqlite_backend import SqliteBackend

_MS_PER_S = 1000
# New docs of ``create_docs`` looked up in the store together (one query, not one each) before
# they are stored: ~25 us a doc saved, and they wait at most this many for their build.
CREATE_DOCS_CHECKED_TOGETHER = 256
# Texts kept in the text cache (``cached_text``) up to this many UTF-8 bytes each, as large as
# one write may be (store/workspace.py MAX_WRITE_BYTES): the cache costs at most about the
# size of the texts it holds, one row per doc.
TEXT_CACHE_MAX_BYTES = 2 * 1024 * 1024


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def change_time(now_ms: int) -> int:
    """The time a local change made at ``now_ms`` carries: Automerge stamps changes in seconds."""
    return now_ms // _MS_PER_S


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """Sent to subscribers after a write that moved a doc's heads has committed."""

    space: bytes
    doc: bytes
    version: int
    hashes: tuple[bytes, ...]
    origin: Origin
    # A local commit's signed tip over its newest change. The store keeps only each author's
    # newest tip, so once a group of commits has committed, only the last one's is stored.
    tip: SignedTip | None = None
    # A local commit's raw changes, one per hash and in that order (none for a remote write):
    # what the sync driver pushes, without reading them back from the store.
    changes: tuple[bytes, ...] = ()
    # The same changes decoded, as the commit built them: a subscriber needing their deps or op
    # counts does not parse the bytes again (~2 ms for the change of a 13 KB text file).
    decoded: tuple[native.DecodedChange, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class SpaceStored:
    """Sent to subscribers once a space's genesis is newly stored: created here, joined, or
    fetched from a peer. The one signal that the network should start serving the space."""

    space: bytes
    genesis: Genesis


@dataclass(frozen=True, slots=True)
class CapabilitiesAdded:
    """Sent to subscribers once capability records are newly stored for a space (issued here or
    received): the node pushes them to the space's sessions. ``records`` are their encoded bytes,
    one per hash and in that order."""

    space: bytes
    hashes: tuple[bytes, ...]
    records: tuple[bytes, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class ChangesRevoked:
    """Sent once records made a revocation effective and the doc's stored changes it refuses
    (and their dependents) were taken out into the quarantine: the doc's heads stepped back.
    ``verify`` lists them; the node may forget what it cached of them."""

    space: bytes
    doc: bytes
    hashes: tuple[bytes, ...]


# What ``Repo.subscribe`` callbacks receive; they match on the type.
RepoEvent = StoreEvent | SpaceStored | CapabilitiesAdded | ChangesRevoked


@dataclass(slots=True)
class _Group:
    """What an open ``Repo.group`` wrote: events to announce once it commits, what to forget if not."""

    durable: bool
    events: list[RepoEvent] = field(default_factory=list)
    docs: set[tuple[bytes, bytes]] = field(default_factory=set)
    spaces: set[bytes] = field(default_factory=set)
    logs: set[bytes] = field(default_factory=set)  # spaces whose capability log took records


class Repo:
    """One node's store: every space it holds, durable in one SQLite file (or in memory)."""

    def __init__(
        self,
        backend: Backend,
        identity: Identity,
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if snapshot_every < 1:
            raise InvalidInput(f"snapshot_every must be at least 1, got {snapshot_every}")
        self.identity = identity
        self.snapshot_every = snapshot_every
        self._backend = backend
        self._clock = clock
        self._closed = False
        self._geneses: dict[bytes, Genesis] = {}
        self._damaged_spaces: dict[bytes, CorruptionError] = {}
        self._doc_rows: dict[tuple[bytes, bytes], DocRow] = {}
        self._tip_seqs: dict[tuple[bytes, bytes], dict[bytes, int]] = {}  # per doc: author -> newest tip's seq
        # Per doc: author -> highest seq stored, read from the store once and kept in step by
        # every write: every commit and apply checks the author's chain against it.
        self._author_seqs: dict[tuple[bytes, bytes], dict[bytes, int]] = {}
        self._latest_versions: dict[bytes, int] = {}
        self._logs: dict[bytes, CapabilityLog] = {}  # per space, built on first use (store/capabilities.py)
        self._paths = capabilities.PathCache()
        # Per space: the hashes of its refused changes (store/refused.py), oldest first, read
        # once: each remote apply checks its hashes against them (a dict lookup when empty).
        self._refused: dict[bytes, dict[bytes, None]] = {}
        self._cache = DocCache()
        self._maintainer = Maintainer(
            backend,
            identity,
            block=self.block,
            document=lambda space, doc: self._clean_document(space, doc, keep=False),
            latest_version=self._latest_version,
            stored_spaces=lambda: [*self._geneses, *self._damaged_spaces],
        )
        self.last_maintenance = Maintenance()
        self._subscribers: list[Callable[[RepoEvent], None]] = []
        self._group: _Group | None = None
        for space, encoded in backend.spaces():
            try:
                self._geneses[space] = verify.decode_genesis(space, encoded)
            except CorruptionError as error:
                self._damaged_spaces[space] = error  # the other spaces stay usable; verify reports it

    @classmethod
    def open(
        cls,
        path: Path | None,
        identity: Identity,
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> Repo:
        """Open the store at ``path`` (an SQLite file, created if missing), or in memory if None.

        ``clock`` stamps versions made by ``apply`` calls that pass no ``now_ms``.
        """
        backend: Backend = MemoryBackend() if path is None else SqliteBackend(Path(path))
        return cls(backend, identity, snapshot_every=snapshot_every, clock=clock)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cache.clear()
            self._backend.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def backend(self) -> Backend:
        """The persistence layer, for tools (verify, benchmarks) that read rows directly."""
        self._check_open()
        return self._backend

    # ----- spaces -----

    def create_space(self, name: str, now_ms: int, *, private: bool = False) -> Genesis:
        """Sign a new genesis record with the local identity and store the space: open unless
        ``private`` (then this identity is its root admin and its capability log rules)."""
        try:
            genesis = Genesis.create(self.identity, name, now_ms, private=private)
        except ValueError as error:
            raise InvalidInput(str(error)) from error
        self._store_genesis(genesis)
        return genesis

    def add_space(self, genesis: Genesis) -> None:
        """Join a space created elsewhere; its genesis must verify. Adding it again is a no-op."""
        self._check_open()
        try:
            genesis.verify()
        except BadSignature as error:
            raise InvalidInput(f"genesis of space {genesis.name!r} does not verify: {error}") from error
        if genesis.space_id not in self._geneses:
            self._store_genesis(genesis)

    def _store_genesis(self, genesis: Genesis) -> None:
        self._check_open()
        self._backend.write(WriteBatch(spaces=[(genesis.space_id, genesis.encode())]))
        self._geneses[genesis.space_id] = genesis
        if self._group is not None:
            self._group.spaces.add(genesis.space_id)
        self._emit(SpaceStored(genesis.space_id, genesis))

    def spaces(self) -> list[Genesis]:
        """Every space whose genesis is intact, in the order it was added."""
        self._check_open()
        return list(self._geneses.values())

    def genesis(self, space: bytes) -> Genesis:
        self._check_space(space)
        return self._geneses[space]

    # ----- documents -----

    def document(self, space: bytes, doc: bytes) -> native.Document:
        """The live document (actor = the local identity), loaded on first use.

        Edit it, then call ``commit``; never call ``Document.commit()`` directly.
        """
        cached = self._cached(space, doc)
        self._cache.catch_up(cached)
        return cached.document

    def commit(self, space: bytes, doc: bytes, message: str | None = None, *, now_ms: int) -> bytes | None:
        """Persist the document's pending ops as one signed change; None if nothing was pending.

        Returns the hash of the newest change stored. When it returns, the write is durable;
        inside ``group(durable=True)``, only once the group has exited.

        Raises:
            InvalidInput: the document holds changes by another actor (it was edited around the
                repo), or changes by the local key arrived from elsewhere while it was being
                edited (their seqs clash), or a group that is not durable is open.
            StorageError: the write failed; the uncommitted change is dropped from the cache too.
        """
        if self._group is not None and not self._group.durable:
            raise InvalidInput("a local commit must be durable, so it can only join a group(durable=True)")
        cached = self._cached(space, doc)
        document = cached.document
        document.commit(message, time=change_time(now_ms))
        document.integrate()  # a change made at old heads (Workspace.edit isolates there) joins the rest
        local = document.get_changes_decoded(cached.synced_heads)  # decoded as built: no second parse of the bytes
        if not local:
            self._cache.catch_up(cached)
            return None
        foreign = [change for change in local if change.actor != self.identity.public_key]
        if foreign:
            self._cache.drop(cached.key)
            raise InvalidInput(
                f"doc {doc.hex()} holds {len(foreign)} change(s) by another actor; apply remote changes "
                "through Repo.apply, not on the document"
            )
        stored_seq = self._author_seq(space, doc, self.identity.public_key)
        if min(change.seq for change in local) != stored_seq + 1:
            self._cache.drop(cached.key)  # storing it would fork this key's chain: the doc would not load
            raise InvalidInput(
                f"doc {doc.hex()}: changes by this node's key up to seq {stored_seq} arrived while"
                " the edit was open (is the key used on another node too?); the edit is dropped"
            )
        try:
            newest, record, tip = self._persist_local(space, doc, local, now_ms)
        except StorageError:
            self._cache.drop(cached.key)
            raise
        cached.synced_heads = document.heads()
        self._cache.catch_up(cached)
        self._cache.resize(cached)
        self._announce(space, record, tip, local)
        row = self._doc_row(space, doc)
        if row is not None and self._maintainer.snapshot_lag(row) >= self.snapshot_every:
            self._maintainer.snapshot_docs(space, [row], now_ms)
        return newest

    def create_docs(
        self,
        space: bytes,
        docs: Iterable[tuple[bytes, native.DecodedChange, SignedTip]],
        *,
        now_ms: int,
        texts: Mapping[bytes, str] | None = None,
    ) -> list[bytes]:
        """Store new docs, each from its one first change by the local key (``native.first_change``)
        and the tip this node signed over it (``SignedTip.sign`` with its identity: a bulk write
        signs on its build threads, store/content_build.py), in order, announced as ``commit``
        would; returns their hashes.

        The docs are not loaded: a bulk write (a folder's first scan, a git import) makes
        thousands that nothing reads back soon, the cache would hold few of them anyway, and
        building each document costs twice its change (a read loads it from the store). All in
        one transaction: the open durable group's, or one of its own, and their rows go to the
        backend in one write, not one each. ``texts``: the text of each new text file doc (its
        first change holds exactly that), kept in the text cache with it, so reading the file
        loads nothing (``cached_text``).

        Raises:
            InvalidInput: a doc that already has changes (or is being edited here), a change
                that is not a first one by this node's key, a tip that does not name it (the
                signature is not checked: only this node's code signs with its key), or a group
                that is not durable.
            StorageError: the write failed; none of the docs is stored.
        """
        if self._group is not None and not self._group.durable:
            raise InvalidInput("a local commit must be durable, so it can only join a group(durable=True)")
        with contextlib.nullcontext() if self._group is not None else self.group(durable=True):
            rows = WriteBatch() if self.snapshot_every > 1 else None  # a snapshot of each doc reads its rows back
            made: list[bytes] = []
            cached: list[TextRow] = []
            try:
                items = iter(docs)
                while chunk := list(itertools.islice(items, CREATE_DOCS_CHECKED_TOGETHER)):
                    for doc, _, _ in chunk:
                        self._check_doc(space, doc)
                    unseen = [doc for doc, _, _ in chunk if (space, doc) not in self._doc_rows]
                    stored = {row.doc for row in self._backend.docs_among(space, unseen)}
                    for doc, change, tip in chunk:
                        made.append(self._create_doc(space, doc, change, tip, now_ms, rows, stored=doc in stored))
                        if texts is not None and (row := _text_row(space, doc, (change.hash,), texts.get(doc))) is not None:
                            cached.append(row)
                return made
            finally:
                last = rows if rows is not None else WriteBatch()
                last.texts.extend(cached)  # of the docs stored, in their transaction
                if last.changes or last.texts:  # those stored before a refused doc too, as one by one
                    self._backend.write(last, durable=True)

    def _create_doc(
        self, space: bytes, doc: bytes, change: native.DecodedChange, tip: SignedTip, now_ms: int, rows: WriteBatch | None, *, stored: bool
    ) -> bytes:
        """One doc of ``create_docs`` (``stored``: the store has a row for it, as looked up with others)."""
        cached = self._cache.get((space, doc))
        if stored or (space, doc) in self._doc_rows or (cached is not None and (cached.document.pending_ops() or cached.document.heads())):
            raise InvalidInput(f"doc {doc.hex()} already exists: only a new doc is created from a first change")
        change_hash = change.hash
        if change.actor != self.identity.public_key or change.seq != 1 or change.deps:
            raise InvalidInput(f"doc {doc.hex()}: a new doc starts with a first change (seq 1, no deps) by this node's key")
        if (tip.space, tip.doc, tip.author, tip.change_hash) != (space, doc, self.identity.public_key, change_hash):
            raise InvalidInput(f"doc {doc.hex()}: the tip given does not name its first change by this node's key")
        self._cache.drop((space, doc))  # an empty document someone looked at: it loads afresh
        self._tip_seqs[space, doc] = {}  # no changes, so no tips: spare the lookups of a doc known new
        record = self._persist_local(space, doc, [change], now_ms, new=True, tip=tip, into=rows)[1]
        self._announce(space, record, tip, [change])
        if self.snapshot_every <= 1:  # one change beyond no snapshot
            row = self._doc_row(space, doc)
            if row is not None:
                self._maintainer.snapshot_docs(space, [row], now_ms)
        return change_hash

    def _persist_local(
        self,
        space: bytes,
        doc: bytes,
        local: Sequence[native.DecodedChange],
        now_ms: int,
        *,
        new: bool = False,
        tip: SignedTip | None = None,
        into: WriteBatch | None = None,
    ) -> tuple[bytes, VersionRecord, SignedTip]:
        """Sign a tip for the newest of this node's new changes of a doc (unless ``tip`` is it,
        signed already) and persist them with it (``new``: a doc with no stored row, as the
        caller checked; ``into``: as ``_persist``); returns the newest change's hash, the version
        made and the tip."""
        newest = max(local, key=lambda change: change.seq)
        newest_hash = newest.hash
        tip = tip or SignedTip.sign(self.identity, space, doc, newest_hash)
        start = 0 if new else self._change_count(space, doc)
        rows = [ingest.change_row(space, doc, start + i, change, change.hash, change.deps) for i, change in enumerate(local)]
        row = DocRow(space, doc, (), 0) if new else None
        record = self._persist(space, doc, rows, [(tip, newest.seq)], origin="local", time_ms=now_ms, row=row, into=into)
        if record is None:  # never: local changes move heads
            raise StorageError(f"doc {doc.hex()}: storing new local changes made no version")
        return newest_hash, record, tip

    def rollback(self, space: bytes, doc: bytes) -> None:
        """Drop the document's uncommitted ops (and any change it closed on its own)."""
        self._check_doc(space, doc)
        cached = self._cache.get((space, doc))
        if cached is None:
            return
        cached.document.rollback()
        cached.document.integrate()
        if cached.document.heads() != cached.synced_heads:
            self._cache.drop(cached.key)  # the document closed a change itself; reload without it
        else:
            self._cache.catch_up(cached)

    def doc_ids(self, space: bytes) -> list[bytes]:
        """Every doc of the space that has at least one change, sorted."""
        self._check_space(space)
        return [row.doc for row in self._backend.docs(space)]

    def _cached(self, space: bytes, doc: bytes) -> CachedDoc:
        self._check_doc(space, doc)
        key = (space, doc)
        cached = self._cache.use(key)
        if cached is None:
            document = self._load(space, doc)
            cached = self._cache.keep(CachedDoc(key, document, document.heads()))
        return cached

    def cached_text(self, space: bytes, doc: bytes) -> str | None:
        """The doc's text from the text cache, without loading it: only while the cached row is
        at the doc's stored heads (every write that changes a doc's changes — a commit, an
        apply, a revocation, a repair — moves them) and the doc is not loaded (it may hold edits
        not committed yet, and reads cheaper). None: load the doc."""
        self._check_doc(space, doc)
        if (space, doc) in self._cache:
            return None
        row = self._doc_row(space, doc)
        cached = self._backend.text(space, doc) if row is not None else None
        if row is None or cached is None or cached.heads != row.heads:
            return None
        try:
            return cached.text.decode("utf-8")
        except UnicodeDecodeError:
            return None  # a damaged row: the doc knows

    def cache_stats(self) -> tuple[int, int]:
        """(documents, approximate bytes) the document cache holds now."""
        return self._cache.stats()

    def _clean_document(self, space: bytes, doc: bytes, *, keep: bool = True) -> native.Document:
        """A document holding exactly the stored changes: the cached one if clean, else a fresh load.

        ``keep=False`` leaves an uncached doc uncached (``maintain`` visits every due doc once).
        """
        if not keep and (space, doc) not in self._cache:
            return self._load(space, doc)
        cached = self._cached(space, doc)
        self._cache.catch_up(cached)
        if not cached.waiting and cached.clean():
            return cached.document
        return self._load(space, doc)

    def _load(self, space: bytes, doc: bytes) -> native.Document:
        return load_document(self._backend, self._doc_row(space, doc), self.identity.public_key, self.block, space=space, doc=doc)

    # ----- capabilities (private spaces, store/capabilities.py) -----

    def capability_log(self, space: bytes) -> CapabilityLog:
        """The space's capability log: its genesis and every stored record, built once and kept
        (ingest asks it about every change of a private space; it caches its own verdicts).
        A stored record that no longer decodes is left out (``verify`` reports it)."""
        self._check_space(space)
        log = self._logs.get(space)
        if log is None:
            log = self._logs[space] = capabilities.load_log(self._backend, self._geneses[space])
        return log

    def add_capability_records(self, space: bytes, records: Sequence[bytes]) -> list[bytes]:
        """Decode, verify and store capability records; returns the hashes newly stored, in the
        order given, and tells subscribers (``CapabilitiesAdded``). Records already held are
        skipped. Stored like a remote apply: committed, not fsynced on its own (a lost record
        comes back with the next peer that has it; a record issued here is durable, see
        ``issue_capability``).

        Raises:
            CapabilityError: a record that does not decode, verify or belong to the space;
                nothing of the call is stored.
            CapabilityLimit: the log is full; the records before it are stored.
            StorageError: the write failed; nothing of the call is stored.
        """
        return self._add_records(space, records, durable=False)

    def issue_capability(self, space: bytes, record: bytes) -> bytes:
        """Store a record signed here (a grant, a revocation), durably: it exists nowhere else
        yet. Returns its hash (stored before or not). Raises as ``add_capability_records``."""
        added = self._add_records(space, [record], durable=True)
        return added[0] if added else decode_records(space, [record])[0][0].hash

    def _add_records(self, space: bytes, records: Sequence[bytes], *, durable: bool) -> list[bytes]:
        log = self.capability_log(space)
        decoded = decode_records(space, records)
        revocations = log.private and (
            any(isinstance(record, Revocation) for record, _ in decoded) or any(isinstance(r, Revocation) for r in log.records())
        )
        before = log.revocation_cutoffs() if revocations else {}
        new: list[tuple[bytes, bytes]] = []
        try:
            for record, data in decoded:
                if log.add(record):
                    new.append((record.hash, data))
        finally:
            if new:
                self._persist_records(space, new, before if revocations else None, durable=durable)
        return [record_hash for record_hash, _ in new]

    def _persist_records(
        self, space: bytes, new: list[tuple[bytes, bytes]], before: dict[bytes, dict[bytes, int]] | None, *, durable: bool
    ) -> None:
        """Write the new records, and in the same transaction take out the stored changes that
        a revocation they made effective refuses (store/capabilities.py)."""
        batch = WriteBatch(capability_records=[CapabilityRow(space, record_hash, data) for record_hash, data in new])
        revoked = None
        try:
            if before is not None:
                cutoffs = self._logs[space].revocation_cutoffs()
                newly = {key: cutoff for key, cutoff in cutoffs.items() if before.get(key) != cutoff}
                if newly:
                    revoked = capabilities.revoked_changes(self._backend, space, newly, self._clock())
                    batch.docs, batch.quarantined = revoked.batch.docs, revoked.batch.quarantined
                    batch.rewritten_versions = revoked.batch.rewritten_versions
            self._backend.write(batch, durable=durable)
        except BaseException:
            self._logs.pop(space, None)  # it holds records the store does not: rebuilt on next use
            raise
        if self._group is not None:
            self._group.logs.add(space)
        self._emit(CapabilitiesAdded(space, tuple(h for h, _ in new), tuple(data for _, data in new)))
        if revoked is not None and revoked.changes:
            self._forget()  # positions, heads, author seqs and documents of the rebuilt docs
            for doc, hashes in revoked.changes.items():
                self._emit(ChangesRevoked(space, doc, hashes))

    def change_paths(self, space: bytes, doc: bytes, change: native.DecodedChange) -> list[str] | None:
        """The paths a change touches (protocol/store_api.py, store/capabilities.py): a file
        doc's path cached per index heads; an index change's read at its deps."""
        self._check_doc(space, doc)
        if doc == INDEX_DOC_ID:
            return capabilities.index_change_paths(self._clean_document(space, INDEX_DOC_ID), change)
        index_heads = self.heads(space, INDEX_DOC_ID)
        return self._paths.file_paths(space, doc, index_heads, lambda: self._clean_document(space, INDEX_DOC_ID))

    # ----- refused changes (store/refused.py) -----

    def note_refused(self, space: bytes, doc: bytes, refused: Sequence[Unauthorised]) -> None:
        """Keep the changes ingest refused as unauthorised, with the reason (store/refused.py):
        never materialised; ``verify`` and ``refused_changes`` list them. One row per change (a
        change refused again keeps its first), none for a change stored; the oldest go once
        the space holds REFUSED_CHANGES_KEPT. Committed like a remote apply, not fsynced."""
        self._check_doc(space, doc)
        kept = self._refused_hashes(space)
        fresh = [r for r in refused if r.change not in kept]
        stored = self._backend.stored_hashes(space, doc, [r.change for r in fresh]) if fresh else set()
        rows = refused_changes.rows_of(space, doc, [r for r in fresh if r.change not in stored], self._clock())
        rows = rows[-refused_changes.REFUSED_CHANGES_KEPT :]
        if not rows:
            return
        dropped = refused_changes.over_budget(kept, len(rows))
        batch = WriteBatch(refused=rows, unrefused=[(space, change_hash) for change_hash in dropped])
        self._backend.write(batch, durable=False)
        for change_hash in dropped:
            del kept[change_hash]
        kept.update(dict.fromkeys(row.hash for row in rows))

    def refused_changes(self, space: bytes) -> list[RefusedRow]:
        """Every refused change kept for the space, oldest first (store/refused.py)."""
        self._check_space(space)
        return self._backend.refused_changes(space)

    def refused_paths(self, row: RefusedRow) -> list[str] | None:
        """The paths a refused change touches as the index reads now (an index change's at its
        deps, from its kept bytes); None when unknown: a file the index does not name, or an
        index change whose bytes were not kept or whose deps are not held."""
        index = self._clean_document(row.space, INDEX_DOC_ID)
        if row.doc != INDEX_DOC_ID:
            return capabilities.file_doc_paths(index, row.doc)
        if row.raw is None:
            return None
        try:
            decoded = native.decode_change(row.raw)
        except native.AutomergeError:
            return None
        return capabilities.index_change_paths(index, decoded)

    def _refused_hashes(self, space: bytes) -> dict[bytes, None]:
        kept = self._refused.get(space)
        if kept is None:
            kept = self._refused[space] = dict.fromkeys(self._backend.refused_hashes(space))
        return kept

    def _unrefused(self, space: bytes, accepted: Sequence[ChangeRow]) -> list[bytes]:
        """The refused rows an apply of ``accepted`` deletes: they are stored after all."""
        kept = self._refused_hashes(space)
        return [row.hash for row in accepted if row.hash in kept] if kept else []

    # ----- ChangeStore (protocol/store_api.py) -----

    def heads(self, space: bytes, doc: bytes) -> list[bytes]:
        """Current stored heads of a doc, sorted; empty for a doc with no changes."""
        self._check_doc(space, doc)
        row = self._doc_row(space, doc)
        return list(row.heads) if row else []

    def has_change(self, space: bytes, doc: bytes, change_hash: bytes) -> bool:
        self._check_doc(space, doc)
        return bool(self._backend.stored_hashes(space, doc, [change_hash]))

    def changes_since(self, space: bytes, doc: bytes, heads: Sequence[bytes]) -> list[bytes]:
        """Raw bytes of every stored change not reachable from ``heads``, in causal order.

        Unknown hashes in ``heads`` are ignored. Compacted changes are regenerated, byte for
        byte, from the snapshot that holds them.
        """
        self._check_doc(space, doc)
        if self._doc_row(space, doc) is None:
            return []
        known = self._backend.stored_hashes(space, doc, heads)
        return self._clean_document(space, doc).get_changes([h for h in heads if h in known])

    def author_seq(self, space: bytes, doc: bytes, author: bytes) -> int:
        """The highest seq of the author's stored changes in the doc; 0 if it has none."""
        self._check_doc(space, doc)
        return self._author_seq(space, doc, author)

    def tips(self, space: bytes, doc: bytes) -> list[SignedTip]:
        """The newest tip per author for this doc."""
        self._check_doc(space, doc)
        try:
            return [SignedTip(t.space, t.doc, t.author, t.change_hash, t.signature) for t in self._backend.tips(space, doc)]
        except WireError as error:
            raise CorruptionError(f"a stored tip of doc {doc.hex()} is damaged: {error}") from error

    def save_document(self, space: bytes, doc: bytes) -> bytes:
        """An Automerge saved document holding exactly the stored changes of the doc.

        The current snapshot's bytes when it holds them all (no Automerge work), else a save of
        a document equal to the store (never one with uncommitted local ops).
        """
        self._check_doc(space, doc)
        row = self._doc_row(space, doc)
        snapshot = self._backend.doc_snapshot(space, doc) if row else None
        if snapshot is not None and row is not None and snapshot.change_count == row.change_count:
            return snapshots.read_chunks(snapshot, self.block)
        return self._clean_document(space, doc).save()

    def apply(
        self,
        space: bytes,
        doc: bytes,
        changes: Sequence[native.DecodedChange],
        tips: Sequence[SignedTip],
        *,
        now_ms: int | None = None,
    ) -> list[bytes]:
        """Store changes already verified as covered, atomically with their tips.

        Returns the hashes newly stored, in causal order; committed (not fsynced, see the
        module docstring) when it returns, or when the enclosing ``group`` commits. Changes
        already stored, or whose deps are missing, are left out. A tip is kept if its change is
        stored and it is newer than the author's stored tip. ``now_ms`` stamps the version
        (the repo's clock if omitted).

        Raises:
            InvalidInput: a tip for another space or doc, or signed by someone other than the
                author of its change; nothing is stored.
            RefusedChanges: a change forks or skips its author's chain, or Automerge refuses
                the changes (the trial apply, see the module docstring); nothing is stored.
            CorruptionError: the stored doc does not load (``distspace doctor`` says why).
        """
        self._check_doc(space, doc)
        for tip in tips:
            if tip.space != space or tip.doc != doc:
                raise InvalidInput("a tip for another space or doc was passed to apply")
        accepted = ingest.accept(self._backend, space, doc, changes, self._change_count(space, doc))
        by_hash = {row.hash: row for row in accepted}
        tip_seqs = []
        for tip in tips:
            change = by_hash.get(tip.change_hash) or self._backend.change(space, doc, tip.change_hash)
            if change is None:
                continue  # its change has not arrived (or is waiting for deps)
            if change.actor != tip.author:
                raise InvalidInput(f"tip by {tip.author.hex()[:12]} names a change by {change.actor.hex()[:12]}")
            tip_seqs.append((tip, change.seq))
        now = self._clock() if now_ms is None else now_ms
        trial = None
        if accepted:
            ingest.check_chains(doc, accepted, lambda author: self._author_seq(space, doc, author))
            trial = ingest.trial_apply(self._cache, (space, doc), accepted, lambda: self._load(space, doc))
        try:
            record = self._persist(space, doc, accepted, tip_seqs, origin="remote", time_ms=now, unrefused=self._unrefused(space, accepted))
        except BaseException:
            if trial is not None:
                self._cache.drop((space, doc))  # the cached document may hold what the store does not
            raise
        if trial is not None:
            ingest.after_trial(self._cache, (space, doc), trial, accepted)
        if record is None:
            return []
        self._announce(space, record)
        return list(record.hashes)

    def load_sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None:
        self._check_peer(peer)
        self._check_doc(space, doc)
        return self._backend.sync_state(peer, space, doc)

    def save_sync_state(self, peer: bytes, space: bytes, doc: bytes, state: bytes) -> None:
        self._check_peer(peer)
        self._check_doc(space, doc)
        # A sync state only makes the next reconnect cheaper: no fsync for it.
        row = SyncStateRow(peer, space, doc, bytes(state), self._clock())
        self._backend.write(WriteBatch(sync_states=[row]), durable=False)

    @contextmanager
    def group(self, durable: bool = False) -> Iterator[None]:
        """Make every ``apply`` (and sync state save) inside one transaction, committed on exit.

        The sync driver wraps each burst of received frames in one: its remote batches then
        cost one commit and one bulk write, not one each. With ``durable``, local commits (and
        other durable writes: a new space, a snapshot) may join, and the commit is fsynced: a
        burst of local commits costs one fsync, not one each. A commit inside returns its hash
        at once, but it is durable only once the block has exited: acknowledge it (to a user,
        a peer, an API caller) after the block, never inside. Do not await inside either: the
        sync driver opens groups of its own, and groups do not nest.

        Subscribers hear of the group's writes after the commit. All or nothing: if the block
        raises, a write fails (StorageError from it, or from a later read or the exit) or the
        commit fails, none of the group's writes is stored, and what the repo cached of them is
        dropped — a committed document too, with any edit it holds uncommitted — so it reloads
        from the store.

        Raises:
            InvalidInput: a group is already open, or a durable write is made inside a group
                that is not durable (its commit is not fsynced).
        """
        self._check_open()
        if self._group is not None:
            raise InvalidInput("groups do not nest")
        group = self._group = _Group(durable)
        try:
            with self._backend.group(durable):
                yield
        except BaseException:
            for space, doc in group.docs:
                self._cache.drop((space, doc))
                self._doc_rows.pop((space, doc), None)
                self._tip_seqs.pop((space, doc), None)
                self._author_seqs.pop((space, doc), None)
                self._latest_versions.pop(space, None)
            for space in group.spaces:
                del self._geneses[space]
            for space in group.logs:
                self._logs.pop(space, None)
            self._maintainer.forget()  # a snapshot of any doc may have been taken inside
            self._refused.clear()  # it may hold rows the group did not write: read again
            raise
        finally:
            self._group = None
        for event in group.events:
            self._notify(event)

    # ----- the local version index -----

    @property
    def grouping(self) -> bool:
        """Whether a ``group`` is open: a bulk write joins it rather than opening its own."""
        return self._group is not None

    def version(self, space: bytes) -> int:
        """The newest local version number of the space (0 before its first change)."""
        self._check_space(space)
        return self._latest_version(space)

    def versions(self, space: bytes, since: int = 0, limit: int | None = None) -> list[VersionRecord]:
        """Versions numbered above ``since``, oldest first, at most ``limit`` of them."""
        self._check_space(space)
        if since < 0 or (limit is not None and limit < 0):
            raise InvalidInput(f"since and limit are not negative (got since={since}, limit={limit})")
        return self._backend.versions(space, since, limit)

    def heads_at(self, space: bytes, version: int) -> dict[bytes, list[bytes]]:
        """Every doc's heads at a local version; docs that did not exist yet are absent."""
        self._check_space(space)
        if not 0 <= version <= self._latest_version(space):
            raise InvalidInput(f"space {space.hex()[:12]} has versions 0 to {self._latest_version(space)}, not {version}")
        return {doc: list(heads) for doc, heads in self._backend.heads_at(space, version).items()}

    # ----- events -----

    def subscribe(self, callback: Callable[[RepoEvent], None]) -> Callable[[], None]:
        """Call ``callback`` after every committed write that moves heads (``StoreEvent``) or
        stores a new space (``SpaceStored``); returns the unsubscribe.

        Callbacks run synchronously inside the call that wrote (``commit``, ``apply``,
        ``create_space``, ``add_space``), after the write has committed, or when the enclosing
        ``group`` has; one that raises makes that call raise, though the write stands.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    # ----- snapshots and blocks -----

    def snapshot(self, space: bytes, now_ms: int) -> SpaceSnapshot | None:
        """Bring every doc's snapshot up to date and sign a new manifest; None for an empty space."""
        self._check_space(space)
        behind = self._maintainer.lagging(space, 1)
        if behind:
            self._maintainer.snapshot_docs(space, behind, now_ms)
        return self._backend.space_snapshot(space)

    def maintain(self, now_ms: int) -> int:
        """Idle-time work: snapshot every doc that is due one, compact what snapshots hold, and
        prune sync states (at most every SYNC_STATE_PRUNE_INTERVAL_MS); returns how many docs
        were snapshotted (``last_maintenance`` has the rest).

        A doc that does not load, or whose snapshot does not check out, is skipped and counted
        (``Maintenance.damaged_docs``): the others are still maintained, and ``verify``
        says what is wrong with it.
        """
        self._check_open()
        self.last_maintenance = self._maintainer.maintain(self._geneses, self.snapshot_every, now_ms)
        return self.last_maintenance.snapshots

    def prune_sync_states(self, now_ms: int) -> int:
        """Delete the sync states of docs this store does not hold, of peers not synced with for
        SYNC_STATE_MAX_AGE_MS or beyond the SYNC_STATE_PEERS_MAX most recent, and each peer's
        oldest beyond SYNC_STATES_PER_PEER_MAX (store/maintenance.py); returns how many. A
        pruned state costs at most one fuller reconciliation with that peer."""
        self._check_open()
        return self._maintainer.prune_sync_states(self._geneses, now_ms)

    def latest_snapshot(self, space: bytes) -> SpaceSnapshot | None:
        self._check_space(space)
        return self._backend.space_snapshot(space)

    def manifest(self, space: bytes) -> snapshots.Manifest | None:
        """The space's newest manifest (its pages too, if paged), checked against its CIDs and signature."""
        latest = self.latest_snapshot(space)
        if latest is None:
            return None
        return snapshots.Manifest.load(Block(latest.manifest_cid, self.block(latest.manifest_cid)), self.block)

    def block(self, cid: bytes) -> bytes:
        """A stored block's bytes, checked against its CID.

        Raises:
            UnknownBlock: no such block. CorruptionError: the stored bytes no longer match.
        """
        self._check_open()
        codec_of(cid)
        return checked(cid, self._backend.block(cid))

    def compact(self, space: bytes) -> int:
        """Drop the bytes of changes that a checked snapshot holds; returns how many were dropped.

        Each doc snapshot is loaded and checked (heads, change count) first, so bytes are only
        dropped when Automerge can regenerate them.
        """
        self._check_space(space)
        return self._maintainer.compact(space)

    def verify(self) -> list[verify.Problem]:
        """Check every hash, signature, coverage, snapshot and block, author chains and that
        every doc loads; change nothing."""
        self._check_open()
        return verify.verify_backend(self._backend)

    def repair(self, now_ms: int) -> repair.RepairReport:
        """Quarantine the changes that keep docs from loading (store/repair.py); idempotent."""
        self._check_open()
        if self._group is not None:
            raise InvalidInput("repair cannot run inside a group")
        report = repair.repair_backend(self._backend, now_ms)
        if report.docs:
            self._forget()
        return report

    def _forget(self) -> None:
        """Drop everything cached of the store's rows (after a write the repo did not plan)."""
        self._cache.clear()
        self._doc_rows.clear()
        self._tip_seqs.clear()
        self._author_seqs.clear()
        self._maintainer.forget()
        self._latest_versions.clear()
        self._refused.clear()

    def _announce(self, space: bytes, record: VersionRecord, tip: SignedTip | None = None, decoded: Sequence[native.DecodedChange] = ()) -> None:
        """Tell subscribers about a committed write, once the cache agrees with the store."""
        changes = tuple(change.raw for change in decoded)
        self._emit(StoreEvent(space, record.doc, record.number, record.hashes, record.origin, tip, changes, tuple(decoded)))

    def _emit(self, event: RepoEvent) -> None:
        """Notify subscribers now, or once the open group has committed."""
        if self._group is not None:
            self._group.events.append(event)  # not committed yet
        else:
            self._notify(event)

    def _notify(self, event: RepoEvent) -> None:
        for callback in list(self._subscribers):
            callback(event)

    # ----- writing -----

    def _persist(
        self,
        space: bytes,
        doc: bytes,
        changes: Sequence[ChangeRow],
        tips: Sequence[tuple[SignedTip, int]],
        *,
        origin: Origin,
        time_ms: int,
        unrefused: Sequence[bytes] = (),
        row: DocRow | None = None,
        into: WriteBatch | None = None,
    ) -> VersionRecord | None:
        """Write change rows (causally ordered, deps present) and newer tips in one transaction,
        and delete the refused rows of ``unrefused`` (changes it stores after all). ``row``: the
        doc's row as the caller just read it (an empty one for a new doc), else it is looked up.
        ``into``: the rows go there instead, for the caller to write inside the open group (a
        bulk write's one write of many docs); the repo's caches count them written already.

        Returns the version the write made, or None if it moved no heads.
        """
        row = row or self._doc_row(space, doc) or DocRow(space, doc, (), 0)
        newest_tips = dict(self._newest_tip_seqs(space, doc)) if tips else {}
        batch = WriteBatch(changes=list(changes), unrefused=[(space, change_hash) for change_hash in unrefused])
        for tip, seq in tips:
            if seq > newest_tips.get(tip.author, -1):
                newest_tips[tip.author] = seq
                batch.tips.append(TipRow(space, doc, tip.author, tip.change_hash, seq, tip.signature))
        record = None
        if changes:
            superseded = {dep for change in changes for dep in change.deps}
            heads = {*row.heads, *(change.hash for change in changes)} - superseded
            row = DocRow(space, doc, tuple(sorted(heads)), row.change_count + len(changes))
            hashes = tuple(change.hash for change in changes)
            record = VersionRecord(self._latest_version(space) + 1, doc, row.heads, hashes, origin, time_ms)
            batch.docs.append(row)
            batch.versions.append(VersionRow(space, record))
        if not batch.tips and not batch.changes:
            return None
        if into is None:
            self._backend.write(batch, durable=origin == "local")
        else:
            for table in ("changes", "tips", "docs", "versions", "unrefused"):
                getattr(into, table).extend(getattr(batch, table))
        if self._group is not None:
            self._group.docs.add((space, doc))
        if batch.tips:
            self._tip_seqs[space, doc] = newest_tips
        seqs = self._author_seqs.get((space, doc))
        if seqs is not None:
            for change in changes:
                seqs[change.actor] = max(seqs.get(change.actor, 0), change.seq)
        if record is not None:
            self._doc_rows[space, doc] = row
            self._latest_versions[space] = record.number
        kept = self._refused.get(space, {})
        for change_hash in unrefused:
            kept.pop(change_hash, None)
        return record

    # ----- lookups and checks -----

    def _doc_row(self, space: bytes, doc: bytes) -> DocRow | None:
        row = self._doc_rows.get((space, doc))
        if row is None:
            row = self._backend.doc(space, doc)
            if row is not None:
                self._doc_rows[space, doc] = row
        return row

    def _author_seq(self, space: bytes, doc: bytes, author: bytes) -> int:
        """The highest seq of the author's stored changes in the doc (0: none)."""
        seqs = self._author_seqs.setdefault((space, doc), {})
        if author not in seqs:
            stored = self._backend.author_seq(space, doc, author)
            seqs[author] = stored[0] if stored else 0
        return seqs[author]

    def _newest_tip_seqs(self, space: bytes, doc: bytes) -> dict[bytes, int]:
        """The seq of each author's stored tip: every apply compares its tips with them."""
        seqs = self._tip_seqs.get((space, doc))
        if seqs is None:
            seqs = self._tip_seqs[space, doc] = {tip.author: tip.seq for tip in self._backend.tips(space, doc)}
        return seqs

    def _change_count(self, space: bytes, doc: bytes) -> int:
        row = self._doc_row(space, doc)
        return row.change_count if row else 0

    def _latest_version(self, space: bytes) -> int:
        if space not in self._latest_versions:
            self._latest_versions[space] = self._backend.latest_version(space)
        return self._latest_versions[space]

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the repo is closed")

    def _check_space(self, space: bytes) -> None:
        self._check_open()
        if not isinstance(space, bytes) or len(space) != SPACE_ID_BYTES:
            raise InvalidInput(f"a space id is {SPACE_ID_BYTES} bytes")
        if space in self._damaged_spaces:
            raise self._damaged_spaces[space]
        if space not in self._geneses:
            raise UnknownSpace(f"no space {space.hex()} in this store")

    def _check_doc(self, space: bytes, doc: bytes) -> None:
        self._check_space(space)
        if not isinstance(doc, bytes) or len(doc) != DOC_ID_BYTES:
            raise InvalidInput(f"a doc id is {DOC_ID_BYTES} bytes")

    @staticmethod
    def _check_peer(peer: bytes) -> None:
        if not isinstance(peer, bytes) or len(peer) != PUBLIC_KEY_BYTES:
            raise InvalidInput(f"a peer id is its {PUBLIC_KEY_BYTES}-byte public key")


def _text_row(space: bytes, doc: bytes, heads: tuple[bytes, ...], text: str | None) -> TextRow | None:
    """The text cache's row for a doc's text at ``heads`` (sorted), if it is within budget."""
    if text is None or len(text) > TEXT_CACHE_MAX_BYTES:
        return None
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not a text Automerge holds as given
        return None
    return TextRow(space, doc, heads, encoded) if len(encoded) <= TEXT_CACHE_MAX_BYTES else None


__all__ = [
    "DEFAULT_SNAPSHOT_EVERY",
    "CapabilitiesAdded",
    "ChangesRevoked",
    "Repo",
    "RepoEvent",
    "SpaceStored",
    "StoreEvent",
    "VersionRecord",
    "change_time",
    "wall_clock_ms",
]
