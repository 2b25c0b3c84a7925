"""Mallory, a raw libp2p client (no Network, no Replicator), attacks Alice while Bob edits.

Each attack comes from a key of its own, since the first one gets its key banned. Alice must
drop the attacker, keep syncing with Bob, and hold nothing of what the attacker sent.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from benchmarks.mallory import ATTACKS, OFFENSES, attack, closed_by_peer, hello, mallory, mallory_stream
from node.errors import NodeError
from node.events import SessionOpened
from node.host import SYNC_PROTOCOL, open_host
from node.network import NetworkOptions
from node.sync_driver import DriverLimits
from sync_helpers import FAST_SYNC, NOW_MS, TCP_ONLY, cluster, genesis_of


async def test_attackers_are_banned_while_alice_keeps_syncing_with_bob(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    options = NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC)
    async with cluster(tmp_path, options) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: bob.syncing_with(alice, space))
        for round_, name in enumerate(ATTACKS):
            await attack(name, space, alice.addr())
            mallory_id = mallory(name).peer_id
            await nodes.until(lambda mallory_id=mallory_id: bool(alice.penalties(mallory_id)))
            await nodes.until(lambda mallory_id=mallory_id: mallory_id not in alice.network.host.connected_peers())
            bob.workspace(space).write(f"after-{name}.txt", f"round {round_}", now_ms=NOW_MS)
            await nodes.until(lambda name=name: alice.workspace(space).exists(f"after-{name}.txt"))
        offenses = {p.offense for p in alice.penalties()}
        assert offenses == set(OFFENSES.values())
        assert all(p.banned for p in alice.penalties())
        assert not alice.repo.verify()
        await nodes.converged(space)

        # A banned key that comes back is refused for its ban: its connection is refused as
        # banned, no session opens, and not one frame (not even Alice's Hello) reaches it.
        banned_id = mallory("garbage").peer_id
        received = 0
        async with open_host(mallory("garbage"), TCP_ONLY) as host:
            await host.connect(alice.addr())
            try:
                frames = await host.open_stream(alice.peer_id, SYNC_PROTOCOL)
                await frames.send_bytes(hello("garbage", space))
                received = await closed_by_peer(frames)
            except NodeError:
                pass  # dropped even before the stream opened
        await nodes.until(lambda: alice.network.stats["connections_refused_banned"] == 1)
        assert received == 0
        assert not any(opened.peer_id == banned_id for opened in alice.reports(SessionOpened))
        assert alice.repo.doc_ids(space) == bob.repo.doc_ids(space)


async def test_a_peer_that_stops_reading_is_dropped_without_stalling_the_others(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    limits = DriverLimits(send_queue_bytes_max=8 * 1024 * 1024, write_stall_s=3.0)
    # Mallory stays silent: only the stalled write may end her session, not the peer timeout.
    sync = replace(FAST_SYNC, peer_timeout_ms=60_000)
    options = NetworkOptions(listen=TCP_ONLY, sync=sync, limits=limits)
    async with cluster(tmp_path, options) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        # 6 MB of random bytes: more than a py-libp2p peer buffers (~4 MB) without reading.
        rng = random.Random(3)
        for i in range(3):
            alice.workspace(space).write(f"blob{i}.bin", rng.randbytes(2_000_000), now_ms=NOW_MS)
        await nodes.converged(space)
        slow_id = mallory("slow").peer_id
        async with mallory_stream("slow", alice.addr()) as frames:
            await frames.send_bytes(hello("slow", space))  # ...and never reads again
            await nodes.until(lambda: any(s["peer_id"] == slow_id and s["queued_bytes"] > 0 for s in alice.network.driver.sessions()))
            alice.workspace(space).write("live.txt", "still live", now_ms=NOW_MS)
            await nodes.until(lambda: bob.workspace(space).exists("live.txt"), timeout_s=limits.write_stall_s)
            assert any(s["peer_id"] == slow_id for s in alice.network.driver.sessions()), "bob was served while mallory stalled"
            await nodes.until(lambda: alice.network.driver.stats["slow_peer_disconnects"] == 1)
            await nodes.until(lambda: not any(s["peer_id"] == slow_id for s in alice.network.driver.sessions()))
        assert alice.network.driver.queued_bytes == 0
