"""Verify, then apply: the only path by which a peer's changes reach the store.

A batch's changes are checked against its signed tips (``protocol.tips.coverage``) and against
the author-chain rule (below) before the store sees any of them. What is covered and ready goes
to ``ChangeStore.apply``; the rest waits in the sending peer's ``PendingChanges`` — a covered
change for deps that another batch will bring, an uncovered one for a tip that a later batch of
a split reply carries — and is dropped after a while. Pending changes are per peer, so a peer
can only ever fill its own allowance; going over it is a flood.

The author-chain rule. Automerge numbers each author's changes in a document 1, 2, 3... and
refuses (half-way through an apply, leaving the document unusable) a change whose number it has
already seen, or a first change numbered above 1. So every peer must store an author's changes
as one chain, in order: a change with seq ``s > 1`` is *ready* only once the same author's
change ``s - 1`` is stored (it is an implicit dep, beside the hash deps), and a second change
for an (author, seq) already taken is refused as unusable — by an honest author's Automerge it
can never be made, so its author equivocated. Refused, it is never stored or forwarded, on any
peer, whatever order the two arrive in.

Authorisation (private spaces, issue 13). A covered, ready change of a private space is applied
only if the space's capability log allows its author to write every path it touches
(``CapabilityLog.change_refusal``; the paths are the store's ``change_paths``). A change the
log refuses is *unauthorised*: not applied, not forwarded, and reported in
``Ingested.unauthorised`` with the log's reason — but not refused for good nor blamed on the
peer, for our log may lag behind the sender's (a grant not yet here, or an index entry naming
a new file's path not yet here). Its dependants in this batch and among the peer's waiting
changes are unauthorised with it, so nothing waits for it beyond this call; a dependant that
arrives later waits as for any missing dep, within the pending bounds. Since nothing of it is
stored, the peer's next offer brings it again, to be judged by our log then. Changes of an
index change's batch that it depends on are applied before its paths are read (they are read
on the index at its deps). An open space skips all of this: its ingest costs what it did.

Cost. A peer's pending changes are indexed, so a batch costs in proportion to itself, not to
what waits: only the waiting changes of authors whose tip the batch brings are covered again,
and waiting covered changes are retried only when something they wait for (a dep hash, or an
author's previous seq) has just been stored.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import native
from protocol.capabilities import CapabilityLog
from protocol.errors import Flood, UnusableChanges
from protocol.limits import MAX_PENDING_CHANGES, MAX_VERIFIED_TIPS
from protocol.recent import Recent
from protocol.space import INDEX_DOC_ID
from protocol.store_api import ChangeStore, Unauthorised
from protocol.tips import SignedTip, coverage

# A key a waiting change can wait for: a dep's hash (32 bytes), or the slot of an author's
# previous change, author key + seq (40 bytes) — the lengths keep the two kinds apart.
WaitKey = bytes


def chain_slot(author: bytes, seq: int) -> WaitKey:
    return author + seq.to_bytes(8, "big")


class _Identified(Protocol):
    @property
    def hash(self) -> bytes: ...
    @property
    def actor(self) -> bytes: ...
    @property
    def seq(self) -> int: ...


def wait_keys(changes: Iterable[_Identified]) -> list[WaitKey]:
    """What storing these changes provides to changes waiting for them: hashes and chain slots."""
    keys = []
    for change in changes:
        keys += [change.hash, chain_slot(change.actor, change.seq)]
    return keys


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A change as ingest handles it, with the attributes read once (each read of a
    ``DecodedChange`` attribute builds new bytes)."""

    change: native.DecodedChange
    hash: bytes
    actor: bytes
    seq: int
    deps: tuple[bytes, ...]
    since_ms: int

    @classmethod
    def of(cls, change: native.DecodedChange, now_ms: int) -> _Waiting:
        return cls(change, change.hash, change.actor, change.seq, tuple(change.deps), now_ms)


@dataclass(frozen=True, slots=True)
class Expired:
    """Pending changes dropped after waiting too long: ``uncovered`` never got a valid tip."""

    covered: int
    uncovered: int


