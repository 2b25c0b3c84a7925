"""Sync over every path a peer may have: webrtc-direct only, a relay that is a member of the
space, and a circuit through a relay that is not."""

from __future__ import annotations

from pathlib import Path

from node.events import RelayReserved
from node.network import NetworkOptions
from node.relay import circuit_addr
from sync_helpers import FAST_SYNC, NOW_MS, Cluster, Node, cluster, genesis_of

WEBRTC_ONLY = ("/ip4/127.0.0.1/udp/0/webrtc-direct",)


async def edits_flow_both_ways(nodes: Cluster, alice: Node, bob: Node, space: bytes) -> None:
    alice.workspace(space).write("from-alice.txt", "a", now_ms=NOW_MS)
    bob.workspace(space).write("from-bob.txt", "b", now_ms=NOW_MS)
    await nodes.until(lambda: alice.workspace(space).exists("from-bob.txt") and bob.workspace(space).exists("from-alice.txt"))
    alice.workspace(space).splice("from-bob.txt", 1, 0, "+alice", now_ms=NOW_MS)
    await nodes.until(lambda: bob.workspace(space).read("from-bob.txt") == "b+alice")
    await nodes.converged(space, [alice.name, bob.name])


def transports_of(node: Node, other: Node) -> set[str]:
    return {p.name for addr in node.network.host.connection_addrs(other.peer_id) for p in addr.protocols()}


async def test_two_peers_with_only_webrtc_direct_addresses_sync(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path, NetworkOptions(listen=WEBRTC_ONLY, sync=FAST_SYNC)) as nodes:
        alice = await nodes.start("alice", [genesis])
        assert all("webrtc-direct" in a for a in alice.network.addrs())
        bob = await nodes.start("bob", [genesis], peers=[alice.addr("webrtc-direct")])
        # Wait for the transport, not only the session: once, in a loaded run, the session was
        # open while libp2p listed no connection to Alice (the cause is not pinned down yet).
        await nodes.until(lambda: bob.syncing_with(alice, space) and "webrtc-direct" in transports_of(bob, alice))
        await edits_flow_both_ways(nodes, alice, bob, space)


async def test_peers_that_reach_only_a_member_relay_sync_through_it(tmp_path: Path) -> None:
    """R serves relay reservations and holds the space: it stores and forwards every change."""
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        relay = await nodes.start("relay", [genesis], relay=True)
        alice = await nodes.start("alice", [genesis], peers=[relay.addr()])
        bob = await nodes.start("bob", [genesis], peers=[relay.addr()])
        await edits_flow_both_ways(nodes, alice, bob, space)
        await nodes.converged(space)  # the relay kept every change
        assert not alice.connected_to(bob) and not bob.connected_to(alice)
        assert not relay.repo.verify()


async def test_peers_sync_over_a_circuit_through_a_relay_that_is_not_a_member(tmp_path: Path) -> None:
    """R holds an open space of its own, not Alice and Bob's: so it serves any peer a slot
    (node/relay.py), and splices their circuit without ever syncing their space."""
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        lobby = genesis_of("relay", "lobby")
        relay = await nodes.start("relay", [lobby], relay=True)
        bob = await nodes.start("bob", [genesis], reserve_on=(relay.addr(),))
        await nodes.until(lambda: bool(bob.reports(RelayReserved)))
        alice = await nodes.start("alice", [genesis], peers=[str(circuit_addr(relay.addr(), bob.peer_id))])
        await nodes.until(lambda: alice.syncing_with(bob, space))
        assert "p2p-circuit" in transports_of(alice, bob)
        await edits_flow_both_ways(nodes, alice, bob, space)
        assert relay.repo.spaces() == [lobby]
