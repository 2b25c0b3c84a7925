"""Convergence under revocation: whatever order a revocation and the revoked writer's changes
reach two members in, they end with identical stores holding exactly what the log allows.

Root revokes V while V edits on, keeping what root held of V's changes (``seen``: per doc, the
highest seq). An honest writer W builds on V's kept changes. Each member takes the revocation
(``add_capability_records``) and every batch (``ingest``) in its own random order, then is
offered every batch again until nothing more applies — a peer's next offer re-sends what was
not stored. The expected store is the same for everyone: every change but V's above the cutoff.

A revocation that becomes effective after a store took V's later changes takes them out again
(with anything built on them), so any delivery order converges, as the Repo does it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

import native
from harness import edits, identity_of, text_doc_id
from protocol.capabilities import CapabilityLog, Grant, Revocation, Role
from protocol.clock import FIXED_NOW_MS
from protocol.events import LocalCommit
from protocol.ingest import PendingChanges, VerifiedTips, ingest
from protocol.memory import MemoryChangeStore
from protocol.space import Genesis

root, writer, revoked = (identity_of(name) for name in ("root", "writer w", "revoked v"))
GENESIS = Genesis.create(root, "revocation race", FIXED_NOW_MS, nonce=bytes(16), private=True)
SPACE = GENESIS.space_id
DOCS = (text_doc_id("a"), text_doc_id("b"))
MAX_ROUNDS = 8  # re-offers until a fixpoint: each round applies at least one more change or ends


def _grants() -> list[Grant]:
    log = CapabilityLog(GENESIS)
    grants = []
    for member in (writer, revoked):
        grant = Grant.issue(root, space=SPACE, subject=member.public_key, role=Role.WRITE, issued_ms=FIXED_NOW_MS, parents=log.parents_for(root.public_key))
        log.add(grant)
        grants.append(grant)
    return grants


GRANTS = _grants()


@dataclass(frozen=True, slots=True)
class History:
    """What was signed: V's batches (kept and refused), W's, and the revocation."""

    kept: list[LocalCommit]
    refused: list[LocalCommit]
    honest: list[LocalCommit]
    revocation: Revocation


def _learn(store: MemoryChangeStore, commits: list[LocalCommit]) -> None:
    for commit in commits:
        store.apply(SPACE, commit.doc, [native.decode_change(raw) for raw in commit.changes], [commit.tip])


def history(kept_per_doc: tuple[int, int], refused_per_doc: tuple[int, int], honest_on_top: int) -> History:
    """V signs ``kept_per_doc`` batches per doc (root gets them), then ``refused_per_doc`` more
    it keeps to itself; W signs ``honest_on_top`` batches on top of what root holds; root
    revokes V with ``seen`` from its store."""
    v_store, w_store, root_store = MemoryChangeStore(), MemoryChangeStore(), MemoryChangeStore()
    kept = [v_store.commit(revoked, SPACE, doc, edits([f"v{doc[0]}{i}"]), now_ms=FIXED_NOW_MS) for doc, n in zip(DOCS, kept_per_doc, strict=True) for i in range(n)]
    _learn(root_store, kept)
    _learn(w_store, kept)
    honest = [w_store.commit(writer, SPACE, DOCS[i % 2], edits([f"w{i}"]), now_ms=FIXED_NOW_MS) for i in range(honest_on_top)]
    refused = [v_store.commit(revoked, SPACE, doc, edits([f"late{doc[0]}{i}"]), now_ms=FIXED_NOW_MS) for doc, n in zip(DOCS, refused_per_doc, strict=True) for i in range(n)]
    seen = [(doc, seq) for doc in DOCS if (seq := root_store.author_seq(SPACE, doc, revoked.public_key))]
    parents = CapabilityLog(GENESIS, GRANTS).parents_for(root.public_key)
    revocation = Revocation.issue(root, space=SPACE, subject=revoked.public_key, seen=seen, issued_ms=FIXED_NOW_MS + 1, parents=parents)
    return History(kept, refused, honest, revocation)


class Member:
    """A member's store and the per-peer state ingest keeps (one peer brings everything)."""

    def __init__(self) -> None:
        self.store = MemoryChangeStore(geneses=[GENESIS])
        self.store.add_capability_records(SPACE, [grant.encode() for grant in GRANTS])
        self.pending = PendingChanges()
        self.verified = VerifiedTips()

    def take(self, item: LocalCommit | Revocation) -> int:
        if isinstance(item, Revocation):
            self.store.add_capability_records(SPACE, [item.encode()])
            return 0
        decoded = [native.decode_change(raw) for raw in item.changes]
        result = ingest(self.store, SPACE, item.doc, decoded, [item.tip], self.pending, self.verified, FIXED_NOW_MS)
        return len(result.applied)

    def settle(self, commits: list[LocalCommit]) -> None:
        for _ in range(MAX_ROUNDS):
            if not sum(self.take(commit) for commit in commits):
                return

    def state(self) -> dict[bytes, set[bytes]]:
        return {doc: {native.decode_change(raw).hash for raw in self.store.changes_since(SPACE, doc, [])} for doc in DOCS}


