"""The invariants, checked on what a run left behind — never on how the driver got there.

A checker sees only the honest peers still present at the end (their stores, and the changes
each store acknowledged along the way), the changes honest writers signed, and the hostile
peers' keys. Each raises ``InvariantViolated`` naming the peer and the change.

In a private space they also see what each revoked writer signed and the strangers' stores,
and judge every materialised change by the capability log the stores end with (which must be
the same log everywhere): nothing the log refuses — a revoked writer's change above its
revocation's cutoff, a stranger's, a reader's — is held, everything the revoked writer signed
at or below the cutoff is held everywhere, and a stranger learned nothing. A change an honest
writer signed is acknowledged by its own store at once, and writers never leave, so "every
change an honest member signed is everywhere" is ``no_acknowledged_write_lost``.

Stores with identical heads for a doc hold identical changes (a store is closed under deps), so
each distinct (doc, heads, tips) is decoded and verified once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import native
from protocol.capabilities import CapabilityLog, Revocation
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
class Outsider:
    """A stranger to a private space: its store, and its log's digest when the run began."""

    name: str
    key: bytes
    store: MemoryChangeStore
    start_digest: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    space: bytes
    replicas: Sequence[Replica]  # the honest peers present at the end
    authored: frozenset[bytes]  # every change an honest or revoked writer signed
    hostile_keys: frozenset[bytes]
    text_doc: bytes | None = None  # the doc whose text must equal ``expected_text``
    expected_text: str | None = None
    private: bool = False
    revoked: Mapping[bytes, Mapping[bytes, tuple[bytes, int]]] = field(default_factory=dict)  # key -> change -> (doc, seq)
    outsiders: Sequence[Outsider] = ()


MS_PER_S = 1000  # Automerge change times are whole seconds (as ingest reads them)


def check_all(outcome: Outcome) -> None:
    states = [(doc, replica, _changes(outcome, doc, replica)) for doc, replica in _distinct_states(outcome)]
    if outcome.private:  # first: a change the log refuses would also show as lost or diverged
        identical_capability_logs(outcome)
        revocations_effective(outcome)
        for doc, replica, changes in states:
            every_change_authorised(outcome, doc, changes, replica)
        revoked_changes_kept_everywhere(outcome)
        outsiders_learned_nothing(outcome)
    no_acknowledged_write_lost(outcome)
    identical_heads(outcome)
    for doc, replica, changes in states:
        every_change_covered(outcome, doc, changes, replica)
        nothing_hostile_applied(outcome, doc, changes, replica)
    expected_text(outcome)


def identical_capability_logs(outcome: Outcome) -> None:
    """Every honest peer holds the same capability records (so reaches the same verdicts)."""
    first, *others = outcome.replicas
    reference = _log(outcome, first)
    if not reference.private:
        raise InvariantViolated(f"{first.name} holds the space as open")
    for replica in others:
        log = _log(outcome, replica)
        if log.digest != reference.digest:
            raise InvariantViolated(
                f"{replica.name} and {first.name} hold different capability logs ({len(log)} and {len(reference)} records)"
            )


def revocations_effective(outcome: Outcome) -> None:
    """Each writer the root revoked is revoked by the log every honest peer holds."""
    log = _log(outcome, outcome.replicas[0])
    for key in outcome.revoked:
        if log.revocation_cutoff(key) is None:
            verdicts = [log.verdict(r.hash) for r in log.records() if isinstance(r, Revocation) and r.subject == key]
            raise InvariantViolated(f"the revocation of {key.hex()[:12]} is not effective in the log (its revocations' verdicts: {verdicts})")


def every_change_authorised(outcome: Outcome, doc: bytes, changes: Sequence[native.DecodedChange], replica: Replica) -> None:
    """Every materialised change is one the log allows: no revoked writer's change above its
    cutoff, no stranger's, no reader's."""
    store = replica.store
    log = _log(outcome, replica)
    for change in changes:
        paths = store.change_paths(outcome.space, doc, change)
        reason = log.change_refusal(change.actor, doc, change.seq, paths, change.time * MS_PER_S)
        if reason is not None:
            who = "a revoked writer" if change.actor in outcome.revoked else "a hostile peer" if change.actor in outcome.hostile_keys else "an author"
            raise InvariantViolated(
                f"{replica.name} materialised change {change.hash.hex()[:12]} (seq {change.seq}) of doc {doc.hex()[:8]} "
                f"by {who} ({change.actor.hex()[:12]}) that the log refuses: {reason}"
            )


def revoked_changes_kept_everywhere(outcome: Outcome) -> None:
    """What a revoked writer signed at or below its revocation's cutoff is in every honest store."""
    log = _log(outcome, outcome.replicas[0])
    for key, signed in outcome.revoked.items():
        cutoff = log.revocation_cutoff(key) or {}
        kept = [(change_hash, doc) for change_hash, (doc, seq) in signed.items() if seq <= cutoff.get(doc, 0)]
        for replica in outcome.replicas:
            for change_hash, doc in kept:
                if not replica.store.has_change(outcome.space, doc, change_hash):
                    raise InvariantViolated(
                        f"{replica.name} lacks change {change_hash.hex()[:12]} of doc {doc.hex()[:8]} by the revoked "
                        f"{key.hex()[:12]}, at or below its revocation's cutoff"
                    )


def outsiders_learned_nothing(outcome: Outcome) -> None:
    """A stranger holds no change but its own and no capability record it did not start with."""
    for outsider in outcome.outsiders:
        store = outsider.store
        for doc in store.doc_ids(outcome.space):
            for raw in store.changes_since(outcome.space, doc, []):
                change = native.decode_change(raw)
                if change.actor != outsider.key:
                    raise InvariantViolated(f"stranger {outsider.name} holds change {change.hash.hex()[:12]} by {change.actor.hex()[:12]}")
        if store.capability_log(outcome.space).digest != outsider.start_digest:
            raise InvariantViolated(f"stranger {outsider.name} learned capability records")


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


def _log(outcome: Outcome, replica: Replica) -> CapabilityLog:
    return replica.store.capability_log(outcome.space)


def _changes(outcome: Outcome, doc: bytes, replica: Replica) -> list[native.DecodedChange]:
    return [native.decode_change(raw) for raw in replica.store.changes_since(outcome.space, doc, [])]


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
