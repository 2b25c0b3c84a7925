"""Mallory speaks the protocol perfectly: valid CBOR, valid signatures, valid Automerge.

Each attack runs against real nodes (libp2p on 127.0.0.1, SQLite stores, the real Replicator)
and each test ends the same way: an honest edit still crosses, and nothing Mallory sent that
breaks a rule is stored. Limits that only matter at a size a test cannot afford (the op count
of a decoding bomb, budgets) are lowered for the test; the mechanism is the one that runs.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import native
import protocol.ingest
import protocol.replicator
from benchmarks.mallory import (
    closed_by_peer,
    document_reply,
    forked_pair,
    hello,
    junk_status,
    mallory,
    mallory_stream,
    signed_batch,
    splice_bomb,
    unsigned_reply,
    want,
)
from node.events import PeerPenalty
from protocol.batch import pack_changes
from protocol.identity import Identity
from protocol.limits import MAX_DOCS_PER_STATUS, MAX_UNHELD_DOCS_PER_SESSION
from protocol.space import DOC_ID_BYTES, INDEX_DOC_ID
from protocol.tips import SignedTip, TipSignature
from protocol.wire import Changes, encode_frame
from sync_helpers import FAST_SYNC, NOW_MS, Cluster, Node, cluster, genesis_of


def penalties(node: Node, attacker: Identity) -> list[PeerPenalty]:
    return node.penalties(attacker.peer_id)


async def honest_edit_crosses(nodes: Cluster, writer: Node, reader: Node, space: bytes, name: str) -> None:
    writer.workspace(space).write(name, f"written by {writer.name}\n", now_ms=NOW_MS)
    await nodes.until(lambda: reader.workspace(space).exists(name))


async def alice_and_bob(nodes: Cluster, **alice_options: Any) -> tuple[Node, Node, bytes]:
    genesis = genesis_of()
    space = genesis.space_id
    alice = await nodes.start("alice", [genesis], **alice_options)
    bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
    await nodes.until(lambda: bob.syncing_with(alice, space))
    await honest_edit_crosses(nodes, alice, bob, space, "readme.md")
    return alice, bob, space


def stored_chain(node: Node, space: bytes, doc: bytes, author: Identity) -> list[tuple[int, bytes]]:
    """Every (seq, hash) of ``author``'s changes the node's store holds for ``doc``."""
    rows = node.repo.backend.changes(space, doc, 0)
    return sorted((row.seq, row.hash) for row in rows if row.actor == author.public_key)


async def test_an_author_forking_its_own_chain_is_banned_and_the_space_still_loads_everywhere(tmp_path: Path) -> None:
    """The poison: two changes by Mallory with one seq in the index doc, each under a valid tip.
    Stored together they made the index doc — the whole space — unloadable on every member."""
    async with cluster(tmp_path) as nodes:
        alice, bob, space = await alice_and_bob(nodes)
        attacker = mallory("poison")
        left, right = forked_pair(attacker, alice.repo.document(space, INDEX_DOC_ID))
        async with mallory_stream("poison", alice.addr()) as frames:
            await frames.send_bytes(hello("poison", space))
            await frames.send_bytes(signed_batch(attacker, space, INDEX_DOC_ID, [left]))
            await frames.send_bytes(signed_batch(attacker, space, INDEX_DOC_ID, [right]))
            await closed_by_peer(frames)
        assert [p.offense for p in penalties(alice, attacker)] == ["equivocation"]
        assert penalties(alice, attacker)[0].banned
        left_hash = native.decode_change(left).hash
        await nodes.until(lambda: bob.repo.has_change(space, INDEX_DOC_ID, left_hash))  # forwarded: it was valid alone
        for node in (alice, bob):
            assert stored_chain(node, space, INDEX_DOC_ID, attacker) == [(1, left_hash)]
        await nodes.stop("alice")
        alice = await nodes.start("alice", peers=[bob.addr()])
        assert alice.workspace(space).read("readme.md") == "written by alice\n"  # the index doc loads
        await honest_edit_crosses(nodes, bob, alice, space, "after-the-poison.md")
        assert not alice.repo.verify() and not bob.repo.verify()


async def test_one_equivocation_told_to_two_peers_bans_neither_of_them(tmp_path: Path) -> None:
    """Mallory tells Alice one change and Bob another for the same seq while they are apart:
    each accepts its own and, when they meet, refuses the other's without banning the relayer,
    once — it is not asked for or scored again. They keep syncing everything else."""
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        bob = await nodes.start("bob", [genesis])
        attacker = mallory("split")
        doc = hashlib.sha256(b"split").digest()[:DOC_ID_BYTES]
        left, right = forked_pair(attacker, native.Document())
        for node, change in ((alice, left), (bob, right)):
            async with mallory_stream("split", node.addr()) as frames:
                await frames.send_bytes(hello("split", space) + signed_batch(attacker, space, doc, [change]))
                await nodes.until(lambda node=node: node.repo.doc_ids(space) == [doc])
        await bob.network.connect(alice.addr())
        await nodes.until(lambda: bob.syncing_with(alice, space))
        for node in (alice, bob):
            await nodes.until(lambda node=node: node.network.driver.replicator.stats["changes_refused"] >= 1)
        await honest_edit_crosses(nodes, alice, bob, space, "still-friends.md")
        await honest_edit_crosses(nodes, bob, alice, space, "still-friends-too.md")
        for node, other in ((alice, bob), (bob, alice)):
            assert [p.offense for p in penalties(node, other.identity)] == ["unusable-forwarded"]
            assert not penalties(node, other.identity)[0].banned
        assert stored_chain(alice, space, doc, attacker) == [(1, native.decode_change(left).hash)]
        assert stored_chain(bob, space, doc, attacker) == [(1, native.decode_change(right).hash)]


async def test_a_decoding_bomb_costs_only_its_scan_and_ends_the_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saved document of a few hundred bytes that would decode to 300,000 ops, sent as a reply
    and as a push under Mallory's genuine tips: refused from its counted ops, nothing built."""
    monkeypatch.setattr("protocol.batch.MAX_OPS_PER_BATCH", 100_000)
    built: list[str] = []
    real_unpack = protocol.replicator.unpack
    monkeypatch.setattr(protocol.replicator, "unpack", lambda *a: built.append("unpack") or real_unpack(*a))
    async with cluster(tmp_path) as nodes:
        alice, bob, space = await alice_and_bob(nodes)
        attacker = mallory("bomb")
        saved, change = splice_bomb(attacker, 300_000)
        assert len(saved) < 1024
        doc = hashlib.sha256(b"bomb").digest()[:DOC_ID_BYTES]
        built.clear()
        for frame in (document_reply(attacker, space, doc, saved), signed_batch(attacker, space, doc, [change])):
            async with mallory_stream("bomb", alice.addr()) as frames:
                await frames.send_bytes(hello("bomb", space) + frame)
                await closed_by_peer(frames)
        offenses = penalties(alice, attacker)
        assert [p.offense for p in offenses] == ["over-limit", "over-limit"]
        assert not any(p.banned for p in offenses)  # well formed, only too large: no ban
        assert built == []  # Automerge never saw the bytes
        assert doc not in alice.repo.doc_ids(space)
        await honest_edit_crosses(nodes, bob, alice, space, "after-the-bomb.md")


