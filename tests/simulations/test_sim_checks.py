"""The checkers catch what they promise to, on stores built by hand — no simulator involved.

Alice and bob are honest writers in one space; mallory is hostile. Each scenario breaks one
invariant and expects ``InvariantViolated`` to name it. In the private space alice is the root
and revokes victor, who writes on.
"""

from __future__ import annotations

import hashlib

import pytest

import native
from protocol.capabilities import Role
from protocol.identity import Identity
from protocol.memory import MemoryChangeStore
from protocol.space import Genesis
from protocol.tips import SignedTip
from simulations import membership
from simulations.checks import Outcome, Outsider, Replica, check_all
from simulations.errors import InvariantViolated

alice, bob, mallory = (Identity(hashlib.sha256(name).digest()) for name in (b"alice", b"bob", b"mallory"))
SPACE = Genesis.create(alice, "checks", 0, nonce=bytes(16)).space_id
DOC = bytes(range(16))


def typed(text: str):
    def edit(document: native.Document) -> None:
        found = document.get(native.ROOT, "text")
        obj = found.id if isinstance(found, native.ObjectRef) else document.put_object(native.ROOT, "text", "text")
        document.splice_text(obj, 0, 0, text)

    return edit


def in_sync() -> tuple[MemoryChangeStore, MemoryChangeStore, set[bytes]]:
    """Alice wrote two changes and bob holds them, with her tip: a healthy pair."""
    alices, bobs = MemoryChangeStore(), MemoryChangeStore()
    commit = alices.commit(alice, SPACE, DOC, [typed("hello "), typed("world")], now_ms=0)
    changes = [native.decode_change(raw) for raw in commit.changes]
    bobs.apply(SPACE, DOC, changes, [commit.tip])
    return alices, bobs, {change.hash for change in changes}


def outcome(alices: MemoryChangeStore, bobs: MemoryChangeStore, authored: set[bytes], acknowledged_by_bob: set[bytes] | None = None) -> Outcome:
    acknowledged = acknowledged_by_bob if acknowledged_by_bob is not None else authored
    return Outcome(
        space=SPACE,
        replicas=[Replica("alice", alices, dict.fromkeys(authored, DOC)), Replica("bob", bobs, dict.fromkeys(acknowledged, DOC))],
        authored=frozenset(authored),
        hostile_keys=frozenset({mallory.public_key}),
    )


def test_a_healthy_pair_passes():
    check_all(outcome(*in_sync()))


def test_diverged_heads_are_caught():
    alices, bobs, authored = in_sync()
    alices.commit(alice, SPACE, DOC, [typed("!")], now_ms=0)  # in her store, never reported
    with pytest.raises(InvariantViolated, match="bob and alice differ"):
        check_all(outcome(alices, bobs, authored))


def test_a_write_acknowledged_elsewhere_but_missing_is_lost():
    alices, _, authored = in_sync()
    with pytest.raises(InvariantViolated, match="bob lacks change"):
        check_all(outcome(alices, MemoryChangeStore(), authored, set()))


def test_a_change_no_tip_covers_is_caught():
    alices, _, authored = in_sync()
    untipped = MemoryChangeStore()
    untipped.apply(SPACE, DOC, [native.decode_change(raw) for raw in alices.changes_since(SPACE, DOC, [])], [])
    with pytest.raises(InvariantViolated, match="no valid tip covers"):
        check_all(outcome(alices, untipped, authored))


def test_a_change_by_a_hostile_key_is_caught_even_under_a_valid_tip():
    alices, bobs, authored = in_sync()
    for store in (alices, bobs):
        planted = store.document(SPACE, DOC).fork(mallory.public_key)
        planted.put(native.ROOT, "planted", 1)
        change = native.decode_change(planted.get_change_by_hash(planted.commit(time=0)))
        store.apply(SPACE, DOC, [change], [SignedTip.sign(mallory, SPACE, DOC, change.hash)])
    with pytest.raises(InvariantViolated, match="no honest writer signed"):
        check_all(outcome(alices, bobs, authored))


# ----- a private space: alice is root, bob writes, victor is revoked, mallory is a stranger -----

victor = Identity(hashlib.sha256(b"victor").digest())
GENESIS, START_LOG = membership.found_space(alice, [(bob.public_key, Role.WRITE), (victor.public_key, Role.WRITE)])
PRIVATE = GENESIS.space_id
START_RECORDS = [record.encode() for record in START_LOG.records()]


def copy_changes(source: MemoryChangeStore, target: MemoryChangeStore) -> None:
    raw = source.changes_since(PRIVATE, DOC, [])
    target.apply(PRIVATE, DOC, [native.decode_change(r) for r in raw], source.tips(PRIVATE, DOC))


