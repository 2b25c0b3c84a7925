"""Hostile peers: forgeries, replays, garbage and floods are rejected, counted, and contained.

Mallory is driven by hand: she opens a connection to alice, says a proper Hello, then sends
crafted frames. Every scenario checks the same things: alice raises nothing, penalizes
mallory, applies nothing of hers, and still syncs with bob afterwards.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
from harness import Network, edits, identity_of, make_space, text_doc_id
from protocol import cbor
from protocol.events import Connected, ConnectionLost, DataReceived, Disconnect, PeerPenalized, Send, TimerFired
from protocol.limits import DISCONNECT_SCORE, MAX_DOCS_PER_STATUS, MAX_PRE_HELLO_FRAME_BYTES, SyncConfig
from protocol.memory import MemoryChangeStore
from protocol.reconcile import space_summary
from protocol.tips import SignedTip, TipSignature
from protocol.wire import Changes, DocHeads, Encoding, Heads, Hello, Ping, Status, encode_frame, varint
from test_chunk_scan import CHANGE, body_of, read_uleb, uleb, with_body

MAIN = text_doc_id("main.py")
mallory = identity_of("mallory")


class Intruder:
    """Mallory's end of a connection to one Replicator."""

    def __init__(self, network: Network, victim: str, conn: str = "mallory-1") -> None:
        self.network, self.victim, self.conn = network, network.peers[victim], conn
        self.actions = self.victim.replicator.handle(Connected(conn, mallory.public_key, None), network.now_ms)

    def hello(self, space: bytes | None = None) -> list:
        status = Status(space_summary({}), (), complete=False)
        return self.send(encode_frame(Hello((1,), space or self.network.space, mallory.public_key, status)))

    def send(self, data: bytes) -> list:
        actions = self.victim.replicator.handle(DataReceived(self.conn, data), self.network.now_ms)
        self.actions += actions
        return actions

    def keep_alive_for(self, ms: int) -> None:
        """Let ``ms`` pass, pinging often enough not to time out, and fire alice's timer for us."""
        step = self.network.config.heartbeat_interval_ms
        for _ in range(ms // step + 1):
            self.network.now_ms += step
            self.send(encode_frame(Ping()))
            self.actions += self.victim.replicator.handle(TimerFired(self.conn), self.network.now_ms)

    @property
    def disconnected(self) -> bool:
        return any(isinstance(a, Disconnect) for a in self.actions)

    def penalties(self) -> list[PeerPenalized]:
        return [a for a in self.actions if isinstance(a, PeerPenalized)]


def alice_and_bob(config: SyncConfig = SyncConfig()) -> Network:
    network = Network(config=config)
    network.add_peer("alice")
    network.add_peer("bob")
    network.commit("alice", MAIN, edits(["def main(): pass\n"]))
    network.connect("alice", "bob")
    network.run()
    return network


def mallory_joins(config: SyncConfig = SyncConfig()) -> tuple[Network, dict, Intruder]:
    """Alice and bob in sync, alice's heads as they were, and mallory past her Hello to alice."""
    network = alice_and_bob(config)
    intruder = Intruder(network, "alice")
    intruder.hello()
    return network, network.heads("alice"), intruder


def assert_contained(network: Network, intruder: Intruder, heads_before: dict, offense: str) -> None:
    """Mallory was penalized for ``offense`` and cut off; alice is unchanged and still syncs."""
    assert offense in [p.offense for p in intruder.penalties()]
    assert intruder.disconnected
    assert network.heads("alice") == heads_before
    network.commit("bob", MAIN, edits(["# still working\n"]))
    network.run()
    assert network.converged()
    network.assert_all_covered()


def malloryish_batch(network: Network, actor: bytes, text: str = "evil") -> tuple[list[bytes], list[native.DecodedChange]]:
    """Changes by ``actor`` on top of alice's doc, as mallory would make them."""
    document = network.peers["alice"].store.document(network.space, MAIN).fork(actor)
    document.splice_text(document.get(native.ROOT, "text").id, 0, 0, text)
    document.commit()
    raw = document.get_changes(network.peers["alice"].store.heads(network.space, MAIN))
    return raw, [native.decode_change(c) for c in raw]


def push(raw: list[bytes], tips: tuple[TipSignature, ...], doc: bytes = MAIN) -> bytes:
    return encode_frame(Changes(doc, Encoding.CHANGES, cbor.dumps(raw), (), tips, push=True))


def reply(raw: list[bytes], tips: tuple[TipSignature, ...] = (), doc: bytes = MAIN) -> bytes:
    """A batch as a reply carries it: a push always carries its origin's tip, a reply need not
    (a split reply carries each author's tip in the last batch that holds the author's changes)."""
    return encode_frame(Changes(doc, Encoding.CHANGES, cbor.dumps(raw), (), tips, push=False))


def test_a_forged_signature_is_rejected_and_the_forger_banned():
    network, before, intruder = mallory_joins()
    raw, _ = malloryish_batch(network, mallory.public_key)
    intruder.send(push(raw, (TipSignature(0, bytes(64)),)))
    assert_contained(network, intruder, before, "forgery")
    again = Intruder(network, "alice", conn="mallory-2")
    assert again.disconnected and network.peers["alice"].replicator.stats["refused_banned"] == 1


def test_a_change_claiming_alice_as_author_but_signed_by_mallory_is_rejected():
    network, before, intruder = mallory_joins()
    raw, changes = malloryish_batch(network, identity_of("alice").public_key, "alice never wrote this")
    signed_by_mallory = SignedTip.sign(mallory, network.space, MAIN, changes[-1].hash)
    intruder.send(push(raw, (TipSignature(0, signed_by_mallory.signature),)))
    assert_contained(network, intruder, before, "forgery")


def test_a_batch_replayed_from_another_space_is_rejected():
    other_space = make_space("bob")
    network = alice_and_bob()
    before = network.heads("alice")
    source = MemoryChangeStore()  # mallory's genuine, signed batch in another space
    genuine = source.commit(mallory, other_space, MAIN, edits(["from elsewhere"]), now_ms=0)
    intruder = Intruder(network, "alice")
    intruder.hello()
    intruder.send(push(list(genuine.changes), (TipSignature(0, genuine.tip.signature),)))
    assert_contained(network, intruder, before, "forgery")


def test_a_tip_naming_a_change_that_was_not_sent_is_rejected():
    network, before, intruder = mallory_joins()
    raw, _ = malloryish_batch(network, mallory.public_key)
    intruder.send(push(raw, (TipSignature(b"\x42" * 32, bytes(64)),)))
    assert_contained(network, intruder, before, "forgery")


def test_a_change_whose_actor_is_not_a_key_is_rejected():
    network, before, intruder = mallory_joins()
    raw, _ = malloryish_batch(network, b"\x05" * 16)
    intruder.send(push(raw, (TipSignature(0, bytes(64)),)))
    assert_contained(network, intruder, before, "invalid-actor")


def test_a_message_before_hello_is_unexpected():
    network = alice_and_bob()
    before = network.heads("alice")
    intruder = Intruder(network, "alice")
    intruder.send(encode_frame(Heads(MAIN, (), want=True)))
    assert_contained(network, intruder, before, "unexpected")


def test_a_hello_in_someone_elses_name_is_unexpected():
    network = alice_and_bob()
    before = network.heads("alice")
    intruder = Intruder(network, "alice")
    status = Status(space_summary({}), (), complete=False)
    intruder.send(encode_frame(Hello((1,), network.space, identity_of("bob").public_key, status)))
    assert_contained(network, intruder, before, "unexpected")


def test_a_complete_status_that_contradicts_its_summary_is_unexpected():
    network, before, intruder = mallory_joins()
    intruder.send(encode_frame(Status(b"\x01" * 32, (), complete=True)))
    assert_contained(network, intruder, before, "unexpected")


@pytest.mark.parametrize(
    "garbage",
    [
        varint(10**9),  # announces a frame far over the limit
        b"\x80\x80\x80\x80\x80\x80",  # a length that never ends
        varint(3) + b"\xff\xff\xff",  # not CBOR
        varint(2) + b"\x82\x07",  # truncated array
        push([b"not an automerge change"], (TipSignature(0, bytes(64)),)),
        encode_frame(Changes(MAIN, Encoding.DEFLATE, b"not deflate", (), (), push=False)),
        encode_frame(Changes(MAIN, Encoding.DOCUMENT, b"not a document", (), (), push=False)),
        encode_frame(Changes(MAIN, Encoding.DEFLATE, zlib.compress(b"\x00" * 100), (), (), push=False)),
    ],
    ids=["oversized", "endless-length", "not-cbor", "truncated", "bad-change", "bad-deflate", "bad-document", "deflated-junk"],
)
def test_garbage_frames_are_malformed(garbage):
    network, before, intruder = mallory_joins()
    intruder.send(garbage)
    assert_contained(network, intruder, before, "malformed")


def test_a_flood_of_frames_is_cut_off():
    network, before, intruder = mallory_joins(SyncConfig(frames_per_second_max=10, frames_burst_max=20))
    intruder.send(encode_frame(Ping()) * 50)
    assert_contained(network, intruder, before, "flood")


def test_more_unverifiable_changes_than_allowed_is_a_flood():
    network, before, intruder = mallory_joins(SyncConfig(pending_changes_max=3))
    document = network.peers["alice"].store.document(network.space, MAIN).fork(mallory.public_key)
    for i in range(5):
        document.put(native.ROOT, f"k{i}", i)
        document.commit()
    intruder.send(reply(document.get_changes(network.peers["alice"].store.heads(network.space, MAIN))))
    assert_contained(network, intruder, before, "flood")


def test_changes_whose_tip_never_comes_expire_with_a_small_penalty():
    network, before, intruder = mallory_joins()
    raw, _ = malloryish_batch(network, mallory.public_key)
    intruder.send(reply(raw))
    assert network.heads("alice") == before  # waiting, not applied
    intruder.keep_alive_for(network.config.pending_ttl_ms)
    assert network.peers["alice"].replicator.stats["pending_expired"] == len(raw)
    [penalty] = intruder.penalties()
    assert penalty.offense == "uncovered-expired" and penalty.score < DISCONNECT_SCORE
    assert not intruder.disconnected
    assert network.heads("alice") == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(max_size=64), min_size=1, max_size=6))
