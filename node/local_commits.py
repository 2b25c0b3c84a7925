"""The local commits waiting to be pushed: one batch per run of commits that continue each other.

Local edits reach the Replicator through the store: every commit by the local author is
announced by ``Repo.subscribe``, and the ``SyncDriver`` adds it here. It is fed to the
Replicator as a ``LocalCommit`` at the next checkpoint, not inside the commit: a typist or an
agent commits change by change, and the commits of a doc that queued up meanwhile, each
continuing the last, go out as one batch under the newest tip (which covers the others through
the hash links). Every receiver then checks one signature and makes one store write per batch,
not per change: ~3x cheaper to receive at 4 changes a batch, ~5x at 16, for one scheduler pass
of latency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import trio

import native
from protocol.events import LocalCommit
from protocol.limits import CHANGES_PER_SENT_BATCH, MAX_FRAME_BYTES, MAX_OPS_PER_BATCH
from store.repo import Repo, StoreEvent

__all__ = ["MERGED_PUSH_BYTES_MAX", "LocalCommitQueue"]

# Local commits queued meanwhile are merged into one pushed batch up to this many bytes of
# changes: a quarter of a frame, so the batch (deflated or not) always fits one.
MERGED_PUSH_BYTES_MAX: Final = MAX_FRAME_BYTES // 4

# (changes, bytes, ops) of a queued batch.
_Size = tuple[int, int, int]


class LocalCommitQueue:
    """Local commits of one repo's author, merged while they continue each other, handed out
    in order by ``push_to``. Used from the trio thread that runs the store."""

    def __init__(self, repo: Repo) -> None:
        self._key = repo.identity.public_key
        self._commits: list[LocalCommit] = []  # made since the pusher last ran, merged
        self._sizes: list[_Size] = []  # of each
        self._waiting = trio.Event()

    @property
    def queued(self) -> tuple[LocalCommit, ...]:
        """What the next push hands out, oldest first."""
        return tuple(self._commits)

    def add(self, event: StoreEvent) -> None:
        """Queue a committed local write, merged into the batch before when it continues it.

        Raises:
            LookupError: the event does not carry one raw change per hash, or no tip of the
                local author over its newest change (nothing is queued).
            native.DecodeError: a change does not decode (nothing is queued).
        """
        commit, first_deps, ops = self._local_commit(event)
        size = (len(commit.changes), sum(map(len, commit.changes)), ops)
        queued = self._commits
        last = queued[-1] if queued else None
        # The newest tip covers the queued batch through the hash links: Automerge makes each
        # local change depend on the author's previous one. Checked, not assumed. Merged only
        # while the batch stays what every receiver takes in one batch.
        continues = last is not None and (last.space, last.doc) == (commit.space, commit.doc) and last.tip.change_hash in first_deps
        merged = _merged(self._sizes[-1], size) if continues else None
        if last is not None and merged is not None:
            queued[-1] = LocalCommit(commit.space, commit.doc, last.changes + commit.changes, commit.tip)
            self._sizes[-1] = merged
        else:
            queued.append(commit)
            self._sizes.append(size)
        self._waiting.set()

    async def push_to(self, feed: Callable[..., None]) -> None:
        """Forever: once commits are queued, hand them all to ``feed`` (one call, in order)."""
        while True:
            await self._waiting.wait()
            self._waiting = trio.Event()
            commits, self._commits, self._sizes = self._commits, [], []
            feed(*commits)

    def _local_commit(self, event: StoreEvent) -> tuple[LocalCommit, tuple[bytes, ...], int]:
        """The commit as the Replicator takes it (its changes come with the event), the deps of
        its first change, and its op count."""
        if not event.changes or len(event.changes) != len(event.hashes):
            raise LookupError(f"a local commit's event carries {len(event.changes)} changes for {len(event.hashes)} hashes")
        decoded = list(event.decoded) or [native.decode_change(raw) for raw in event.changes]
        if [change.hash for change in decoded] != list(event.hashes):
            raise LookupError("a local commit's event carries changes other than the ones it names")
        if event.tip is None or event.tip.change_hash != event.hashes[-1] or event.tip.author != self._key:
            raise LookupError("a local commit's event carries no tip of the local author over its newest change")
        commit = LocalCommit(event.space, event.doc, event.changes, event.tip)
        return commit, tuple(decoded[0].deps), sum(change.op_count for change in decoded)


def _merged(queued: _Size, commit: _Size) -> _Size | None:
    """The (changes, bytes, ops) of a queued local batch and the commit that continues it
    merged, or None if that is more than every receiver takes in one batch (protocol/batch.py
    scans the ops of every batch it receives)."""
    changes, size, ops = (a + b for a, b in zip(queued, commit, strict=True))
    if changes > CHANGES_PER_SENT_BATCH or size > MERGED_PUSH_BYTES_MAX or ops > MAX_OPS_PER_BATCH:
        return None
    return changes, size, ops