async def test_wants_for_a_large_doc_build_one_reply_and_are_throttled(tmp_path: Path) -> None:
    """The same 23-byte want again and again: the reply is built once, then served from the
    cache until the asker's reply budget is spent, then deferred."""
    sync = replace(FAST_SYNC, reply_bytes_burst=64 * 1024, reply_bytes_per_s=1024)
    async with cluster(tmp_path) as nodes:
        alice, bob, space = await alice_and_bob(nodes, sync=sync)
        workspace = alice.workspace(space)
        with alice.repo.group(durable=True):
            for i in range(2_000):
                workspace.splice("readme.md", 0, 0, f"line {i}\n", now_ms=NOW_MS)
        doc = workspace.stat("readme.md").doc_id
        await nodes.until(lambda: bob.repo.heads(space, doc) == alice.repo.heads(space, doc))
        replicator = alice.network.driver.replicator
        built = replicator.stats["replies_built"]
        async with mallory_stream("want", alice.addr()) as frames:
            await frames.send_bytes(hello("want", space) + want(doc) * 50)
            await nodes.until(lambda: replicator.stats["budget_reply_bytes_exhausted"] > 0)
        assert replicator.stats["replies_built"] - built <= 2  # Mallory's Hello reply and the want's: one doc, one base
        assert replicator.stats["replies_deferred"] > 0
        await honest_edit_crosses(nodes, bob, alice, space, "after-the-wants.md")


