"""A relay node serves reservations only to members of the spaces it holds (node/relay.py).

Real nodes on 127.0.0.1 (libp2p, SQLite stores). Alice created a private space; the relay node
holds a ``relay`` grant in it, Bob a ``write`` grant. Bob reserves a slot and Alice reaches him
over a circuit; Mallory, a stranger, is refused a slot, also when she asks in Bob's name; a
relay holding an open space serves anyone, one holding nothing serves nobody.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import PERMISSION_DENIED, HopMessage, PeerId
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

from node.errors import RelayError
from node.events import RelayReserved
from node.host import hold_reservation, open_host
from node.relay import HOP_PROTOCOL_ID, circuit_addr
from protocol.capabilities import Grant, Revocation, Role
from protocol.space import Genesis
from store.repo import Repo
from sync_helpers import NOW_MS, STEP_TIMEOUT_S, Cluster, Node, cluster, genesis_of, identity_of

GENESIS = Genesis.create(identity_of("alice"), "team", NOW_MS, nonce=bytes(16), private=True)
SPACE = GENESIS.space_id
ALICE = identity_of("alice")
GRANTS = tuple(
    Grant.issue(ALICE, space=SPACE, subject=identity_of(name).public_key, role=role, issued_ms=NOW_MS - 1000)
    for name, role in (("relay", Role.RELAY), ("bob", Role.WRITE))
)
TCP = ["/ip4/127.0.0.1/tcp/0"]


def prepare(tmp_path: Path, name: str, genesis: Genesis = GENESIS, records: tuple[Grant, ...] = GRANTS) -> None:
    """The node's store before its network starts: the genesis and the grants."""
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    with Repo.open(path / "store.sqlite", identity_of(name)) as repo:
        repo.add_space(genesis)
        if genesis.private:
            repo.add_capability_records(genesis.space_id, [record.encode() for record in records])


def transports_of(node: Node, other: Node) -> set[str]:
    return {p.name for addr in node.network.host.connection_addrs(other.peer_id) for p in addr.protocols()}


async def reserve_as_stranger(relay: Node, *, naming: str | None = None) -> None:
    """Mallory, a bare host with no space, asks the relay for a slot (in ``naming``'s name)."""
    async with open_host(identity_of("mallory"), TCP) as mallory, trio.open_nursery() as nursery:
        with trio.fail_after(STEP_TIMEOUT_S):
            if naming is None:
                await nursery.start(hold_reservation, mallory, relay.addr())
                nursery.cancel_scope.cancel()  # held: the refresh loop is not what is tested
                return
            relay_id = ID.from_base58(await mallory.connect(relay.addr()))
            stream = await mallory.libp2p.new_stream(relay_id, [HOP_PROTOCOL_ID])
            claimed = PeerId(id=ID.from_base58(identity_of(naming).peer_id).to_bytes())
            await write_delimited_msg(stream, HopMessage(type=HopMessage.RESERVE, peer=claimed))
            response = await read_delimited_msg(stream, HopMessage)
            await stream.close()
            raise RelayError(f"reservation answered {response.status}")


async def private_relay(nodes: Cluster, tmp_path: Path) -> tuple[Node, Node]:
    """The relay node, and Bob holding a reservation on it."""
    for name in ("relay", "bob"):
        prepare(tmp_path, name)
    relay = await nodes.start("relay", relay=True)
    bob = await nodes.start("bob", reserve_on=(relay.addr(),))
    await nodes.until(lambda: bool(bob.reports(RelayReserved)))
    return relay, bob


async def test_a_member_reserves_a_stranger_is_refused_and_relayed_sync_goes_on(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        relay, bob = await private_relay(nodes, tmp_path)
        with pytest.raises(RelayError, match="PERMISSION_DENIED"):
            await reserve_as_stranger(relay)
        assert relay.network.host.stats["relay_reservations_refused"] == 1

        prepare(tmp_path, "alice")
        alice = await nodes.start("alice", peers=[str(circuit_addr(relay.addr(), bob.peer_id))])
        await nodes.until(lambda: alice.syncing_with(bob, SPACE) and "p2p-circuit" in transports_of(alice, bob))
        alice.workspace(SPACE).write("plan.md", "members only", now_ms=NOW_MS)
        bob.workspace(SPACE).write("notes.md", "bob's", now_ms=NOW_MS)
        await nodes.converged(SPACE, ["alice", "bob", "relay"])
        assert bob.workspace(SPACE).read("plan.md") == "members only"
        assert relay.network.host.stats["relay_reservations_served"] >= 1


async def test_a_reservation_in_a_members_name_is_refused(tmp_path: Path) -> None:
    """py-libp2p would reserve for the peer a RESERVE names; ours for its sender only."""
    async with cluster(tmp_path) as nodes:
        relay, _ = await private_relay(nodes, tmp_path)
        with pytest.raises(RelayError, match=f"answered {PERMISSION_DENIED}$"):
            await reserve_as_stranger(relay, naming="bob")
        assert relay.network.host.stats["relay_reservations_impersonating"] == 1


async def test_a_revoked_member_is_not_dialled_through_the_relay(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        relay, bob = await private_relay(nodes, tmp_path)
        revocation = Revocation.issue(ALICE, space=SPACE, subject=bob.identity.public_key, issued_ms=NOW_MS, parents=(GRANTS[1].hash,))
        relay.repo.add_capability_records(SPACE, [revocation.encode()])
        async with open_host(identity_of("carol"), TCP) as carol:
            with trio.fail_after(STEP_TIMEOUT_S), pytest.raises(RelayError):
                await carol.connect(circuit_addr(relay.addr(), bob.peer_id))
        assert relay.network.host.stats["relay_circuits_refused"] >= 1


async def test_a_relay_holding_an_open_space_serves_anyone_and_one_holding_nothing_nobody(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        prepare(tmp_path, "open-relay", genesis=genesis_of("relay", "lobby"))
        open_relay = await nodes.start("open-relay", relay=True)
        await reserve_as_stranger(open_relay)  # granted: it returns once the slot is held
        empty_relay = await nodes.start("empty-relay", relay=True)
        with pytest.raises(RelayError, match="PERMISSION_DENIED"):
            await reserve_as_stranger(empty_relay)
