"""Verify, then apply: the only path by which a peer's changes reach the store.

A batch's changes are checked against its signed tips (``protocol.tips.coverage``) before the
store sees any of them. What is covered and has its deps goes to ``ChangeStore.apply``; the
rest waits in the sending peer's ``PendingChanges`` — a covered change for deps that another
batch will bring, an uncovered one for a tip that a later batch of a split reply carries — and
is dropped after a while. Pending changes are per peer, so a peer can only ever fill its own
allowance; going over it is a flood.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import native

from protocol.errors import Flood
from protocol.limits import MAX_PENDING_CHANGES, MAX_VERIFIED_TIPS
from protocol.store_api import ChangeStore
from protocol.tips import SignedTip, coverage


@dataclass(frozen=True, slots=True)
class _Waiting:
    change: native.DecodedChange
    covered: bool
    since_ms: int


@dataclass(frozen=True, slots=True)
class Expired:
    """Pending changes dropped after waiting too long: ``uncovered`` never got a valid tip."""

    covered: int
    uncovered: int


class PendingChanges:
    """Changes one peer sent that wait for a covering tip or for their deps, bounded."""

    def __init__(self, limit: int = MAX_PENDING_CHANGES) -> None:
        self._limit = limit
        self._changes: dict[bytes, dict[bytes, _Waiting]] = {}  # doc -> hash -> waiting
        self._tips: dict[bytes, list[SignedTip]] = {}  # doc -> tips of waiting changes

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._changes.values())

    def __contains__(self, doc: object) -> bool:
        """Whether changes of this doc wait."""
        return doc in self._changes

    def changes(self, doc: bytes) -> list[native.DecodedChange]:
        return [waiting.change for waiting in self._changes.get(doc, {}).values()]

    def tips(self, doc: bytes) -> list[SignedTip]:
        return self._tips.get(doc, [])

    def missing_deps(self, doc: bytes) -> bool:
        """Whether covered changes of this doc wait for deps (so we should ask for them)."""
        return any(waiting.covered for waiting in self._changes.get(doc, {}).values())

    def check_room(self, doc: bytes, waiting: int) -> None:
        """Raise Flood unless ``waiting`` changes of this doc (replacing its current ones) fit."""
        if not self._changes and waiting <= self._limit:
            return
        others = len(self) - len(self._changes.get(doc, {}))
        if others + waiting > self._limit:
            raise Flood(f"more than {self._limit} changes would wait for tips or deps")

    def replace(
        self, doc: bytes, covered: Sequence[native.DecodedChange], uncovered: Sequence[native.DecodedChange], tips: Iterable[SignedTip], now_ms: int
    ) -> None:
        """Make these the doc's waiting changes, keeping each one's first arrival time.

        Raises:
            Flood: the peer would have more changes waiting than the limit; nothing changes.
        """
        if not covered and not uncovered and doc not in self._changes:
            return  # the usual batch: everything applied, nothing waited before
        self.check_room(doc, len(covered) + len(uncovered))
        before = self._changes.get(doc, {})
        waiting = {}
        for change, is_covered in [*((c, True) for c in covered), *((c, False) for c in uncovered)]:
            since_ms = before[change.hash].since_ms if change.hash in before else now_ms
            waiting[change.hash] = _Waiting(change, is_covered, since_ms)
        self._set(doc, waiting, [tip for tip in tips if tip.change_hash in waiting])

    def _set(self, doc: bytes, waiting: dict[bytes, _Waiting], tips: list[SignedTip]) -> None:
        if waiting:
            self._changes[doc] = waiting
            self._tips[doc] = tips
        else:
            self._changes.pop(doc, None)
            self._tips.pop(doc, None)

    def next_expiry_ms(self, ttl_ms: int) -> int | None:
        if not self._changes:
            return None
        oldest = min((w.since_ms for waiting in self._changes.values() for w in waiting.values()), default=None)
        return None if oldest is None else oldest + ttl_ms

    def expire(self, now_ms: int, ttl_ms: int) -> Expired:
        """Drop every change that has waited ttl_ms or longer."""
        covered = uncovered = 0
        for doc, waiting in list(self._changes.items()):
            kept = {h: w for h, w in waiting.items() if now_ms - w.since_ms < ttl_ms}
            for dropped in waiting.values():
                if dropped.change.hash not in kept:
                    covered += dropped.covered
                    uncovered += not dropped.covered
            self._set(doc, kept, [tip for tip in self._tips[doc] if tip.change_hash in kept])
        return Expired(covered, uncovered)


class VerifiedTips:
    """Tips whose signature already checked out, so a retried pending batch costs no verify."""

    def __init__(self, limit: int = MAX_VERIFIED_TIPS) -> None:
        self._limit = limit
        self._tips: dict[SignedTip, None] = {}

    def __contains__(self, tip: object) -> bool:
        return tip in self._tips

    def add(self, tips: Iterable[SignedTip]) -> None:
        for tip in tips:
            self._tips[tip] = None
            if len(self._tips) > self._limit:
                del self._tips[next(iter(self._tips))]


def ingest(
    store: ChangeStore,
    space: bytes,
    doc: bytes,
    changes: Sequence[native.DecodedChange],
    tips: Sequence[SignedTip],
    pending: PendingChanges,
    verified: VerifiedTips,
    now_ms: int,
) -> list[bytes]:
    """Verify a batch together with what already waits for this doc; apply what is covered.

    Returns the hashes newly stored, in causal order.

    Raises:
        VerificationError: a forged or misattributed tip, or a change with an invalid actor;
            nothing of the batch is applied and what was pending stays as it was.
        Flood: too many changes would wait. Raised before applying when uncovered changes
            overflow; when covered changes still missing deps overflow, the covered changes that
            could be applied were (they are verified) and the rest stays as it was.
    """
    candidates = _unstored(store, space, doc, [*pending.changes(doc), *changes])
    if not candidates:
        return []
    result = coverage(
        space,
        doc,
        candidates,
        [*pending.tips(doc), *tips],
        is_stored=lambda change_hash: store.has_change(space, doc, change_hash),
        is_verified=verified.__contains__,
    )
    verified.add(result.valid_tips)
    pending.check_room(doc, len(result.uncovered))
    applied = store.apply(space, doc, result.covered, result.valid_tips) if result.covered else []
    stored = set(applied)
    pending.replace(doc, [c for c in result.covered if c.hash not in stored], result.uncovered, result.valid_tips, now_ms)
    return applied


def _unstored(store: ChangeStore, space: bytes, doc: bytes, changes: Sequence[native.DecodedChange]) -> list[native.DecodedChange]:
    """The changes the store does not hold.

    The store only ever holds a change together with its deps, so a change with a dep it lacks
    lacks too: taken in causal order, a batch of new changes costs one lookup per root, not per
    change (a 10,000-change reply, 10,000 SQLite queries fewer).
    """
    unstored: dict[bytes, native.DecodedChange] = {}
    for change in changes:
        if change.hash not in unstored and (
            any(dep in unstored for dep in change.deps) or not store.has_change(space, doc, change.hash)
        ):
            unstored[change.hash] = change
    return list(unstored.values())
