"""Meshes of Replicators: forwarding, Plumtree pruning, and convergence under any weather."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import Network, edits, text_doc_id

DOCS = [text_doc_id(name) for name in ("index", "main.py", "README")]
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]


def mesh(names: list[str], seed: int = 0) -> Network:
    network = Network(seed)
    for name in names:
        network.add_peer(name)
    return network


def test_a_push_travels_down_a_line_forwarded_once_by_each_peer():
    network = mesh(["alice", "bob", "carol"])
    network.connect("alice", "bob")
    network.connect("bob", "carol")
    network.run()
    sent_before = {name: peer.replicator.stats["messages_sent"] for name, peer in network.peers.items()}
    network.commit("alice", DOCS[1], edits(["hello"]))
    assert network.run() == 2  # alice -> bob -> carol
    assert network.converged()
    sent = {name: peer.replicator.stats["messages_sent"] - sent_before[name] for name, peer in network.peers.items()}
    assert sent == {"alice": 1, "bob": 1, "carol": 0}  # one push, one forward, nothing back
    network.assert_all_covered()


def test_duplicate_pushes_prune_the_mesh_to_fewer_copies_per_batch():
    network = mesh(NAMES[:4])
    network.connect_all()
    network.run()
    network.commit("alice", DOCS[0], edits(["first"]))
    network.run()
    duplicates_first = sum(p.replicator.stats["duplicate_batches"] for p in network.peers.values())
    assert duplicates_first > 0  # a full mesh floods: everyone hears it more than once
    before = sum(p.replicator.stats["duplicate_batches"] for p in network.peers.values())
    network.commit("alice", DOCS[0], edits(["second"]))
    network.run()
    network.advance(network.config.graft_delay_ms * 2)
    assert network.converged()
    duplicates_second = sum(p.replicator.stats["duplicate_batches"] for p in network.peers.values()) - before
    assert duplicates_second < duplicates_first


def test_a_lazy_peer_asks_for_an_announced_batch_that_did_not_reach_it():
    network = mesh(["alice", "bob", "carol"])
    network.connect_all()
    network.run()
    network.commit("alice", DOCS[0], edits(["x"]))
    network.run()  # carol hears it twice and prunes one of her pushers
    for name in ("bob", "carol"):
        network.partition({name})  # the eager paths go down...
        network.heal()
        network.run()
    network.commit("alice", DOCS[0], edits(["y"]))
    network.run()
    network.advance(network.config.graft_delay_ms * 2)
    assert network.converged()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, 6), st.integers(0, len(DOCS) - 1), st.integers(1, 4)),
        st.tuples(st.just("flight")),
        st.tuples(st.just("weather"), st.floats(0, 0.5), st.floats(0, 0.5), st.booleans()),
        st.tuples(st.just("partition"), st.integers(1, 2**7 - 2)),
        st.tuples(st.just("heal")),
        st.tuples(st.just("restart"), st.integers(0, 6)),
        st.tuples(st.just("wait"), st.integers(1, 90_000)),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(peers=st.integers(2, 7), seed=st.integers(0, 2**16), script=ops)
def test_any_weather_and_crashes_then_healing_converge_with_every_change_covered(peers, seed, script):
    network = mesh(NAMES[:peers], seed)
    network.connect_all()
    counter = 0
    for op in script:
        match op:
            case ("edit", who, doc, count):
                name = NAMES[who % peers]
                counter += 1
                network.commit(name, DOCS[doc], edits([f"{name}{counter}.{i} " for i in range(count)]))
            case ("flight",):
                network.flight()
            case ("weather", loss, duplication, reordering):
                network.faults.loss, network.faults.duplication, network.faults.reordering = loss, duplication, reordering
            case ("partition", mask):
                network.partition({NAMES[i] for i in range(peers) if mask >> i & 1})
            case ("heal",):
                network.heal()
            case ("restart", who):
                network.restart(NAMES[who % peers])
            case ("wait", ms):
                network.advance(ms)
    network.heal()
    network.settle()
    assert network.converged(), {name: network.heads(name) for name in network.peers}
    network.assert_all_covered()
    assert not any(peer.penalties for peer in network.peers.values())
