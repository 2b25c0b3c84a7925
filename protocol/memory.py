"""An in-memory ``ChangeStore`` for tests and the simulator, giving the same answers as the
durable ``store.Repo`` (tests/protocol/test_change_store_contract.py runs one suite on both):
changes by doc, newest tip per author, per-peer sync state. Nothing survives the object, which
is the point: a test or a simulated crash builds a fresh one.

Like the Repo, applying and serving changes need no Automerge document: every change is kept
raw with its deps and its place in the causal order, and applied changes reach the document in
one bulk ``apply_changes`` only when something reads it (Automerge's apply costs time
proportional to the document per call, so keeping it current as batches arrive, or to answer
every ``changes_since``, would make a long live session quadratic).

Capability logs: a space whose genesis was given (``add_space``) has its log, as the Repo does;
any other space is served as open (the protocol tests make spaces from bare ids) and holds no
records. ``change_paths`` reads the index doc with the function it was given
(store/capabilities.py ``change_paths``, which knows the tree's layout: protocol does not);
without one every doc is unknown to the index, so only unscoped writers may write.

``commit`` plays the local author: it makes one Automerge change per edit, signs one tip over
the last (a signed batch), stores both and returns the ``LocalCommit`` event to feed to the
``Replicator`` — what the node does with ``Repo.commit``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import native
from protocol.capabilities import CapabilityLog
from protocol.causal import causal_order
from protocol.errors import LocalProtocolError, UnusableChanges
from protocol.events import LocalCommit
from protocol.identity import Identity
from protocol.space import INDEX_DOC_ID, NONCE_BYTES, Genesis
from protocol.store_api import Unauthorised, decode_records
from protocol.tips import SignedTip

# Refused changes kept per space, as the Repo's REFUSED_CHANGES_KEPT (store/refused.py): the
# oldest go first.
REFUSED_KEPT: Final = 1_000

Edit = Callable[[native.Document], None]
# (the space's index document, the doc, the change) -> the paths the change touches.
PathsOf = Callable[[native.Document, bytes, native.DecodedChange], list[str] | None]
# The log of a space whose genesis this store was not given: open, and holding nothing (an
# unsigned stand-in genesis; its id is no space's).
_UNKNOWN_GENESIS = Genesis(bytes(32), "a space of unknown genesis", bytes(NONCE_BYTES), 0, b"")


@dataclass(frozen=True, slots=True)
class _Stored:
    raw: bytes
    deps: tuple[bytes, ...]
    actor: bytes
    seq: int
    index: int  # position in the order of storing, which is causal: deps always come first


@dataclass(slots=True)
class _Doc:
    document: native.Document = field(default_factory=native.Document)
    changes: dict[bytes, _Stored] = field(default_factory=dict)  # hash -> change, in causal order
    heads: set[bytes] = field(default_factory=set)
    unapplied: list[bytes] = field(default_factory=list)  # stored, not yet in ``document``
    tips: dict[bytes, tuple[int, SignedTip]] = field(default_factory=dict)  # author -> (seq, tip)
    newest: dict[bytes, int] = field(default_factory=dict)  # author -> highest seq stored

    def add(self, change: native.DecodedChange) -> None:
        self._keep(change.hash, change.raw, tuple(change.deps), change.actor, change.seq)

    def _keep(self, change_hash: bytes, raw: bytes, deps: tuple[bytes, ...], actor: bytes, seq: int) -> None:
        self.changes[change_hash] = _Stored(raw, deps, actor, seq, len(self.changes))
        self.heads.difference_update(deps)
        self.heads.add(change_hash)
        self.newest[actor] = max(self.newest.get(actor, 0), seq)

    def without(self, out: set[bytes]) -> _Doc:
        """This doc rebuilt without the changes ``out`` (closed under dependants), their tips dropped."""
        rebuilt = _Doc()
        for change_hash, stored in self.changes.items():
            if change_hash not in out:
                rebuilt._keep(change_hash, stored.raw, stored.deps, stored.actor, stored.seq)
                rebuilt.unapplied.append(stored.raw)
        rebuilt.tips = {author: kept for author, kept in self.tips.items() if kept[1].change_hash not in out}
        return rebuilt

    def since(self, base: Sequence[bytes]) -> list[bytes]:
        """Raw changes not reachable from ``base`` (stored hashes), in causal order.

        Walks back from our heads and from ``base`` together, newest first: a change is popped
        only after every change that depends on it, so by then it is marked reachable from
        ``base`` if it is. The walk stops once nothing unreachable is left to pop, so it costs
        what the peer lacks, not the history.
        """
        if not base:
            return [stored.raw for stored in self.changes.values()]
        changes = self.changes
        from_base = {**dict.fromkeys(self.heads, False), **dict.fromkeys(base, True)}
        queue = [(-changes[change_hash].index, change_hash) for change_hash in from_base]
        heapq.heapify(queue)
        lacking = sum(not reached for reached in from_base.values())
        found: list[bytes] = []
        while lacking:
            _, change_hash = heapq.heappop(queue)
            reached = from_base[change_hash]
            if not reached:
                found.append(change_hash)
                lacking -= 1
            for dep in changes[change_hash].deps:
                if dep not in from_base:
                    from_base[dep] = reached
                    lacking += not reached
                    heapq.heappush(queue, (-changes[dep].index, dep))
                elif reached and not from_base[dep]:
                    from_base[dep] = True
                    lacking -= 1
        return [changes[change_hash].raw for change_hash in reversed(found)]

    def caught_up(self) -> native.Document:
        if self.unapplied:
            self.document.apply_changes(self.unapplied)
            self.unapplied = []
        return self.document

    def keep_tip(self, tip: SignedTip, seq: int) -> None:
        if seq > self.tips.get(tip.author, (0, tip))[0]:
            self.tips[tip.author] = (seq, tip)


class MemoryChangeStore:
    """Implements protocol.store_api.ChangeStore in memory."""

    def __init__(self, change_paths: PathsOf | None = None, geneses: Sequence[Genesis] = ()) -> None:
        self._docs: dict[tuple[bytes, bytes], _Doc] = {}
        self._sync_states: dict[tuple[bytes, bytes, bytes], bytes] = {}
        self._paths_of = change_paths
        self._logs: dict[bytes, CapabilityLog] = {}
        self._open_log = CapabilityLog(_UNKNOWN_GENESIS)
        self._refused: dict[bytes, dict[bytes, tuple[bytes, Unauthorised]]] = {}  # space -> hash -> (doc, it)
        for genesis in geneses:
            self.add_space(genesis)

    def add_space(self, genesis: Genesis) -> None:
        """Hold the space's genesis, so its log is its own (a private space's is enforced)."""
        if genesis.space_id not in self._logs:
            self._logs[genesis.space_id] = CapabilityLog(genesis)

    def _doc(self, space: bytes, doc: bytes) -> _Doc:
        held = self._docs.get((space, doc))
        if held is None:
            held = self._docs[space, doc] = _Doc()
        return held

    # ----- ChangeStore -----

    def doc_ids(self, space: bytes) -> list[bytes]:
        return sorted(doc for (s, doc), held in self._docs.items() if s == space and held.changes)

    def heads(self, space: bytes, doc: bytes) -> list[bytes]:
        held = self._docs.get((space, doc))
        return sorted(held.heads) if held else []

    def has_change(self, space: bytes, doc: bytes, change_hash: bytes) -> bool:
        held = self._docs.get((space, doc))
        return held is not None and change_hash in held.changes

    def author_seq(self, space: bytes, doc: bytes, author: bytes) -> int:
        held = self._docs.get((space, doc))
        return held.newest.get(author, 0) if held else 0

    def changes_since(self, space: bytes, doc: bytes, heads: Sequence[bytes]) -> list[bytes]:
        held = self._docs.get((space, doc))
        if held is None:
            return []
        return held.since([h for h in heads if h in held.changes])

    def tips(self, space: bytes, doc: bytes) -> list[SignedTip]:
        held = self._docs.get((space, doc))
        return [tip for _, tip in held.tips.values()] if held else []

    def save_document(self, space: bytes, doc: bytes) -> bytes:
        return self._doc(space, doc).caught_up().save()

    def apply(
        self, space: bytes, doc: bytes, changes: Sequence[native.DecodedChange], tips: Sequence[SignedTip]
    ) -> list[bytes]:
        held = self._doc(space, doc)
        batch: dict[bytes, native.DecodedChange] = {}
        for change in changes:
            batch.setdefault(change.hash, change)
        ready = [batch[change_hash] for change_hash in causal_order({h: c.deps for h, c in batch.items()}, held.changes)]
        _check_chains(held.newest, ready)
        for change in ready:
            held.add(change)
        held.unapplied.extend(change.raw for change in ready)
        seqs = {change.hash: change.seq for change in ready}
        for tip in tips:
            if tip.change_hash in seqs:
                held.keep_tip(tip, seqs[tip.change_hash])
            elif tip.change_hash in held.changes:
                held.keep_tip(tip, held.changes[tip.change_hash].seq)
        return [change.hash for change in ready]

    def capability_log(self, space: bytes) -> CapabilityLog:
        return self._logs.get(space, self._open_log)

    def add_capability_records(self, space: bytes, records: Sequence[bytes]) -> list[bytes]:
        """As the Repo: the records, and if they make a revocation effective, the revoked key's
        stored changes above its cutoff (and every change depending on them) taken out."""
        decoded = decode_records(space, records)
        log = self._logs.get(space)
        if log is None:
            return []  # no genesis to read them by (see the module docstring)
        before = log.revocation_cutoffs()
        added = [record.hash for record, _ in decoded if log.add(record)]
        if added:
            newly = {key: cutoff for key, cutoff in log.revocation_cutoffs().items() if before.get(key) != cutoff}
            if newly:
                self._take_out_revoked(space, newly)
        return added

    def _take_out_revoked(self, space: bytes, cutoffs: dict[bytes, dict[bytes, int]]) -> None:
        for (held_space, doc), held in list(self._docs.items()):
            if held_space != space:
                continue
            out: set[bytes] = set()
            for change_hash, stored in held.changes.items():  # causal order: deps first
                cutoff = cutoffs.get(stored.actor)
                if (cutoff is not None and stored.seq > cutoff.get(doc, 0)) or not out.isdisjoint(stored.deps):
                    out.add(change_hash)
            if out:
                self._docs[space, doc] = held.without(out)

    def change_paths(self, space: bytes, doc: bytes, change: native.DecodedChange) -> list[str] | None:
        if self._paths_of is None:
            return None
        return self._paths_of(self._doc(space, INDEX_DOC_ID).caught_up(), doc, change)

    def note_refused(self, space: bytes, doc: bytes, refused: Sequence[Unauthorised]) -> None:
        kept = self._refused.setdefault(space, {})
        for unauthorised in refused:
            if unauthorised.change not in kept and not self.has_change(space, doc, unauthorised.change):
                kept[unauthorised.change] = (doc, unauthorised)
        while len(kept) > REFUSED_KEPT:
            del kept[next(iter(kept))]

    def load_sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None:
        return self._sync_states.get((peer, space, doc))

    def save_sync_state(self, peer: bytes, space: bytes, doc: bytes, state: bytes) -> None:
        self._sync_states[(peer, space, doc)] = bytes(state)

    # ----- local authoring and inspection, for tests and the simulator -----

    def commit(
        self, identity: Identity, space: bytes, doc: bytes, edits: Sequence[Edit], *, now_ms: int
    ) -> LocalCommit:
        """Make one change per edit as ``identity``, sign the last, store them; the event to
        hand to the Replicator. An edit that makes no operation makes no change.

        Raises:
            LocalProtocolError: the edits made no operation at all; nothing is stored.
        """
        held = self._doc(space, doc)
        document = held.caught_up()
        document.set_actor(identity.public_key)
        raw = []
        for edit in edits:
            edit(document)
            change_hash = document.commit(time=now_ms // 1000)
            if change_hash is not None:
                raw.append(document.get_change_by_hash(change_hash))
        if not raw:
            raise LocalProtocolError("the edits made no operation, so there is no change to sign")
        decoded = [native.decode_change(change) for change in raw if change is not None]
        for change in decoded:
            held.add(change)
        tip = SignedTip.sign(identity, space, doc, decoded[-1].hash)
        held.keep_tip(tip, decoded[-1].seq)
        return LocalCommit(space, doc, tuple(change.raw for change in decoded), tip)

    def document(self, space: bytes, doc: bytes) -> native.Document:
        """The live document, for reading (edit only through ``commit``)."""
        return self._doc(space, doc).caught_up()

    def refused(self, space: bytes) -> list[tuple[bytes, Unauthorised]]:
        """(doc, refusal) of every refused change kept (``note_refused``), oldest first, that
        is still not stored."""
        kept = self._refused.get(space, {})
        return [(doc, it) for change_hash, (doc, it) in kept.items() if not self.has_change(space, doc, change_hash)]


def _check_chains(newest: dict[bytes, int], ready: Sequence[native.DecodedChange]) -> None:
    """Refuse, before anything is stored, a change that does not continue its author's chain
    (seq = the previous one + 1): Automerge would refuse the document holding it, as the Repo's
    chain check does (store/ingest.py)."""
    seqs: dict[bytes, int] = {}
    for change in ready:  # causal order: an author's seq s-1 comes before its seq s
        previous = seqs.get(change.actor, newest.get(change.actor, 0))
        if change.seq != previous + 1:
            raise UnusableChanges(
                f"change {change.hash.hex()} has seq {change.seq}, but its author's chain ends at seq {previous};"
                " nothing of the batch is stored"
            )
        seqs[change.actor] = change.seq
