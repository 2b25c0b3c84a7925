"""A peer inventing presence client names cannot grow what we hold: real relays on libp2p hosts.

Mallory names a new client in every update, all within her rate burst; Bob's relay
keeps at most MAX_PRESENCE_PER_PEER of hers (her oldest go, as removals), and Carol's honest
cursor still reaches him. And a client's presence positions outside the text, or relative to
heads its node does not hold, are refused naming the param.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from api_helpers import connect
from e2e_helpers import create_space, daemon
from node.presence import MAX_PRESENCE_PER_PEER, PRESENCE_BURST, PresenceRelay, PresenceUpdate
from node.rpc import INVALID_PARAMS, RpcError
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


async def test_presence_positions_outside_the_text_or_at_unknown_heads_are_refused_naming_the_param(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    create_space(home)
    with daemon(home) as alice_d:
        async with connect(alice_d, "unix") as alice:
            await alice.call("fs.write", path="notes.md", text="😀 hi")
            await alice.call("fs.write", path="blob.bin", base64="AAE=")
            await alice.call("doc.open", path="notes.md")  # utf-16: the emoji is units 0 and 1
            refused = [
                ({"cursor": 6}, "params.cursor", "InvalidParams"),  # 5 units long
                ({"selection": [1, 3]}, "params.selection[0]", "InvalidParams"),  # inside the emoji
                ({"cursor": 0, "base": ["ab" * 32]}, "params.base", "UnknownBase"),
                ({"cursor": 0, "path": "blob.bin", "base": ["ab" * 32]}, "params.base", "InvalidParams"),  # not a text file
            ]
            for params, named, error in refused:
                with pytest.raises(RpcError) as raised:
                    await alice.call("presence.set", **{"client": "vim", "path": "notes.md", **params})
                assert raised.value.code == INVALID_PARAMS and raised.value.name == error
                assert raised.value.message.startswith(f"presence.set: {named}: "), raised.value.message
            assert (await alice.call("presence.list"))["presence"] == []
            shown = await alice.call("presence.set", client="vim", path="gone.md", cursor=3)  # no such file: a count, as given
            assert (shown["cursor"], shown["buffer"]) == (3, None)
