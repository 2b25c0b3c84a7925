"""Bad input must fail with a typed AutomergeError subclass and leave the document as it was.

Peers are untrusted and disks corrupt bytes, so every decoder is also fuzzed with random and
damaged-but-plausible input: the only acceptable failure is an AutomergeError, never a crash,
another exception type, or a half-applied document.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from native import (
    ROOT,
    AutomergeError,
    DecodeError,
    Document,
    InvalidHash,
    InvalidObjectId,
    InvalidOperation,
    SyncState,
    decode_change,
    decode_sync_message,
)
from tests.native.helpers import ALICE, BOB, CAROL, change_hashes, corrupted, garbage, shared_doc, snapshot, sync_pair

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Scene:
    """alice's committed document: a text, a one-item list and a map under the root."""

    doc: Document
    text: str
    todo: str
    meta: str


@pytest.fixture
def scene() -> Scene:
    doc, text = shared_doc()
    todo = doc.put_object(ROOT, "todo", "list")
    doc.insert(todo, 0, "first")
    meta = doc.put_object(ROOT, "meta", "map")
    doc.put(meta, "k", 1)
    doc.commit()
    return Scene(doc, text, todo, meta)


def assert_rejected(doc: Document, error: type[AutomergeError], call: Callable[[], Any]) -> None:
    """`call` raises `error` and neither `doc` nor its pending transaction moved."""
    before = snapshot(doc)
    with pytest.raises(error):
        call()
    assert doc.pending_ops() == 0
    assert snapshot(doc) == before


def test_every_error_class_is_an_automerge_error() -> None:
    for cls in (DecodeError, InvalidHash, InvalidObjectId, InvalidOperation):
        assert issubclass(cls, AutomergeError) and issubclass(AutomergeError, Exception)


# ----- object ids -----

OBJ_ID_CALLS: dict[str, Callable[[Document, str], Any]] = {
    "get": lambda d, o: d.get(o, "k"),
    "get_all": lambda d, o: d.get_all(o, "k"),
    "put": lambda d, o: d.put(o, "k", 1),
    "put_object": lambda d, o: d.put_object(o, "k", "map"),
    "insert": lambda d, o: d.insert(o, 0, 1),
    "insert_object": lambda d, o: d.insert_object(o, 0, "list"),
    "delete": lambda d, o: d.delete(o, "k"),
    "keys": lambda d, o: d.keys(o),
    "length": lambda d, o: d.length(o),
    "object_type": lambda d, o: d.object_type(o),
    "text": lambda d, o: d.text(o),
    "hydrate": lambda d, o: d.hydrate(o),
    "splice_text": lambda d, o: d.splice_text(o, 0, 0, "x"),
    "update_text": lambda d, o: d.update_text(o, "x"),
}
BAD_OBJ_IDS = ["1@zz", "abc", "", "1@", "@6162", "-1@616c696365", "1@abc", "99@616c696365", "1@0badc0de", "root"]


@pytest.mark.parametrize("obj", BAD_OBJ_IDS)
@pytest.mark.parametrize("method", OBJ_ID_CALLS)
def test_malformed_or_unknown_object_ids_raise_invalid_object_id(scene: Scene, method: str, obj: str) -> None:
    """Covers ids that do not parse ("1@zz", "abc") and well-formed ids naming nothing ("99@<alice>")."""
    assert_rejected(scene.doc, InvalidObjectId, lambda: OBJ_ID_CALLS[method](scene.doc, obj))


def test_root_is_a_valid_object_id(scene: Scene) -> None:
    assert scene.doc.object_type("_root") == "map" and scene.doc.keys(ROOT) == ["meta", "text", "todo"]


# ----- heads -----

