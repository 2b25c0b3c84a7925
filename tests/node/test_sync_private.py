"""Private spaces on real nodes (libp2p on 127.0.0.1, SQLite stores): members sync, strangers
learn nothing, a joiner with a ticket gets in by its proof, a scoped writer's new file reaches
everyone and its forged one outside its scope reaches no one.

Alice created the space (its root); Bob holds a write grant Alice issued, in both stores before
they start. Strangers come as full nodes and as Mallory's raw client (benchmarks/mallory).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from benchmarks.mallory import hello, mallory, mallory_stream
from node.errors import NodeError
from node.events import SessionOpened
from node.genesis_exchange import fetch_genesis
from protocol.capabilities import Grant, Record, Role
from protocol.replicator import NOT_SERVED
from protocol.space import INDEX_DOC_ID, Genesis
from protocol.ticket import invite, redeem
from protocol.wire import Bye, encode_frame
from store.history import History
from store.repo import Repo
from store.verify import ProblemKind
from sync_helpers import NOW_MS, STEP_TIMEOUT_S, Cluster, Node, cluster, identity_of

GENESIS = Genesis.create(identity_of("alice"), "team", NOW_MS, nonce=bytes(16), private=True)
SPACE = GENESIS.space_id
BOB_GRANT = Grant.issue(identity_of("alice"), space=SPACE, subject=identity_of("bob").public_key, role=Role.WRITE, issued_ms=NOW_MS - 1000)


def prepare(tmp_path: Path, name: str, records: tuple[Record, ...] = (), genesis: Genesis | None = GENESIS) -> None:
    """The node's store as it is before its network starts: the genesis and its records."""
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    repo = Repo.open(path / "store.sqlite", identity_of(name))
    try:
        if genesis is not None:
            repo.add_space(genesis)
            repo.add_capability_records(genesis.space_id, [record.encode() for record in records])
    finally:
        repo.close()


async def members(nodes: Cluster, tmp_path: Path) -> tuple[Node, Node]:
    prepare(tmp_path, "alice", (BOB_GRANT,))
    prepare(tmp_path, "bob", (BOB_GRANT,))
    alice = await nodes.start("alice")
    bob = await nodes.start("bob", peers=[alice.addr()])
    await nodes.until(lambda: alice.syncing_with(bob, SPACE) and bob.syncing_with(alice, SPACE))
    return alice, bob


def holds_nothing(node: Node) -> bool:
    return not node.repo.spaces() or not node.repo.doc_ids(SPACE)


async def raw_answer(attack: str, target_addr: str) -> bytes:
    """Every byte the target sends Mallory after her Hello for the space, until it closes."""
    received = b""
    async with mallory_stream(attack, target_addr) as frames:
        await frames.send_bytes(hello(attack, SPACE))
        with trio.fail_after(STEP_TIMEOUT_S):
            try:
                while chunk := await frames.receive_bytes():
                    received += chunk
            except NodeError:
                pass
    return received