def _hashes(commits: list[LocalCommit]) -> set[bytes]:
    return {native.decode_change(raw).hash for commit in commits for raw in commit.changes}


def _deliver(order: list[LocalCommit | Revocation], h: History) -> Member:
    member = Member()
    for item in order:
        member.take(item)
    member.settle([*h.kept, *h.honest, *h.refused])
    return member


histories = st.builds(
    history,
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.integers(0, 2), st.integers(0, 2)).filter(any),
    st.integers(0, 3),
)


def _check(first: Member, second: Member, h: History) -> None:
    assert first.state() == second.state()
    held = set().union(*first.state().values())
    assert held == _hashes(h.kept) | _hashes(h.honest)
    assert not held & _hashes(h.refused)


@settings(max_examples=60, deadline=None)
@given(h=histories, data=st.data())
def test_any_delivery_order_of_a_revocation_and_the_revoked_writers_changes_converges(h: History, data: st.DataObject) -> None:
    items: list[LocalCommit | Revocation] = [h.revocation, *h.kept, *h.honest, *h.refused]
    first = _deliver(data.draw(st.permutations(items)), h)
    second = _deliver(data.draw(st.permutations(items)), h)
    _check(first, second, h)


@settings(max_examples=60, deadline=None)
@given(h=histories, data=st.data())
def test_once_the_revocation_is_held_any_order_of_the_rest_converges(h: History, data: st.DataObject) -> None:
    """The revocation first among V's refused changes; kept and honest changes anywhere — even
    V's kept changes arriving after the revocation stay (its cutoff keeps them)."""
    refused_first = data.draw(st.permutations(h.refused)), data.draw(st.permutations(h.refused))
    members = []
    for refused in refused_first:
        others: list[LocalCommit | Revocation] = list(data.draw(st.permutations([*h.kept, *h.honest])))
        cut = data.draw(st.integers(0, len(others)))
        order = [*others[:cut], h.revocation, *_interleave(others[cut:], list(refused), data)]
        members.append(_deliver(order, h))
    first, second = members
    _check(first, second, h)
    assert members[0].store.capability_log(SPACE).revocation_cutoff(revoked.public_key) is not None


def _interleave(a: list[LocalCommit | Revocation], b: list[LocalCommit], data: st.DataObject) -> list[LocalCommit | Revocation]:
    """``a`` and ``b`` merged in a drawn interleaving, each keeping its own order."""
    merged: list[LocalCommit | Revocation] = []
    while a or b:
        take_a = bool(a) and (not b or data.draw(st.booleans()))
        merged.append(a.pop(0) if take_a else b.pop(0))
    return merged