HEADS_CALLS: dict[str, Callable[[Document, Any], Any]] = {
    "get": lambda d, h: d.get(ROOT, "k", heads=h),
    "get_all": lambda d, h: d.get_all(ROOT, "k", heads=h),
    "keys": lambda d, h: d.keys(ROOT, heads=h),
    "length": lambda d, h: d.length(ROOT, heads=h),
    "hydrate": lambda d, h: d.hydrate(ROOT, heads=h),
    "text": lambda d, h: d.text(ROOT, heads=h),
    "fork_at": lambda d, h: d.fork_at(h),
    "diff_before": lambda d, h: d.diff(h, d.heads()),
    "diff_after": lambda d, h: d.diff(d.heads(), h),
    "save_after": lambda d, h: d.save_after(h),
    "get_changes": lambda d, h: d.get_changes(h),
    "get_missing_deps": lambda d, h: d.get_missing_deps(h),
}
MALFORMED_HEADS = {
    "31 bytes": [b"\x01" * 31],
    "33 bytes": [b"\x01" * 33],
    "empty hash": [b""],
    "bare hash, not a list": b"\x01" * 32,
    "str": "abc",
    "hex str items": ["01" * 32],
    "None item": [None],
    "not iterable": 5,
}


@pytest.mark.parametrize("heads", MALFORMED_HEADS.values(), ids=MALFORMED_HEADS.keys())
@pytest.mark.parametrize("method", HEADS_CALLS)
def test_malformed_heads_raise_invalid_hash(scene: Scene, method: str, heads: Any) -> None:
    assert_rejected(scene.doc, InvalidHash, lambda: HEADS_CALLS[method](scene.doc, heads))


@pytest.mark.parametrize("method", ["get", "get_all", "keys", "length", "hydrate", "fork_at", "diff_before", "diff_after"])
def test_unknown_heads_raise_invalid_hash_instead_of_reading_another_state(scene: Scene, method: str) -> None:
    """Automerge skips unknown hashes, which would silently answer for the wrong (often empty) state."""
    unknown = [b"\x5a" * 32]
    assert_rejected(scene.doc, InvalidHash, lambda: HEADS_CALLS[method](scene.doc, unknown))
    assert_rejected(scene.doc, InvalidHash, lambda: HEADS_CALLS[method](scene.doc, [*scene.doc.heads(), *unknown]))


def test_heads_of_a_change_still_waiting_for_its_deps_are_unknown(scene: Scene) -> None:
    """A queued change is held but not applied, so reading "at" it is as wrong as an unknown hash."""
    scene.doc.splice_text(scene.text, 0, 0, ">")
    missing = scene.doc.commit()
    scene.doc.splice_text(scene.text, 0, 0, ">")
    waiting = scene.doc.commit()
    bob = Document(BOB)
    bob.apply_changes([scene.doc.get_change_by_hash(waiting)])
    assert bob.get_missing_deps() == [missing]
    with pytest.raises(InvalidHash):
        bob.hydrate(heads=[waiting])


def test_heads_a_peer_may_hold_are_tolerated_where_automerge_expects_them(scene: Scene) -> None:
    """get_changes/save_after take a peer's heads (unknown hashes mean "send everything"),
    get_missing_deps exists to report them."""
    unknown = [b"\x5a" * 32]
    assert len(scene.doc.get_changes(unknown)) == len(scene.doc.get_changes())
    assert Document.load(scene.doc.save_after(unknown)).heads() == scene.doc.heads()
    assert scene.doc.get_missing_deps(unknown) == unknown


def test_get_change_by_hash_wants_exactly_32_bytes(scene: Scene) -> None:
    for bad in (b"\x01" * 31, b"\x01" * 33, b""):
        with pytest.raises(InvalidHash):
            scene.doc.get_change_by_hash(bad)


# ----- values, keys, positions, kinds -----


