"""Peers no one can dial sync through a relay of their space (node/network.py, "NAT").

Real nodes on 127.0.0.1 (libp2p, SQLite stores). Alice and Bob listen on nothing at all — no
inbound connection can reach them, as behind two NATs — and say ``reachability = "private"``.
Each dials the relay node R (a member of the space with a ``relay`` grant) and, finding it
grants a reservation, holds one and announces its ``/p2p-circuit`` address first. Bob dials
Alice's circuit address (what her ticket would carry) and they sync over it, live and after
offline edits; with no listener there is nothing to upgrade to, and the relayed path carries on.
With listeners on loopback and ``hole_punch``, DCUtR replaces the relayed connection by a direct
one and sync goes on over it (on loopback by DCUtR's first step, a direct dial to the addresses
identify gave over the circuit: no NAT is traversed here; tests/netns does that).
"""

from __future__ import annotations

import logging
from pathlib import Path

from node.config import choose_port
from node.network import Network, NetworkOptions
from sync_helpers import FAST_SYNC, NOW_MS, Cluster, Node, cluster
from test_relay_members import SPACE, prepare, transports_of

NOWHERE: tuple[str, ...] = ()  # no listener: a host that only dials out
PRIVATE = NetworkOptions(listen=("/ip4/127.0.0.1/tcp/0",), sync=FAST_SYNC, reachability="private")


def circuit_of(node: Node) -> str:
    """The node's first announced address: its relay circuit, as a private node says."""
    first = node.network.addrs()[0]
    assert "/p2p-circuit/" in first, node.network.addrs()
    return first


async def relayed_pair(nodes: Cluster, tmp_path: Path, listen: tuple[str, ...], **options: object) -> tuple[Node, Node, Node]:
    """R, then Alice and Bob dialling it, each holding a reservation it found by dialling R."""
    for name in ("relay", "alice", "bob"):
        prepare(tmp_path, name)
    relay = await nodes.start("relay", relay=True, reachability="public")
    alice = await nodes.start("alice", peers=[relay.addr()], listen=listen, **options)
    bob = await nodes.start("bob", peers=[relay.addr()], listen=listen, **options)
    await nodes.until(lambda: bool(alice.network.host.reservations) and bool(bob.network.host.reservations))
    return relay, alice, bob


async def test_two_peers_no_one_can_dial_sync_through_the_relay(tmp_path: Path) -> None:
    async with cluster(tmp_path, PRIVATE) as nodes:
        relay, alice, bob = await relayed_pair(nodes, tmp_path, NOWHERE)
        assert alice.network.private and alice.network.status()["reachable"] == [circuit_of(alice)]
        assert relay.network.host.stats["relay_reservations_served"] >= 2
        await bob.network.connect(circuit_of(alice))
        await nodes.until(lambda: alice.syncing_with(bob, SPACE) and "p2p-circuit" in transports_of(bob, alice))
        alice.workspace(SPACE).write("plan.md", "through the relay", now_ms=NOW_MS)
        bob.workspace(SPACE).write("notes.md", "bob's", now_ms=NOW_MS)
        await nodes.converged(SPACE, ["alice", "bob", "relay"])
        assert bob.workspace(SPACE).read("plan.md") == "through the relay"
        assert alice.network.stats["direct_upgrades"] == 0  # nothing to punch into: no listener

        # Offline edits: Bob stops, Alice writes, Bob comes back and redials her circuit.
        await nodes.stop("bob")
        alice.workspace(SPACE).write("plan.md", "while bob was away", now_ms=NOW_MS + 1)
        bob = await nodes.start("bob", peers=[relay.addr(), circuit_of(alice)], listen=NOWHERE)
        await nodes.converged(SPACE, ["alice", "bob"])
        assert bob.workspace(SPACE).read("plan.md") == "while bob was away"


async def test_a_relayed_connection_is_upgraded_to_a_direct_one_when_the_peer_is_dialable(tmp_path: Path) -> None:
    """DCUtR's upgrade and the switch of sessions to the direct connection (the module docstring)."""
    async with cluster(tmp_path, PRIVATE) as nodes:
        _, alice, bob = await relayed_pair(nodes, tmp_path, PRIVATE.listen, hole_punch=True)
        await bob.network.connect(circuit_of(alice))
        await nodes.until(
            lambda: alice.network.stats["direct_upgrades"] + bob.network.stats["direct_upgrades"] >= 1
            and "p2p-circuit" not in transports_of(bob, alice)
            and alice.syncing_with(bob, SPACE),
        )
        alice.workspace(SPACE).write("plan.md", "direct now", now_ms=NOW_MS)
        await nodes.converged(SPACE, ["alice", "bob"])


