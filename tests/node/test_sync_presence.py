"""Presence between peers: the message format, two relays on real libp2p hosts, and cursors
that stay on their character across three real daemons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from api_helpers import ApiConnection, connect
from e2e_helpers import CONVERGE_TIMEOUT_S, addr, create_space, daemon, join
from node.presence import PresenceRelay, PresenceUpdate
from protocol import cbor
from protocol.errors import WireError
from sync_helpers import cluster, genesis_of, identity_of

SPACE = bytes(range(32))


CURSOR = "12@" + "ab" * 16  # an Automerge cursor's form: op counter @ actor


def test_presence_updates_round_trip() -> None:
    for update in (
        PresenceUpdate(SPACE, "vim", "src/main.py", 120, (100, 120), "Alice"),
        PresenceUpdate(SPACE, "vim", "src/main.py", CURSOR, ("-3@" + "01" * 16, "e"), "Alice"),
        PresenceUpdate(SPACE, "agent-1"),
        PresenceUpdate(SPACE, "vim", removed=True),
    ):
        assert PresenceUpdate.decode(update.encode()) == update


def test_counts_only_go_as_version_1_which_older_peers_read() -> None:
    assert cbor.loads_canonical(PresenceUpdate(SPACE, "vim", "a.py", 3, (1, 3)).encode(), "test")[0] == 1
    assert cbor.loads_canonical(PresenceUpdate(SPACE, "vim", "a.py", 3, (CURSOR, 3)).encode(), "test")[0] == 2


@pytest.mark.parametrize(
    "fields",
    [
        [3, SPACE, "vim", [], [], [], [], False],  # a version we do not speak
        [1, SPACE, "vim", [], [CURSOR], [], [], False],  # a cursor in a version 1 message
        [2, SPACE, "vim", [], ["12@" + "ab" * 65], [], [], False],  # a cursor too long
        [2, SPACE, "vim", [], ["12@xyz"], [], [], False],  # not a cursor's form
        [2, SPACE, "vim", [], [], [[CURSOR, "\u00e9"]], [], False],  # nor this
        [2, SPACE, "vim", [], [True], [], [], False],  # a boolean is no position
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


async def _next(api: ApiConnection, method: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first notification of ``method`` whose params satisfy ``done``."""
    with trio.fail_after(CONVERGE_TIMEOUT_S):
        while True:
            message = await api.notification()
            if message["method"] == method and done(message["params"]):
                return message["params"]


async def _text_with(api: ApiConnection, path: str, marker: str) -> str:
    """``path``'s text once it holds ``marker``, waiting on the connection's doc.changed."""
    while marker not in (text := (await api.call("fs.read", path=path))["text"]):
        await _next(api, "doc.changed", lambda _: True)
    return text


async def test_a_cursor_stays_on_its_character_while_others_type_before_it(tmp_path: Path) -> None:
    """Alice puts her cursor and selection on "world" at the version her editor holds (UTF-16,
    a stale base); Bob types before it, twice; Carol's node resolves them in its own copy: on
    "world" still, in code points and in her editor's UTF-8."""
    homes = {name: tmp_path / name for name in ("alice", "bob", "carol")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    join(homes["carol"], team)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        with daemon(homes["carol"], "--peer", addr(alice_d)) as carol_d:
            async with connect(alice_d, "unix") as alice, connect(bob_d, "unix") as bob, connect(carol_d, "unix") as carol:
                for other in (bob, carol):
                    await other.call("subscribe.tree")
                await alice.call("fs.write", path="notes.md", text="😀 hello world")
                opened = await alice.call("doc.open", path="notes.md")  # utf-16: the emoji is 2 units
                for other in (bob, carol):
                    await _next(other, "tree.changed", lambda p: any(c["path"] == "notes.md" for c in p["changes"]))
                await carol.call("subscribe.presence")
                await carol.call("doc.open", path="notes.md", encoding="utf-8")
                await bob.call("fs.splice", path="notes.md", position=0, delete=0, insert="oh, ")
                await _text_with(alice, "notes.md", "oh, ")  # alice's node has it; her editor's base is older
                shown = await alice.call(
                    "presence.set", client="vim", path="notes.md", cursor=9, selection=[9, 14], base=opened["heads"], name="Alice"
                )
                text = (await alice.call("fs.read", path="notes.md"))["text"]
                assert text == "oh, 😀 hello world" and shown["cursor"] == text.index("w") and shown["selection"] == [12, 17]

                def on_world(entry: dict[str, Any], text: str) -> bool:
                    return entry["cursor"] == text.index("w") and entry["selection"] == [text.index("w"), len(text)]

                await _next(carol, "presence.changed", lambda p: p["presence"]["client"] == "vim")
                await bob.call("fs.splice", path="notes.md", position=4, delete=0, insert="ah, ")
                text = await _text_with(carol, "notes.md", "ah, ")
                assert text == "oh, ah, 😀 hello world"
                [entry] = (await carol.call("presence.list"))["presence"]
                assert entry["peer_id"] == alice_d.ready["peer_id"] and on_world(entry, text)
                utf8 = len(text[: text.index("w")].encode())
                assert entry["buffer"] == {"encoding": "utf-8", "heads": entry["buffer"]["heads"], "cursor": utf8, "selection": [utf8, utf8 + 5]}
                assert entry["buffer"]["heads"] == (await carol.call("fs.read", path="notes.md"))["heads"]
                [on_bobs] = (await bob.call("presence.list"))["presence"]  # bob has no editor open: code points only
                assert on_world(on_bobs, text) and on_bobs["buffer"] is None
