"""Changes and the sync protocol: what replicas exchange, and what a decoded change or message says."""

from __future__ import annotations

import random

import pytest

from native import ROOT, DecodeError, Document, InvalidOperation, SyncState, decode_change, decode_sync_message
from tests.native.helpers import ALICE, BOB, CAROL, ERIN, change_hashes, shared_doc, sync_pair


def chunk_heads(chunk: bytes) -> list[bytes]:
    """The newest change(s) in one sync-message chunk: a single change, or a compact document."""
    try:
        return [decode_change(chunk).hash]
    except DecodeError:
        return Document.load(chunk).heads()


def edit_and_commit(doc: Document, text: str, at: int, insert: str) -> bytes:
    doc.splice_text(text, at, 0, insert)
    return doc.commit()


# ----- changes -----


def test_get_changes_since_heads_returns_only_the_newer_changes_in_causal_order() -> None:
    alice, text = shared_doc()
    first = alice.heads()
    h2 = edit_and_commit(alice, text, 0, "a")
    h3 = edit_and_commit(alice, text, 0, "b")
    assert [decode_change(c).hash for c in alice.get_changes()] == [first[0], h2, h3]
    assert [decode_change(c).hash for c in alice.get_changes(first)] == [h2, h3]
    assert alice.get_changes(alice.heads()) == []
    assert len(alice.get_changes([b"\x07" * 32])) == 3, (
        "heads unknown here (a peer's) are ignored, as Automerge does: everything is sent"
    )


def test_get_change_by_hash_finds_the_exact_change_bytes() -> None:
    alice, text = shared_doc()
    h2 = edit_and_commit(alice, text, 0, ">")
    assert alice.get_change_by_hash(h2) == alice.get_changes()[-1]
    assert decode_change(alice.get_change_by_hash(h2)).hash == h2
    assert alice.get_change_by_hash(b"\x00" * 32) is None


def test_get_last_local_change_is_the_latest_change_by_this_actor() -> None:
    bob = Document(BOB)
    assert bob.get_last_local_change() is None
    alice, text = shared_doc()
    bob.apply_changes(alice.get_changes())
    assert bob.get_last_local_change() is None, "a received change is not local"
    hash_ = edit_and_commit(bob, text, 0, "bob: ")
    assert decode_change(bob.get_last_local_change()).hash == hash_


def test_out_of_order_changes_wait_for_their_dependencies() -> None:
    """Gossip delivers changes in any order; the gap shows in get_missing_deps until filled."""
    alice, text = shared_doc()
    for word in ("one ", "two ", "three "):
        edit_and_commit(alice, text, 0, word)
    c1, c2, c3, c4 = alice.get_changes()
    bob = Document(BOB)
    bob.apply_changes([c4, c1, c3])
    assert bob.heads() == [decode_change(c1).hash]
    assert bob.get_missing_deps() == [decode_change(c2).hash]
    bob.apply_changes([c2, c2, c4])
    assert bob.get_missing_deps() == [] and bob.heads() == alice.heads()
    assert bob.text(text) == alice.text(text)


def test_get_missing_deps_of_heads_names_the_ones_we_lack() -> None:
    alice, _ = shared_doc()
    unknown = b"\x42" * 32
    assert alice.get_missing_deps(alice.heads()) == []
    assert alice.get_missing_deps([unknown, *alice.heads()]) == [unknown]


def test_decode_change_exposes_every_field() -> None:
    alice, text = shared_doc()
    deps = alice.heads()
    alice.splice_text(text, 0, 0, "ab")
    hash_ = alice.commit("two letters", time=1234)
    raw = alice.get_change_by_hash(hash_)
    change = decode_change(raw)
    first = decode_change(alice.get_changes()[0])
    assert change.hash == hash_ and change.actor == ALICE
    assert (first.seq, change.seq) == (1, 2)
    assert change.start_op == first.start_op + first.op_count
    assert change.deps == deps and first.deps == []
    assert (change.time, change.message, change.op_count) == (1234, "two letters", 2)
    assert change.raw == raw
    assert first.message == "create text" and first.time == 0, "no time given means 0, not the clock"


def test_a_large_change_round_trips_through_decode_and_apply() -> None:
    """Big changes are stored compressed inside documents; the change bytes must still verify."""
    alice, text = shared_doc()
    alice.splice_text(text, 0, 0, "".join(random.Random(7).choice("abc🎉") for _ in range(5000)))
    hash_ = alice.commit()
    raw = alice.get_change_by_hash(hash_)
    assert decode_change(raw).hash == hash_ and decode_change(raw).op_count == 5000
    bob = Document.load(alice.save(), actor=BOB)
    assert bob.get_change_by_hash(hash_) == raw
    carol = Document(CAROL)
    carol.apply_changes(bob.get_changes())
    assert carol.text(text) == alice.text(text)


def a_failed_edit(doc: Document, text: str) -> None:
    with pytest.raises(InvalidOperation):
        doc.insert(ROOT, 0, 1)


FIRST_TRANSACTION_ENDINGS = {
    "empty commit": lambda doc, text: doc.commit(),
    "rollback": lambda doc, text: (doc.put(ROOT, "draft", 1), doc.rollback()),
    "no-op delete": lambda doc, text: doc.delete(ROOT, "absent"),
    "no-op update_text": lambda doc, text: doc.update_text(text, "hello world"),
    "failed edit": a_failed_edit,
    "set_actor": lambda doc, text: doc.set_actor(b"bob-2"),
}