def revoked_history() -> tuple[MemoryChangeStore, MemoryChangeStore, dict[bytes, tuple[bytes, int]], MemoryChangeStore]:
    """Victor wrote v1, both members hold it; alice revoked him keeping it; then he wrote v2,
    which only his own store holds. Returns both members' stores, what victor signed, his store."""
    alices, bobs, victors = (membership.private_store(GENESIS, START_RECORDS) for _ in range(3))
    first = victors.commit(victor, PRIVATE, DOC, [typed("v1")], now_ms=0)
    for store in (alices, bobs):
        copy_changes(victors, store)
    revocation = membership.revocation(alice, alices, PRIVATE, victor.public_key, now_ms=1)
    for store in (alices, bobs):
        store.add_capability_records(PRIVATE, [revocation.encode()])
    second = victors.commit(victor, PRIVATE, DOC, [typed("v2")], now_ms=2)
    signed = {native.decode_change(c.changes[0]).hash: (DOC, seq) for c, seq in ((first, 1), (second, 2))}
    return alices, bobs, signed, victors


def private_outcome(
    alices: MemoryChangeStore, bobs: MemoryChangeStore, signed: dict[bytes, tuple[bytes, int]], outsiders: list[Outsider] | None = None
) -> Outcome:
    held = {native.decode_change(raw).hash for raw in alices.changes_since(PRIVATE, DOC, [])}
    return Outcome(
        space=PRIVATE,
        replicas=[Replica("alice", alices, dict.fromkeys(held, DOC)), Replica("bob", bobs, dict.fromkeys(held, DOC))],
        authored=frozenset(signed),
        hostile_keys=frozenset({mallory.public_key}),
        private=True,
        revoked={victor.public_key: signed},
        outsiders=outsiders or [],
    )


def test_a_revocation_kept_and_refused_as_it_says_passes():
    alices, bobs, signed, _ = revoked_history()
    check_all(private_outcome(alices, bobs, signed))


def test_a_revoked_writers_change_above_the_cutoff_is_caught():
    alices, bobs, signed, victors = revoked_history()
    for store in (alices, bobs):
        copy_changes(victors, store)  # as a store that took it before the revocation would hold it
    with pytest.raises(InvariantViolated, match=r"materialised change .* \(seq 2\) .* by a revoked writer .*revoked"):
        check_all(private_outcome(alices, bobs, signed))


def test_different_capability_logs_are_caught():
    alices, _, signed, _ = revoked_history()
    behind = membership.private_store(GENESIS, START_RECORDS)
    copy_changes(alices, behind)
    with pytest.raises(InvariantViolated, match="bob and alice hold different capability logs"):
        check_all(private_outcome(alices, behind, signed))


def test_a_revocation_the_log_does_not_honour_is_caught():
    alices, _, signed, _ = revoked_history()
    forged = membership.revocation(bob, alices, PRIVATE, victor.public_key, now_ms=3)  # bob is no admin
    fresh = [membership.private_store(GENESIS, START_RECORDS) for _ in range(2)]
    for store in fresh:
        copy_changes(alices, store)
        store.add_capability_records(PRIVATE, [forged.encode()])
    with pytest.raises(InvariantViolated, match=r"revocation of .* is not effective"):
        check_all(private_outcome(*fresh, signed))


def test_a_kept_change_of_the_revoked_writer_missing_somewhere_is_caught():
    alices, _, signed, _ = revoked_history()
    bobs = membership.private_store(GENESIS, [record.encode() for record in alices.capability_log(PRIVATE).records()])
    with pytest.raises(InvariantViolated, match=r"bob lacks change .* at or below its revocation's cutoff"):
        check_all(private_outcome(alices, bobs, signed))


def test_a_stranger_that_learned_a_change_or_a_record_is_caught():
    alices, bobs, signed, _ = revoked_history()
    strangers = membership.private_store(GENESIS, START_RECORDS)
    outsider = Outsider("mallory", mallory.public_key, strangers, strangers.capability_log(PRIVATE).digest)
    check_all(private_outcome(alices, bobs, signed, [outsider]))
    strangers.add_capability_records(PRIVATE, [record.encode() for record in alices.capability_log(PRIVATE).records()])
    with pytest.raises(InvariantViolated, match="stranger mallory learned capability records"):
        check_all(private_outcome(alices, bobs, signed, [outsider]))
    copy_changes(alices, strangers)
    with pytest.raises(InvariantViolated, match="stranger mallory holds change"):
        check_all(private_outcome(alices, bobs, signed, [outsider]))
