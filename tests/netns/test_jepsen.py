"""Scenario 3 of issue 18, Jepsen-style: five hosts on one LAN, a nemesis partitioning,
cutting links, healing and killing and restarting daemons while a client per host keeps
writing through its own daemon; then everything heals. Afterwards every daemon holds every
acknowledged write (an ``fs.splice`` whose reply came back) and, with the daemons stopped,
every store holds identical heads for every doc.

The nemesis's choices come from a fixed seed (printed on failure through the history); the
time it runs is bounded (``NEMESIS_S``) to keep CI cost down; DISTSPACE_JEPSEN_S (and
DISTSPACE_JEPSEN_SEED) run it longer (the issue's "a few minutes") or with another seed by
hand. Nothing is asserted about timing: only what every node holds once the network is whole.
"""

from __future__ import annotations

import os
import random
from contextlib import AsyncExitStack
from pathlib import Path

import trio

from api_helpers import connect
from benchmarks.netns_topology import Topology
from e2e_helpers import Client, client, create_space
from netns_helpers import Node, join_all, running, stored_heads, until
from node.rpc import RpcError

SEED = int(os.environ.get("DISTSPACE_JEPSEN_SEED", "18"))
HOSTS = ("h1", "h2", "h3", "h4", "h5")
NEMESIS_S = float(os.environ.get("DISTSPACE_JEPSEN_S", "25"))  # how long the faults go on (CI cost ≤ ~60 s with start-up and convergence)
NEMESIS_PACE_S = 1.5  # between two faults
WRITE_PACE_S = 0.1  # between two writes of one client
# After the last heal: redials back off up to 30 s (node/discovery.py Backoff.max_s), then sync.
HEALED_TIMEOUT_S = 120.0
PATH = "shared.txt"


async def test_five_hosts_under_partitions_and_restarts_keep_every_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    history: list[str] = []
    acked: list[str] = []
    with Topology() as net:
        lan = net.lan("jepsen", "198.18.8.0/24")
        nodes = [Node(net.host(name, lan), tmp_path / name) for name in HOSTS]
        join_all(nodes, create_space(nodes[0].home))

        def start(node: Node) -> None:
            others = [a for other in nodes if other is not node for a in ("--peer", other.dial)]
            node.start("--no-mdns", *others)

        with running(nodes):
            for node in nodes:
                start(node)
            async with AsyncExitStack() as stack:
                every = [await stack.enter_async_context(client(node.daemon)) for node in nodes if node.daemon is not None]
                await every[0].write(PATH, "")
                for each in every:
                    await each.until(lambda each=each: _exists(each))
            stop = trio.Event()

            async def writer(node: Node) -> None:
                count = 0
                while not stop.is_set():
                    daemon = node.daemon
                    if daemon is None:
                        await trio.sleep(WRITE_PACE_S)  # noqa: sleep — the client waits out its daemon's restart
                        continue
                    try:
                        async with connect(daemon, "unix") as api:
                            while not stop.is_set() and node.daemon is daemon:
                                marker = f"<{node.name}-{count}>"
                                count += 1
                                await api.call("fs.splice", path=PATH, position=0, delete=0, insert=marker)
                                acked.append(marker)
                                await trio.sleep(WRITE_PACE_S)  # noqa: sleep — the client's writing pace
                    except (OSError, trio.BrokenResourceError, trio.TooSlowError, AssertionError, RpcError):
                        if node.daemon is daemon and daemon.process.poll() is None:
                            raise  # its daemon runs on: a real failure, not the nemesis's
                        # killed under it: the write in flight was not acknowledged

            async def nemesis() -> None:
                deadline = trio.current_time() + NEMESIS_S
                while trio.current_time() < deadline:
                    action = rng.choice(("partition", "partition", "heal", "cut", "restart"))
                    if action == "partition":
                        order = rng.sample(nodes, len(nodes))
                        split = rng.randint(1, len(nodes) - 1)
                        net.partition([n.host for n in order[:split]], [n.host for n in order[split:]])
                        history.append(f"partition {[n.name for n in order[:split]]} | {[n.name for n in order[split:]]}")
                    elif action == "heal":
                        _heal(net)
                        history.append("heal")
                    elif action == "cut":
                        link = rng.choice(net.links())
                        link.cut()
                        history.append(f"cut {link.host.name}")
                    else:
                        victim = rng.choice(nodes)
                        victim.kill()
                        history.append(f"kill {victim.name}")
                        await trio.sleep(NEMESIS_PACE_S)  # noqa: sleep — the time it stays down
                        await trio.to_thread.run_sync(start, victim)
                        history.append(f"restart {victim.name}")
                    await trio.sleep(NEMESIS_PACE_S)  # noqa: sleep — the nemesis's pace
                stop.set()

            async with trio.open_nursery() as nursery:
                for node in nodes:
                    nursery.start_soon(writer, node)
                nursery.start_soon(nemesis)
            _heal(net)
            history.append("heal (final)")
            assert acked, history
            async with AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(client(node.daemon)) for node in nodes if node.daemon is not None]
                assert len(clients) == len(nodes)

                async def everyone_has_every_write() -> bool:
                    for each in clients:
                        text = await each.read(PATH)
                        if text is None or any(marker not in text for marker in acked):
                            return False
                    return True

                async def same_heads() -> bool:
                    heads = [(await each.api.call("fs.stat", path=PATH))["heads"] for each in clients]
                    stats = [[(s["docs"], s["changes"]) for s in (await each.api.call("node.stats"))["spaces"]] for each in clients]
                    return all(sorted(h) == sorted(heads[0]) for h in heads) and all(s == stats[0] for s in stats)

                await until(everyone_has_every_write, HEALED_TIMEOUT_S)
                await until(same_heads, HEALED_TIMEOUT_S)
                for each in clients:
                    assert (await each.verify())["ok"]
            for node in nodes:
                node.stop()
        heads = [stored_heads(node.home) for node in nodes]
        assert all(h == heads[0] for h in heads), history
        print(f"{len(acked)} acknowledged writes; nemesis: {history}")


def _heal(net: Topology) -> None:
    net.heal_partition()
    for link in net.links():
        link.heal()


async def _exists(each: Client) -> bool:
    return await each.read(PATH) is not None
