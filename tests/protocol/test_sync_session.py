"""Two peers, h11-style: Replicators wired by an in-memory link, driven flight by flight."""

from __future__ import annotations

import pytest

import native
from harness import Network, edits, identity_of, make_space, text_doc_id
from protocol.errors import LocalProtocolError
from protocol.events import Connected, ConnectionLost, DataReceived, Disconnect, Send, SpaceAdded
from protocol.memory import MemoryChangeStore
from protocol.wire import Bye, FrameDecoder, Hello, Ping, Status, encode_frame

MAIN = text_doc_id("main.py")
README = text_doc_id("README")
# A Hello that lists nothing: versions, space, key, summary, framing.
QUIET_HELLO_BYTES_MAX = 120


def pair(seed: int = 0) -> Network:
    network = Network(seed)
    network.add_peer("alice")
    network.add_peer("bob")
    return network


def synced_then_parted() -> Network:
    """Alice wrote main.py, bob the README; they synced, then alice went away."""
    network = pair()
    network.commit("alice", MAIN, edits(["a"]))
    network.commit("bob", README, edits(["b"]))
    network.connect("alice", "bob")
    network.run()
    network.partition({"alice"})
    return network


def flights_until_converged(network: Network) -> int:
    for flights in range(1, 50):
        network.flight()
        if network.converged():
            return flights
    raise AssertionError("never converged")


def automerge_sync_bytes(left: native.Document, right: native.Document) -> tuple[int, int]:
    """Bytes each way of Automerge's own sync protocol between copies of two documents."""
    left, right = left.fork(), right.fork()
    left_state, right_state = native.SyncState(), native.SyncState()
    to_right = to_left = 0
    while True:
        message = left.generate_sync_message(left_state)
        if message is not None:
            right.receive_sync_message(right_state, message)
            to_right += len(message)
        reply = right.generate_sync_message(right_state)
        if reply is not None:
            left.receive_sync_message(left_state, reply)
            to_left += len(reply)
        if message is None and reply is None:
            return to_right, to_left


def decode_sent(actions) -> list:
    decoder = FrameDecoder()
    for action in actions:
        if isinstance(action, Send):
            decoder.receive_data(action.data)
    messages = []
    while (message := decoder.next_message()) is not None:
        messages.append(message)
    return messages


def test_a_live_commit_reaches_the_peer_in_one_flight():
    network = pair()
    link = network.connect("alice", "bob")
    network.run()
    commit = network.commit("alice", MAIN, edits(["print('hi')"]))
    assert network.run() == 1
    assert network.converged()
    [applied] = network.peers["bob"].applied
    assert applied.conn == link.conn("bob") and applied.hashes == (commit.tip.change_hash,)
    network.assert_all_covered()


def test_peers_that_worked_offline_converge_in_three_flights_with_fewer_bytes_than_automerge():
    network = pair()
    network.commit("alice", MAIN, edits(["base\n"]))
    network.connect("alice", "bob")
    network.run()
    network.partition({"alice"})
    for i in range(0, 2000, 50):
        network.commit("alice", MAIN, edits([f"a{j} " for j in range(i, i + 50)]))
        network.commit("bob", MAIN, edits([f"b{j} " for j in range(i, i + 50)]))
    alice_doc = network.peers["alice"].store.document(network.space, MAIN).fork()
    bob_doc = network.peers["bob"].store.document(network.space, MAIN).fork()
    link = network.connect("alice", "bob")

    assert flights_until_converged(network) == 3  # Hello; Hello + changes; changes
    network.run()
    network.assert_all_covered()
    automerge_to_bob, automerge_to_alice = automerge_sync_bytes(alice_doc, bob_doc)
    assert link.bytes_to["bob"] < automerge_to_bob
    assert link.bytes_to["alice"] < automerge_to_alice


def test_a_reconnect_with_nothing_new_is_one_small_hello_each_way():
    network = synced_then_parted()
    network.heal()
    network.run()
    network.commit("alice", MAIN, edits(["live edit"]))
    network.run()
    network.advance(2 * network.config.anti_entropy_interval_ms)  # statuses tell each side the other's heads
    network.partition({"alice"})
    link = network.connect("alice", "bob")
    assert network.run() == 2
    assert link.bytes_to["alice"] <= QUIET_HELLO_BYTES_MAX and link.bytes_to["bob"] <= QUIET_HELLO_BYTES_MAX


def test_a_hello_lists_only_the_docs_that_changed_since_the_peer_was_told():
    network = pair()
    docs = [text_doc_id(f"file{i}") for i in range(5)]
    for doc in docs:
        network.commit("alice", doc, edits(["x"]))
    network.connect("alice", "bob")
    network.run()
    network.partition({"alice"})
    network.commit("bob", docs[2], edits(["y"]))
    bob = network.peers["bob"]
    actions = bob.replicator.handle(Connected("probe", identity_of("alice").public_key, network.space), network.now_ms)
    [hello] = decode_sent(actions)
    assert [entry.doc for entry in hello.status.docs] == [docs[2]]


def test_a_new_doc_travels_to_a_peer_that_never_heard_of_it():
    network = pair()
    network.connect("alice", "bob")
    network.run()
    network.partition({"alice"})
    network.commit("bob", README, edits(["fresh file"]))
    network.heal()
    network.run()
    assert network.heads("alice") == network.heads("bob") and README in network.heads("alice")


