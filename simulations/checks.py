"""The invariants, checked on what a run left behind — never on how the driver got there.

A checker sees only the honest peers still present at the end (their stores, and the changes
each store acknowledged along the way), the changes honest writers signed, and the hostile
peers' keys. Each raises ``InvariantViolated`` naming the peer and the change.

Stores with identical heads for a doc hold identical changes (a store is closed under deps), so
each distinct (doc, heads, tips) is decoded and verified once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import native
from protocol.memory import MemoryChangeStore
from protocol.tips import SignedTip, coverage
from simulations.errors import InvariantViolated
from simulations.traces import text_of


@dataclass(frozen=True, slots=True)
class Replica:
    name: str
    store: MemoryChangeStore
    acknowledged: Mapping[bytes, bytes]  # every change its store acknowledged -> its doc


@dataclass(frozen=True, slots=True)
class Outcome:
    space: bytes
    replicas: Sequence[Replica]  # the honest peers present at the end
    authored: frozenset[bytes]  # every change an honest writer signed
    hostile_keys: frozenset[bytes]
    text_doc: bytes | None = None  # the doc whose text must equal ``expected_text``
    expected_text: str | None = None


def check_all(outcome: Outcome) -> None:
    no_acknowledged_write_lost(outcome)
    identical_heads(outcome)
    for doc, replica in _distinct_states(outcome):
        changes = [native.decode_change(raw) for raw in replica.store.changes_since(outcome.space, doc, [])]
        every_change_covered(outcome, doc, changes, replica)
        nothing_hostile_applied(outcome, doc, changes, replica)
    expected_text(outcome)


def identical_heads(outcome: Outcome) -> None:
    """Every honest peer holds the same docs at the same heads."""
    first, *others = outcome.replicas
    reference = _heads(outcome, first)
    for replica in others:
        heads = _heads(outcome, replica)
        if heads != reference:
            differing = sorted(doc.hex()[:8] for doc in set(heads) | set(reference) if heads.get(doc) != reference.get(doc))
            raise InvariantViolated(f"{replica.name} and {first.name} differ in docs {', '.join(differing)}")


def no_acknowledged_write_lost(outcome: Outcome) -> None:
    """Every change any honest peer ever acknowledged is in every honest store."""
    acknowledged: dict[bytes, tuple[bytes, str]] = {}
    for replica in outcome.replicas:
        for change_hash, doc in replica.acknowledged.items():
            acknowledged.setdefault(change_hash, (doc, replica.name))
    for replica in outcome.replicas:
        for change_hash, (doc, acknowledger) in acknowledged.items():
            if not replica.store.has_change(outcome.space, doc, change_hash):
                raise InvariantViolated(
                    f"{replica.name} lacks change {change_hash.hex()[:12]} of doc {doc.hex()[:8]}, acknowledged by {acknowledger}"
                )


def every_change_covered(outcome: Outcome, doc: bytes, changes: Sequence[native.DecodedChange], replica: Replica) -> None:
    """Each stored change is covered by a valid tip from its own author (signatures checked)."""
    result = coverage(outcome.space, doc, changes, replica.store.tips(outcome.space, doc), is_stored=lambda h: False)
    if result.uncovered:
        raise InvariantViolated(
            f"{replica.name} holds {len(result.uncovered)} changes of doc {doc.hex()[:8]} no valid tip covers, "
            f"e.g. {result.uncovered[0].hash.hex()[:12]}"
        )


def nothing_hostile_applied(outcome: Outcome, doc: bytes, changes: Sequence[native.DecodedChange], replica: Replica) -> None:
    """No stored change was written by a hostile key or by anyone but an honest writer."""
    for change in changes:
        if change.actor in outcome.hostile_keys or change.hash not in outcome.authored:
            raise InvariantViolated(
                f"{replica.name} applied change {change.hash.hex()[:12]} of doc {doc.hex()[:8]}, "
                f"which no honest writer signed (actor {change.actor.hex()[:12]})"
            )


def expected_text(outcome: Outcome) -> None:
    """A replayed editing trace ends as its reference text (at one peer: the heads are identical)."""
    if outcome.text_doc is None or outcome.expected_text is None:
        return
    replica = outcome.replicas[0]
    text = text_of(replica.store.document(outcome.space, outcome.text_doc))
    if text != outcome.expected_text:
        raise InvariantViolated(
            f"{replica.name}'s text differs from the trace's reference ({len(text)} vs {len(outcome.expected_text)} characters)"
        )


def _heads(outcome: Outcome, replica: Replica) -> dict[bytes, list[bytes]]:
    return {doc: replica.store.heads(outcome.space, doc) for doc in replica.store.doc_ids(outcome.space)}


def _distinct_states(outcome: Outcome) -> list[tuple[bytes, Replica]]:
    """A doc and a replica holding it, once per distinct (doc, heads, tips) among all replicas."""
    seen: dict[tuple[bytes, tuple[bytes, ...], frozenset[SignedTip]], Replica] = {}
    for replica in outcome.replicas:
        store = replica.store
        for doc in store.doc_ids(outcome.space):
            seen.setdefault((doc, tuple(store.heads(outcome.space, doc)), frozenset(store.tips(outcome.space, doc))), replica)
    return [(doc, replica) for (doc, _, _), replica in seen.items()]
