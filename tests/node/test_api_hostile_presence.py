"""A peer inventing presence client names cannot grow what we hold: real relays on libp2p hosts.

Mallory names a new client in every update, all within her rate burst; Bob's relay
keeps at most MAX_PRESENCE_PER_PEER of hers (her oldest go, as removals), and Carol's honest
cursor still reaches him.
"""

from __future__ import annotations

from pathlib import Path

from node.presence import MAX_PRESENCE_PER_PEER, PRESENCE_BURST, PresenceRelay, PresenceUpdate
from sync_helpers import cluster, genesis_of

# More names than the bound, all inside the rate burst: no update is dropped for rate.
NAMES = MAX_PRESENCE_PER_PEER + 8
assert NAMES <= PRESENCE_BURST


async def test_a_flood_of_client_names_keeps_only_the_newest_per_peer(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        bob = await nodes.start("bob", [genesis])
        mallory = await nodes.start("mallory", [genesis], peers=[bob.addr()])
        carol = await nodes.start("carol", [genesis], peers=[bob.addr()])
        await nodes.until(lambda: bob.syncing_with(mallory, space) and bob.syncing_with(carol, space))
        shown: dict[tuple[str, str], PresenceUpdate] = {}  # what bob's node shows, as network.py keeps it
        heard: list[tuple[str, PresenceUpdate]] = []

        def on_remote(peer_id: str, update: PresenceUpdate) -> None:
            heard.append((peer_id, update))
            if update.removed:
                shown.pop((peer_id, update.client), None)
            else:
                shown[peer_id, update.client] = update
            nodes.signal.poke()

        await nodes.nursery.start(PresenceRelay(bob.network, on_remote).run)
        flood = PresenceRelay(mallory.network, lambda *_: None)
        await nodes.nursery.start(flood.run)
        honest = PresenceRelay(carol.network, lambda *_: None)
        await nodes.nursery.start(honest.run)
        for index in range(NAMES):
            client = f"client-{index}"
            flood.publish(PresenceUpdate(space, client, "notes.md", index))
            await nodes.until(lambda: (mallory.peer_id, client) in shown)  # noqa: B023 - awaited here
            assert sum(peer == mallory.peer_id for peer, _ in shown) <= MAX_PRESENCE_PER_PEER
        kept = {client for peer, client in shown if peer == mallory.peer_id}
        assert kept == {f"client-{index}" for index in range(NAMES - MAX_PRESENCE_PER_PEER, NAMES)}
        removed = [update.client for peer, update in heard if peer == mallory.peer_id and update.removed]
        assert removed == [f"client-{index}" for index in range(NAMES - MAX_PRESENCE_PER_PEER)]
        honest.publish(PresenceUpdate(space, "vim", "notes.md", 7, name="Carol"))
        await nodes.until(lambda: (carol.peer_id, "vim") in shown)
        assert shown[carol.peer_id, "vim"].cursor == 7
