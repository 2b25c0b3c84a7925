"""Free identities and slow peers: strangers (fresh keys) try to take every slot a node has.

Each scenario runs real nodes (``sync_helpers.cluster``) and raw libp2p hosts for the attacker
(``hostile_peer``), all on 127.0.0.1, with small configured limits so the limits are reached in
a few connections. Per-address limits skip loopback by default, so the tests that are about
them set ``limit_loopback``. In every scenario an honest peer is still served: an edit made
while the attack holds arrives.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p.peer.id import ID

from benchmarks.mallory import ATTACKS, attack, closed_by_peer, hello, mallory
from node.discovery import PEERSTORE_FILE
from node.errors import NodeError
from node.framing import FrameStream
from node.host import SYNC_PROTOCOL, UNKNOWN_ADDRESS, Host, address_key, is_loopback_key, open_host
from node.network import NetworkOptions
from node.sync_driver import DriverLimits
from protocol.limits import SUPPORTED_VERSIONS
from protocol.reconcile import space_summary
from protocol.space import DOC_ID_BYTES, Genesis
from protocol.tips import CHANGE_HASH_BYTES
from protocol.wire import DocHeads, Hello, Status, encode_frame
from sync_helpers import FAST_SYNC, NOW_MS, TCP_ONLY, Cluster, Node, cluster, genesis_of

# Attackers here never send Pings: only the limits under test may end their sessions.
PATIENT_SYNC = replace(FAST_SYNC, peer_timeout_ms=60_000)
# A trickle slower than any honest sender, fast enough that the test takes seconds.
TRICKLE_INTERVAL_S = 0.1


def patient(limits: DriverLimits, **overrides: Any) -> NetworkOptions:
    """Options for nodes whose attackers' sessions end only by the limits under test."""
    return NetworkOptions(listen=TCP_ONLY, sync=PATIENT_SYNC, limits=limits, **overrides)


@asynccontextmanager
async def stranger(name: str, target: Node) -> AsyncIterator[Host]:
    """A fresh key's libp2p host, connected to ``target``."""
    async with open_host(mallory(name), TCP_ONLY) as host:
        await host.connect(target.addr())
        yield host


async def sync_stream(host: Host, target: Node) -> FrameStream | None:
    """A sync stream to ``target``, or None if it was refused at once."""
    try:
        return await host.open_stream(target.peer_id, SYNC_PROTOCOL)
    except NodeError:
        return None


def big_hello(name: str, space: bytes, docs: int) -> bytes:
    """A well-formed Hello listing ``docs`` docs (~55 B each): as large as Mallory likes."""
    entries = tuple(DocHeads(i.to_bytes(DOC_ID_BYTES, "big"), (bytes(CHANGE_HASH_BYTES),)) for i in range(1, docs + 1))
    status = Status(space_summary({e.doc: e.heads for e in entries}), entries, False)
    return encode_frame(Hello(SUPPORTED_VERSIONS, space, mallory(name).public_key, status))


def sessions_of(node: Node, peer_ids: set[str]) -> int:
    return sum(1 for s in node.network.driver.sessions() if s["peer_id"] in peer_ids)


@asynccontextmanager
async def alice_and_bob(tmp_path: Path, options: NetworkOptions, *geneses: Genesis) -> AsyncIterator[tuple[Cluster, Node, Node]]:
    """Alice, and Bob who dialled her (so he knows her), syncing every space of ``geneses``."""
    async with cluster(tmp_path, options) as nodes:
        alice = await nodes.start("alice", geneses)
        bob = await nodes.start("bob", geneses, peers=[alice.addr()])
        await nodes.until(lambda: all(bob.syncing_with(alice, g.space_id) for g in geneses))
        yield nodes, alice, bob


async def edit_arrives(nodes: Cluster, writer: Node, reader: Node, space: bytes, path: str) -> None:
    writer.workspace(space).write(path, "honest edit", now_ms=NOW_MS)
    await nodes.until(lambda: reader.workspace(space).exists(path))