def test_fuzzed_bytes_after_hello_never_escape_as_exceptions_nor_change_the_store(chunks):
    network, before, intruder = mallory_joins()
    for chunk in chunks:
        for action in intruder.send(chunk):
            assert not isinstance(action, Send) or action.conn == intruder.conn
    assert network.heads("alice") == before
    network.commit("bob", MAIN, edits(["still fine"]))
    network.run()
    assert network.converged()


def test_nothing_a_misbehaving_peer_sent_is_forwarded():
    network, _, intruder = mallory_joins()
    bob_received = network.peers["bob"].replicator.stats["messages_received"]
    raw, changes = malloryish_batch(network, mallory.public_key)
    tip = SignedTip.sign(mallory, network.space, MAIN, changes[-1].hash)
    forged = replace(tip, signature=tip.signature[:-1] + bytes([tip.signature[-1] ^ 0xFF]))
    intruder.send(push(raw, (TipSignature(0, forged.signature),)))
    network.run()
    assert network.peers["bob"].replicator.stats["messages_received"] == bob_received


# ----- limits that end a session, budgets, deadlines -----


def test_a_well_formed_status_over_the_limit_ends_the_session_without_a_ban():
    """A status listing more docs than one message may is a protocol event, not a 100-point ban:
    an honest peer of a space that large (or of another version) is not locked out."""
    network, before, intruder = mallory_joins()
    entries = tuple(DocHeads(i.to_bytes(16, "big"), (bytes(32),)) for i in range(MAX_DOCS_PER_STATUS + 1))
    intruder.send(encode_frame(Status(space_summary({e.doc: e.heads for e in entries}), entries, complete=False)))
    assert [p.offense for p in intruder.penalties()] == ["over-limit"]
    assert intruder.penalties()[0].score < DISCONNECT_SCORE
    assert intruder.disconnected
    again = Intruder(network, "alice", conn="mallory-2")
    again.hello()
    assert not again.disconnected  # not banned: she may come back
    assert network.heads("alice") == before


