"""Scenario 2 of issue 18: two hosts, each behind a NAT router of its own (nftables masquerade,
connections from outside dropped), and one relay host on the public LAN between them. Neither
NATed host can be dialled by anyone; each can dial the relay. The relay's node makes a private
space and serves as a circuit relay (``up --relay``); the two others join it by ticket (the
ticket names the relay's public address), sync live, then edit offline, come back and converge.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from api_helpers import distspace
from benchmarks.netns_topology import Topology
from e2e_helpers import Client, client, wait_converged
from netns_helpers import Node, peer_id, running, until

OFFLINE_EDITS = 3


def nat_topology(net: Topology, root: Path) -> tuple[Node, Node, Node]:
    """relay on 198.18.0.0/24 (public); alice behind nat-a on 198.18.1.0/24, bob behind nat-b
    on 198.18.2.0/24. Shared with benchmarks/netns.py through the same shape."""
    public = net.lan("public", "198.18.0.0/24")
    home_a, home_b = net.lan("homea", "198.18.1.0/24"), net.lan("homeb", "198.18.2.0/24")
    relay = Node(net.host("relay", public), root / "relay")
    net.router("nata", home_a, public)
    net.router("natb", home_b, public)
    return relay, Node(net.host("alice", home_a), root / "alice"), Node(net.host("bob", home_b), root / "bob")


async def test_two_hosts_behind_their_own_nats_join_by_ticket_and_sync_through_a_relay(tmp_path: Path) -> None:
    with Topology() as net:
        relay, alice_n, bob_n = nodes = nat_topology(net, tmp_path)
        assert alice_n.host.run("ping", "-c1", "-W1", bob_n.host.address, check=False).returncode != 0  # no route between them
        distspace(relay.home, "init", "team")
        for node in nodes:
            distspace(node.home, "id")
            node.peer_id = peer_id(node.home)
        with running(list(nodes)):
            relay_d = relay.start("--no-mdns", "--relay")
            alice_d = alice_n.start("--no-mdns", "--peer", relay.dial)
            bob_d = bob_n.start("--no-mdns", "--peer", relay.dial)
            for node in (alice_n, bob_n):
                ticket = json.loads(distspace(relay.home, "invite", "--json", "--role", "write").stdout)
                assert all(relay.host.address in a for a in ticket["addrs"]), ticket  # the relay's public address
                joined = json.loads(distspace(node.home, "join", ticket["ticket"], "--json").stdout)
                assert joined["status"] == "joined", joined
            async with client(relay_d) as hub, client(alice_d) as alice, client(bob_d) as bob:
                await alice.write("alice.md", "from alice\n")
                await bob.until(lambda: _has(bob, "alice.md"))
                await bob.splice("alice.md", 0, "[bob] ")
                await alice.splice("alice.md", 0, "[alice] ")
                await wait_converged([alice, bob, hub], ["[bob] ", "[alice] ", "from alice"], "alice.md")
            for node in (alice_n, bob_n):
                assert node.daemon is not None and node.daemon.stop(signal.SIGTERM) == 0
                node.daemon = None
            for node in (alice_n, bob_n):  # offline, through the store: no daemon runs
                for i in range(OFFLINE_EDITS):
                    current = distspace(node.home, "cat", "alice.md").stdout
                    distspace(node.home, "write", "alice.md", input=current + f"{node.name} offline {i}\n".encode())
                distspace(node.home, "write", f"{node.name}-offline.md", input=node.name.encode())
            alice_d = alice_n.start("--no-mdns", "--peer", relay.dial)
            bob_d = bob_n.start("--no-mdns", "--peer", relay.dial)
            async with client(alice_d) as alice, client(bob_d) as bob:
                markers = [f"{n} offline {i}\n" for n in ("alice", "bob") for i in range(OFFLINE_EDITS)]
                await wait_converged([alice, bob], markers, "alice.md")
                for each in (alice, bob):
                    await each.until(lambda each=each: _has_all(each, {"alice-offline.md", "bob-offline.md"}))
                assert await alice.files() == await bob.files()
                assert (await alice.verify())["ok"] and (await bob.verify())["ok"]


async def _has(each: Client, path: str) -> bool:
    return await each.read(path) is not None


async def _has_all(each: Client, paths: set[str]) -> bool:
    return paths <= set(await each.files())


async def test_a_host_behind_nat_is_dialled_through_its_relay_by_a_host_behind_another(tmp_path: Path) -> None:
    """Alice, behind her NAT, makes the space; the relay host joins it by her relay ticket. Her
    config says she is not reachable and names the relay: she reserves a slot on it and her
    ticket's first address is her circuit. Bob, behind his own NAT, knows nothing but that
    ticket: he dials her through ``/p2p-circuit`` and they sync, live and after offline edits."""
    with Topology() as net:
        relay, alice_n, bob_n = nodes = nat_topology(net, tmp_path)
        distspace(alice_n.home, "init", "team")
        relay_ticket = json.loads(distspace(alice_n.home, "invite", "--role", "relay", "--json").stdout)["ticket"]
        distspace(relay.home, "join", relay_ticket)
        distspace(bob_n.home, "id")
        for node in nodes:
            node.peer_id = peer_id(node.home)
        config = alice_n.home / "config.toml"
        config.write_text(config.read_text() + f'reachability = "private"\nrelays = ["{relay.dial}"]\n')
        circuit = f"{relay.dial}/p2p-circuit/p2p/{alice_n.peer_id}"
        with running(list(nodes)):
            relay.start("--no-mdns", "--relay")
            alice_d = alice_n.start("--no-mdns")
            await until(lambda: _reachable_first(alice_n.home, circuit))
            ticket = json.loads(distspace(alice_n.home, "invite", "--role", "write", "--json").stdout)
            assert ticket["addrs"][0] == circuit, ticket
            distspace(bob_n.home, "join", ticket["ticket"])
            bob_d = bob_n.start("--no-mdns")
            async with client(alice_d) as alice, client(bob_d) as bob:
                await alice.write("plan.md", "from behind the NAT\n")
                await bob.until(lambda: _has(bob, "plan.md"))
                relayed = [p for p in (await bob.api.call("node.peers"))["peers"] if p["peer_id"] == alice_n.peer_id]
                assert relayed and all("/p2p-circuit" in a for a in relayed[0]["addrs"]), relayed
                await bob.splice("plan.md", 0, "[bob] ")
                await alice.splice("plan.md", 0, "[alice] ")
                await wait_converged([alice, bob], ["[bob] ", "[alice] ", "from behind the NAT"], "plan.md")
            bob_n.stop()
            for i in range(OFFLINE_EDITS):  # offline, through Bob's store
                current = distspace(bob_n.home, "cat", "plan.md").stdout
                distspace(bob_n.home, "write", "plan.md", input=current + f"bob offline {i}\n".encode())
            bob_d = bob_n.start("--no-mdns")
            async with client(alice_d) as alice, client(bob_d) as bob:
                await alice.splice("plan.md", 0, "[alice again] ")
                markers = [f"bob offline {i}\n" for i in range(OFFLINE_EDITS)] + ["[alice again] "]
                await wait_converged([alice, bob], markers, "plan.md")
                assert (await alice.verify())["ok"] and (await bob.verify())["ok"]


async def _reachable_first(home: Path, circuit: str) -> bool:
    reachable = json.loads(distspace(home, "--json", "status").stdout)["reachable"]
    return bool(reachable) and reachable[0] == circuit
