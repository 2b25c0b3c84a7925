"""The snapshot pointer and bundle (protocol/snapshot_pointer.py) from untrusted bytes: they
decode to exactly what was signed or raise SnapshotPointerError, and the chain takes newer
pointers only."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cbor
from protocol.errors import SnapshotPointerError
from protocol.identity import Identity
from protocol.snapshot_pointer import PointerChain, SnapshotPointer, decode_bundle, decode_pointer, encode_bundle
from protocol.space import Genesis
from protocol.tips import SignedTip

ALICE = Identity(bytes(range(32)))
GENESIS = Genesis.create(ALICE, "team", 1_700_000_000_000, nonce=bytes(16))
SPACE = GENESIS.space_id


def cid(tag: bytes, codec: int = 0x71) -> bytes:
    return bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(tag).digest()


def pointer(seq: int = 1, previous: bytes | None = None, manifest: bytes = cid(b"m1"), signer: Identity = ALICE) -> SnapshotPointer:
    return SnapshotPointer.issue(
        signer, space=SPACE, seq=seq, manifest=manifest, previous=previous, bundle=[cid(b"b", 0x55)], published_ms=5, peers=["/ip4/127.0.0.1/tcp/4001"]
    )


def test_a_pointer_decodes_to_what_was_signed() -> None:
    first = pointer()
    assert decode_pointer(first.encode()) == first
    second = pointer(2, first.manifest, cid(b"m2"))
    assert decode_pointer(second.encode()) == second


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_is_only_ever_a_pointer_error(data: bytes) -> None:
    with pytest.raises(SnapshotPointerError):
        decode_pointer(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_bit_flipped_is_refused(data: st.DataObject) -> None:
    encoded = bytearray(pointer(2, cid(b"m1"), cid(b"m2")).encode())
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(SnapshotPointerError):
        decode_pointer(bytes(encoded))


@pytest.mark.parametrize(
    "field",
    ["space", "seq", "manifest", "previous", "bundle", "published_ms", "peers"],
)
def test_any_field_changed_after_signing_fails_the_signature(field: str) -> None:
    signed = pointer(2, cid(b"m1"), cid(b"m2"))
    values = {
        "space": bytes(32),
        "seq": 3,
        "manifest": cid(b"other"),
        "previous": cid(b"other"),
        "bundle": (cid(b"other", 0x55),),
        "published_ms": 6,
        "peers": (),
    }
    forged = replace(signed, **{field: values[field]})
    with pytest.raises(SnapshotPointerError, match="does not verify"):
        decode_pointer(forged.encode())


def test_a_non_canonical_or_wrong_shape_is_refused() -> None:
    fields = cbor.loads(pointer().encode(), "x")
    with pytest.raises(SnapshotPointerError, match="wrong shape"):
        decode_pointer(cbor.dumps(fields[:-1]))
    with pytest.raises(SnapshotPointerError, match="wrong shape"):
        decode_pointer(cbor.dumps(["peer", *fields[1:]]))
    fields[4] = fields[3]  # a first pointer naming a previous manifest
    with pytest.raises(SnapshotPointerError, match="only the first"):
        decode_pointer(cbor.dumps(fields))


def test_the_chain_takes_newer_pointers_and_refuses_replays_and_forks() -> None:
    first = pointer()
    second = pointer(2, first.manifest, cid(b"m2"))
    chain = PointerChain()
    chain.take(second)
    chain.take(second)  # the same pointer again is fine
    with pytest.raises(SnapshotPointerError, match="replay"):
        chain.check(first)
    with pytest.raises(SnapshotPointerError, match="does not follow"):
        chain.check(pointer(3, cid(b"elsewhere"), cid(b"m3")))
    chain.take(pointer(3, second.manifest, cid(b"m3")))
    chain.take(pointer(9, cid(b"m8"), cid(b"m9")))  # a gap: the ones between were missed
    assert chain.newest(SPACE, ALICE.public_key) is not None and chain.newest(SPACE, ALICE.public_key).seq == 9  # type: ignore[union-attr]
    bob = Identity(bytes(32))
    chain.take(pointer(1, signer=bob))  # another publisher's chain of its own
    assert len(chain.all()) == 2


def test_a_bundle_decodes_and_checks_its_genesis_and_tips() -> None:
    tip = SignedTip.sign(ALICE, SPACE, bytes(16), bytes(32))
    bundle = decode_bundle(encode_bundle(GENESIS, [b"record"], [tip]), SPACE)
    assert (bundle.genesis, bundle.records, bundle.tips) == (GENESIS, (b"record",), (tip,))
    with pytest.raises(SnapshotPointerError, match="not"):
        decode_bundle(encode_bundle(GENESIS, [], []), bytes(32))
    forged = replace(tip, change_hash=b"\x01" * 32)
    with pytest.raises(SnapshotPointerError, match="does not verify"):
        decode_bundle(encode_bundle(GENESIS, [], [forged]), SPACE)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_a_garbage_bundle_is_only_ever_a_pointer_error(data: bytes) -> None:
    with pytest.raises(SnapshotPointerError):
        decode_bundle(data, SPACE)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_bundle_with_any_bit_flipped_is_refused_or_still_verified(data: st.DataObject) -> None:
    tip = SignedTip.sign(ALICE, SPACE, bytes(16), bytes(32))
    encoded = bytearray(encode_bundle(GENESIS, [b"r"], [tip]))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= 1 << data.draw(st.integers(0, 7))
    try:
        bundle = decode_bundle(bytes(encoded), SPACE)
    except SnapshotPointerError:
        return
    # Only the unsigned record bytes may differ (the log verifies records itself).
    assert bundle.genesis == GENESIS and bundle.tips == (tip,)
