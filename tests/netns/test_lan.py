"""Scenario 1 of issue 18: three hosts on one LAN find each other by mDNS and converge.

No flags at all: each daemon listens where ``init``/``join`` configured it (every interface, on
a port chosen once: node/config.py), which puts mDNS on the LAN rather than on loopback
(node/discovery.py), and learns the others only from mDNS; it announces its LAN address.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.netns_topology import Topology
from e2e_helpers import Client, client, create_space, wait_converged
from netns_helpers import Node, join_all, running

NAMES = ("alice", "bob", "carol")
EDITS = 10


async def test_three_hosts_on_one_lan_find_each_other_by_mdns_and_converge(tmp_path: Path) -> None:
    with Topology() as net:
        lan = net.lan("office", "198.18.0.0/24")
        nodes = [Node(net.host(name, lan), tmp_path / name) for name in NAMES]
        space = create_space(nodes[0].home)
        join_all(nodes, space)
        with running(nodes):
            daemons = [node.start(listen=False) for node in nodes]
            for node, each in zip(nodes, daemons, strict=True):
                assert any(f"/ip4/{node.host.address}/" in a for a in each.ready["addrs"]), each.ready
            async with client(daemons[0]) as alice, client(daemons[1]) as bob, client(daemons[2]) as carol:
                everyone = [alice, bob, carol]
                ids = {node.peer_id for node in nodes}
                for node, each in zip(nodes, everyone, strict=True):

                    async def sees_the_others(each: Client = each, own: str = node.peer_id) -> bool:
                        return set(await each.peers()) == ids - {own}

                    await each.until(sees_the_others)
                await alice.write("shared.txt", "")
                for each in everyone:
                    await each.until(lambda each=each: _exists(each, "shared.txt"))
                for i in range(EDITS):
                    for name, each in zip(NAMES, everyone, strict=True):
                        await each.splice("shared.txt", 0, f"<{name}{i}>")
                markers = [f"<{name}{i}>" for name in NAMES for i in range(EDITS)]
                await wait_converged(everyone, markers, "shared.txt")
                for each in everyone:
                    assert (await each.verify())["ok"]


async def _exists(each: Client, path: str) -> bool:
    return await each.read(path) is not None
