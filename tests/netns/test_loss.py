"""Scenario 4 of issue 18: 5% of the packets dropped on every link, each way; live edits still
arrive. TCP retransmits what nftables drops (``numgen random mod 100 < 5 drop`` at both ends'
ingress); what the test checks is that the daemons' sync rides it out, not how fast."""

from __future__ import annotations

from pathlib import Path

from benchmarks.netns_topology import Topology
from e2e_helpers import Client, client, create_space, wait_converged
from netns_helpers import Node, join_all, running

LOSS_PERCENT = 5
NAMES = ("alice", "bob", "carol")
EDITS = 15


async def test_live_edits_arrive_with_five_percent_loss_on_every_link(tmp_path: Path) -> None:
    with Topology() as net:
        lan = net.lan("lossy", "198.18.4.0/24")
        nodes = [Node(net.host(name, lan), tmp_path / name) for name in NAMES]
        join_all(nodes, create_space(nodes[0].home))
        for link in net.links():
            link.loss(LOSS_PERCENT)
        with running(nodes):
            alice_d = nodes[0].start("--no-mdns")
            bob_d = nodes[1].start("--no-mdns", "--peer", nodes[0].dial)
            carol_d = nodes[2].start("--no-mdns", "--peer", nodes[0].dial, "--peer", nodes[1].dial)
            async with client(alice_d) as alice, client(bob_d) as bob, client(carol_d) as carol:
                everyone = [alice, bob, carol]
                await alice.write("live.txt", "")
                markers = []
                for i in range(EDITS):
                    for name, each in zip(NAMES, everyone, strict=True):
                        if await each.read("live.txt") is None:
                            await each.until(lambda each=each: _has(each))
                        await each.splice("live.txt", 0, f"<{name}{i}>")
                        markers.append(f"<{name}{i}>")
                await wait_converged(everyone, markers, "live.txt")
                for each in everyone:
                    assert (await each.verify())["ok"]


async def _has(each: Client) -> bool:
    return await each.read("live.txt") is not None
