"""Snapshots into IPFS with real daemons and a real kubo (issue 17's test): Alice's daemon
publishes on its own when a snapshot is taken and on demand (``distspace publish`` through the
daemon); every member stops; a fresh node's daemon joins from IPFS alone and reads every file at
the published version; Alice comes back and the new node catches up over libp2p, dialling the
address her pointer carries — what she wrote after publishing and after coming back.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from api_helpers import distspace
from e2e_helpers import CONVERGE_TIMEOUT_S, Client, client, create_space, daemon
from kubo import Kubo, kubo  # noqa: F401  (a fixture)

SNAPSHOT_EVERY = 5  # a snapshot (and so a publication) after a handful of edits
POLL_S = 0.05


def _configure(home: Path, kubo: Kubo) -> None:
    """ipfs_api and a small snapshot_every in config.toml (top-level keys first)."""
    config = home / "config.toml"
    text = config.read_text() if config.exists() else ""
    config.write_text(f'ipfs_api = "{kubo.api}"\nsnapshot_every = {SNAPSHOT_EVERY}\n' + text)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _until(check: Callable[[], Awaitable[Any]], timeout_s: float = CONVERGE_TIMEOUT_S) -> Any:
    """A bounded poll of another process's state (the daemon's IPFS upload has no notification)."""
    with trio.fail_after(timeout_s):
        for _ in itertools.count():
            if found := await check():
                return found
            await trio.sleep(POLL_S)  # noqa: sleep — a bounded poll of another process's state
    raise AssertionError("unreachable")


async def _published(alice: Client) -> dict[str, Any] | None:
    spaces = (await alice.api.call("ipfs.status"))["spaces"]
    return spaces[0] if spaces and spaces[0]["cid"] and not spaces[0]["pending"] else None


async def test_publish_stop_everyone_join_from_ipfs_and_catch_up(tmp_path: Path, kubo: Kubo) -> None:
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    create_space(alice_home)
    _configure(alice_home, kubo)
    distspace(bob_home, "id")  # a home of its own, no space yet
    _configure(bob_home, kubo)
    listen = f"/ip4/127.0.0.1/tcp/{_free_port()}"
    with daemon(alice_home, "--listen", listen) as running:
        async with client(running) as alice:
            for n in range(SNAPSHOT_EVERY + 1):
                await alice.write("notes.md", f"draft {n}\n")
            automatic = await _until(lambda: _published(alice))
            assert automatic["seq"] == 1 and automatic["error"] is None
            await alice.write("README.md", "# published\n")
            on_demand = json.loads(distspace(alice_home, "--json", "publish").stdout)
            assert on_demand["status"] == "published" and on_demand["seq"] == 2 and on_demand["ipns"]
            snapshot_files = await alice.files()
            await alice.write("late.md", "written after publishing\n")
    # Every member is gone: only kubo holds the space.
    with daemon(bob_home) as bob_running:
        joined = json.loads(distspace(bob_home, "--json", "join", "--from-ipfs", on_demand["cid"]).stdout)
        assert joined["status"] == "joined" and joined["cid"] == on_demand["cid"]
        assert any(listen in peer for peer in joined["peers"]), "the pointer carries Alice's address"
        async with client(bob_running) as bob:
            assert await bob.files() == snapshot_files
            assert await bob.read("late.md") is None
            with daemon(alice_home, "--listen", listen) as running:
                async with client(running) as alice:
                    await alice.write("after.md", "written after coming back\n")

                    async def caught_up() -> bool:
                        return await bob.read("late.md") == "written after publishing\n" and await bob.read("after.md") == "written after coming back\n"

                    await bob.until(caught_up)
                    assert await bob.files() == await alice.files()
        status = json.loads(distspace(bob_home, "--json", "status").stdout)["ipfs"]
        assert [j["status"] for j in status["joins"]] == ["joined"]