@pytest.mark.parametrize("value", [{}, {"a": 1}, [], [1], (1,), {1}, object(), bytearray(b"x"), 2**64, -(2**63) - 1])
def test_values_automerge_cannot_store_raise_invalid_operation(scene: Scene, value: object) -> None:
    """Nested values go through put_object; silently stringifying them would lose structure."""
    assert_rejected(scene.doc, InvalidOperation, lambda: scene.doc.put(ROOT, "v", value))
    assert_rejected(scene.doc, InvalidOperation, lambda: scene.doc.insert(scene.todo, 0, value))


INVALID_OPERATIONS: dict[str, Callable[[Scene], Any]] = {
    # positions
    "get negative": lambda s: s.doc.get(s.todo, -1),
    "put negative": lambda s: s.doc.put(s.todo, -1, "x"),
    "insert negative": lambda s: s.doc.insert(s.todo, -1, "x"),
    "insert_object negative": lambda s: s.doc.insert_object(s.todo, -1, "map"),
    "delete negative": lambda s: s.doc.delete(s.todo, -1),
    "splice negative pos": lambda s: s.doc.splice_text(s.text, -1, 0, "x"),
    "insert past end": lambda s: s.doc.insert(s.todo, 2, "x"),
    "insert huge": lambda s: s.doc.insert(s.todo, 2**70, "x"),
    "put past end": lambda s: s.doc.put(s.todo, 1, "x"),
    "delete past end": lambda s: s.doc.delete(s.todo, 1),
    "splice past end": lambda s: s.doc.splice_text(s.text, 12, 0, "x"),
    "splice huge delete": lambda s: s.doc.splice_text(s.text, 0, 2**70),
    "splice delete before start": lambda s: s.doc.splice_text(s.text, 1, -2),
    # keys that do not fit the object
    "map key on list get": lambda s: s.doc.get(s.todo, "k"),
    "map key on list put": lambda s: s.doc.put(s.todo, "k", 1),
    "map key on list delete": lambda s: s.doc.delete(s.todo, "k"),
    "index on map": lambda s: s.doc.put(s.meta, 0, 1),
    "bool index": lambda s: s.doc.insert(s.todo, True, "x"),
    "float index": lambda s: s.doc.get(s.todo, 0.0),
    "None key": lambda s: s.doc.put(ROOT, None, 1),
    # kinds
    "put_object table": lambda s: s.doc.put_object(ROOT, "t", "table"),
    "put_object capitalised": lambda s: s.doc.put_object(ROOT, "t", "Map"),
    "insert_object counter": lambda s: s.doc.insert_object(s.todo, 0, "counter"),
    "put_object empty": lambda s: s.doc.put_object(ROOT, "t", ""),
    "keys of a list": lambda s: s.doc.keys(s.todo),
    "keys of a text": lambda s: s.doc.keys(s.text),
    "text of a map": lambda s: s.doc.text(ROOT),
    "text of a list": lambda s: s.doc.text(s.todo),
    "splice a list": lambda s: s.doc.splice_text(s.todo, 0, 0, "x"),
    "update a map": lambda s: s.doc.update_text(s.meta, "x"),
    "insert into a map": lambda s: s.doc.insert(s.meta, 0, 1),
}


@pytest.mark.parametrize("case", INVALID_OPERATIONS)
def test_bad_positions_keys_and_kinds_raise_invalid_operation(scene: Scene, case: str) -> None:
    assert_rejected(scene.doc, InvalidOperation, lambda: INVALID_OPERATIONS[case](scene))


def test_an_empty_actor_id_is_refused_everywhere(scene: Scene) -> None:
    """An empty actor would make every change unattributable."""
    saved = scene.doc.save()
    for make in (
        lambda: Document(b""),
        lambda: Document.load(saved, actor=b""),
        lambda: scene.doc.fork(actor=b""),
        lambda: scene.doc.fork_at(scene.doc.heads(), actor=b""),
    ):
        with pytest.raises(InvalidOperation):
            make()
    assert_rejected(scene.doc, InvalidOperation, lambda: scene.doc.set_actor(b""))
    assert scene.doc.actor == ALICE


