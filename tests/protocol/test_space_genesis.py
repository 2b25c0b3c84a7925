"""Spaces: the space id is the hash of a signed genesis record."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import identity_of
from protocol import cbor
from protocol.errors import BadSignature, InvalidSpaceName, ProtocolError, WireError
from protocol.space import DOMAIN_GENESIS, MAX_SPACE_NAME_CHARS, SPACE_ID_BYTES, Genesis


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


# ----- the private flag (issue 13) -----


def test_an_open_genesis_keeps_its_five_element_encoding():
    """Spaces made before the flag keep their ids: an open genesis encodes as it always did."""
    genesis = Genesis.create(identity_of("alice"), "work", 1, nonce=bytes(16))
    assert not genesis.private
    assert len(cbor.loads(genesis.encode(), "genesis")) == 5


def test_a_private_genesis_round_trips_with_its_flag_in_the_signed_body():
    genesis = Genesis.create(identity_of("alice"), "work", 1, nonce=bytes(16), private=True)
    fields = cbor.loads(genesis.encode(), "genesis")
    assert len(fields) == 6 and fields[4] is True
    decoded = Genesis.decode(genesis.encode())
    assert decoded == genesis and decoded.private
    opened = Genesis.create(identity_of("alice"), "work", 1, nonce=bytes(16))
    assert opened.space_id != genesis.space_id


def test_the_flag_cannot_be_dropped_or_added_without_breaking_the_signature():
    alice = identity_of("alice")
    private = Genesis.create(alice, "work", 1, private=True)
    stripped = Genesis(private.creator, private.name, private.nonce, private.created_ms, private.signature)
    with pytest.raises(BadSignature):
        Genesis.decode(stripped.encode())
    opened = Genesis.create(alice, "work", 1)
    flagged = Genesis(opened.creator, opened.name, opened.nonce, opened.created_ms, opened.signature, private=True)
    with pytest.raises(BadSignature):
        Genesis.decode(flagged.encode())


@pytest.mark.parametrize("flag", [False, 1, 0, b"\x01", "true", [True]])
def test_only_true_is_a_flag(flag):
    """One genesis, one encoding: a False (the open genesis has no flag) or any other value in
    the flag's place is malformed, even when signed over."""
    alice = identity_of("alice")
    genesis = Genesis.create(alice, "work", 1, nonce=bytes(16))
    body = [genesis.creator, genesis.name, genesis.nonce, genesis.created_ms, flag]
    signature = alice.sign(DOMAIN_GENESIS, cbor.dumps(body))
    with pytest.raises(WireError):
        Genesis.decode(cbor.dumps([*body, signature]))


def test_a_private_genesis_with_any_bit_flipped_is_refused():
    encoded = Genesis.create(identity_of("alice"), "work", 1, private=True).encode()
    for position in range(len(encoded)):
        for bit in range(8):
            flipped = bytearray(encoded)
            flipped[position] ^= 1 << bit
            with pytest.raises(ProtocolError):
                Genesis.decode(bytes(flipped))
