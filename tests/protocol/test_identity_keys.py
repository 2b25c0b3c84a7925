"""Identity: one Ed25519 key is the peer's libp2p id, author id and Automerge actor id."""

from __future__ import annotations

import os
import stat

import pytest

from harness import identity_of
from protocol.errors import BadSignature, IdentityError
from protocol.identity import Identity, peer_id_of, verify_signature
from protocol.peer_record import DOMAIN_PEER_RECORD
from protocol.tips import DOMAIN_TIP


def test_key_file_is_written_owner_only_and_loads_back(tmp_path):
    alice = Identity.generate()
    path = tmp_path / "keys" / "alice.key"
    alice.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Identity.load(path).public_key == alice.public_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_key_file_readable_by_others_is_refused_with_the_fix(tmp_path, mode):
    path = tmp_path / "alice.key"
    Identity.generate().save(path)
    os.chmod(path, mode)
    with pytest.raises(IdentityError, match="chmod 600"):
        Identity.load(path)


def test_saving_over_an_existing_key_is_refused(tmp_path):
    path = tmp_path / "alice.key"
    alice = Identity.generate()
    alice.save(path)
    with pytest.raises(IdentityError, match="already exists"):
        Identity.generate().save(path)
    assert Identity.load(path).public_key == alice.public_key


def test_missing_and_malformed_key_files_are_clear_errors(tmp_path):
    with pytest.raises(IdentityError, match="no key file"):
        Identity.load(tmp_path / "nobody.key")
    short = tmp_path / "short.key"
    short.write_bytes(b"\x01" * 31)
    os.chmod(short, 0o600)
    with pytest.raises(IdentityError, match="malformed"):
        Identity.load(short)


def test_load_or_create_makes_one_key_and_then_keeps_it(tmp_path):
    path = tmp_path / "node.key"
    first = Identity.load_or_create(path)
    assert Identity.load_or_create(path).public_key == first.public_key


def test_peer_id_is_the_libp2p_id_of_the_same_key():
    from libp2p.crypto.ed25519 import Ed25519PublicKey
    from libp2p.peer.id import ID

    alice = identity_of("alice")
    assert alice.peer_id.startswith("12D3KooW") and len(alice.peer_id) == 52
    assert alice.peer_id == ID.from_pubkey(Ed25519PublicKey.from_bytes(alice.public_key)).to_base58()


def test_peer_id_of_a_wrong_length_key_is_refused():
    with pytest.raises(IdentityError):
        peer_id_of(b"\x01" * 31)


def test_signatures_are_domain_separated():
    alice = identity_of("alice")
    signature = alice.sign(DOMAIN_PEER_RECORD, b"message")
    verify_signature(alice.public_key, DOMAIN_PEER_RECORD, b"message", signature)
    with pytest.raises(BadSignature):
        verify_signature(alice.public_key, DOMAIN_TIP, b"message", signature)
    with pytest.raises(BadSignature):
        verify_signature(identity_of("bob").public_key, DOMAIN_PEER_RECORD, b"message", signature)


def test_a_remembered_verification_never_lets_a_neighbouring_forgery_through():
    alice = identity_of("alice")
    signature = alice.sign(DOMAIN_PEER_RECORD, b"message")
    forged = signature[:-1] + bytes([signature[-1] ^ 1])
    for _ in range(2):  # the second round is answered from memory
        verify_signature(alice.public_key, DOMAIN_PEER_RECORD, b"message", signature)
        with pytest.raises(BadSignature):
            verify_signature(alice.public_key, DOMAIN_PEER_RECORD, b"message", forged)
        with pytest.raises(BadSignature):
            verify_signature(alice.public_key, DOMAIN_PEER_RECORD, b"messagf", signature)
