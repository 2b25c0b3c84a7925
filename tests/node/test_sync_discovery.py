"""Finding and keeping peers: mDNS on loopback, joins by space id, the peerstore, redials, metrics.

mDNS runs for real (zeroconf restricted to 127.0.0.1, where multicast works offline on this
machine): nodes announce and browse, and connect only to peers that share a space.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import trio
from hypothesis import given
from hypothesis import strategies as st

from node.discovery import Backoff, mdns_filter, mdns_properties, space_tag
from node.network import SIMULTANEOUS_DIAL_WINDOW_S, NetworkOptions, keeps_older_connection
from sync_helpers import FAST_SYNC, NOW_MS, TCP_ONLY, cluster, genesis_of, identity_of


def test_mdns_filter_keeps_only_our_protocol_and_shared_spaces() -> None:
    ours, theirs = genesis_of("alice", "ours").space_id, genesis_of("bob", "theirs").space_id
    bob = identity_of("bob").peer_id
    addr = f"/ip4/127.0.0.1/tcp/4001/p2p/{bob}"
    record = {k.encode(): v.encode() for k, v in mdns_properties(bob, [addr], [ours, theirs]).items()}
    me = identity_of("alice").peer_id
    assert mdns_filter(record, me, [ours]).addrs == (addr,)
    assert mdns_filter(record, me, [genesis_of("carol", "other").space_id]) is None  # no space in common
    assert mdns_filter(record, bob, [ours]) is None  # ourselves
    assert mdns_filter({**record, b"proto": b"/ipfs/kad/1.0.0"}, me, [ours]) is None  # another protocol
    assert mdns_filter({**record, b"a0": f"/ip4/127.0.0.1/tcp/1/p2p/{me}".encode()}, me, [ours]) is None  # address of someone else
    assert space_tag(ours) not in str(ours.hex())  # the tag does not reveal the id


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, rng=random.Random(7))
    jitter = random.Random(7)  # the same draws: each wait is its step times one jitter factor
    steps_s = [1, 2, 4, 8, 8, 8]
    waits = [backoff.next() for _ in steps_s]
    assert waits == [step * jitter.uniform(0.75, 1.25) for step in steps_s]
    assert all(0.75 <= wait / step <= 1.25 for wait, step in zip(waits, steps_s, strict=True))
    backoff.reset()
    assert backoff.next() == 1 * jitter.uniform(0.75, 1.25)


@given(st.booleans(), st.booleans(), st.floats(0, SIMULTANEOUS_DIAL_WINDOW_S))
def test_both_ends_of_a_simultaneous_dial_keep_the_same_connection(x_is_smaller: bool, orders_differ: bool, gap_s: float) -> None:
    """X dialled one connection and Y the other; each end may see them come up in either order."""

    def survivor(first: str, second: str, me: str, *, smaller: bool) -> str:
        keep_older = keeps_older_connection(first == me, second == me, gap_s, we_are_smaller=smaller)
        return first if keep_older else second

    x_view = survivor("X", "Y", "X", smaller=x_is_smaller)
    y_view = survivor(*(("Y", "X") if orders_differ else ("X", "Y")), "Y", smaller=not x_is_smaller)
    assert x_view == y_view == ("X" if x_is_smaller else "Y")  # the smaller key's dial, at both ends


def test_a_connection_after_the_race_window_replaces_the_older_one() -> None:
    assert not keeps_older_connection(True, False, SIMULTANEOUS_DIAL_WINDOW_S + 0.1, we_are_smaller=True)  # a restart
    assert not keeps_older_connection(True, True, 0.0, we_are_smaller=True)  # both ours: a redial


async def test_mdns_connects_peers_that_share_a_space_and_no_others(tmp_path: Path) -> None:
    shared, other = genesis_of("alice", "shared"), genesis_of("carol", "other")
    options = NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC, mdns=True)
    async with cluster(tmp_path, options) as nodes:
        alice = await nodes.start("alice", [shared])
        bob = await nodes.start("bob", [shared])
        carol = await nodes.start("carol", [other])
        await nodes.until(lambda: alice.syncing_with(bob, shared.space_id) or bob.syncing_with(alice, shared.space_id))
        alice.workspace(shared.space_id).write("hi.txt", "found you", now_ms=NOW_MS)
        await nodes.until(lambda: bob.workspace(shared.space_id).exists("hi.txt"))
        assert not carol.connected_to(alice) and not carol.connected_to(bob)


async def test_a_node_joins_a_space_by_its_id_alone(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        alice.workspace(space).write("plan.md", "step 1", now_ms=NOW_MS)
        bob = await nodes.start("bob")
        bob.network.join(space, [alice.addr()])
        await nodes.until(lambda: space in {g.space_id for g in bob.repo.spaces()})
        await nodes.until(lambda: bob.workspace(space).exists("plan.md"))
        assert bob.workspace(space).read("plan.md") == "step 1"
        assert bob.repo.genesis(space) == genesis


async def test_a_restarted_peer_is_redialled_from_the_peerstore(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: alice.syncing_with(bob, space))
        bob_listen = bob.addr().rsplit("/p2p/", 1)[0]
        await nodes.stop("bob")
        stored = json.loads((tmp_path / "bob" / "peers.json").read_text())["peers"]
        assert alice.peer_id in stored
        alice.workspace(space).write("while-away.txt", "x", now_ms=NOW_MS)
        # Bob comes back on his port with no bootstrap peer: Alice, who keeps every peer she
        # synced with, redials him (after her backoff), and his peerstore would find her too.
        bob = await nodes.start("bob", listen=(bob_listen,))
        await nodes.until(lambda: bob.workspace(space).exists("while-away.txt"))


async def test_metrics_are_served_as_prometheus_text(tmp_path: Path) -> None:
    genesis = genesis_of()
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis], metrics_port=0)
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: alice.syncing_with(bob, genesis.space_id))
        assert alice.network.metrics_port
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", alice.network.metrics_port)
            async with stream:
                host = f"127.0.0.1:{alice.network.metrics_port}".encode()
                await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
                response = b""
                while chunk := await stream.receive_some():
                    response += chunk
        head, _, body = response.decode().partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 200") and "text/plain; version=0.0.4" in head
        assert "# TYPE distspace_peers_connected gauge\ndistspace_peers_connected 1" in body
        assert "distspace_replicator_messages_received_total" in body