@dataclass(slots=True)
class _DocPending:
    waiting: dict[bytes, _Waiting] = field(default_factory=dict)  # hash -> change
    covered: dict[bytes, None] = field(default_factory=dict)  # hashes of the covered ones
    tips: dict[bytes, SignedTip] = field(default_factory=dict)  # change hash -> a valid tip naming it
    by_author: dict[bytes, dict[bytes, None]] = field(default_factory=dict)
    blocked_on: Counter[WaitKey] = field(default_factory=Counter)  # what covered changes wait for
    keys_of: dict[bytes, tuple[WaitKey, ...]] = field(default_factory=dict)


class PendingChanges:
    """Changes one peer sent that wait for a covering tip or for what they depend on, bounded
    and indexed (see the module docstring)."""

    def __init__(self, limit: int = MAX_PENDING_CHANGES) -> None:
        self._limit = limit
        self._docs: dict[bytes, _DocPending] = {}
        self._count = 0
        # (doc, hash) in order of arrival: the oldest is first, so expiry costs what it drops.
        self._arrivals: dict[tuple[bytes, bytes], int] = {}

    def __len__(self) -> int:
        return self._count

    def __contains__(self, doc: object) -> bool:
        """Whether changes of this doc wait."""
        return doc in self._docs

    def changes(self, doc: bytes) -> list[native.DecodedChange]:
        held = self._docs.get(doc)
        return [waiting.change for waiting in held.waiting.values()] if held else []

    def missing_deps(self, doc: bytes) -> bool:
        """Whether covered changes of this doc wait for deps (so we should ask for them)."""
        held = self._docs.get(doc)
        return bool(held and held.covered)

    def unblocked_by(self, doc: bytes, keys: Iterable[WaitKey]) -> bool:
        """Whether storing what these keys name (see ``wait_keys``) may make covered changes of
        ``doc`` ready: one lookup per key, however much waits."""
        held = self._docs.get(doc)
        return held is not None and any(key in held.blocked_on for key in keys)

    def check_room(self, extra: int) -> None:
        """Raise Flood unless ``extra`` more changes fit."""
        if self._count + extra > self._limit:
            raise Flood(f"more than {self._limit} changes would wait for tips or deps")

    def next_expiry_ms(self, ttl_ms: int) -> int | None:
        for since_ms in self._arrivals.values():
            return since_ms + ttl_ms
        return None

    def expire(self, now_ms: int, ttl_ms: int) -> Expired:
        """Drop every change that has waited ttl_ms or longer."""
        covered = uncovered = 0
        while self._arrivals:
            (doc, change_hash), since_ms = next(iter(self._arrivals.items()))
            if now_ms - since_ms < ttl_ms:
                break
            if change_hash in self._docs[doc].covered:
                covered += 1
            else:
                uncovered += 1
            self.remove(doc, [change_hash])
        return Expired(covered, uncovered)

    def drop_doc(self, doc: bytes) -> None:
        """Forget every change of ``doc`` (a batch of it proved unusable)."""
        held = self._docs.get(doc)
        if held is not None:
            self.remove(doc, list(held.waiting))

    # ----- for ingest -----

    def waiting(self, doc: bytes) -> dict[bytes, _Waiting]:
        held = self._docs.get(doc)
        return held.waiting if held else {}

    def of_authors(self, doc: bytes, authors: set[bytes]) -> list[_Waiting]:
        held = self._docs.get(doc)
        if held is None:
            return []
        return [held.waiting[h] for author in authors for h in held.by_author.get(author, ())]

    def covered(self, doc: bytes) -> list[_Waiting]:
        held = self._docs.get(doc)
        return [held.waiting[h] for h in held.covered] if held else []

    def covered_keys(self, doc: bytes) -> dict[bytes, tuple[WaitKey, ...]]:
        """What each covered waiting change of ``doc`` waits for."""
        held = self._docs.get(doc)
        return dict(held.keys_of) if held else {}

    def is_covered(self, doc: bytes, change_hash: bytes) -> bool:
        held = self._docs.get(doc)
        return held is not None and change_hash in held.covered

    def tips(self, doc: bytes, hashes: Iterable[bytes]) -> list[SignedTip]:
        held = self._docs.get(doc)
        if held is None:
            return []
        return [held.tips[h] for h in hashes if h in held.tips]

    def add(self, doc: bytes, change: _Waiting, *, keys: tuple[WaitKey, ...] | None) -> None:
        """Make ``change`` wait: covered (waiting for ``keys``) when keys is not None."""
        held = self._docs.setdefault(doc, _DocPending())
        if change.hash in held.waiting:
            self.remove(doc, [change.hash], keep_arrival=True)
        else:
            self._arrivals[doc, change.hash] = change.since_ms
        held = self._docs.setdefault(doc, _DocPending())
        held.waiting[change.hash] = change
        held.by_author.setdefault(change.actor, {})[change.hash] = None
        self._count += 1
        if keys is not None:
            held.covered[change.hash] = None
            held.keys_of[change.hash] = keys
            held.blocked_on.update(keys)

    def add_tips(self, doc: bytes, tips: Iterable[SignedTip]) -> None:
        held = self._docs.get(doc)
        if held is not None:
            for tip in tips:
                if tip.change_hash in held.waiting:
                    held.tips[tip.change_hash] = tip

    def remove(self, doc: bytes, hashes: Iterable[bytes], *, keep_arrival: bool = False) -> None:
        held = self._docs.get(doc)
        if held is None:
            return
        for change_hash in hashes:
            waiting = held.waiting.pop(change_hash, None)
            if waiting is None:
                continue
            self._count -= 1
            if not keep_arrival:
                self._arrivals.pop((doc, change_hash), None)
            held.tips.pop(change_hash, None)
            authored = held.by_author[waiting.actor]
            del authored[change_hash]
            if not authored:
                del held.by_author[waiting.actor]
            if change_hash in held.covered:
                del held.covered[change_hash]
                for key in held.keys_of.pop(change_hash):
                    held.blocked_on[key] -= 1
                    if not held.blocked_on[key]:
                        del held.blocked_on[key]
        if not held.waiting:
            del self._docs[doc]


