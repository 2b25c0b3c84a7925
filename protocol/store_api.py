"""What the protocol needs from a store, as a ``typing.Protocol``.

The protocol state machines never touch SQLite: they read heads and changes and hand verified
changes over through this interface. Three implementations, one acceptance suite for all
(tests/protocol/test_change_store_contract.py):

- ``store.Repo`` on SQLite (or in memory): ``apply`` commits a transaction, not fsynced (a crash
  of the process keeps it; a power loss may take the newest remote applies, which peers send
  again); a sync state is written without an fsync.
- ``node.replica_store.ReplicaStore``, the node's adapter over a Repo: ``apply`` is the Repo's;
  sync states are written behind (held in memory until the driver flushes them).
- ``protocol.memory.MemoryChangeStore``: everything lives as long as the object.

What every one guarantees is what the protocol relies on: once ``apply`` returns, every later
call sees the changes; a sync state saved is the one loaded next. A lost sync state costs a
fuller exchange, never a change, so no implementation makes it durable at once.

Ids: spaces are 32 bytes, docs 16 bytes, change hashes 32 bytes, peers their 32-byte public key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import native
from protocol.capabilities import CapabilityLog, Record, decode_record
from protocol.errors import CapabilityError
from protocol.tips import SignedTip


@dataclass(frozen=True, slots=True)
class Unauthorised:
    """A change of a private space that the capability log does not allow (protocol/ingest.py):
    not applied and not forwarded, yet not refused for good — a later log may allow it."""

    change: bytes
    author: bytes
    reason: str
    # Judged as a doc the index does not name (needs unscoped write): a new file's content that
    # came before its entry. The index moving, not only the log, may make it allowed.
    unknown_doc: bool = False
    seq: int = 0
    # Its bytes, for the store to keep (ChangeStore.note_refused): not compared, not printed.
    raw: bytes = field(default=b"", compare=False, repr=False)



class ChangeStore(Protocol):
    def doc_ids(self, space: bytes) -> list[bytes]:
        """Every doc of the space this store holds changes for."""
        ...

    def heads(self, space: bytes, doc: bytes) -> list[bytes]:
        """Current heads of a doc (sorted); empty for an unknown doc."""
        ...

    def has_change(self, space: bytes, doc: bytes, change_hash: bytes) -> bool: ...

    def changes_since(self, space: bytes, doc: bytes, heads: Sequence[bytes]) -> list[bytes]:
        """Raw bytes of every stored change not reachable from ``heads``, in causal order.
        Unknown hashes in ``heads`` are ignored."""
        ...

    def author_seq(self, space: bytes, doc: bytes, author: bytes) -> int:
        """The highest seq of ``author``'s stored changes in this doc; 0 if it has none."""
        ...

    def tips(self, space: bytes, doc: bytes) -> list[SignedTip]:
        """The newest valid tip per author for this doc."""
        ...

    def save_document(self, space: bytes, doc: bytes) -> bytes:
        """An Automerge saved document (``Document.save()``) holding every stored change of the
        doc and nothing else (no uncommitted local ops). The sync protocol sends it instead of
        thousands of single changes: its columnar form is ~1 byte per keystroke, not ~50."""
        ...

    def apply(
        self, space: bytes, doc: bytes, changes: Sequence[native.DecodedChange], tips: Sequence[SignedTip]
    ) -> list[bytes]:
        """Apply changes already verified as covered, atomically with their tips.

        ``changes`` may come in any order and may include changes already stored. Returns the
        hashes newly stored, in causal order. When it returns, the changes are stored as far as
        the implementation stores anything (see the module docstring), and every later call
        sees them; a change whose deps are neither stored nor in the batch is not stored and
        not returned (the protocol keeps it pending). A tip is kept if its change is stored and
        it is newer than the author's stored tip.

        Raises:
            UnusableChanges: Automerge refuses the changes (a forked or broken author chain,
                ops it cannot apply); nothing of the call is stored.
        """
        ...

    def capability_log(self, space: bytes) -> CapabilityLog:
        """The space's capability log (protocol/capabilities.py): its genesis and every record
        held. The same object until records are added, so its cached evaluation is reused:
        ingest asks it about every change of a private space."""
        ...

    def add_capability_records(self, space: bytes, records: Sequence[bytes]) -> list[bytes]:
        """Decode, verify and hold encoded capability records; returns the hashes newly held,
        in the order given (records already held are skipped, not errors). Atomic on a bad
        record: every one is decoded before any is held.

        Raises:
            CapabilityError: a record that does not decode or verify, or of another space (the
                sender is at fault); nothing of the call is held.
            CapabilityLimit: the log is full (MAX_CAPABILITY_RECORDS); those before it are held.
        """
        ...

    def change_paths(self, space: bytes, doc: bytes, change: native.DecodedChange) -> list[str] | None:
        """The paths a change touches, for ``CapabilityLog.change_refusal`` (store/capabilities.py
        says how they are read): a file doc's path in the index now, or None if the index has no
        entry for the doc; an index change's paths of every entry it touches, before and after
        it, read at its deps (which must be stored). Only asked for changes of private spaces."""
        ...

    def note_refused(self, space: bytes, doc: bytes, refused: Sequence[Unauthorised]) -> None:
        """Keep the changes ingest refused as unauthorised (store/refused.py): never applied nor
        served, but listed with the reason by ``verify`` and ``log``. Bounded (the oldest go
        first); a change refused again stays one record; one already stored is not recorded."""
        ...

    def load_sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None:
        """The state last saved for the peer and doc; None if none was (or it was lost)."""
        ...

    def save_sync_state(self, peer: bytes, space: bytes, doc: bytes, state: bytes) -> None:
        """Replace the peer's state for the doc: a hint that makes the next exchange cheaper, so
        it may be written behind or lost in a crash (see the module docstring)."""
        ...


def decode_records(space: bytes, records: Sequence[bytes]) -> list[tuple[Record, bytes]]:
    """Every record decoded and verified, with its bytes, before any is held (what
    ``add_capability_records`` does first, in each implementation).

    Raises:
        CapabilityError: one does not decode or verify, or belongs to another space.
    """
    decoded = []
    for data in records:
        record = decode_record(bytes(data))
        if record.space != space:
            raise CapabilityError(f"a capability record of space {record.space.hex()[:12]} offered for {space.hex()[:12]}")
        decoded.append((record, bytes(data)))
    return decoded
