"""Spaces: the space id is the hash of a signed genesis record."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import identity_of
from protocol.errors import BadSignature, InvalidSpaceName, ProtocolError, WireError
from protocol.space import MAX_SPACE_NAME_CHARS, SPACE_ID_BYTES, Genesis


def test_genesis_round_trips_and_names_a_32_byte_space():
    genesis = Genesis.create(identity_of("alice"), "dist-space", created_ms=1_700_000_000_000)
    decoded = Genesis.decode(genesis.encode())
    assert decoded == genesis
    assert genesis.space_id == hashlib.sha256(genesis.encode()).digest()
    assert len(genesis.space_id) == SPACE_ID_BYTES
    assert decoded.creator == identity_of("alice").public_key


def test_two_spaces_with_the_same_name_get_different_ids():
    alice = identity_of("alice")
    assert Genesis.create(alice, "work", 1).space_id != Genesis.create(alice, "work", 1).space_id


def test_a_genesis_with_a_changed_name_does_not_verify():
    genesis = Genesis.create(identity_of("alice"), "work", 1)
    renamed = Genesis(genesis.creator, "play", genesis.nonce, genesis.created_ms, genesis.signature)
    with pytest.raises(BadSignature):
        Genesis.decode(renamed.encode())


def test_a_genesis_claiming_another_creator_does_not_verify():
    genesis = Genesis.create(identity_of("mallory"), "work", 1)
    claimed = Genesis(identity_of("alice").public_key, genesis.name, genesis.nonce, genesis.created_ms, genesis.signature)
    with pytest.raises(BadSignature):
        Genesis.decode(claimed.encode())


@pytest.mark.parametrize("name", ["", "x" * (MAX_SPACE_NAME_CHARS + 1)])
def test_bad_space_names_are_refused(name):
    with pytest.raises(InvalidSpaceName):
        Genesis.create(identity_of("alice"), name, 1)
    with pytest.raises(ValueError):  # callers that catch ValueError keep working
        Genesis.create(identity_of("alice"), name, 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_genesis_bytes_raise_only_protocol_errors(data):
    with pytest.raises(ProtocolError):
        Genesis.decode(data)


def test_a_genesis_with_any_bit_flipped_is_refused():
    """Every field is signed and the encoding is canonical: only the very bytes decode (the
    space id hashes them, so no second byte string may name the same genesis)."""
    encoded = Genesis.create(identity_of("alice"), "work", 1).encode()
    for position in range(len(encoded)):
        for bit in range(8):
            flipped = bytearray(encoded)
            flipped[position] ^= 1 << bit
            with pytest.raises(ProtocolError):
                Genesis.decode(bytes(flipped))


def test_a_truncated_genesis_is_a_wire_error():
    encoded = Genesis.create(identity_of("alice"), "work", 1).encode()
    with pytest.raises(WireError):
        Genesis.decode(encoded[:-1])
