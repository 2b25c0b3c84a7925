"""Alice, Bob and Carol sync a workspace over real libp2p TCP on 127.0.0.1, in one process.

Each has its own SQLite store and its own Network (host, sync driver, peer keeper); the tests
edit through the store's Workspace, as the local API does, and wait on store and network events.
"""

from __future__ import annotations

from pathlib import Path

import trio

from sync_helpers import NOW_MS, cluster, genesis_of


async def test_two_nodes_sync_a_file_both_ways(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: bob.syncing_with(alice, space) and alice.syncing_with(bob, space))
        alice.workspace(space).write("README.md", "hello from alice\n", now_ms=NOW_MS)
        await nodes.until(lambda: bob.workspace(space).exists("README.md"))
        await nodes.converged(space)
        assert bob.workspace(space).read("README.md") == "hello from alice\n"
        bob.workspace(space).splice("README.md", 0, 0, "bob says: ", now_ms=NOW_MS)
        await nodes.converged(space)
        assert alice.workspace(space).read("README.md") == "bob says: hello from alice\n"
        assert not alice.repo.verify() and not bob.repo.verify()


async def test_three_nodes_converge_under_concurrent_edits_and_a_restart(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        carol = await nodes.start("carol", [genesis], peers=[alice.addr(), bob.addr()])
        alice.workspace(space).write("shared.txt", "", now_ms=NOW_MS)
        await nodes.converged(space)
        await nodes.until(lambda: all(n.workspace(space).exists("shared.txt") for n in (alice, bob, carol)))

        async def type_into(name: str, count: int) -> None:
            workspace = nodes.nodes[name].workspace(space)
            workspace.write(f"{name}.txt", f"{name}'s own file\n", now_ms=NOW_MS)
            for i in range(count):
                workspace.splice("shared.txt", 0, 0, f"<{name}{i}>", now_ms=NOW_MS)
                await trio.lowlevel.checkpoint()  # let the network run between keystrokes

        async with trio.open_nursery() as typing:
            for name in ("alice", "bob", "carol"):
                typing.start_soon(type_into, name, 20)
        await nodes.converged(space)
        text = alice.workspace(space).read("shared.txt")
        assert all(f"<{n}{i}>" in text for n in ("alice", "bob", "carol") for i in range(20))
        assert {s.path for s in bob.workspace(space).ls()} >= {"alice.txt", "bob.txt", "carol.txt", "shared.txt"}

        await nodes.stop("carol")
        for i in range(10):
            alice.workspace(space).splice("shared.txt", 0, 0, f"[a{i}]", now_ms=NOW_MS)
            bob.workspace(space).splice("shared.txt", 0, 0, f"[b{i}]", now_ms=NOW_MS)
            await trio.lowlevel.checkpoint()
        await nodes.converged(space, ["alice", "bob"])
        carol = await nodes.start("carol", [], peers=[alice.addr()])
        await nodes.converged(space)
        text = carol.workspace(space).read("shared.txt")
        assert all(f"[a{i}]" in text and f"[b{i}]" in text for i in range(10))
        for node in (alice, bob, carol):
            assert not node.repo.verify()


async def test_two_nodes_that_edited_offline_keep_every_edit(tmp_path: Path) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        alice.workspace(space).write("notes.txt", "base\n", now_ms=NOW_MS)
        await nodes.converged(space)
        await nodes.until(lambda: bob.workspace(space).exists("notes.txt"))
        alice_listen = alice.addr().rsplit("/p2p/", 1)[0]
        await nodes.stop("alice")
        await nodes.stop("bob")
        for name in ("alice", "bob"):  # offline: straight into each store, as the CLI does
            from store.repo import Repo
            from store.workspace import Workspace
            from sync_helpers import identity_of

            with Repo.open(tmp_path / name / "store.sqlite", identity_of(name)) as repo:
                workspace = Workspace(repo, space)
                for i in range(30):
                    workspace.splice("notes.txt", 0, 0, f"{name}{i};", now_ms=NOW_MS)
                workspace.write(f"{name}-only.txt", name, now_ms=NOW_MS)
        # Alice comes back on her old port; Bob has no bootstrap: his peerstore remembers her.
        alice = await nodes.start("alice", listen=(alice_listen,))
        bob = await nodes.start("bob")
        await nodes.converged(space)
        text = bob.workspace(space).read("notes.txt")
        assert all(f"{n}{i};" in text for n in ("alice", "bob") for i in range(30))
        assert alice.workspace(space).read("notes.txt") == text
        assert bob.workspace(space).read("alice-only.txt") == "alice"
        assert not alice.repo.verify() and not bob.repo.verify()


async def test_a_burst_of_local_commits_is_pushed_in_batches_every_receiver_takes(tmp_path: Path) -> None:
    """Commits made while the pusher waits are merged into one pushed batch, but never beyond
    one batch's limits: 5,000 keystrokes in one durable group (each commit's tip travels in its
    event: the store keeps only the newest) reach Bob as pushes, with no penalty."""
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: bob.syncing_with(alice, space))
        workspace = alice.workspace(space)
        workspace.write("typed.txt", "", now_ms=NOW_MS)
        with alice.repo.group(durable=True):
            for i in range(5_000):
                workspace.splice("typed.txt", i, 0, "x", now_ms=NOW_MS)
        await nodes.until(lambda: bob.workspace(space).exists("typed.txt") and bob.workspace(space).read("typed.txt") == "x" * 5_000)
        assert alice.network.driver.replicator.stats["own_frames_too_large"] == 0
        assert alice.network.driver.stats["local_commit_failures"] == 0  # every commit of the group was pushed
        assert not alice.penalties() + bob.penalties()
