"""Meshes of Replicators: forwarding, Plumtree pruning, and convergence under any weather."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import Network, edits, text_doc_id

DOCS = [text_doc_id(name) for name in ("index", "main.py", "README")]
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]


def warm_up(network: Network, writer: str, doc: bytes = DOCS[0]) -> None:
    """Enough batches of ``writer`` for every link that brings them only as duplicates to be
    pruned for it (a prune takes ``prune_duplicates`` duplicates in a row)."""
    for i in range(network.config.prune_duplicates):
        network.commit(writer, doc, edits([f"{writer} warms up {i} "]))
        network.run()


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
    warm_up(network, "alice")
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


def sparse_mesh(names: list[str]) -> Network:
    """A ring with chords: several paths between most pairs, so pushes meet as duplicates."""
    network = mesh(names)
    count = len(names)
    for i in range(count):
        network.connect(names[i], names[(i + 1) % count])
    for i in range(0, count, 2):
        network.connect(names[i], names[(i + 3) % count])
    network.run()
    return network


def total(network: Network, stat: str) -> int:
    return sum(peer.replicator.stats[stat] for peer in network.peers.values())


def test_concurrent_writers_keep_their_eager_paths_once_each_origin_has_pruned():
    network = sparse_mesh(NAMES)
    writers = NAMES[:4]
    for writer in writers:  # each origin's first batches flood and prune its own tree
        warm_up(network, writer, DOCS[1])
    assert network.converged() and total(network, "prunes_sent") > 0
    prunes, wants = total(network, "prunes_sent"), total(network, "wants_sent")
    for round_ in range(5):
        for writer in writers:  # every writer's batch is in flight at the same time
            network.commit(writer, DOCS[1], edits([f"{writer}{round_} "]))
        network.run()
        assert network.converged()  # by push alone: no announcement had to be followed up
    assert total(network, "wants_sent") == wants  # nothing went the lazy way
    assert total(network, "prunes_sent") == prunes  # the trees stood still
    network.assert_all_covered()


def test_a_prune_stops_only_the_duplicated_origins_pushes_on_that_link():
    network = mesh(["alice", "bob", "carol"])
    network.connect_all()
    network.run()
    network.commit("alice", DOCS[0], edits(["from alice"]))
    network.run()  # carol hears alice's batch from alice and again from bob: she prunes bob, for alice
    pushes_before = network.peers["bob"].replicator.stats["messages_sent"]
    network.commit("bob", DOCS[0], edits(["from bob"]))
    network.flight()
    assert network.converged()  # bob's own batch still reached carol by push, in one flight
    assert network.peers["bob"].replicator.stats["messages_sent"] - pushes_before == 2


def test_a_frame_the_network_repeats_is_not_taken_for_a_second_path():
    network = mesh(["alice", "bob"])
    network.connect("alice", "bob")
    network.run()
    network.faults.duplication = 1.0
    network.commit("alice", DOCS[0], edits(["twice on one link"]))
    network.run()
    assert network.peers["bob"].replicator.stats["duplicate_batches"] == 1
    assert total(network, "prunes_sent") == 0


def test_a_pushed_batch_whose_deps_are_still_on_their_way_is_not_asked_for_at_once():
    network = mesh(["alice", "bob", "carol"])
    network.connect("alice", "bob")
    network.connect("bob", "carol")
    direct = network.connect("alice", "carol")
    network.run()
    network.commit("alice", DOCS[0], edits(["warm-up"]))
    network.run()  # carol had it from alice first: she prunes bob, for alice's batches
    network.commit("alice", DOCS[0], edits(["a"]))
    slow = direct.queues["carol"][:]  # alice's push to carol is slow
    direct.queues["carol"].clear()
    network.flight()  # bob has alice's batch and announces it to carol...
    network.commit("bob", DOCS[0], edits(["b"]))  # ... and builds on it
    network.flight()  # carol gets bob's batch before its dep
    direct.queues["carol"][:0] = slow
    network.run()
    network.advance(network.config.graft_delay_ms * 2)
    assert network.converged()
    assert total(network, "wants_sent") == 0


def test_a_burst_of_batches_costs_a_lazy_peer_one_announcement_per_interval():
    network = mesh(["alice", "bob", "carol"])
    network.connect_all()
    network.run()
    warm_up(network, "alice")  # bob and carol hear alice's batches from alice: each prunes the other for them
    announcers = [network.peers[name].replicator for name in ("bob", "carol")]
    sent_before = sum(r.stats["messages_sent"] for r in announcers)  # they send each other Heads only
    for i in range(5):
        network.commit("alice", DOCS[0], edits([f"burst {i} "]))
        network.run()
    assert network.converged()
    assert sum(r.stats["messages_sent"] for r in announcers) - sent_before == 2  # the first, at once
    network.advance(network.config.announce_interval_ms)
    # The other four together, in one announcement: whoever is due first tells the other, who
    # then knows there is nothing to tell.
    assert sum(r.stats["messages_sent"] for r in announcers) - sent_before == 3


def test_a_peer_that_missed_a_batch_asks_one_announcer_at_a_time():
    network = mesh(["alice", "bob", "carol", "dave"])
    for dialer, listener in [("alice", "bob"), ("alice", "carol"), ("alice", "dave"), ("bob", "dave"), ("carol", "dave")]:
        network.connect(dialer, listener)
    network.run()
    warm_up(network, "alice")  # dave hears alice's batches from alice first: he prunes bob and carol for them
    network.commit("alice", DOCS[0], edits(["lost"]))
    [direct] = [link for link in network.links.values() if {link.dialer, link.listener} == {"alice", "dave"}]
    direct.queues["dave"].clear()  # alice's push to dave is lost; bob and carol announce it to him
    network.run()
    network.advance(network.config.graft_delay_ms)
    assert network.converged()
    assert network.peers["dave"].replicator.stats["wants_sent"] == 1
    network.advance(network.config.want_timeout_ms)
    assert network.peers["dave"].replicator.stats["wants_sent"] == 1


def test_a_grafted_link_is_not_pruned_again_for_a_while():
    network = mesh(["alice", "bob", "dave"])
    network.connect("alice", "bob")
    direct = network.connect("alice", "dave")
    network.connect("bob", "dave")
    network.run()
    warm_up(network, "alice")  # dave hears alice's batches from alice first: he prunes bob for them
    prunes = total(network, "prunes_sent")
    network.commit("alice", DOCS[0], edits(["lost"]))
    direct.queues["dave"].clear()  # alice's push to dave is lost; bob announces it
    network.run()
    network.advance(network.config.graft_delay_ms)
    assert network.converged() and network.peers["dave"].replicator.stats["wants_sent"] == 1  # the graft
    for i in range(3):  # bob pushes alice's batches to dave again, one flight behind alice's own
        network.commit("alice", DOCS[0], edits([f"after the graft {i} "]))
        network.run()
    assert network.converged() and total(network, "prunes_sent") == prunes
    network.advance(network.config.graft_hold_ms)
    network.commit("alice", DOCS[0], edits(["long after"]))
    network.run()
    assert total(network, "prunes_sent") == prunes + 1  # now the duplicate prunes bob again


def test_a_pushed_batch_that_came_before_its_deps_is_forwarded_by_push_once_they_arrive():
    network = mesh(["alice", "bob", "carol", "dave"])
    network.connect("alice", "bob")
    alice_carol = network.connect("alice", "carol")
    bob_carol = network.connect("bob", "carol")
    network.connect("carol", "dave")
    network.run()
    network.commit("bob", DOCS[0], edits(["b"]))
    slow = bob_carol.queues["carol"][:]  # bob's push to carol is slow...
    bob_carol.queues["carol"].clear()
    network.flight()
    alice_carol.queues["carol"].clear()  # ... and alice's forward of it lost
    network.commit("alice", DOCS[0], edits(["a"]))  # alice builds on bob's batch
    network.flight()  # carol gets alice's batch before its dep, and holds it
    bob_carol.queues["carol"][:0] = slow
    network.run()
    assert network.converged()  # dave got both by push, in flights, with no timer run
    assert total(network, "wants_sent") == 0
