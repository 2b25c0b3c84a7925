"""Revocation end to end over REAL daemons (issue 13): revoke a member while it edits offline;
it reconnects; every peer ends in the same state, the revoked edits materialised nowhere, and
``verify`` explains them.

Alice is the root; Bob and Vic joined by tickets as writers. Vic's edit before the revocation
reaches everyone. Then Vic's and Alice's daemons stop: Vic edits offline (the command line on his
store, no daemon), and Alice revokes him offline, having seen only that first edit. Vic comes
back with only Bob to reach, and Bob, who has not heard of the revocation, takes his offline
edits. Alice comes back and meets Bob: the revocation reaches Bob, whose store takes Vic's
offline edits out of their docs (quarantined with the reason, listed by ``verify``), and Vic,
told as Bob closes his session, does the same to his own copy. Alice never stores them. Vic
then dials both and is refused by both.

Every wait is on a condition: the API's tree notifications where the tree moves, otherwise a
bounded poll of the other processes' state (members, reads, counters).
"""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from api_helpers import distspace
from e2e_helpers import CONVERGE_TIMEOUT_S, Client, addr, client, daemon, members, metric, wait_converged
from node.home import NodeHome
from protocol.space import INDEX_DOC_ID
from store.repo import Repo

POLL_S = 0.1  # the pace of a bounded poll of another process's state
BEFORE = "[vic before] "  # Vic's edit that everyone had when he was revoked
BASE = "base\n"
OFFLINE_SHARED = "vic rewrote it offline\n"
OFFLINE_NEW = "written offline\n"
REVOKED_REASON = "revoked: its author's key was revoked and the revoker had not seen it"