class VerifiedTips:
    """Tips whose signature already checked out, so a retried pending batch costs no verify."""

    def __init__(self, limit: int = MAX_VERIFIED_TIPS) -> None:
        self._tips: Recent[SignedTip, None] = Recent(limit)

    def __contains__(self, tip: object) -> bool:
        return tip in self._tips

    def add(self, tips: Iterable[SignedTip]) -> None:
        for tip in tips:
            self._tips.put(tip, None)


@dataclass(frozen=True, slots=True)
class Refused:
    """A change refused for good: it breaks its author's chain, or Automerge refuses it, or it
    depends on such a change. Never stored, never forwarded, never asked for again."""

    change: bytes
    author: bytes
    reason: str
    forks_chain: bool  # a second change for a taken (author, seq): its author equivocated


@dataclass(frozen=True, slots=True)
class Ingested:
    applied: list[bytes]  # hashes newly stored, in causal order
    refused: list[Refused]
    unauthorised: list[Unauthorised] = field(default_factory=list)


DEPENDS_ON_UNAUTHORISED = "depends on an unauthorised change"
_MS_PER_S = 1000  # Automerge change times are whole seconds here (store/repo.py commits them so)


def ingest(
    store: ChangeStore,
    space: bytes,
    doc: bytes,
    changes: Sequence[native.DecodedChange],
    tips: Sequence[SignedTip],
    pending: PendingChanges,
    verified: VerifiedTips,
    now_ms: int,
    refused: Container[bytes] = (),
) -> Ingested:
    """Verify a batch together with what it completes of the peer's waiting changes of this
    doc; apply what is covered and ready. An empty batch retries the waiting covered changes.

    A change that breaks its author's chain, or that Automerge refuses, is refused alone (with
    whatever depends on it): the rest of the batch is applied, so an honest peer relaying one
    equivocating author's change loses us none of the others. ``refused`` are changes refused
    before: dropped at once.

    Raises:
        VerificationError: a forged or misattributed tip, or a change with an invalid actor;
            nothing of the batch is applied and what was pending stays as it was.
        Flood: too many changes would wait. Raised before applying when uncovered changes
            overflow; when covered changes still waiting overflow, the covered changes that
            could be applied were (they are verified) and the rest stays as it was.
    """
    is_stored = _stored_lookup(store, space, doc)
    waiting = pending.waiting(doc)
    new = [_Waiting.of(change, now_ms) for change in _unstored(is_stored, changes)]
    new = [change for change in new if change.hash not in refused]
    if changes and not new:
        return Ingested([], [])  # everything it holds is stored already (or refused before)
    # Waiting changes of the authors whose tips came are covered again, with the new ones;
    # those another peer delivered meanwhile are stored already and stop waiting.
    candidates = {c.hash: c for c in [*_still_waiting(pending, doc, pending.of_authors(doc, {tip.author for tip in tips}), is_stored), *new]}
    valid_tips: list[SignedTip] = []
    covered_hashes: set[bytes] = set()
    if candidates:
        result = coverage(
            space,
            doc,
            [c.change for c in candidates.values()],
            tips,
            is_stored=lambda change_hash: change_hash in waiting or is_stored(change_hash),
            is_verified=verified.__contains__,
        )
        valid_tips = list(result.valid_tips)
        verified.add(valid_tips)
        covered_hashes = {change.hash for change in result.covered}
    covered_now = [c for c in candidates.values() if c.hash in covered_hashes or pending.is_covered(doc, c.hash)]
    uncovered_new = [c for c in new if c.hash not in covered_hashes and c.hash not in waiting]
    pending.check_room(len(uncovered_new))
    ready_candidates = {c.hash: c for c in covered_now}
    if not changes or pending.unblocked_by(doc, wait_keys(covered_now)):
        ready_candidates.update((c.hash, c) for c in _still_waiting(pending, doc, pending.covered(doc), is_stored))
    ready, blocked, refusals = _chain_ready(store, space, doc, list(ready_candidates.values()), is_stored, refused)
    ready_tips = [*valid_tips, *pending.tips(doc, (c.hash for c in ready))]
    unauthorised: list[Unauthorised] = []
    bad: set[WaitKey] = set()  # what the unauthorised provide: their hashes and chain slots
    log = store.capability_log(space) if ready else None
    if log is not None and log.private:
        applied = _apply_authorised(store, log, space, doc, ready, ready_tips, refusals, unauthorised, bad)
    else:
        applied = _apply(store, space, doc, ready, ready_tips, refusals)
    pending.remove(doc, [*applied, *(r.change for r in refusals), *(u.change for u in unauthorised)])
    for change in uncovered_new:
        pending.add(doc, change, keys=None)
    newly_blocked = {h: keys for h, keys in blocked.items() if not pending.is_covered(doc, h)}
    if unauthorised:
        newly_blocked = _without_dependants(pending, doc, newly_blocked, ready_candidates, bad, unauthorised)
    pending.check_room(sum(1 for h in newly_blocked if h not in waiting))
    for change_hash, keys in newly_blocked.items():
        pending.add(doc, ready_candidates[change_hash], keys=keys)
    pending.add_tips(doc, valid_tips)
    return Ingested(applied, refusals, unauthorised)