@pytest.mark.parametrize("via_sync", [False, True], ids=["apply_changes", "sync"])
@pytest.mark.parametrize("ending", FIRST_TRANSACTION_ENDINGS)
def test_a_replica_whose_first_transaction_came_to_nothing_still_receives_changes(ending: str, via_sync: bool) -> None:
    """Regression: Automerge 0.7.4 forgets a new actor whose first transaction ends empty, but its
    patch log does not, and the next change from an actor sorting after it (erin > bob) panicked."""
    alice, text = shared_doc()
    bob = Document.load(alice.save(), actor=BOB)
    erin = Document.load(alice.save(), actor=ERIN)
    edit_and_commit(erin, text, 0, "erin: ")
    FIRST_TRANSACTION_ENDINGS[ending](bob, text)
    if via_sync:
        sync_pair(bob, erin)
    else:
        bob.apply_changes(erin.get_changes())
    edit_and_commit(bob, text, len("erin: hello world"), "!")
    sync_pair(bob, erin)
    assert bob.text(text) == erin.text(text) == "erin: hello world!"


# ----- sync protocol -----


def test_two_peers_sync_to_identical_documents_then_fall_silent() -> None:
    alice, text = shared_doc()
    bob = Document(BOB)
    edit_and_commit(alice, text, 0, "alice says ")
    sa, sb = SyncState(), SyncState()
    assert sync_pair(alice, bob, sa, sb)
    assert bob.heads() == alice.heads() and bob.hydrate() == alice.hydrate()
    assert alice.generate_sync_message(sa) is None and bob.generate_sync_message(sb) is None


def test_sync_state_reports_shared_and_peer_heads() -> None:
    alice, _ = shared_doc()
    bob = Document(BOB)
    sa, sb = SyncState(), SyncState()
    assert (sa.shared_heads, sa.their_heads) == ([], None)
    sync_pair(alice, bob, sa, sb)
    for state in (sa, sb):
        assert state.shared_heads == alice.heads() and state.their_heads == alice.heads()


def test_persisted_sync_state_lets_a_reconnect_send_only_what_is_new() -> None:
    """encode() keeps the shared heads across restarts, so the next session skips the old history."""
    alice, text = shared_doc()
    bob = Document(BOB)
    sa, sb = SyncState(), SyncState()
    sync_pair(alice, bob, sa, sb)
    saved_a, saved_b = sa.encode(), sb.encode()

    new_hash = edit_and_commit(alice, text, 0, "news: ")
    sa, sb = SyncState.decode(saved_a), SyncState.decode(saved_b)
    assert sa.shared_heads == bob.heads() and sa.their_heads is None, "only shared heads persist"
    messages = sync_pair(alice, bob, sa, sb)
    assert bob.heads() == alice.heads() == [new_hash]
    chunks = [chunk for m in messages for chunk in decode_sync_message(m).changes]
    assert len(chunks) == 1 and chunk_heads(chunks[0]) == [new_hash], "never the old history"


def test_a_lost_message_stalls_sync_until_the_peers_reconnect() -> None:
    """After sending, a sync state waits for the reply; if the message was lost both sides go quiet.
    Reconnecting from the persisted state (decode(encode())) forgets the in-flight message and resumes."""
    alice, _ = shared_doc()
    bob = Document(BOB)
    bob.put(ROOT, "by", "bob")
    bob.commit()
    sa, sb = SyncState(), SyncState()
    sync_pair(alice, bob, sa, sb, drop={1})
    assert alice.heads() != bob.heads(), "quiet, yet apart"
    sa, sb = SyncState.decode(sa.encode()), SyncState.decode(sb.encode())
    sync_pair(alice, bob, sa, sb)
    assert alice.heads() == bob.heads() and alice.hydrate() == bob.hydrate()


def test_decoded_sync_message_shows_heads_needs_and_changes() -> None:
    alice, text = shared_doc()
    bob = Document.load(alice.save(), actor=BOB)
    hash_a = edit_and_commit(alice, text, 0, "A")
    hash_b = edit_and_commit(bob, text, 0, "B")
    sa, sb = SyncState(), SyncState()

    message = alice.generate_sync_message(sa)
    opening = decode_sync_message(message)
    assert opening.heads == alice.heads() and opening.need == [] and opening.have_count == 1
    assert opening.changes == [], "the opening only advertises"
    bob.receive_sync_message(sb, message)
    reply = decode_sync_message(bob.generate_sync_message(sb))
    assert reply.heads == [hash_b] and reply.need == [hash_a], "bob asks for the head he has not seen"
    assert [h for chunk in reply.changes for h in chunk_heads(chunk)] == [hash_b], "bob ships what alice lacks"


def test_sync_relays_edits_through_a_middle_peer() -> None:
    """alice and carol never meet; bob relays, each link with its own pair of sync states."""
    alice, text = shared_doc()
    bob, carol = Document(BOB), Document(CAROL)
    edit_and_commit(alice, text, 0, "from alice, ")
    sync_pair(alice, bob)
    carol.apply_changes(bob.get_changes()[:1])
    edit_and_commit(carol, text, 0, "from carol, ")
    sync_pair(bob, carol)
    sync_pair(alice, bob)
    assert alice.heads() == bob.heads() == carol.heads()
    assert change_hashes(alice) == change_hashes(carol)
    assert alice.text(text) == carol.text(text)