async def test_statuses_naming_random_docs_leave_no_rows_and_bounded_state(tmp_path: Path) -> None:
    """A paged status naming 30,000 docs nobody holds: remembered up to the per-session limit,
    never persisted."""
    async with cluster(tmp_path) as nodes:
        alice, bob, space = await alice_and_bob(nodes)
        attacker = mallory("junk")
        replicator = alice.network.driver.replicator
        async with mallory_stream("junk", alice.addr()) as frames:
            await frames.send_bytes(hello("junk", space) + junk_status(MAX_UNHELD_DOCS_PER_SESSION + 10_000))
            await nodes.until(lambda: replicator.stats["unheld_docs_ignored"] == 10_000)
        # Closing a session writes its sync states: only then is the count final.
        await nodes.until(lambda: not any(s["peer_id"] == attacker.peer_id for s in alice.network.driver.sessions()))
        with sqlite3.connect(f"file:{alice.path / 'store.sqlite'}?mode=ro", uri=True) as db:
            rows = db.execute("select count(*) from sync_states where peer = ?", (attacker.public_key,)).fetchone()[0]
        assert rows <= len(alice.repo.doc_ids(space))  # only docs Alice holds
        await honest_edit_crosses(nodes, bob, alice, space, "after-the-junk.md")


async def test_parked_unsigned_changes_do_not_make_later_batches_dearer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of changes that wait for a tip that never comes: a later batch is checked
    against itself, not against everything that waits."""
    examined: list[int] = []
    real_coverage = protocol.ingest.coverage

    def counting(space: bytes, doc: bytes, changes: Any, *args: Any, **kwargs: Any) -> Any:
        examined.append(len(changes))
        return real_coverage(space, doc, changes, *args, **kwargs)

    monkeypatch.setattr(protocol.ingest, "coverage", counting)
    async with cluster(tmp_path) as nodes:
        alice, bob, space = await alice_and_bob(nodes)
        doc = hashlib.sha256(b"parked").digest()[:DOC_ID_BYTES]
        throwaway = Identity(hashlib.sha256(b"throwaway").digest())
        attacker = mallory("park")
        honest_like = native.Document(actor=attacker.public_key)
        async with mallory_stream("park", alice.addr()) as frames:
            await frames.send_bytes(hello("park", space) + unsigned_reply(throwaway, doc, 4_000))
            await nodes.until(lambda: 4_000 in examined)  # parked: covered by no tip
            examined.clear()
            for i in range(20):
                honest_like.put(native.ROOT, "n", i)
                honest_like.commit(None, time=NOW_MS // 1000)
                await frames.send_bytes(signed_batch(attacker, space, doc, honest_like.get_changes([])[-1:]))
            await nodes.until(lambda: alice.repo.author_seq(space, doc, attacker.public_key) == 20)
        assert max(examined) == 1  # the 4,000 parked changes were never looked at again
        await honest_edit_crosses(nodes, bob, alice, space, "after-the-parking.md")


def throwaway_keys(count: int, seed: bytes) -> list[Identity]:
    return [Identity(hashlib.sha256(seed + b"%d" % i).digest()) for i in range(count)]


def many_authors_reply(space: bytes, doc: bytes, authors: int, seed: bytes) -> bytes:
    """A reply batch of one change by each of ``authors`` throwaway keys, each under its tip."""
    document = native.Document()
    keys = throwaway_keys(authors, seed)
    for i, key in enumerate(keys):
        document.set_actor(key.public_key)
        document.put(native.ROOT, f"k{i}", i)
        document.commit(None, time=NOW_MS // 1000)
    raws = document.get_changes([])
    tips = tuple(
        TipSignature(i, SignedTip.sign(key, space, doc, native.decode_change(raw).hash).signature)
        for i, (key, raw) in enumerate(zip(keys, raws, strict=True))
    )
    encoding, data = pack_changes(raws)
    return encode_frame(Changes(doc, encoding, data, (), tips, push=False))


async def test_a_batch_whose_tips_the_signature_budget_cannot_pay_is_not_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Throwaway authors' changes under their tips, more than the sender's signature budget pays:
    the first batch spends it, the second is dropped before a single check, to be asked for later."""
    checked: list[bytes] = []
    real_verify = SignedTip.verify
    monkeypatch.setattr(SignedTip, "verify", lambda tip: checked.append(tip.author) or real_verify(tip))
    sync = replace(FAST_SYNC, signature_checks_burst=30, signature_checks_per_s=0.001)
    async with cluster(tmp_path) as nodes:
        alice, bob, space = await alice_and_bob(nodes, sync=sync)
        first, second = (hashlib.sha256(name).digest()[:DOC_ID_BYTES] for name in (b"paid", b"unpaid"))
        replicator = alice.network.driver.replicator
        checked.clear()
        async with mallory_stream("tips", alice.addr()) as frames:
            await frames.send_bytes(hello("tips", space) + many_authors_reply(space, first, 30, b"a"))
            await nodes.until(lambda: first in alice.repo.doc_ids(space))
            await frames.send_bytes(many_authors_reply(space, second, 30, b"b"))
            await nodes.until(lambda: replicator.stats["budget_signature_checks_exhausted"] == 1)
        unpaid = {key.public_key for key in throwaway_keys(30, b"b")}
        assert len(checked) >= 30 and not unpaid.intersection(checked)  # the first batch's tips only
        assert second not in alice.repo.doc_ids(space)
        await honest_edit_crosses(nodes, bob, alice, space, "after-the-tips.md")


async def test_a_space_of_more_docs_than_one_status_lists_reaches_a_new_peer(tmp_path: Path) -> None:
    """More than MAX_DOCS_PER_STATUS docs: the Hello's status goes in pages, and a fresh peer
    gets every doc (today it called the Hello malformed and banned the sender, in a loop)."""
    genesis = genesis_of()
    space = genesis.space_id
    async with cluster(tmp_path) as nodes:
        alice = await nodes.start("alice", [genesis])
        count = MAX_DOCS_PER_STATUS + 50
        with alice.repo.group(durable=True):
            for i in range(count):
                doc = hashlib.sha256(i.to_bytes(4, "big")).digest()[:DOC_ID_BYTES]
                alice.repo.document(space, doc).put(native.ROOT, "n", i)
                alice.repo.commit(space, doc, now_ms=NOW_MS)
        bob = await nodes.start("bob", [genesis], peers=[alice.addr()])
        await nodes.until(lambda: len(bob.repo.doc_ids(space)) == count, timeout_s=120)
        assert not alice.penalties() + bob.penalties()
        await honest_edit_crosses(nodes, bob, alice, space, "a-file-among-many.md")