def _apply_authorised(
    store: ChangeStore,
    log: CapabilityLog,
    space: bytes,
    doc: bytes,
    ready: list[_Waiting],
    tips: list[SignedTip],
    refusals: list[Refused],
    unauthorised: list[Unauthorised],
    bad: set[WaitKey],
) -> list[bytes]:
    """``_apply`` of the ready changes the log allows (module docstring), in their order;
    ``bad`` gets the hashes and chain slots of the unauthorised.

    An index change's paths are read at its deps, so ready changes of the batch that it
    depends on are applied first (a run at a time: one apply per run, not per change)."""
    applied: list[bytes] = []
    run: list[_Waiting] = []
    in_run: set[bytes] = set()
    failed: set[bytes] = set()  # refused by the store in an earlier run
    verdicts = _Verdicts(store, log, space, doc)
    for change in ready:
        if doc == INDEX_DOC_ID and in_run.intersection(change.deps):
            applied += _apply(store, space, doc, run, tips, refusals)
            failed.update(refusal.change for refusal in refusals)
            run, in_run = [], set()
        if failed.intersection(change.deps):
            failed.add(change.hash)
            refusals.append(Refused(change.hash, change.actor, "depends on a refused change", forks_chain=False))
            continue
        if bad.intersection(change.deps) or chain_slot(change.actor, change.seq - 1) in bad:
            reason: str | None = DEPENDS_ON_UNAUTHORISED
        else:
            reason = verdicts.of(change)
        if reason is None:
            run.append(change)
            in_run.add(change.hash)
        else:
            bad.update((change.hash, chain_slot(change.actor, change.seq)))
            unauthorised.append(
                Unauthorised(change.hash, change.actor, reason, unknown_doc=verdicts.unknown_doc, seq=change.seq, raw=change.change.raw)
            )
    return applied + _apply(store, space, doc, run, tips, refusals)


