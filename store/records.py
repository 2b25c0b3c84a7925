"""The rows a store persists, and ``WriteBatch``: everything one transaction writes.

The repo (policy) decides what to write; a backend (I/O) only persists a batch atomically and
answers simple reads. Keeping every write in one value makes atomicity the same in SQLite (one
transaction) and in memory (validate, then apply), and lets the conformance suite check both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Origin = Literal["local", "remote"]


class ChangeRow(NamedTuple):
    """One Automerge change of one doc. ``raw`` is None once compacted into a snapshot.

    A NamedTuple rather than a frozen dataclass: ingest builds one per change, and a tuple is
    built ~5x faster.

    ``position`` is the order in which the store received the doc's changes (0, 1, ...). A change
    is stored only after its deps, so this order is causal, and the changes a doc snapshot holds
    are exactly those below its ``change_count``.
    """

    space: bytes
    doc: bytes
    hash: bytes
    position: int
    actor: bytes
    seq: int
    deps: tuple[bytes, ...]
    time_s: int
    raw: bytes | None


@dataclass(frozen=True, slots=True)
class TipRow:
    """The newest signed tip of one author in one doc (``seq`` is its change's sequence number)."""

    space: bytes
    doc: bytes
    author: bytes
    change_hash: bytes
    seq: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class DocRow:
    """A doc's current heads (sorted) and how many changes the store holds for it."""

    space: bytes
    doc: bytes
    heads: tuple[bytes, ...]
    change_count: int


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One step of the local version index: a commit or remote apply that moved a doc's heads."""

    number: int
    doc: bytes
    heads: tuple[bytes, ...]
    hashes: tuple[bytes, ...]
    origin: Origin
    time_ms: int


@dataclass(frozen=True, slots=True)
class VersionRow:
    space: bytes
    record: VersionRecord


@dataclass(frozen=True, slots=True)
class SyncStateRow:
    """A peer's Automerge sync state for one doc; ``seen_ms`` is when it was last saved (the
    peer was last synced with), which ``Repo.maintain`` prunes by."""

    peer: bytes
    space: bytes
    doc: bytes
    state: bytes
    seen_ms: int = 0


class SyncStateKey(NamedTuple):
    """Which sync state, and when it was last saved: what pruning needs, without the state."""

    peer: bytes
    space: bytes
    doc: bytes
    seen_ms: int


QuarantineKind = Literal["change", "tip"]


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """A change or tip taken out of a doc because it breaks the doc (store/repair.py), kept.

    Writing one removes the change (or the author's tip) from the doc; the doc's remaining
    changes are renumbered 0, 1, ... in their order, which stays causal (nothing left depends
    on a quarantined change: its dependents are quarantined with it). For a tip, ``hash`` is
    the change it names, ``raw`` its signature.
    """

    space: bytes
    doc: bytes
    kind: QuarantineKind
    hash: bytes
    actor: bytes
    seq: int
    deps: tuple[bytes, ...]
    time_s: int
    raw: bytes | None
    reason: str
    quarantined_ms: int


@dataclass(frozen=True, slots=True)
class CapabilityRow:
    """One signed record of a space's capability log (protocol/capabilities.py), as received:
    content-addressed by ``hash`` (sha256 of ``data``), so storing it twice stores it once."""

    space: bytes
    hash: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A change of a private space that ingest refused as unauthorised (store/refused.py): kept,
    never materialised, so ``verify`` and ``log`` can say what was refused and why. ``raw`` is
    its bytes (None when over REFUSED_CHANGE_BYTES_MAX or not given); ``refused_ms`` is when it
    was first refused (refused again, it stays one row)."""

    space: bytes
    hash: bytes
    doc: bytes
    author: bytes
    seq: int
    time_s: int  # the author's clock, as the change says (0 when its bytes were not kept)
    raw: bytes | None
    reason: str
    refused_ms: int


@dataclass(frozen=True, slots=True)
class DocSnapshot:
    """Automerge ``save()`` of a doc holding its first ``change_count`` changes, as raw blocks."""

    space: bytes
    doc: bytes
    heads: tuple[bytes, ...]
    change_count: int
    chunks: tuple[bytes, ...]  # CIDs of the raw blocks; their concatenation is the saved doc
    created_ms: int


@dataclass(frozen=True, slots=True)
class SpaceSnapshot:
    """The newest signed manifest of a space (a dag-cbor block) and the local version it reflects."""

    space: bytes
    manifest_cid: bytes
    version: int
    created_ms: int


@dataclass(frozen=True, slots=True)
class TextRow:
    """A text file doc's text at ``heads`` (sorted), UTF-8: read without loading the doc while
    they are its heads. Heads name every change below them, so the row is never wrong, only
    out of date (store/repo.py ``cached_text``)."""

    space: bytes
    doc: bytes
    heads: tuple[bytes, ...]
    text: bytes


@dataclass(frozen=True, slots=True)
class Compaction:
    """Drop the raw bytes of a doc's changes below ``below_position`` (a snapshot holds them)."""

    space: bytes
    doc: bytes
    below_position: int


@dataclass(slots=True)
class WriteBatch:
    """Every row one atomic write inserts, replaces or deletes.

    Inserts of changes, blocks and capability records ignore rows already present
    (content-addressed, so equal);
    tips, doc rows, sync states and snapshots replace the row with the same key.
    """

    spaces: list[tuple[bytes, bytes]] = field(default_factory=list)  # (space id, encoded genesis)
    changes: list[ChangeRow] = field(default_factory=list)
    tips: list[TipRow] = field(default_factory=list)
    docs: list[DocRow] = field(default_factory=list)
    versions: list[VersionRow] = field(default_factory=list)
    sync_states: list[SyncStateRow] = field(default_factory=list)
    blocks: list[tuple[bytes, bytes]] = field(default_factory=list)  # (cid, data)
    doc_snapshots: list[DocSnapshot] = field(default_factory=list)
    space_snapshots: list[SpaceSnapshot] = field(default_factory=list)
    deleted_blocks: list[bytes] = field(default_factory=list)
    compactions: list[Compaction] = field(default_factory=list)
    pruned_sync_states: list[SyncStateKey] = field(default_factory=list)  # deleted (seen_ms ignored)
    quarantined: list[QuarantineRow] = field(default_factory=list)  # written last, see QuarantineRow
    rewritten_versions: list[VersionRow] = field(default_factory=list)  # replace existing numbers
    capability_records: list[CapabilityRow] = field(default_factory=list)  # inserts; a held hash is ignored
    refused: list[RefusedRow] = field(default_factory=list)  # inserts; a held (space, hash) is ignored
    unrefused: list[tuple[bytes, bytes]] = field(default_factory=list)  # (space, hash) refused rows deleted
    texts: list[TextRow] = field(default_factory=list)  # replace the doc's row
