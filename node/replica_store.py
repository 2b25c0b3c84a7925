"""The repo as the Replicator's ``ChangeStore``: per-peer sync states written behind, stored
change hashes cached.

The Replicator saves a peer's sync state for a doc on nearly every message (every heads it
reports or is told), and each save would be a transaction of its own: under live editing that
is most of the store's work. Sync states only make the next reconnect cheaper (a lost or stale
one costs a fuller exchange, never a wrong one), so ``ReplicaStore`` keeps them in memory and
writes them when ``flush`` is called. It also answers ``has_change`` from a bounded cache of
hashes it saw stored, for the Replicator asks it for every head of every message.

Durability, per method:

- ``apply`` is ``Repo.apply``: when it returns the changes are committed (inside a
  ``Repo.group``, once the group has exited). Like every remote apply they are not fsynced on
  their own: a crash of the process keeps them, a power loss may take the newest ones, which
  peers send again when they reconnect.
- ``save_sync_state`` is write-behind: the state is held here, read back by
  ``load_sync_state`` at once, and reaches the repo only at the next ``flush`` (not fsynced
  either). A crash loses every state saved since the last flush. The ``SyncDriver`` flushes
  every ``SYNC_STATE_FLUSH_S``, whenever a sync stream closes and when it stops; so at most
  about a second of states is lost, which costs the next exchange with those peers some
  bytes, never a change.
- every read (``heads``, ``tips``...) is the repo's own (``changes_since`` reads its rows, see
  there), and so are the
  capability log and its records (``add_capability_records`` commits as a remote apply does)
  and the refused changes (``note_refused``, committed the same way).

The cache is only ever a subset of what is stored, as long as changes a revocation takes out
are ``forget``-ten (the driver does, on the repo's ``ChangesRevoked``) and a failed group commit
is followed by ``reset``: ``apply`` inside a group remembers hashes the group may yet fail to
commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import native
from node.logs import event as log
from protocol.recent import Recent
from protocol.tips import SignedTip
from store.repo import Repo

logger = logging.getLogger(__name__)

__all__ = ["KNOWN_CHANGES_CACHED", "SYNC_STATE_FLUSH_S", "FailureSink", "ReplicaStore"]

# Stored change hashes remembered for the Replicator's has_change (~100 B each): the heads and
# recent history of a busy space.
KNOWN_CHANGES_CACHED: Final = 65_536
# Per-peer sync states are written behind, at most this often (the driver's flush period).
SYNC_STATE_FLUSH_S: Final = 1.0

# Told of a contained failure, from inside an ``except``: (counter, log event name, fields).
FailureSink = Callable[..., None]


def _log_failure(counter: str, name: str, **fields: Any) -> None:
    log(logger, name, logging.ERROR, exc_info=True, counter=counter, **fields)


class ReplicaStore:
    """A ``Repo`` as a ``protocol.store_api.ChangeStore``, sync states written behind (see the
    module docstring for what is durable when).

    Args:
        repo: the store every change is read from and applied to; used from one thread.
        on_failure: told of a failed ``flush`` (``on_failure(counter, name, **fields)``, from
            inside the ``except``); by default it is logged at error level. A failed flush
            loses those states, as a crash would.
    """

    def __init__(self, repo: Repo, on_failure: FailureSink = _log_failure) -> None:
        self._repo = repo
        self._on_failure = on_failure
        self._dirty: dict[tuple[bytes, bytes, bytes], bytes] = {}
        self._known: Recent[tuple[bytes, bytes, bytes], None] = Recent(KNOWN_CHANGES_CACHED)  # stored changes
        self.doc_ids = repo.doc_ids
        self.heads = repo.heads
        self.author_seq = repo.author_seq
        self.tips = repo.tips
        self.save_document = repo.save_document
        self.capability_log = repo.capability_log
        self.add_capability_records = repo.add_capability_records
        self.change_paths = repo.change_paths
        self.note_refused = repo.note_refused

    def has_change(self, space: bytes, doc: bytes, change_hash: bytes) -> bool:
        """The Replicator asks this for every head of every message: remember the yeses (a
        stored change stays stored), so a query reaches SQLite once per change, not per message."""
        key = (space, doc, change_hash)
        if key in self._known:
            return True
        if not self._repo.has_change(space, doc, change_hash):
            return False
        self.remember(space, doc, [change_hash])
        return True

    def changes_since(self, space: bytes, doc: bytes, heads: Sequence[bytes]) -> list[bytes]:
        """``Repo.changes_since``. For a peer that holds none of the doc (``heads`` names no
        stored change), the stored bytes of every change in the order they were stored (a causal
        order), unless some are compacted into a snapshot: a fresh peer's catch-up asks this of
        every doc of the space, and loading each document to list them cost ~1.7 ms a doc, most
        of a 20,000-file space's first fetch."""
        if not any(self.has_change(space, doc, change_hash) for change_hash in heads):
            raw = [row.raw for row in self._repo.backend.changes(space, doc)]
            if raw and all(each is not None for each in raw):
                return [each for each in raw if each is not None]
        return self._repo.changes_since(space, doc, heads)

    def remember(self, space: bytes, doc: bytes, hashes: Iterable[bytes]) -> None:
        """Note changes known to be stored (applied here, or committed locally)."""
        for change_hash in hashes:
            self._known.put((space, doc, change_hash), None)

    def forget(self, space: bytes, doc: bytes, hashes: Iterable[bytes]) -> None:
        """Note changes no longer stored (a revocation took them out of the doc)."""
        for change_hash in hashes:
            self._known.discard((space, doc, change_hash))

    def apply(
        self, space: bytes, doc: bytes, changes: Sequence[native.DecodedChange], tips: Sequence[SignedTip]
    ) -> list[bytes]:
        """``Repo.apply`` (same result, errors and durability), its new hashes remembered."""
        applied = self._repo.apply(space, doc, changes, tips)
        self.remember(space, doc, applied)
        return applied

    def reset(self) -> None:
        """Forget what a failed group commit may have made wrong: the stored changes remembered
        and the sync states not yet written (hints: losing them costs a fuller exchange)."""
        self._known = Recent(KNOWN_CHANGES_CACHED)
        self._dirty.clear()

    def load_sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None:
        """The newest state saved, flushed or not."""
        state = self._dirty.get((peer, space, doc))
        return state if state is not None else self._repo.load_sync_state(peer, space, doc)

    def save_sync_state(self, peer: bytes, space: bytes, doc: bytes, state: bytes) -> None:
        """Held until the next ``flush``: lost if the process dies before it."""
        self._dirty[peer, space, doc] = state

    def flush(self) -> None:
        """Write every state saved since the last flush; a failure is reported to
        ``on_failure``, not raised (states are hints)."""
        dirty, self._dirty = self._dirty, {}
        try:
            for (peer, space, doc), state in dirty.items():
                self._repo.save_sync_state(peer, space, doc, state)
        except Exception:
            self._on_failure("state_flush_failures", "sync.state_flush_failed", states=len(dirty))