class _Verdicts:
    """``change_refusal`` for the changes of one ingest call, asked as little as it can be.

    A file doc's paths depend on the index alone, which a file doc's ingest does not change: read
    once per call. And an author the log has not revoked gets the same verdict for every change
    made in the same second (the seq only matters to a revocation cutoff): asked once per author
    and change time. A batch of a hundred keystrokes costs one lookup of each, not a hundred."""

    def __init__(self, store: ChangeStore, log: CapabilityLog, space: bytes, doc: bytes) -> None:
        self._store, self._log, self._space, self._doc = store, log, space, doc
        self._file_paths: list[str] | None = None
        self._file_paths_read = False
        self.unknown_doc = False  # a file doc the index does not name (see Unauthorised)
        self._revoked: dict[bytes, bool] = {}
        self._by_time: dict[tuple[bytes, int], str | None] = {}

    def _paths(self, change: native.DecodedChange) -> list[str] | None:
        if self._doc == INDEX_DOC_ID:
            return self._store.change_paths(self._space, self._doc, change)
        if not self._file_paths_read:
            self._file_paths = self._store.change_paths(self._space, self._doc, change)
            self._file_paths_read = True
            self.unknown_doc = self._file_paths is None
        return self._file_paths

    def of(self, waiting: _Waiting) -> str | None:
        change, author = waiting.change, waiting.actor
        at_ms = change.time * _MS_PER_S
        revoked = self._revoked.get(author)
        if revoked is None:
            revoked = self._revoked[author] = self._log.revocation_cutoff(author) is not None
        key = (author, at_ms)
        if revoked or self._doc == INDEX_DOC_ID or key not in self._by_time:
            reason = self._log.change_refusal(author, self._doc, waiting.seq, self._paths(change), at_ms)
            if revoked or self._doc == INDEX_DOC_ID:
                return reason
            self._by_time[key] = reason
        return self._by_time[key]


def _without_dependants(
    pending: PendingChanges,
    doc: bytes,
    blocked: dict[bytes, tuple[WaitKey, ...]],
    candidates: dict[bytes, _Waiting],
    bad: set[WaitKey],
    unauthorised: list[Unauthorised],
) -> dict[bytes, tuple[WaitKey, ...]]:
    """Make the changes that wait for an unauthorised change (the newly blocked ones and the
    peer's covered waiting ones, transitively) unauthorised too, and drop them: they could
    only be applied after it. Returns the newly blocked that still wait."""
    waits = {**pending.covered_keys(doc), **blocked}
    changes = {c.hash: c for c in pending.covered(doc)}
    changes.update((h, candidates[h]) for h in blocked)
    dependents: dict[WaitKey, list[bytes]] = {}
    for change_hash, keys in waits.items():
        for key in keys:
            dependents.setdefault(key, []).append(change_hash)
    queue = [key for key in bad if key in dependents]
    dropped: set[bytes] = set()
    while queue:
        for change_hash in dependents.pop(queue.pop(), ()):
            if change_hash in dropped:
                continue
            dropped.add(change_hash)
            change = changes[change_hash]
            unauthorised.append(Unauthorised(change_hash, change.actor, DEPENDS_ON_UNAUTHORISED, seq=change.seq, raw=change.change.raw))
            queue += [key for key in (change_hash, chain_slot(change.actor, change.seq)) if key in dependents]
    pending.remove(doc, dropped)
    return {h: keys for h, keys in blocked.items() if h not in dropped}


def _apply(
    store: ChangeStore, space: bytes, doc: bytes, ready: list[_Waiting], tips: list[SignedTip], refusals: list[Refused]
) -> list[bytes]:
    """Store the ready changes; if the store's Automerge refuses them, find which one by
    storing them one at a time (the rare, hostile case pays for it), refusing it and whatever
    depends on it, and keep the rest."""
    if not ready:
        return []
    try:
        return store.apply(space, doc, [c.change for c in ready], tips)
    except UnusableChanges as error:
        if len(ready) == 1:
            refusals.append(Refused(ready[0].hash, ready[0].actor, str(error), forks_chain=False))
            return []
    applied: list[bytes] = []
    bad: set[bytes] = set()
    for change in ready:
        if bad.intersection(change.deps) or chain_slot(change.actor, change.seq - 1) in bad:
            bad.update((change.hash, chain_slot(change.actor, change.seq)))
            refusals.append(Refused(change.hash, change.actor, "depends on a refused change", forks_chain=False))
            continue
        try:
            applied += store.apply(space, doc, [change.change], tips)
        except UnusableChanges as error:
            bad.update((change.hash, chain_slot(change.actor, change.seq)))
            refusals.append(Refused(change.hash, change.actor, str(error), forks_chain=False))
    return applied


