"""Presence between peers: the message format, and two relays on real libp2p hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.presence import PresenceRelay, PresenceUpdate
from protocol import cbor
from protocol.errors import WireError
from sync_helpers import cluster, genesis_of, identity_of

SPACE = bytes(range(32))


def test_presence_updates_round_trip() -> None:
    for update in (
        PresenceUpdate(SPACE, "vim", "src/main.py", 120, (100, 120), "Alice"),
        PresenceUpdate(SPACE, "agent-1"),
        PresenceUpdate(SPACE, "vim", removed=True),
    ):
        assert PresenceUpdate.decode(update.encode()) == update


@pytest.mark.parametrize(
    "fields",
    [
        [2, SPACE, "vim", [], [], [], [], False],  # a version we do not speak
        [1, SPACE[:31], "vim", [], [], [], [], False],  # not a space id
        [1, SPACE, "", [], [], [], [], False],  # no client
        [1, SPACE, "v" * 65, [], [], [], [], False],  # client too long
        [1, SPACE, "vim", ["a", "b"], [], [], [], False],  # two paths
        [1, SPACE, "vim", [], [-1], [], [], False],  # negative cursor
        [1, SPACE, "vim", [], [], [[1]], [], False],  # half a selection
        [1, SPACE, "vim", [], [], [], ["n" * 129], False],  # name too long
    ],
)
def test_malformed_presence_is_refused(fields: list[object]) -> None:
    with pytest.raises(WireError):
        PresenceUpdate.decode(cbor.dumps(fields))


async def test_a_cursor_reaches_the_peer_syncing_the_space_under_the_senders_id(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: alice.syncing_with(bob, space) and bob.syncing_with(alice, space))
        seen: list[tuple[str, PresenceUpdate]] = []

        def on_remote(peer_id: str, update: PresenceUpdate) -> None:
            seen.append((peer_id, update))
            nodes.signal.poke()

        await nodes.nursery.start(PresenceRelay(bob.network, on_remote).run)
        alice_relay = PresenceRelay(alice.network, lambda *_: None)
        await nodes.nursery.start(alice_relay.run)
        for cursor in range(50):  # a fast cursor: coalesced, the newest always arrives
            alice_relay.publish(PresenceUpdate(space, "vim", "notes.md", cursor))
        await nodes.until(lambda: bool(seen) and seen[-1][1].cursor == 49)
        assert all(peer_id == identity_of("alice").peer_id for peer_id, _ in seen)
        assert len(seen) < 50