def test_a_stranger_that_never_says_hello_is_dropped_at_the_deadline():
    network = alice_and_bob(SyncConfig(hello_timeout_ms=2_000))
    intruder = Intruder(network, "alice")
    network.now_ms += 1_999
    intruder.actions += intruder.victim.replicator.handle(TimerFired(intruder.conn), network.now_ms)
    assert not intruder.disconnected
    network.now_ms += 1
    intruder.actions += intruder.victim.replicator.handle(TimerFired(intruder.conn), network.now_ms)
    assert intruder.disconnected
    assert intruder.victim.replicator.stats["hello_timeouts"] == 1


def test_before_its_hello_a_stranger_may_not_send_a_large_frame():
    """A 4 MiB frame is fine from a peer past its Hello; before it, a stranger announcing more
    than MAX_PRE_HELLO_FRAME_BYTES is cut off at the length prefix, nothing buffered."""
    network = alice_and_bob()
    intruder = Intruder(network, "alice")
    intruder.send(varint(MAX_PRE_HELLO_FRAME_BYTES + 1))
    assert [p.offense for p in intruder.penalties()] == ["malformed"]
    assert intruder.disconnected


def test_decoding_beyond_the_budget_is_deferred_and_asked_for_again():
    """A reply holding more ops than the sender's decoding budget pays is dropped unread and
    asked for once the budget has refilled; then it applies. (A full bucket pays one batch
    larger than itself, so the second doc's reply is the one that waits.)"""
    config = SyncConfig(decoded_ops_start=10, decoded_ops_burst=10, decoded_ops_per_s=100)
    network = Network(config=config)
    network.add_peer("alice")
    network.add_peer("bob")
    for name in ("one.py", "two.py"):
        network.commit("alice", text_doc_id(name), edits([f"line {i}\n" for i in range(30)]))
    network.connect("alice", "bob")
    network.run()
    bob = network.peers["bob"].replicator
    assert bob.stats["budget_decoded_ops_exhausted"] >= 1
    assert not network.converged()
    network.advance(60_000)
    assert network.converged()


