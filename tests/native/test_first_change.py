"""``first_change``: a new doc's first change without building the document — byte for byte the
change that the same edits on a Document and a commit make, so peers, the store and a later
load cannot tell them apart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from native import ROOT, DecodeError, Document, InvalidOperation, ObjectRef, decode_change, first_change
from tests.native.helpers import ALICE

# Text as Python holds it, minus lone surrogates (no doc holds them; the workspace refuses them).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


def committed(content: str | bytes, key: str, message: str | None, time: int | None) -> tuple[bytes, bytes]:
    """The first change (bytes, hash) of a Document edited the usual way."""
    doc = Document(ALICE)
    if isinstance(content, str):
        doc.splice_text(doc.put_object(ROOT, key, "text"), 0, 0, content)
    else:
        doc.put(ROOT, key, content)
    change_hash = doc.commit(message, time)
    assert change_hash is not None
    return doc.get_changes()[0], change_hash


@settings(max_examples=200, deadline=None)
@given(content=st.one_of(TEXT, st.binary(max_size=300)), message=st.none() | st.text(max_size=20), time=st.none() | st.integers(0, 2**40))
def test_first_change_is_the_committed_change_byte_for_byte(content: str | bytes, message: str | None, time: int | None) -> None:
    key = "text" if isinstance(content, str) else "bytes"
    raw, change_hash = committed(content, key, message, time)
    built = first_change(ALICE, key, content, message, time)
    assert (built.raw, built.hash) == (raw, change_hash)
    decoded = decode_change(built.raw)
    assert (decoded.seq, decoded.deps, decoded.actor, decoded.message, decoded.time) == (1, [], ALICE, message or None, time or 0)  # "" is stored as no message


def test_a_long_text_with_every_width_of_character_loads_back() -> None:
    text = "ascii é € 😀 \n" * 2_000
    built = first_change(ALICE, "text", text, "create", 1_700_000_000)
    assert built.raw == committed(text, "text", "create", 1_700_000_000)[0]
    loaded = Document.load(built.raw)
    obj = loaded.get(ROOT, "text")
    assert isinstance(obj, ObjectRef) and loaded.text(obj.id) == text
    assert loaded.heads() == [built.hash]


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(InvalidOperation):
        first_change(ALICE, "text", 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidOperation):
        first_change(b"", "text", "x")
    with pytest.raises(DecodeError):
        decode_change(first_change(ALICE, "text", "x").raw[:-1])