async def test_a_configured_relay_is_held_and_its_circuit_announced_first(tmp_path: Path) -> None:
    async with cluster(tmp_path, PRIVATE) as nodes:
        for name in ("relay", "bob"):
            prepare(tmp_path, name)
        relay = await nodes.start("relay", relay=True, reachability="public")
        bob = await nodes.start("bob", reserve_on=(relay.addr(),))
        await nodes.until(lambda: bool(bob.network.host.reservations))
        addrs = bob.network.addrs()
        assert addrs[0].startswith(relay.addr()) and addrs[0].endswith(f"/p2p-circuit/p2p/{bob.peer_id}")
        assert bob.network.status()["reservations"] == [addrs[0]]
        assert not relay.network.private


def test_reachability_auto_is_private_only_with_interfaces_none_of_them_global() -> None:
    from node.network import _is_private

    assert not _is_private(NetworkOptions(listen=("/ip4/127.0.0.1/tcp/0",)))  # this machine only
    assert _is_private(NetworkOptions(listen=("/ip4/198.18.1.7/tcp/0",)))
    assert _is_private(NetworkOptions(listen=("/ip4/198.18.0.2/tcp/0",)))  # benchmarking range: not global
    assert not _is_private(NetworkOptions(listen=("/ip4/8.8.8.8/tcp/0",)))
    assert not _is_private(NetworkOptions(listen=("/ip4/198.18.1.7/tcp/0",), relay=True))
    assert _is_private(NetworkOptions(listen=("/ip4/127.0.0.1/tcp/0",), reachability="private"))
    assert not _is_private(NetworkOptions(listen=("/ip4/198.18.1.7/tcp/0",), reachability="public"))


async def test_a_network_listening_nowhere_starts_and_announces_nothing_direct(tmp_path: Path) -> None:
    prepare(tmp_path, "alice")
    async with cluster(tmp_path, PRIVATE) as nodes:
        alice = await nodes.start("alice", listen=NOWHERE)
        assert isinstance(alice.network, Network) and alice.network.addrs() == []
        assert alice.network.status()["reachable"] == []


def test_a_failed_hole_punch_is_logged_as_info_not_as_an_error() -> None:
    from node.host import _HOLE_PUNCH_FILTER, DCUTR_LOGGER

    def record(name: str, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)

    punched = record(DCUTR_LOGGER, "Error in DCUtR protocol with peer X")
    refused = record("libp2p.host.basic_host", "Failed to open stream to peer X:\n  Protocols: ['/libp2p/dcutr']")
    other = record("libp2p.host.basic_host", "Failed to open stream to peer X:\n  Protocols: ['/distspace/sync/1']")
    for each in (punched, refused, other):
        assert _HOLE_PUNCH_FILTER.filter(each)
    assert (punched.levelname, refused.levelname, other.levelname) == ("INFO", "INFO", "ERROR")


async def test_a_relay_that_restarts_is_reserved_on_again_once_it_is_back(tmp_path: Path) -> None:
    """It forgot our slot: the circuit works again without waiting for the renewal."""
    async with cluster(tmp_path, PRIVATE) as nodes:
        for name in ("relay", "bob"):
            prepare(tmp_path, name)
        relay_listen = (f"/ip4/127.0.0.1/tcp/{choose_port()}",)
        relay = await nodes.start("relay", relay=True, reachability="public", listen=relay_listen)
        bob = await nodes.start("bob", reserve_on=(relay.addr(),))
        await nodes.until(lambda: bob.network.stats["reservations_held"] == 1)
        await nodes.stop("relay")
        relay = await nodes.start("relay", relay=True, reachability="public", listen=relay_listen)
        await nodes.until(lambda: bob.network.stats["reservations_held"] == 2)
        prepare(tmp_path, "alice")
        alice = await nodes.start("alice", peers=[circuit_of(bob)])
        await nodes.until(lambda: alice.syncing_with(bob, SPACE) and "p2p-circuit" in transports_of(alice, bob))
