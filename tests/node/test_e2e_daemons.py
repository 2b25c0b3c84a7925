"""The acceptance scenarios on real daemons: ``distspace up`` processes on 127.0.0.1.

Every daemon is a process of its own with its own home; the test talks to each through its
local API (edits, reads, verify) and waits on the API's notifications. Processes are killed in
``finally`` whatever happens (``api_helpers.running_daemon``).
"""

from __future__ import annotations

import signal
from pathlib import Path

import trio

from api_helpers import connect, distspace
from benchmarks.mallory import ATTACKS, OFFENSES, attack, mallory
from e2e_helpers import Client, addr, client, create_space, daemon, join, wait_converged


async def test_three_daemons_converge_and_a_killed_one_catches_up(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("alice", "bob", "carol")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    join(homes["carol"], team)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        carol_args = ("--peer", addr(alice_d), "--peer", addr(bob_d))
        with daemon(homes["carol"], *carol_args) as carol_d:
            async with client(alice_d) as alice, client(bob_d) as bob, client(carol_d) as carol:
                everyone = {"alice": alice, "bob": bob, "carol": carol}
                await alice.write("shared.txt", "")
                for each in (bob, carol):
                    await each.until(lambda each=each: _exists(each, "shared.txt"))

                async def type_into(name: str, editor: Client) -> None:
                    await editor.write(f"{name}.txt", f"{name}'s file\n")
                    for i in range(15):
                        await editor.splice("shared.txt", 0, f"<{name}{i}>")

                async with trio.open_nursery() as typing:  # all three type at once
                    for name, editor in everyone.items():
                        typing.start_soon(type_into, name, editor)
                markers = [f"<{n}{i}>" for n in everyone for i in range(15)]
                await wait_converged(list(everyone.values()), markers, "shared.txt")
                own_files = {f"{n}.txt" for n in everyone}
                for each in everyone.values():
                    await each.until(lambda each=each: _has_files(each, own_files))

            carol_d.process.send_signal(signal.SIGKILL)
            carol_d.process.wait()
        async with client(alice_d) as alice, client(bob_d) as bob:
            for i in range(10):
                await alice.splice("shared.txt", 0, f"[a{i}]")
                await bob.splice("shared.txt", 0, f"[b{i}]")
            await bob.write("while-carol-was-dead.txt", "missed it")
            markers += [f"[{p}{i}]" for p in "ab" for i in range(10)]
            await wait_converged([alice, bob], markers, "shared.txt")
            with daemon(homes["carol"], *carol_args) as carol_d:
                async with client(carol_d) as carol:
                    text = await wait_converged([alice, bob, carol], markers, "shared.txt")
                    await carol.until(lambda: _has_files(carol, {"while-carol-was-dead.txt"}))
                    assert all(marker in text for marker in markers)
                    for each in (alice, bob, carol):
                        assert (await each.verify())["ok"]


async def test_two_daemons_stopped_and_edited_offline_keep_every_edit(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    shared = ("notes.txt", "todo.txt")
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with client(alice_d) as alice, client(bob_d) as bob:
            for path in shared:
                await alice.write(path, "base\n")
            await bob.until(lambda: _has_files(bob, set(shared)))
        for each in (alice_d, bob_d):
            assert each.stop(signal.SIGTERM) == 0
    # Offline, through the store (no daemon runs): each appends lines of its own to both files.
    for name in ("alice", "bob"):
        for path in shared:
            for i in range(2):
                current = distspace(homes[name], "cat", path).stdout
                distspace(homes[name], "write", path, input=current + f"{name} {path} {i}\n".encode())
        distspace(homes[name], "write", f"{name}-only.txt", input=name.encode())
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with client(alice_d) as alice, client(bob_d) as bob:
            for path in shared:
                markers = [f"{n} {path} {i}\n" for n in ("alice", "bob") for i in range(2)]
                await wait_converged([alice, bob], markers, path)
            for each in (alice, bob):
                await each.until(lambda each=each: _has_files(each, {"alice-only.txt", "bob-only.txt", *shared}))
            assert await alice.files() == await bob.files()
            assert (await alice.verify())["ok"] and (await bob.verify())["ok"]


async def test_peers_that_reach_only_a_relay_daemon_sync_through_it(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("relay", "alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["relay"], team)
    join(homes["bob"], team)
    with daemon(homes["relay"], "--relay") as relay_d:
        relay_addr = addr(relay_d)
        with daemon(homes["alice"], "--peer", relay_addr) as alice_d, daemon(homes["bob"], "--peer", relay_addr) as bob_d:
            async with client(alice_d) as alice, client(bob_d) as bob:
                await alice.write("from-alice.txt", "a")
                await bob.write("from-bob.txt", "b")
                await alice.until(lambda: _has_files(alice, {"from-bob.txt"}))
                await bob.until(lambda: _has_files(bob, {"from-alice.txt"}))
                assert await alice.peers() == [relay_d.ready["peer_id"]]
                assert await bob.peers() == [relay_d.ready["peer_id"]]
                async with client(relay_d) as relay:
                    await relay.until(lambda: _has_files(relay, {"from-alice.txt", "from-bob.txt"}))
                    assert (await relay.verify())["ok"]


async def test_two_daemons_with_only_webrtc_direct_addresses_sync(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    webrtc = ("--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct")
    with daemon(homes["alice"], *webrtc) as alice_d:
        assert all("/webrtc-direct/" in a for a in alice_d.ready["addrs"])
        with daemon(homes["bob"], *webrtc, "--peer", addr(alice_d, "/webrtc-direct/")) as bob_d:
            async with client(alice_d) as alice, client(bob_d) as bob:
                await alice.write("over-webrtc.txt", "hi")
                await bob.until(lambda: _has_files(bob, {"over-webrtc.txt"}))
                await bob.splice("over-webrtc.txt", 2, " back")
                await alice.until(lambda: _text_is(alice, "over-webrtc.txt", "hi back"))
                peers = (await bob.api.call("node.peers"))["peers"]
                assert all("webrtc-direct" in a for p in peers for a in p["addrs"])


async def test_a_cursor_set_on_one_daemon_shows_on_its_peer_and_goes_with_it(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with connect(bob_d, "unix") as bob:
            await bob.call("subscribe.presence")
            async with connect(alice_d, "unix") as alice:
                await alice.call("presence.set", client="vim", path="notes.md", cursor=7, name="Alice")
                while True:  # the first notification may be a late one of Alice's own connection
                    change = (await bob.notification())["params"]
                    if change["presence"]["peer_id"] == alice_d.ready["peer_id"]:
                        break
                assert not change["removed"]
                assert {k: change["presence"][k] for k in ("client", "path", "cursor", "name")} == {
                    "client": "vim", "path": "notes.md", "cursor": 7, "name": "Alice"
                }
            # Alice's client disconnected: her presence is removed, on Bob's side too.
            change = (await bob.notification())["params"]
            assert change["removed"] and change["presence"]["client"] == "vim"


async def test_a_hostile_peer_is_cut_off_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    space = bytes.fromhex(team.space_id)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with client(alice_d) as alice, client(bob_d) as bob:
            await alice.until(lambda: _peer_count_is(alice, 1))
            for round_, name in enumerate(ATTACKS):
                await attack(name, space, addr(alice_d))  # returns once alice has cut mallory off
                await bob.write(f"after-{name}.txt", f"round {round_}")
                await alice.until(lambda name=name: _has_files(alice, {f"after-{name}.txt"}))
                await alice.until(lambda name=name: _not_connected(alice, mallory(name).peer_id))
            assert (await alice.verify())["ok"]
            assert await alice.files() == await bob.files()
    log = (tmp_path / "alice-daemon.log").read_text()
    for offense in OFFENSES.values():
        assert f"offense={offense}" in log


async def _exists(each: Client, path: str) -> bool:
    return await each.read(path) is not None


async def _has_files(each: Client, paths: set[str]) -> bool:
    return paths <= set(await each.files())


async def _text_is(each: Client, path: str, text: str) -> bool:
    return await each.read(path) == text


async def _not_connected(each: Client, peer_id: str) -> bool:
    return peer_id not in await each.peers()


async def _peer_count_is(each: Client, count: int) -> bool:
    return len(await each.peers()) == count
