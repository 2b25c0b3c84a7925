"""What the protocol needs from a store, as a ``typing.Protocol``.

The protocol state machines never touch SQLite: they read heads and changes and hand verified
changes over through this interface. ``store.Repo`` implements it durably; tests and the
simulator use ``protocol.memory.MemoryChangeStore``.

Ids: spaces are 32 bytes, docs 16 bytes, change hashes 32 bytes, peers their 32-byte public key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import native

from protocol.tips import SignedTip


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
        hashes newly stored, in causal order. When it returns, the changes are durable
        (acknowledged); a change whose deps are neither stored nor in the batch is not stored
        and not returned (the protocol keeps it pending). A tip is kept if its change is stored
        and it is newer than the author's stored tip.

        Raises:
            UnusableChanges: Automerge refuses the changes (a forked or broken author chain,
                ops it cannot apply); nothing of the call is stored.
        """
        ...

    def load_sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None: ...

    def save_sync_state(self, peer: bytes, space: bytes, doc: bytes, state: bytes) -> None: ...