def test_a_fresh_peer_gets_a_space_of_many_docs_paced_without_a_flood():
    """Thousands of single-doc replies at once would exceed the receiver's frame budget: the
    sender paces them within half of it, and no one is penalized."""
    config = SyncConfig(frames_per_second_max=100, frames_burst_max=200)
    network = Network(config=config)
    network.add_peer("alice")
    network.add_peer("bob")
    for i in range(600):
        network.commit("alice", text_doc_id(f"file{i}.txt"), edits([f"{i}\n"]))
    network.connect("alice", "bob")
    network.run()
    network.advance(20_000)
    assert network.converged()
    assert network.peers["alice"].replicator.stats["replies_paced"] > 0
    assert not [p for peer in network.peers.values() for p in peer.penalties]


def test_an_author_chain_with_a_gap_waits_for_the_missing_seq_then_applies():
    """A change whose own deps are all stored but whose author's previous change is not waits:
    the previous seq is an implicit dep, so every peer applies an author's changes in order.
    (Automerge never makes such a change; Mallory rewrites the deps of her second change.)"""
    network, before, intruder = mallory_joins()
    base = network.peers["alice"].store.document(network.space, MAIN)
    mine = base.fork(mallory.public_key)
    mine.put(native.ROOT, "one", 1)
    mine.commit()
    mine.put(native.ROOT, "two", 2)
    mine.commit()
    one, two = mine.get_changes(base.heads())
    body = body_of(two)
    deps, pos = read_uleb(body, 0)
    assert deps == 1
    detached = with_body(CHANGE, uleb(len(base.heads())) + b"".join(base.heads()) + body[pos + 32 :])
    change = native.decode_change(detached)
    assert change.seq == 2 and change.deps == base.heads()
    tip = SignedTip.sign(mallory, network.space, MAIN, change.hash)
    intruder.send(reply([detached], (TipSignature(0, tip.signature),)))
    assert network.heads("alice") == before  # waits: its deps are stored, mallory's seq 1 is not
    tip_one = SignedTip.sign(mallory, network.space, MAIN, native.decode_change(one).hash)
    intruder.send(reply([one], (TipSignature(0, tip_one.signature),)))
    assert network.peers["alice"].store.author_seq(network.space, MAIN, mallory.public_key) == 2
    assert network.peers["alice"].store.document(network.space, MAIN).get(native.ROOT, "two") == 2
    assert not intruder.penalties()


def test_a_strangers_sync_states_are_never_persisted():
    """A key that shares no history with us (it sent nothing we stored, reported nothing we
    hold) leaves no rows, however many keys come and go; a peer in sync does."""
    network, _, intruder = mallory_joins()
    intruder.send(encode_frame(Ping()))
    intruder.victim.replicator.handle(ConnectionLost(intruder.conn), network.now_ms)
    network.advance(network.config.heartbeat_interval_ms)  # alice's timer for bob writes his states behind
    store = network.peers["alice"].store
    assert store.load_sync_state(mallory.public_key, network.space, MAIN) is None
    assert store.load_sync_state(identity_of("bob").public_key, network.space, MAIN) is not None


def test_a_banned_keys_sync_states_are_not_persisted_even_after_it_sent_valid_changes():
    """Mallory's first change is valid (she shares history with us), her second forks her chain:
    banned, she leaves no sync-state rows behind."""
    network, _, intruder = mallory_joins()
    base = network.peers["alice"].store.document(network.space, MAIN)
    pair = []
    for value in ("left", "right"):
        fork = base.fork(mallory.public_key)
        fork.put(native.ROOT, "mallory", value)
        fork.commit()
        [raw] = fork.get_changes(base.heads())
        pair.append(raw)
    for raw in pair:
        tip = SignedTip.sign(mallory, network.space, MAIN, native.decode_change(raw).hash)
        intruder.send(push([raw], (TipSignature(0, tip.signature),)))
    assert [p.offense for p in intruder.penalties()] == ["equivocation"] and intruder.disconnected
    assert network.peers["alice"].store.load_sync_state(mallory.public_key, network.space, MAIN) is None
