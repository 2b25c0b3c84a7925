"""Convergence: replicas that end up with the same changes end up identical, however they got them.

2-5 replicas (alice, bob, carol, dave, erin) edit one text, one list and the root map concurrently
for a few rounds. The changes then reach everyone either by gossip (random order, random batches,
duplicates) or by the sync protocol over a lossy network whose peers reconnect after a loss.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from native import ROOT, Document, SyncState
from tests.native.helpers import ACTORS, change_hashes, deliver_shuffled, shared_doc

KEYS = ("title", "owner", "count")
SETTINGS = settings(max_examples=150, deadline=None)
MAX_MESH_ROUNDS = 200

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.binary(max_size=4))
edits = st.one_of(
    st.tuples(st.just("splice"), st.integers(0, 1000), st.integers(0, 4), st.text("ab é🎉\n", max_size=4)),
    st.tuples(st.just("put"), st.sampled_from(KEYS), scalars),
    st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    st.tuples(st.just("insert"), st.integers(0, 1000), scalars),
    st.tuples(st.just("remove"), st.integers(0, 1000)),
)


class Replica:
    """One writer: a document forked from alice's base, with the ids of the shared text and list."""

    def __init__(self, doc: Document, text: str, items: str) -> None:
        self.doc, self.text, self.items = doc, text, items

    def edit(self, batch: list[tuple]) -> None:
        """Apply one batch of edits as one change; positions are folded into range of the current state."""
        doc = self.doc
        for kind, *args in batch:
            if kind == "splice":
                pos, delete, insert = args
                length = doc.length(self.text)
                pos %= length + 1
                doc.splice_text(self.text, pos, min(delete, length - pos), insert)
            elif kind == "put":
                doc.put(ROOT, *args)
            elif kind == "delete":
                doc.delete(ROOT, args[0])
            elif kind == "insert":
                index, value = args
                doc.insert(self.items, index % (doc.length(self.items) + 1), value)
            elif doc.length(self.items):
                doc.delete(self.items, args[0] % doc.length(self.items))
        doc.commit()


def replicas(count: int) -> list[Replica]:
    alice, text = shared_doc(ACTORS[0])
    items = alice.put_object(ROOT, "items", "list")
    alice.commit()
    base = alice.save()
    return [Replica(alice, text, items)] + [
        Replica(Document.load(base, actor=actor), text, items) for actor in ACTORS[1:count]
    ]


def scenarios() -> st.SearchStrategy[list[list[list[tuple]]]]:
    """rounds x replicas x edits, for 2-5 replicas."""
    return st.integers(2, 5).flatmap(
        lambda n: st.lists(st.lists(st.lists(edits, max_size=4), min_size=n, max_size=n), min_size=1, max_size=3)
    )


def assert_converged(docs: list[Document], every_change: set[bytes]) -> None:
    """Same heads, same content, and nobody is missing (or waiting on) anything anyone wrote."""
    first = docs[0]
    for doc in docs:
        assert doc.get_missing_deps() == []
        assert change_hashes(doc) == every_change
        assert doc.heads() == first.heads()
        assert doc.hydrate() == first.hydrate()


@SETTINGS
@given(rounds=scenarios(), rng=st.randoms(use_true_random=False))
def test_gossiped_changes_converge_whatever_the_order(rounds: list, rng: random.Random) -> None:
    group = replicas(len(rounds[0]))
    for round_ in rounds:
        for replica, batch in zip(group, round_, strict=True):
            replica.edit(batch)
        for replica in group:  # partial gossip between rounds: a random sample of what others wrote
            heard = [c for other in group if other is not replica for c in other.doc.get_changes()]
            deliver_shuffled(replica.doc, rng.sample(heard, rng.randint(0, len(heard))), rng)

    every_change = set().union(*(change_hashes(r.doc) for r in group))
    everything = [c for r in group for c in r.doc.get_changes()]
    for replica in group:
        deliver_shuffled(replica.doc, everything, rng)
    assert_converged([r.doc for r in group], every_change)


class LossyMesh:
    """Every pair of replicas linked by the sync protocol, each side with its own SyncState per peer.

    The network drops the messages `losses` marks; the two ends of a link that lost a message
    notice and reconnect at the end of the round, resuming from their persisted state.
    """

    def __init__(self, docs: list[Document], losses: Iterator[bool]) -> None:
        self.docs = docs
        self.losses = losses
        pairs = [(i, j) for i in range(len(docs)) for j in range(len(docs)) if i != j]
        self.states = {pair: SyncState() for pair in pairs}
        self.broken: set[tuple[int, int]] = set()

    def round(self) -> bool:
        """Each replica sends at most one message to each peer; returns whether anyone spoke."""
        spoke = False
        for (i, j), state in self.states.items():
            message = self.docs[i].generate_sync_message(state)
            if message is None:
                continue
            spoke = True
            if next(self.losses, False):
                self.broken |= {(i, j), (j, i)}
            else:
                self.docs[j].receive_sync_message(self.states[(j, i)], message)
        for pair in self.broken:
            self.states[pair] = SyncState.decode(self.states[pair].encode())
        self.broken.clear()
        return spoke

    def settle(self) -> None:
        for _ in range(MAX_MESH_ROUNDS):
            if not self.round():
                return
        raise AssertionError(f"the mesh did not fall quiet within {MAX_MESH_ROUNDS} rounds")


@SETTINGS
@given(rounds=scenarios(), losses=st.lists(st.booleans(), max_size=60), chatter=st.integers(0, 3))
def test_sync_over_a_lossy_mesh_converges_once_the_network_heals(rounds: list, losses: list, chatter: int) -> None:
    """Between edit rounds the mesh syncs for only `chatter` rounds, so edits race in-flight messages."""
    group = replicas(len(rounds[0]))
    mesh = LossyMesh([r.doc for r in group], iter(losses))
    for round_ in rounds:
        for replica, batch in zip(group, round_, strict=True):
            replica.edit(batch)
        for _ in range(chatter):
            mesh.round()
    every_change = set().union(*(change_hashes(r.doc) for r in group))
    mesh.settle()
    assert_converged([r.doc for r in group], every_change)