async def test_a_trickle_that_never_completes_its_hello_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    limits = DriverLimits(hello_deadline_s=1.5)
    async with alice_and_bob(tmp_path, patient(limits), genesis) as (nodes, alice, bob):
        driver = alice.network.driver
        async with stranger("trickle", alice) as host:
            frames = await sync_stream(host, alice)
            assert frames is not None
            almost_a_hello = hello("trickle", space)[:-1]  # a valid prefix: no frame limit trips

            async def trickle() -> None:
                for byte in almost_a_hello:
                    try:
                        await frames.send_bytes(bytes([byte]))
                    except NodeError:
                        return
                    await trio.sleep(TRICKLE_INTERVAL_S)  # noqa: sleep — pacing: the attack is slowness itself

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trickle)
                await nodes.until(lambda: sessions_of(alice, {mallory("trickle").peer_id}) == 1)
                await edit_arrives(nodes, bob, alice, space, "during-trickle.txt")
                await closed_by_peer(frames)  # the deadline ends it, long before the trickle would
                nursery.cancel_scope.cancel()
        assert driver.stats["hello_timeouts"] == 1
        assert sessions_of(alice, {mallory("trickle").peer_id}) == 0
        await edit_arrives(nodes, bob, alice, space, "after-trickle.txt")


async def test_bytes_before_the_hello_are_capped_while_an_honest_hello_fits(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    # Far below the real budget, so a Hello of 60 docs (~3.5 KB, under every frame limit)
    # overruns it; Bob's Hello of an almost empty space still fits.
    limits = DriverLimits(hello_bytes_max=1024)
    async with alice_and_bob(tmp_path, patient(limits), genesis) as (nodes, alice, bob):
        async with stranger("oversized-hello", alice) as host:
            frames = await sync_stream(host, alice)
            assert frames is not None
            frame = big_hello("oversized-hello", space, 60)
            assert len(frame) > 3 * limits.hello_bytes_max
            await frames.send_bytes(frame[: 2 * limits.hello_bytes_max])  # and waits, frame unfinished
            await closed_by_peer(frames)
        assert alice.network.driver.stats["hello_bytes_exceeded"] == 1
        await edit_arrives(nodes, bob, alice, space, "after-oversized-hello.txt")


async def test_a_flood_of_fresh_keys_cannot_lock_out_a_known_peer(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    # Bob takes 5 peers, 2 of them kept for peers he knows: 3 strangers. Sessions: 6, 3 of
    # them kept: 3 for strangers (one each: a key gets one session per space).
    limits = DriverLimits(sessions_max=6, sessions_reserved_known=3)
    options = patient(limits, max_peers=5, peers_reserved_known=2)
    async with alice_and_bob(tmp_path, options, genesis) as (nodes, alice, bob), AsyncExitStack() as flood:
        await nodes.stop("alice")
        await nodes.until(lambda: not bob.connected_to(alice))

        # Five fresh keys: three get in and say Hello on a session each, then try a second.
        network = bob.network
        names = [f"flood-{i}" for i in range(5)]
        flood_ids = {mallory(name).peer_id for name in names}
        admitted: list[tuple[str, Host]] = []

        def let_in_or_refused(peer_id: ID, refused: int) -> bool:
            return network.is_connected(peer_id) or network.stats["connections_refused_strangers"] > refused

        for name in names:
            refused = network.stats["connections_refused_strangers"]
            host = await flood.enter_async_context(stranger(name, bob))
            await nodes.until(partial(let_in_or_refused, mallory(name).peer_id, refused))
            if network.stats["connections_refused_strangers"] == refused:
                admitted.append((name, host))
        assert len(admitted) == options.max_peers - options.peers_reserved_known
        for name, host in admitted:
            frames = await sync_stream(host, bob)
            assert frames is not None
            await frames.send_bytes(hello(name, space))
        stranger_slots = limits.sessions_max - limits.sessions_reserved_known
        await nodes.until(lambda: sessions_of(bob, flood_ids) == stranger_slots)
        for _name, host in admitted:
            await sync_stream(host, bob)
        await nodes.until(lambda: network.driver.stats["sessions_refused_strangers"] == len(admitted))
        assert network.stats["connections_refused_strangers"] == len(names) - len(admitted)

        # Alice, whom Bob knows, comes back while the flood holds every stranger slot; her
        # key is the smaller, so she opens the session: an inbound one at Bob.
        alice = await nodes.start("alice", [genesis], peers=[bob.addr()])
        await nodes.until(lambda: bob.syncing_with(alice, space))
        await edit_arrives(nodes, alice, bob, space, "through-the-flood.txt")
        assert sessions_of(bob, flood_ids) == stranger_slots


async def test_per_address_caps_hold_for_strangers_while_a_known_peer_syncs(tmp_path: Path) -> None:
    team, other = genesis_of(name="team"), genesis_of(name="other")
    limits = DriverLimits(limit_loopback=True, sessions_per_address_max=3, hello_pending_per_address_max=2)
    options = patient(limits, connections_per_address_max=2)
    async with alice_and_bob(tmp_path, options, team, other) as (nodes, alice, bob):
        driver = bob.network.driver
        async with stranger("address-1", bob) as first, stranger("address-2", bob) as second:
            # A third stranger from the same address is one too many.
            async with stranger("address-3", bob) as third:
                await nodes.until(lambda: bob.network.stats["connections_refused_address"] == 1)
                await nodes.until(lambda: bob.peer_id not in third.connected_peers())
            # Two sessions from the address may wait for their Hello at once.
            silent = [await sync_stream(first, bob) for _ in range(3)]
            await nodes.until(lambda: driver.stats["sessions_refused_address_hello_pending"] == 1)
            for frames in silent:
                if frames is not None:
                    await frames.reset()
            first_id, second_id = mallory("address-1").peer_id, mallory("address-2").peer_id
            await nodes.until(lambda: sessions_of(bob, {first_id}) == 0)
            # Three sessions of strangers from the address in all.
            for host, name, genesis in ((first, "address-1", team), (first, "address-1", other), (second, "address-2", team)):
                frames = await sync_stream(host, bob)
                assert frames is not None
                await frames.send_bytes(hello(name, genesis.space_id))
            await nodes.until(lambda: sum(1 for s in driver.sessions() if s["peer_id"] in {first_id, second_id} and s["active"]) == 3)
            await sync_stream(second, bob)
            await nodes.until(lambda: driver.stats["sessions_refused_address"] == 1)
            await edit_arrives(nodes, alice, bob, team.space_id, "past-the-caps.txt")


async def test_an_address_whose_keys_were_banned_is_refused_for_strangers(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    options = NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC, limits=DriverLimits(limit_loopback=True), address_bans_max=2)
    async with alice_and_bob(tmp_path, options, genesis) as (nodes, alice, bob):
        for name in list(ATTACKS)[:2]:  # two keys banned, both from 127.0.0.1
            await attack(name, space, bob.addr())
        await nodes.until(lambda: bob.network.stats["addresses_refused"] == 1)
        # A third fresh key from the same address is dropped as it connects.
        async with open_host(mallory("after-bans"), TCP_ONLY) as host:
            try:
                await host.connect(bob.addr())
            except NodeError:
                pass  # dropped during the handshake
            await nodes.until(lambda: bob.network.stats["connections_refused_address_banned"] == 1)
            await nodes.until(lambda: bob.peer_id not in host.connected_peers())
        # Alice shares the address, but Bob knows her.
        await edit_arrives(nodes, alice, bob, space, "after-the-bans.txt")
        assert bob.syncing_with(alice, space)


async def test_peers_that_come_and_go_are_forgotten_beyond_the_cap(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    options = NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC, peers_remembered_max=3)
    async with alice_and_bob(tmp_path, options, genesis) as (nodes, alice, bob):
        for i in range(6):
            passer_by = mallory(f"passer-by-{i}").peer_id
            async with stranger(f"passer-by-{i}", bob):
                await nodes.until(lambda passer_by=passer_by: bob.network.is_connected(passer_by))
            await nodes.until(lambda passer_by=passer_by: not bob.network.is_connected(passer_by))
        remembered = set(bob.network.keepers.peers)  # what the cap bounds: every key that ever connected
        assert len(remembered) <= options.peers_remembered_max
        assert alice.peer_id in remembered  # kept: never forgotten
        assert mallory("passer-by-5").peer_id in remembered  # the newest stay
        assert mallory("passer-by-0").peer_id not in remembered
        await edit_arrives(nodes, alice, bob, space, "after-the-passers-by.txt")


async def test_keys_that_synced_once_are_let_go_beyond_the_kept_cap(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    options = NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC, kept_peers_max=2)
    async with alice_and_bob(tmp_path, options, genesis) as (nodes, alice, bob):
        for i in range(4):  # each syncs once (it knows the space id), so Bob keeps it, then leaves
            name = f"member-{i}"
            async with stranger(name, bob) as host:
                frames = await sync_stream(host, bob)
                assert frames is not None
                await frames.send_bytes(hello(name, space))
                await nodes.until(lambda name=name: any(s["peer_id"] == mallory(name).peer_id and s["active"] for s in bob.network.driver.sessions()))
            await nodes.until(lambda name=name: not bob.network.is_connected(mallory(name).peer_id))
        # Alice and the last member fill the cap: the three before were let go.
        await nodes.until(lambda: bob.network.stats["peers_let_go"] == 3)
        kept = {peer["peer_id"] for peer in bob.network.status()["peers"]}  # connected or kept
        assert alice.peer_id in kept  # Bob was told to keep her: never let go
        assert len(kept) == options.kept_peers_max
        await edit_arrives(nodes, alice, bob, space, "after-the-members-left.txt")


async def test_a_peer_that_dialled_us_and_synced_is_redialled_when_it_comes_back(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    with socket.socket() as probe:  # a free port for Bob, kept across his restart
        probe.bind(("127.0.0.1", 0))
        bob_listen = (f"/ip4/127.0.0.1/tcp/{probe.getsockname()[1]}",)
    async with cluster(tmp_path, NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC)) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()], listen=bob_listen)
        await nodes.until(lambda: alice.syncing_with(bob, space))
        await nodes.stop("bob")
        await nodes.until(lambda: not alice.network.is_connected(bob.peer_id))
        assert [p["connected"] for p in alice.network.status()["peers"] if p["peer_id"] == bob.peer_id] == [False]  # kept
        (bob.path / PEERSTORE_FILE).unlink()  # Bob forgets Alice: only she can bring him back
        bob = await nodes.start("bob", [genesis], listen=bob_listen)
        await nodes.until(lambda: alice.syncing_with(bob, space))
        await edit_arrives(nodes, bob, alice, space, "back-again.txt")