def _still_waiting(pending: PendingChanges, doc: bytes, changes: list[_Waiting], is_stored: Callable[[bytes], bool]) -> list[_Waiting]:
    """The ones the store lacks; the others are forgotten (they came by another peer)."""
    stored = {change.hash for change in changes if is_stored(change.hash)}
    pending.remove(doc, stored)
    return [change for change in changes if change.hash not in stored]


def _stored_lookup(store: ChangeStore, space: bytes, doc: bytes) -> Callable[[bytes], bool]:
    """``store.has_change`` for this doc, remembering answers for the length of one ingest."""
    answers: dict[bytes, bool] = {}

    def is_stored(change_hash: bytes) -> bool:
        answer = answers.get(change_hash)
        if answer is None:
            answer = answers[change_hash] = store.has_change(space, doc, change_hash)
        return answer

    return is_stored


def _unstored(is_stored: Callable[[bytes], bool], changes: Sequence[native.DecodedChange]) -> list[native.DecodedChange]:
    """The changes the store does not hold.

    The store only ever holds a change together with its deps, so a change with a dep it lacks
    lacks too: taken in causal order, a batch of new changes costs one lookup per root, not per
    change (a 10,000-change reply, 10,000 SQLite queries fewer).
    """
    unstored: dict[bytes, native.DecodedChange] = {}
    for change in changes:
        change_hash = change.hash
        if change_hash not in unstored and (any(dep in unstored for dep in change.deps) or not is_stored(change_hash)):
            unstored[change_hash] = change
    return list(unstored.values())


def _chain_ready(
    store: ChangeStore,
    space: bytes,
    doc: bytes,
    candidates: list[_Waiting],
    is_stored: Callable[[bytes], bool],
    refused_before: Container[bytes],
) -> tuple[list[_Waiting], dict[bytes, tuple[WaitKey, ...]], list[Refused]]:
    """The candidates that are ready — every dep stored or ready before them, and their author's
    previous change too — in an order that respects both; for the rest, what each waits for;
    and the refused: a candidate taking an (author, seq) that a stored change or an earlier
    candidate holds (its author forked its chain), and any candidate depending on a refused one.
    """
    refusals: list[Refused] = []
    bad: set[bytes] = set()
    slots: dict[WaitKey, _Waiting] = {}
    stored_seq: dict[bytes, int] = {}
    kept: list[_Waiting] = []
    for change in candidates:
        if change.actor not in stored_seq:
            stored_seq[change.actor] = store.author_seq(space, doc, change.actor)
        slot = chain_slot(change.actor, change.seq)
        reason = None
        if any(dep in bad or dep in refused_before for dep in change.deps):
            reason = "depends on a refused change"
        elif slot in slots or change.seq <= stored_seq[change.actor]:
            reason = f"a second change by {change.actor.hex()[:12]} for seq {change.seq}: a forked author chain"
        if reason is None:
            slots[slot] = change
            kept.append(change)
        else:
            bad.add(change.hash)
            refusals.append(Refused(change.hash, change.actor, reason, forks_chain=reason.startswith("a second")))
    by_hash = {change.hash: change for change in kept}
    missing: dict[bytes, list[WaitKey]] = {}  # hash -> keys it waits for
    dependents: dict[WaitKey, list[bytes]] = {}
    queue: deque[_Waiting] = deque()
    for change in kept:
        keys = [dep for dep in change.deps if dep in by_hash or not is_stored(dep)]
        if change.seq > 1 and stored_seq[change.actor] != change.seq - 1:
            keys.append(chain_slot(change.actor, change.seq - 1))
        if keys:
            missing[change.hash] = keys
            for key in keys:
                dependents.setdefault(key, []).append(change.hash)
        else:
            queue.append(change)
    ready: list[_Waiting] = []
    while queue:
        change = queue.popleft()
        ready.append(change)
        for key in (change.hash, chain_slot(change.actor, change.seq)):
            for dependent in dependents.pop(key, ()):
                keys = missing[dependent]
                keys.remove(key)
                if not keys:
                    del missing[dependent]
                    queue.append(by_hash[dependent])
    return ready, {change_hash: tuple(keys) for change_hash, keys in missing.items()}, refusals
