"""Peer records (protocol/peer_record.py): a strict decoder that raises only its typed error on
hostile bytes, the newest record per key whatever the arrival order, and who may publish one."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cbor
from protocol.capabilities import CapabilityLog, Grant, Revocation, Role
from protocol.errors import InvalidPeerRecord, PeerRecordError, WireError
from protocol.identity import Identity, PeerKind
from protocol.peer_record import (
    MAX_PEER_NAME_CHARS,
    MAX_PEER_RECORDS_PER_MESSAGE,
    MAX_PEER_RECORDS_PER_SPACE,
    PeerBook,
    PeerRecord,
    decode_peer_record,
    decode_peer_records,
    encode_peer_records,
    may_publish,
)
from protocol.space import Genesis

DECODER = settings(max_examples=400, deadline=None, derandomize=True)


def identity_of(name: str) -> Identity:
    return Identity(hashlib.sha256(b"peer record test " + name.encode()).digest())


ROOT, BOB, CAROL = identity_of("root"), identity_of("bob"), identity_of("carol")
GENESIS = Genesis.create(ROOT, "team", 1, nonce=bytes(16), private=True)
SPACE = GENESIS.space_id
OTHER_SPACE = bytes(range(32))


def record(identity: Identity = BOB, *, name: str = "bob", kind: PeerKind = PeerKind.AGENT, at: int = 10, space: bytes = SPACE) -> PeerRecord:
    return PeerRecord.issue(identity, space=space, name=name, kind=kind, issued_ms=at)


VALID = record()


# --- the decoder ---


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    name=st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S"), include_characters=" "), min_size=1, max_size=MAX_PEER_NAME_CHARS).filter(
        lambda n: n == n.strip()
    ),
    kind=st.sampled_from(PeerKind),
    at=st.integers(0, 2**63),
)
def test_a_record_round_trips(name: str, kind: PeerKind, at: int) -> None:
    issued = record(name=name, kind=kind, at=at)
    decoded = decode_peer_record(issued.encode())
    assert decoded == issued and decoded.hash == issued.hash


@DECODER
@given(st.binary(max_size=600))
def test_garbage_bytes_raise_only_peer_record_errors(data: bytes) -> None:
    with pytest.raises(PeerRecordError):
        decode_peer_record(data)


_CBOR_VALUES = st.recursive(
    st.integers(0, 2**64 - 1) | st.booleans() | st.binary(max_size=70) | st.text(max_size=10) | st.sampled_from(["peer", "human", "agent"]),
    lambda inner: st.lists(inner, max_size=8),
    max_leaves=20,
)


@DECODER
@given(_CBOR_VALUES)
def test_well_formed_cbor_of_any_shape_raises_only_peer_record_errors(value: object) -> None:
    with pytest.raises(PeerRecordError):
        decode_peer_record(cbor.dumps(value))


@DECODER
@given(position=st.integers(0, 6), replacement=_CBOR_VALUES)
def test_a_record_with_any_field_replaced_is_refused(position: int, replacement: object) -> None:
    """The right shape with one field swapped for any value: refused (a kind or name promoted
    without the key's signature above all)."""
    fields = list(cbor.loads_canonical(VALID.encode(), "record"))
    if fields[position] == replacement:
        return
    fields[position] = replacement
    with pytest.raises(PeerRecordError):
        decode_peer_record(cbor.dumps(fields))


def test_a_record_with_any_bit_flipped_is_refused() -> None:
    encoded = VALID.encode()
    for position in range(len(encoded)):
        flipped = bytearray(encoded)
        flipped[position] ^= 1 << (position % 8)
        with pytest.raises(PeerRecordError):
            decode_peer_record(bytes(flipped))


def test_another_signed_cbor_body_never_verifies_as_a_peer_record() -> None:
    """A capability record's signature is over another domain: same key, never a peer record."""
    grant = Grant.issue(BOB, space=SPACE, subject=CAROL.public_key, role=Role.READ, issued_ms=1)
    with pytest.raises(PeerRecordError):
        decode_peer_record(grant.encode())
    fields = list(cbor.loads_canonical(VALID.encode(), "record"))
    fields[6] = grant.signature
    with pytest.raises(PeerRecordError, match="signature"):
        decode_peer_record(cbor.dumps(fields))


@pytest.mark.parametrize("name", ["", " bob", "bob ", "bo\x1bb", "b\nob", "x" * (MAX_PEER_NAME_CHARS + 1)])
def test_names_no_table_can_show_are_refused_both_ways(name: str) -> None:
    with pytest.raises(InvalidPeerRecord):
        record(name=name)
    fields = list(cbor.loads_canonical(VALID.encode(), "record"))
    fields[3] = name
    with pytest.raises(PeerRecordError):
        decode_peer_record(cbor.dumps(fields))


def test_decode_errors_are_wire_errors() -> None:
    assert issubclass(PeerRecordError, WireError)


# --- messages of records ---


def test_a_message_round_trips_and_refuses_a_record_of_another_space() -> None:
    records = [record(), record(CAROL, name="carol", kind=PeerKind.HUMAN)]
    assert decode_peer_records(encode_peer_records(SPACE, records)) == (SPACE, records)
    with pytest.raises(PeerRecordError, match="another space"):
        decode_peer_records(cbor.dumps([SPACE, [record(space=OTHER_SPACE).encode()]]))
    with pytest.raises(PeerRecordError):
        decode_peer_records(cbor.dumps([SPACE, [VALID.encode()] * (MAX_PEER_RECORDS_PER_MESSAGE + 1)]))


@DECODER
@given(_CBOR_VALUES)
def test_a_message_of_any_shape_raises_only_peer_record_errors(value: object) -> None:
    try:
        space, records = decode_peer_records(cbor.dumps(value))
    except PeerRecordError:
        return
    assert len(space) == 32 and records == []  # [32 bytes, []] is a well-formed empty message


# --- the newest record per key ---


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["bob", "carol"]), st.integers(0, 3), st.sampled_from(PeerKind)), min_size=1, max_size=8), st.randoms())
def test_every_arrival_order_keeps_the_same_newest_record_per_key(draws: list[tuple[str, int, PeerKind]], rng: object) -> None:
    records = [record(identity_of(who), name=who, kind=kind, at=at) for who, at, kind in draws]
    shuffled = list(records)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    ordered, reordered = PeerBook(SPACE, records), PeerBook(SPACE, shuffled)
    assert ordered.records() == reordered.records()
    for kept in ordered.records():
        same_key = [r for r in records if r.key == kept.key]
        assert (kept.issued_ms, kept.hash) == max((r.issued_ms, r.hash) for r in same_key)