async def test_strangers_waiting_for_their_hello_cannot_block_a_known_peer(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    limits = DriverLimits(hello_pending_max=3)
    async with alice_and_bob(tmp_path, patient(limits), genesis) as (nodes, alice, bob):
        async with stranger("silent", bob) as host:
            for _ in range(4):
                await sync_stream(host, bob)  # and never says anything
            await nodes.until(lambda: bob.network.driver.stats["sessions_refused_hello_pending"] == 1)
            await nodes.stop("alice")
            alice = await nodes.start("alice", [genesis], peers=[bob.addr()])
            await nodes.until(lambda: bob.syncing_with(alice, space))
            await edit_arrives(nodes, alice, bob, space, "past-the-silent-ones.txt")


class _Connection:
    """What ``address_key`` reads of a libp2p connection, for addresses loopback cannot show."""

    def __init__(self, remote: tuple[str, int] | None, addrs: tuple[str, ...] = ()) -> None:
        self.remote = remote
        self.addrs = [multiaddr.Multiaddr(addr) for addr in addrs]

    def get_remote_address(self) -> tuple[str, int] | None:
        return self.remote

    def get_transport_addresses(self) -> list[multiaddr.Multiaddr]:
        return self.addrs


def test_an_ipv6_host_counts_as_its_64_and_an_address_not_told_is_one_shared_unknown() -> None:
    assert address_key(_Connection(("2001:db8:1:2:aaaa::1", 4001))) == "2001:db8:1:2::/64"
    assert address_key(_Connection(("2001:db8:1:2:bbbb::7", 4001))) == "2001:db8:1:2::/64"
    assert address_key(_Connection(("2001:db8:1:3::1", 4001))) == "2001:db8:1:3::/64"
    assert address_key(_Connection(("::ffff:192.0.2.7", 4001))) == "192.0.2.7"
    assert address_key(_Connection(None, ("/ip4/192.0.2.9/udp/4001/webrtc-direct",))) == "192.0.2.9"
    assert address_key(_Connection(None)) == UNKNOWN_ADDRESS
    assert is_loopback_key("127.0.0.1") and is_loopback_key("::1")
    assert not is_loopback_key("192.0.2.7") and not is_loopback_key(UNKNOWN_ADDRESS)
    limits = DriverLimits()
    assert not limits.limits_address("127.0.0.1") and limits.limits_address("192.0.2.7")
    assert DriverLimits(limit_loopback=True).limits_address("127.0.0.1")


async def test_hundreds_of_inbound_connections_in_a_nodes_life_do_not_make_it_unreachable(tmp_path: Path) -> None:
    """py-libp2p 0.8.1 held an inbound slot per connection until the node stopped: after 250
    connections in a node's life, closed or not, every dial to it failed. 300 dials, then Bob
    (a fresh peer) still connects and syncs."""
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path, NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC)) as nodes:
        alice = await nodes.start("alice", [genesis])
        async with open_host(mallory("churn"), TCP_ONLY) as host:
            for _ in range(300):
                peer_id = await host.connect(alice.addr())
                await host.libp2p.disconnect(ID.from_base58(peer_id))
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: bob.syncing_with(alice, space))
        alice.workspace(space).write("reachable.md", "still\n", now_ms=NOW_MS)
        await nodes.until(lambda: bob.workspace(space).exists("reachable.md"))