# ----- bad bytes: deterministic cases -----


def test_truncated_or_corrupted_changes_are_rejected(scene: Scene) -> None:
    """A flipped bit anywhere (checksum, actor, body) must not yield a 'valid' change under a new hash."""
    raw = scene.doc.get_changes()[-1]
    damaged = [raw[:-1], raw[:8], raw + b"\x00", b"", b"\x85\x6f\x4a\x83"]
    damaged += [raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :] for i in range(len(raw))]
    for data in damaged:
        with pytest.raises(DecodeError):
            decode_change(data)


def test_apply_changes_with_one_bad_change_among_good_ones_applies_none(scene: Scene) -> None:
    good = scene.doc.get_changes()
    bob = Document(BOB)
    bad = good[1][:-3]
    before = snapshot(bob)
    with pytest.raises(DecodeError):
        bob.apply_changes([good[0], bad, good[1]])
    assert snapshot(bob) == before and bob.get_missing_deps() == []
    bob.apply_changes(good)
    assert bob.heads() == scene.doc.heads()


def test_changes_from_an_actor_reusing_sequence_numbers_raise_a_typed_error() -> None:
    """Two replicas sharing an actor id write clashing changes; Automerge refuses the second."""
    alice = Document(ALICE)
    clone = Document(ALICE)
    alice.put(ROOT, "k", "alice")
    clone.put(ROOT, "k", "clone")
    alice.commit(), clone.commit()
    with pytest.raises(InvalidOperation):
        alice.apply_changes(clone.get_changes())


def test_bad_sync_messages_raise_and_leave_document_and_sync_state_alone(scene: Scene) -> None:
    bob = Document(BOB)
    message = scene.doc.generate_sync_message(SyncState())
    state = SyncState()
    sync_pair(scene.doc, bob, SyncState(), state)
    before_state = (state.encode(), state.shared_heads, state.their_heads)
    for data in (b"", b"\x00", b"garbage", message[:-1], message[:1]):
        with pytest.raises(DecodeError):
            decode_sync_message(data)
        assert_rejected(bob, DecodeError, functools.partial(bob.receive_sync_message, state, data))
    assert (state.encode(), state.shared_heads, state.their_heads) == before_state


def test_bad_sync_state_bytes_raise_decode_error() -> None:
    for data in (b"", b"\x00", b"\x43", b"\x43\x05" + b"\x01" * 31, b"garbage"):
        with pytest.raises(DecodeError):
            SyncState.decode(data)


def test_bad_document_bytes_raise_decode_error(scene: Scene) -> None:
    saved = scene.doc.save()
    for data in (b"garbage", saved[:-1], saved[:20], saved[:8] + bytes([saved[8] ^ 1]) + saved[9:], saved + b"\x00"):
        with pytest.raises(DecodeError):
            Document.load(data)


def test_a_truncated_incremental_chunk_loads_nothing(scene: Scene) -> None:
    """Automerge would keep the chunks before the damage and drop the rest silently."""
    bob = Document.load(scene.doc.save(), actor=BOB)
    for line in ("one", "two", "three"):
        scene.doc.splice_text(scene.text, 0, 0, line)
        scene.doc.commit()
    chunk = scene.doc.save_incremental()
    carol = Document(CAROL)
    for doc, data in ((bob, chunk[:-5]), (bob, b"garbage"), (carol, chunk[:-5])):
        assert_rejected(doc, DecodeError, functools.partial(doc.load_incremental, data))
    bob.load_incremental(chunk)
    assert bob.heads() == scene.doc.heads()


# ----- bad bytes: fuzzing -----


