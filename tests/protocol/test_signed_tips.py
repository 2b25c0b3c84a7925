"""Signed tips: one signature covers an author's batch, and nothing forged gets covered."""

from __future__ import annotations

import pytest

import native
from harness import identity_of, make_space
from protocol.errors import BadSignature, InvalidActor, UnknownChange, WireError, WrongAuthor
from protocol.space import DOC_ID_BYTES
from protocol.tips import SignedTip, TipSignature, coverage

SPACE = make_space()
OTHER_SPACE = make_space("bob")
DOC = b"\x01" * DOC_ID_BYTES
OTHER_DOC = b"\x02" * DOC_ID_BYTES
alice, bob, mallory = identity_of("alice"), identity_of("bob"), identity_of("mallory")


def typed(document: native.Document, text: str) -> native.DecodedChange:
    """One change typing ``text`` at the start of the document's text."""
    found = document.get(native.ROOT, "text")
    obj = found.id if isinstance(found, native.ObjectRef) else document.put_object(native.ROOT, "text", "text")
    document.splice_text(obj, 0, 0, text)
    change_hash = document.commit()
    assert change_hash is not None
    raw = document.get_change_by_hash(change_hash)
    assert raw is not None
    return native.decode_change(raw)


def nothing_stored(change_hash: bytes) -> bool:
    return False


def test_one_tip_covers_the_authors_whole_batch():
    document = native.Document(alice.public_key)
    batch = [typed(document, c) for c in "abc"]
    result = coverage(SPACE, DOC, batch, [SignedTip.sign(alice, SPACE, DOC, batch[-1].hash)], is_stored=nothing_stored)
    assert result.covered == tuple(batch) and not result.uncovered


def test_a_tip_covers_the_authors_changes_but_not_those_of_others_in_between():
    alice_doc = native.Document(alice.public_key)
    first = typed(alice_doc, "a")
    bob_doc = alice_doc.fork(bob.public_key)
    bobs = typed(bob_doc, "b")
    alice_doc.apply_changes([bobs.raw])
    second = typed(alice_doc, "c")
    assert bobs.hash in second.deps
    result = coverage(SPACE, DOC, [first, bobs, second], [SignedTip.sign(alice, SPACE, DOC, second.hash)], is_stored=nothing_stored)
    assert set(result.covered) == {first, second}
    assert result.uncovered == (bobs,)  # bob's change needs bob's own tip


def test_changes_without_their_authors_tip_stay_uncovered():
    document = native.Document(bob.public_key)
    batch = [typed(document, "x")]
    assert coverage(SPACE, DOC, batch, [], is_stored=nothing_stored).uncovered == tuple(batch)


def test_a_forged_signature_is_rejected():
    change = typed(native.Document(alice.public_key), "a")
    tip = SignedTip.sign(alice, SPACE, DOC, change.hash)
    forged = SignedTip(SPACE, DOC, alice.public_key, change.hash, bytes(64))
    with pytest.raises(BadSignature):
        coverage(SPACE, DOC, [change], [forged], is_stored=nothing_stored)
    flipped = SignedTip(SPACE, DOC, alice.public_key, change.hash, tip.signature[:-1] + bytes([tip.signature[-1] ^ 1]))
    with pytest.raises(BadSignature):
        coverage(SPACE, DOC, [change], [flipped], is_stored=nothing_stored)


def test_a_tip_signed_by_another_key_for_alices_change_is_wrong_author():
    change = typed(native.Document(alice.public_key), "a")
    with pytest.raises(WrongAuthor):
        coverage(SPACE, DOC, [change], [SignedTip.sign(mallory, SPACE, DOC, change.hash)], is_stored=nothing_stored)


def test_a_tip_claiming_alice_but_signed_by_mallory_is_a_bad_signature():
    change = typed(native.Document(alice.public_key), "a")
    by_mallory = SignedTip.sign(mallory, SPACE, DOC, change.hash)
    claimed = SignedTip(SPACE, DOC, alice.public_key, change.hash, by_mallory.signature)
    with pytest.raises(BadSignature):
        coverage(SPACE, DOC, [change], [claimed], is_stored=nothing_stored)


def test_a_change_whose_actor_is_not_a_32_byte_key_is_invalid():
    change = typed(native.Document(b"\x07" * 16), "a")
    with pytest.raises(InvalidActor):
        coverage(SPACE, DOC, [change], [], is_stored=nothing_stored)


@pytest.mark.parametrize(("space", "doc"), [(OTHER_SPACE, DOC), (SPACE, OTHER_DOC)])
def test_a_tip_for_another_space_or_doc_is_refused(space, doc):
    change = typed(native.Document(alice.public_key), "a")
    with pytest.raises(WireError, match="another space or doc"):
        coverage(SPACE, DOC, [change], [SignedTip.sign(alice, space, doc, change.hash)], is_stored=nothing_stored)


def test_a_tip_for_an_unknown_change_is_refused():
    change = typed(native.Document(alice.public_key), "a")
    with pytest.raises(UnknownChange):
        coverage(SPACE, DOC, [], [SignedTip.sign(alice, SPACE, DOC, change.hash)], is_stored=nothing_stored)


def test_a_tip_for_a_stored_change_is_accepted():
    change = typed(native.Document(alice.public_key), "a")
    tip = SignedTip.sign(alice, SPACE, DOC, change.hash)
    assert coverage(SPACE, DOC, [], [tip], is_stored=lambda h: h == change.hash).valid_tips == (tip,)


def test_verified_tips_are_not_verified_again():
    change = typed(native.Document(alice.public_key), "a")
    unchecked = SignedTip(SPACE, DOC, alice.public_key, change.hash, bytes(64))
    result = coverage(SPACE, DOC, [change], [unchecked], is_stored=nothing_stored, is_verified=lambda tip: True)
    assert result.covered == (change,)


def test_a_tip_on_the_wire_takes_author_and_hash_from_the_change_it_names():
    document = native.Document(alice.public_key)
    batch = [typed(document, c) for c in "ab"]
    tip = SignedTip.sign(alice, SPACE, DOC, batch[1].hash)
    by_hash = {c.hash: c for c in batch}
    assert TipSignature(1, tip.signature).resolve(SPACE, DOC, batch, by_hash) == tip
    assert TipSignature(batch[1].hash, tip.signature).resolve(SPACE, DOC, batch, by_hash) == tip
    with pytest.raises(WireError):
        TipSignature(2, tip.signature).resolve(SPACE, DOC, batch, by_hash)
    with pytest.raises(UnknownChange):
        TipSignature(b"\x09" * 32, tip.signature).resolve(SPACE, DOC, batch, by_hash)


def test_a_tip_replayed_into_another_space_fails_its_signature():
    change = typed(native.Document(alice.public_key), "a")
    signed_elsewhere = SignedTip.sign(alice, OTHER_SPACE, DOC, change.hash)
    replayed = TipSignature(0, signed_elsewhere.signature).resolve(SPACE, DOC, [change], {change.hash: change})
    with pytest.raises(BadSignature):
        replayed.verify()


@pytest.mark.parametrize("fields", [(True, bytes(64)), (-1, bytes(64)), (b"\x01" * 31, bytes(64)), (0, bytes(63))])
def test_malformed_wire_tips_are_wire_errors(fields):
    with pytest.raises(WireError):
        TipSignature(*fields)


def test_malformed_tips_are_wire_errors():
    with pytest.raises(WireError):
        SignedTip(SPACE, DOC, alice.public_key, b"\x01" * 31, bytes(64))