def peer_id(home: Path) -> str:
    return str(json.loads(distspace(home, "id", "--json").stdout)["peer_id"])


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Until ``check`` holds, polled within CONVERGE_TIMEOUT_S: for states no notification of
    ours announces (another node's log, a quarantine, a counter)."""
    with trio.fail_after(CONVERGE_TIMEOUT_S):
        for _ in itertools.count():
            if await check():
                return
            await trio.sleep(POLL_S)  # noqa: sleep — a bounded poll of other processes' state


def holds(each: Client, path: str, text: str | None) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await each.read(path) == text

    return check


def stored_heads(home: Path) -> dict[bytes, list[bytes]]:
    """Every doc's heads in the node's store (no daemon runs), docs emptied by a revocation left
    out."""
    node = NodeHome(home)
    repo = Repo.open(node.database, node.identity())
    try:
        (genesis,) = repo.spaces()
        space = genesis.space_id
        return {doc: heads for doc in repo.doc_ids(space) if (heads := sorted(repo.heads(space, doc)))}
    finally:
        repo.close()


def authored(home: Path, key: bytes) -> set[bytes]:
    """Every change by ``key`` in the node's store (no daemon runs)."""
    node = NodeHome(home)
    repo = Repo.open(node.database, node.identity())
    try:
        (genesis,) = repo.spaces()
        space = genesis.space_id
        return {row.hash for doc in repo.doc_ids(space) for row in repo.backend.changes(space, doc, 0) if row.actor == key}
    finally:
        repo.close()


async def test_a_member_revoked_while_it_edits_offline_reconnects_and_every_peer_agrees_without_its_edits(tmp_path: Path) -> None:
    alice_home, bob_home, vic_home = (tmp_path / name for name in ("alice", "bob", "vic"))
    distspace(alice_home, "init", "team")
    for home in (bob_home, vic_home):
        distspace(home, "id")  # a key, for its daemon to start on
    bob_id, vic_id = peer_id(bob_home), peer_id(vic_home)
    with daemon(bob_home) as bob_d:
        # ----- everyone in, Vic's first edit everywhere -----
        with daemon(alice_home) as alice_d, daemon(vic_home) as vic_d:
            for home in (bob_home, vic_home):
                distspace(home, "join", json.loads(distspace(alice_home, "invite", "--role", "write", "--json").stdout)["ticket"])
            async with client(alice_d) as alice, client(bob_d) as bob, client(vic_d) as vic:
                await alice.write("shared.md", BASE)
                await vic.until(holds(vic, "shared.md", BASE))
                await vic.splice("shared.md", 0, BEFORE)
                await wait_converged([alice, bob, vic], [BEFORE, BASE], "shared.md")

                async def all_know_all() -> bool:  # Vic will reach Bob without Alice: each knows the other
                    return all({bob_id, vic_id} <= members(home).keys() for home in (alice_home, bob_home, vic_home))

                await until(all_know_all)
            assert vic_d.stop(signal.SIGTERM) == 0
            assert alice_d.stop(signal.SIGTERM) == 0

        # ----- offline: Vic edits his store, Alice revokes him having seen his first edit only -----
        distspace(vic_home, "write", "shared.md", input=OFFLINE_SHARED.encode())
        distspace(vic_home, "write", "offline.md", input=OFFLINE_NEW.encode())
        vic_key = bytes.fromhex(json.loads(distspace(vic_home, "id", "--json").stdout)["public_key"])
        offline = authored(vic_home, vic_key) - authored(alice_home, vic_key)  # what Alice has not seen
        assert len(offline) >= 3  # shared.md's content, offline.md's content, the index entry
        revoked = json.loads(distspace(alice_home, "revoke", vic_id, "--json").stdout)
        assert revoked["peer_id"] == vic_id and revoked["docs_seen"] >= 1

        # ----- Vic comes back to Bob alone, who has not heard of it and takes his edits -----
        with daemon(vic_home, "--peer", addr(bob_d)) as vic_d:
            async with client(bob_d) as bob:
                await bob.until(holds(bob, "offline.md", OFFLINE_NEW))
                await bob.until(holds(bob, "shared.md", OFFLINE_SHARED))
            assert not members(bob_home)[vic_id]["revoked"]

            # ----- Alice comes back and meets Bob: the revocation spreads, the edits go -----
            with daemon(alice_home, "--peer", addr(bob_d)) as alice_d:
                async with client(alice_d) as alice, client(bob_d) as bob, client(vic_d) as vic:
                    kept = BEFORE + BASE
                    for each in (alice, bob, vic):
                        await until(holds(each, "shared.md", kept))
                        await until(holds(each, "offline.md", None))
                    for home in (bob_home, vic_home):
                        assert members(home)[vic_id]["revoked"], home.name
                    assert await alice.files() == await bob.files() == await vic.files() == {"shared.md": kept}

                    async def same_file_heads() -> bool:
                        heads = [(await each.api.call("fs.read", path="shared.md"))["heads"] for each in (alice, bob, vic)]
                        return heads[0] == heads[1] == heads[2]

                    await until(same_file_heads)

                    # verify explains: Bob and Vic hold Vic's offline edits in the quarantine,
                    # with the reason; Alice never stored them.
                    for each in (bob, vic):
                        report = await each.verify()
                        revoked_changes = {p["subject"]: p for p in report["kept"] if p["kind"] == "revoked-change"}
                        assert {bytes.fromhex(h) for h in revoked_changes} == offline, each.daemon.home.path.name
                        assert all(REVOKED_REASON in p["detail"] for p in revoked_changes.values())
                        assert report["ok"] and report["problems"] == [], report  # kept and explained: not damage
                    assert (await alice.verify())["ok"]

                    # Vic comes back dialling both: each refuses him, as any peer its log does not admit.
                    assert vic_d.stop(signal.SIGTERM) == 0
                    refused = "replicator_refused_not_admitted_total"
                    before = [(running, metric(running, refused)) for running in (alice_d, bob_d)]
                    with daemon(vic_home, "--peer", addr(alice_d), "--peer", addr(bob_d)):

                        async def both_refused_vic() -> bool:
                            return all(metric(running, refused) > count for running, count in before)

                        await until(both_refused_vic)
                    assert await alice.files() == await bob.files() == {"shared.md": kept}
                assert alice_d.stop(signal.SIGTERM) == 0
        assert bob_d.stop(signal.SIGTERM) == 0

    # ----- the stores themselves: one state, none of Vic's offline edits -----
    heads = {home.name: stored_heads(home) for home in (alice_home, bob_home, vic_home)}
    assert heads["alice"] == heads["bob"] == heads["vic"]
    for home in (alice_home, bob_home, vic_home):
        assert not authored(home, vic_key) & offline, home.name  # in Bob's and Vic's quarantine only
    assert INDEX_DOC_ID in heads["alice"]