def test_a_newer_record_replaces_an_older_one_and_not_the_reverse() -> None:
    book = PeerBook(SPACE)
    old, new = record(kind=PeerKind.HUMAN, at=1), record(kind=PeerKind.AGENT, at=2)
    assert book.add(new) and not book.add(old) and not book.add(new)
    assert book.get(BOB.public_key) == new
    with pytest.raises(PeerRecordError):
        book.add(record(space=OTHER_SPACE))


def test_a_full_book_takes_no_new_key_but_still_updates_a_held_one() -> None:
    book = PeerBook(SPACE)
    book._by_key = {bytes([i % 256, i // 256]) + bytes(30): VALID for i in range(MAX_PEER_RECORDS_PER_SPACE - 1)}
    assert book.add(record(BOB, at=1))
    assert not book.add(record(CAROL))
    assert book.add(record(BOB, at=2))


# --- who may publish ---


def test_a_private_space_keeps_records_of_its_members_only_revoked_ones_included() -> None:
    mallory, invited = identity_of("mallory"), identity_of("invitation")
    to_bob = Grant.issue(ROOT, space=SPACE, subject=BOB.public_key, role=Role.READ, issued_ms=1)
    to_carol = Grant.issue(ROOT, space=SPACE, subject=CAROL.public_key, role=Role.RELAY, issued_ms=1)
    invitation = Grant.issue(ROOT, space=SPACE, subject=invited.public_key, role=Role.WRITE, uses=1, issued_ms=1)
    out = Revocation.issue(ROOT, space=SPACE, subject=CAROL.public_key, issued_ms=2, parents=(to_carol.hash,))
    log = CapabilityLog(GENESIS, [to_bob, to_carol, invitation, out])
    assert [may_publish(log, who.public_key) for who in (ROOT, BOB, CAROL, mallory, invited)] == [True, True, True, False, False]
    open_log = CapabilityLog(Genesis.create(ROOT, "open", 1, nonce=bytes(16)))
    assert all(may_publish(open_log, who.public_key) for who in (ROOT, mallory))


def test_records_are_only_ever_issued_for_the_signers_own_key() -> None:
    issued = [record(who, name=name) for who, name in zip((BOB, CAROL), ("bob", "carol"), strict=True)]
    assert [r.key for r in issued] == [BOB.public_key, CAROL.public_key]
    assert all(a.hash != b.hash for a, b in itertools.combinations(issued, 2))