@functools.cache
def corpus() -> dict[str, Any]:
    """Valid samples of every byte format, built once: alice and bob edit, save and sync."""
    alice, text = shared_doc()
    saved = alice.save()
    alice.splice_text(text, 0, 0, "a long line " * 40)
    alice.put(ROOT, "blob", b"\x00\x01\x02")
    alice.commit("big")
    incremental = alice.save_incremental()
    bob = Document.load(saved + incremental, actor=BOB)
    bob.splice_text(text, 3, 4, "🎉")
    bob.commit()
    sa, sb = SyncState(), SyncState()
    messages = sync_pair(Document.load(saved, actor=CAROL), bob, sa, sb)
    return {
        "base": saved,
        "changes": bob.get_changes(),
        "genuine": change_hashes(bob),
        "messages": messages,
        "states": [sa.encode(), sb.encode()],
        "docs": [saved, bob.save(), incremental, bob.save_after(alice.heads())],
    }


def assert_only_genuine_changes(doc: Document) -> None:
    """Whatever got in was one of the changes alice and bob really made: nothing corrupt was absorbed."""
    assert change_hashes(doc) <= corpus()["genuine"]


@FUZZ
@given(data=garbage(corpus()["changes"]) | st.sampled_from(corpus()["changes"]))
def test_fuzz_decode_change(data: bytes) -> None:
    try:
        change = decode_change(data)
    except AutomergeError:
        return
    assert change.hash in corpus()["genuine"], "only an intact change decodes"
    assert change.raw == data


@FUZZ
@given(data=corrupted(corpus()["changes"]))
def test_fuzz_every_damaged_change_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_change(data)


@FUZZ
@given(bad=garbage(corpus()["changes"]), at=st.integers(0, 3))
def test_fuzz_apply_changes_is_all_or_nothing(bad: bytes, at: int) -> None:
    doc = Document.load(corpus()["base"], actor=CAROL)
    batch = list(corpus()["changes"])
    batch.insert(min(at, len(batch)), bad)
    before = snapshot(doc)
    try:
        doc.apply_changes(batch)
    except AutomergeError:
        assert snapshot(doc) == before
    assert_only_genuine_changes(doc)


@FUZZ
@given(data=garbage(corpus()["messages"]))
def test_fuzz_decode_sync_message(data: bytes) -> None:
    """What decodes is read out of the input: every hash and change in it is bytes of ``data``."""
    try:
        message = decode_sync_message(data)
    except AutomergeError:
        return
    assert all(len(h) == 32 and h in data for h in message.heads + message.need)
    assert all(change in data for change in message.changes)


@FUZZ
@given(data=garbage(corpus()["messages"]))
def test_fuzz_receive_sync_message(data: bytes) -> None:
    """A damaged message may still carry intact changes (Automerge applies those); never a corrupt one."""
    doc = Document.load(corpus()["base"], actor=CAROL)
    state = SyncState()
    before = snapshot(doc)
    try:
        doc.receive_sync_message(state, data)
    except AutomergeError:
        assert snapshot(doc) == before
    assert_only_genuine_changes(doc)
    doc.generate_sync_message(state)


@FUZZ
@given(data=garbage(corpus()["docs"]) | st.sampled_from(corpus()["docs"]))
def test_fuzz_load(data: bytes) -> None:
    try:
        doc = Document.load(data)
    except AutomergeError:
        return
    assert_only_genuine_changes(doc)
    assert snapshot(Document.load(doc.save())) == snapshot(doc)


@FUZZ
@given(data=garbage(corpus()["docs"]))
def test_fuzz_load_incremental_is_all_or_nothing(data: bytes) -> None:
    doc = Document.load(corpus()["base"], actor=CAROL)
    before = snapshot(doc)
    try:
        doc.load_incremental(data)
    except AutomergeError:
        assert snapshot(doc) == before
    assert_only_genuine_changes(doc)


@FUZZ
@given(data=garbage(corpus()["states"]))
def test_fuzz_sync_state_decode(data: bytes) -> None:
    try:
        state = SyncState.decode(data)
    except AutomergeError:
        return
    assert SyncState.decode(state.encode()).shared_heads == state.shared_heads