def test_a_peer_that_lost_its_sync_state_recovers_with_one_more_round_trip():
    network = synced_then_parted()
    alice = network.peers["alice"]
    forgetful = MemoryChangeStore()  # alice's changes survive a crash, her sync records do not
    for doc in alice.store.doc_ids(network.space):
        changes = [native.decode_change(raw) for raw in alice.store.changes_since(network.space, doc, [])]
        forgetful.apply(network.space, doc, changes, alice.store.tips(network.space, doc))
    network.add_peer("alice", store=forgetful)
    network.commit("bob", MAIN, edits(["while alice was down"]))
    network.connect("alice", "bob")
    network.run()
    assert network.converged()
    # Bob listed only what he changed; alice's empty record of him disagreed with his summary.
    assert network.peers["alice"].replicator.stats["status_mismatches"] == 1


def test_a_reply_split_over_several_batches_is_applied_once_the_tip_arrives(monkeypatch):
    monkeypatch.setattr("protocol.batch.CHANGES_PER_SENT_BATCH", 10)
    monkeypatch.setattr("protocol.batch.DOCUMENT_MIN_CHANGES", 10**9)
    network = pair()
    network.commit("alice", MAIN, edits([f"{i} " for i in range(35)]))
    network.connect("alice", "bob")
    network.run()
    assert network.converged()
    bob = network.peers["bob"]
    assert len(bob.applied) == 1 and len(bob.applied[0].hashes) == 35  # all at once, with the tip


def test_anti_entropy_repairs_a_lost_push():
    network = pair()
    network.connect("alice", "bob")
    network.run()
    network.faults.loss = 1.0
    network.commit("alice", MAIN, edits(["lost"]))
    network.run()
    assert not network.converged()
    network.faults.loss = 0.0
    network.advance(2 * network.config.anti_entropy_interval_ms)
    assert network.converged()


def test_silence_is_met_with_pings_then_a_timeout():
    network = pair()
    network.connect("alice", "bob")
    network.run()
    network.advance(network.config.heartbeat_interval_ms + 1)
    assert network.links and all(not peer.disconnects for peer in network.peers.values())
    network.faults.loss = 1.0  # from now on nothing gets through
    network.advance(network.config.peer_timeout_ms + network.config.heartbeat_interval_ms)
    assert not network.links
    assert any("timed out" in d.reason for peer in network.peers.values() for d in peer.disconnects)
    assert all(not peer.penalties for peer in network.peers.values())


def test_a_peer_without_a_common_version_is_told_why_and_not_penalized():
    network = pair()
    bob = network.peers["bob"]
    bob.replicator.handle(Connected("c", identity_of("alice").public_key, None), network.now_ms)
    hello = Hello((99,), network.space, identity_of("alice").public_key, Status(bytes(32), (), False))
    actions = bob.replicator.handle(DataReceived("c", encode_frame(hello)), network.now_ms)
    [bye] = decode_sent(actions)
    assert isinstance(bye, Bye) and "version" in bye.reason
    assert any(isinstance(a, Disconnect) for a in actions) and bob.replicator.stats["offense_unexpected"] == 0


def test_a_hello_for_a_space_we_do_not_serve_is_refused_politely():
    network = pair()
    bob = network.peers["bob"]
    bob.replicator.handle(Connected("c", identity_of("alice").public_key, None), network.now_ms)
    hello = Hello((1,), make_space("carol"), identity_of("alice").public_key, Status(bytes(32), (), False))
    actions = bob.replicator.handle(DataReceived("c", encode_frame(hello)), network.now_ms)
    assert isinstance(decode_sent(actions)[0], Bye)
    assert bob.replicator.connections(network.space) == []


def test_local_misuse_is_refused_and_changes_nothing():
    network = pair()
    alice = network.peers["alice"]
    elsewhere = make_space("carol")
    commit = MemoryChangeStore().commit(alice.identity, elsewhere, MAIN, edits(["x"]), now_ms=0)
    with pytest.raises(LocalProtocolError):
        alice.replicator.handle(commit, network.now_ms)
    with pytest.raises(LocalProtocolError):
        alice.replicator.handle(Connected("c", identity_of("bob").public_key, elsewhere), network.now_ms)
    alice.replicator.handle(SpaceAdded(elsewhere), network.now_ms)
    assert alice.replicator.handle(commit, network.now_ms) == []  # served now; nobody to tell


def test_a_connection_lost_mid_session_is_forgotten():
    network = pair()
    link = network.connect("alice", "bob")
    network.run()
    alice = network.peers["alice"]
    assert alice.replicator.handle(ConnectionLost(link.conn("alice")), network.now_ms) == []
    assert alice.replicator.connections(network.space) == []
    assert alice.replicator.handle(DataReceived(link.conn("alice"), encode_frame(Ping())), network.now_ms) == []


def test_a_status_request_round_does_not_send_a_reply_twice():
    network = pair()
    network.commit("alice", MAIN, edits(["base\n"]))
    network.commit("alice", README, edits(["readme"]))
    network.connect("bob", "alice")
    network.flight()
    network.flight()  # bob holds alice's work; his acknowledgements are lost with the link
    network.partition({"alice"})
    for i in range(0, 400, 50):
        network.commit("alice", MAIN, edits([f"a{j} " for j in range(i, i + 50)]))
        network.commit("bob", MAIN, edits([f"b{j} " for j in range(i, i + 50)]))
    alice, bob = network.peers["alice"].replicator, network.peers["bob"].replicator
    sent_before = alice.stats["reply_changes_sent"], bob.stats["reply_changes_sent"]
    network.connect("bob", "alice")
    network.run()
    assert network.converged()
    assert alice.stats["status_mismatches"] == 1  # her record of bob was stale: one more round trip
    sent = alice.stats["reply_changes_sent"] - sent_before[0], bob.stats["reply_changes_sent"] - sent_before[1]
    assert sent == (401, 400)  # once each; alice, not knowing what bob held, sent her base too
