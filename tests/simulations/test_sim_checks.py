"""The checkers catch what they promise to, on stores built by hand — no simulator involved.

Alice and bob are honest writers in one space; mallory is hostile. Each scenario breaks one
invariant and expects ``InvariantViolated`` to name it.
"""

from __future__ import annotations

import hashlib

import pytest

import native
from protocol.identity import Identity
from protocol.memory import MemoryChangeStore
from protocol.space import Genesis
from protocol.tips import SignedTip
from simulations.checks import Outcome, Replica, check_all
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