async def test_members_sync_and_strangers_learn_nothing_while_honest_sync_goes_on(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        alice, bob = await members(nodes, tmp_path)
        alice.workspace(SPACE).write("plan.md", "secret plan", now_ms=NOW_MS)
        bob.workspace(SPACE).write("notes.md", "bob's notes", now_ms=NOW_MS)
        await nodes.converged(SPACE, ["alice", "bob"])
        assert bob.workspace(SPACE).read("plan.md") == "secret plan"

        # A stranger that knows only the address: connected, and offered nothing.
        stranger = await nodes.start("stranger", peers=[alice.addr()])
        await nodes.until(lambda: stranger.connected_to(alice))
        # One that knows the space id too, and asks for its genesis.
        asker = await nodes.start("asker", peers=[alice.addr()])
        asker.network.join(SPACE, [alice.addr()])
        await nodes.until(lambda: asker.connected_to(alice))
        assert await fetch_genesis(asker.network.host, alice.peer_id, SPACE) is None
        # One that even holds the genesis (a leaked id and record): it says Hello, with no proof.
        prepare(tmp_path, "holder")
        holder = await nodes.start("holder", peers=[alice.addr()])
        await nodes.until(lambda: alice.network.driver.replicator.stats["refused_not_admitted"] >= 1)
        # And Mallory's raw Hello for the space: answered with the Bye of a space we do not serve.
        assert await raw_answer("private-hello", alice.addr()) == encode_frame(Bye(NOT_SERVED))
        await nodes.until(lambda: alice.network.driver.replicator.stats["refused_not_admitted"] >= 2)

        # Honest sync goes on meanwhile.
        bob.workspace(SPACE).write("after.md", "still syncing", now_ms=NOW_MS)
        await nodes.until(lambda: alice.workspace(SPACE).exists("after.md"))

        assert not stranger.repo.spaces() and not asker.repo.spaces()
        assert holder.repo.doc_ids(SPACE) == [] and len(holder.repo.capability_log(SPACE)) == 0
        strangers = {stranger.peer_id, asker.peer_id, holder.peer_id, mallory("private-hello").peer_id}
        assert not any(opened.peer_id in strangers for opened in alice.reports(SessionOpened))
        assert not any(s["peer_id"] in strangers and s["active"] for s in alice.network.driver.sessions())
        assert len(alice.repo.capability_log(SPACE)) == 1
        stats = alice.network.driver.replicator.stats
        assert stats["not_admitted_not_opened"] == 0  # the network never asked for such a session
        assert stats["changes_applied"] > 0 and not alice.penalties()


async def test_a_joiner_with_a_ticket_syncs_and_its_grant_reaches_the_other_members(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        alice, bob = await members(nodes, tmp_path)
        alice.workspace(SPACE).write("plan.md", "for the team", now_ms=NOW_MS)
        ticket = invite(alice.repo.capability_log(SPACE), identity_of("alice"), role=Role.WRITE, issued_ms=NOW_MS, addrs=(alice.addr(),))
        alice.repo.issue_capability(SPACE, ticket.grant.encode())
        joined = redeem(ticket, identity_of("carol"), NOW_MS)
        prepare(tmp_path, "carol", tuple(joined), genesis=ticket.genesis)
        carol = await nodes.start("carol")
        carol.network.join(SPACE, list(ticket.addrs))
        await nodes.until(lambda: carol.workspace(SPACE).exists("plan.md"))
        assert carol.workspace(SPACE).read("plan.md") == "for the team"
        carol_grant = joined[-1]
        await nodes.until(lambda: carol_grant.hash in bob.repo.capability_log(SPACE))
        carol.workspace(SPACE).write("hello.md", "carol is in", now_ms=NOW_MS)
        await nodes.until(lambda: bob.workspace(SPACE).exists("hello.md"))
        assert alice.network.driver.replicator.stats["proofs_taken"] == 1


async def test_a_scoped_writers_new_file_reaches_every_member_and_a_forged_one_outside_its_scope_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob may write src/* only; Carol is a writer behind Alice (her only peer). Bob's new file
    reaches both, whichever of its content and its index entry Alice takes first (the content
    alone is judged as a doc the index does not name, asked for again when the entry moves the
    index). Then Bob's node signs docs/x.md around its workspace's own check, a well-formed
    change as a hostile member's would be: neither its entry nor its content is materialised
    at Alice, and so nothing of it reaches Carol."""
    scoped = Grant.issue(identity_of("alice"), space=SPACE, subject=identity_of("bob").public_key, role=Role.WRITE, paths=("src/*",), issued_ms=NOW_MS - 1000)
    carol_grant = Grant.issue(identity_of("alice"), space=SPACE, subject=identity_of("carol").public_key, role=Role.WRITE, issued_ms=NOW_MS - 1000)
    for name in ("alice", "bob", "carol"):
        prepare(tmp_path, name, (scoped, carol_grant))
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice")
        bob = await nodes.start("bob", peers=[alice.addr()])
        carol = await nodes.start("carol", peers=[alice.addr()])
        await nodes.until(lambda: alice.syncing_with(bob, SPACE) and alice.syncing_with(carol, SPACE))
        alice.workspace(SPACE).mkdir("src", now_ms=NOW_MS)
        alice.workspace(SPACE).mkdir("docs", now_ms=NOW_MS)
        await nodes.converged(SPACE)

        bob.workspace(SPACE).write("src/new.py", "print('new')\n", now_ms=NOW_MS)
        await nodes.until(lambda: all(node.workspace(SPACE).exists("src/new.py") for node in (alice, carol)))
        await nodes.converged(SPACE)
        assert carol.workspace(SPACE).read("src/new.py") == "print('new')\n"

        stats = alice.network.driver.replicator.stats
        refused_before = stats["changes_unauthorised"]
        forger = bob.workspace(SPACE)
        monkeypatch.setattr(forger, "check_authorised", lambda paths, now_ms: None)  # signed as bob, unchecked
        forger.write("docs/x.md", "not bob's to write\n", now_ms=NOW_MS)
        forged_doc = forger.node("docs/x.md").doc_id
        forged_entry = bob.repo.heads(SPACE, INDEX_DOC_ID)
        await nodes.until(lambda: stats["changes_unauthorised"] >= refused_before + 2)  # its entry and its content

        alice.workspace(SPACE).write("after.md", "still syncing\n", now_ms=NOW_MS)
        await nodes.until(lambda: all(node.workspace(SPACE).exists("after.md") for node in (bob, carol)))
        for node in (alice, carol):
            assert not node.workspace(SPACE).exists("docs/x.md"), node.name
            assert forged_doc not in node.repo.doc_ids(SPACE), node.name
            assert not any(node.repo.has_change(SPACE, INDEX_DOC_ID, h) for h in forged_entry), node.name
            assert node.workspace(SPACE).read("src/new.py") == "print('new')\n", node.name
        assert bob.workspace(SPACE).read("docs/x.md") == "not bob's to write\n"  # his own store only
        assert not alice.penalties(bob.peer_id)  # unauthorised is not misbehaviour: a log may lag

        # Alice kept what she refused, with the reason: verify lists it as kept (not damage),
        # the log's refused view names the forged entry's path and Bob's scope.
        kept = [p for p in alice.repo.verify() if p.kind is ProblemKind.REFUSED_CHANGE]
        assert {p.subject for p in kept} >= set(forged_entry) and all(p.expected for p in kept)
        assert [p for p in alice.repo.verify() if not p.expected] == []
        refused = History(alice.workspace(SPACE)).refused()
        entry = next(e for e in refused if e.change in forged_entry)
        assert entry.author == identity_of("bob").public_key and entry.paths == ("docs/x.md",)
        assert entry.reason == "write is scoped to src/*; docs/x.md is outside it"
        assert any(e.doc == forged_doc for e in refused)  # its content too, judged as a doc the index does not name
