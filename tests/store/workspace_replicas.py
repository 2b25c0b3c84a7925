"""Peers for the workspace and history tests: each a real Repo with its own identity.

Peers exchange changes the way the sync protocol hands them to a store: the changes the other
side lacks, decoded, with the sender's signed tips, through the ChangeStore ``apply``
(store_helpers.sync). No mocks: what converges here converges between nodes.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from protocol.identity import Identity
from store.history import History
from store.repo import Repo
from store.workspace import Content, Workspace
from store_helpers import NOW_MS
from store_helpers import sync as sync_doc

TICK_MS = 1_000  # Automerge stamps changes in whole seconds: one tick is one second
MakeRepo = Callable[..., Repo]


@dataclass
class Peer:
    name: str
    repo: Repo
    ws: Workspace
    _clock: Iterator[int] = field(default_factory=lambda: itertools.count(NOW_MS, TICK_MS))

    @property
    def key(self) -> bytes:
        return self.repo.identity.public_key

    @property
    def history(self) -> History:
        return History(self.ws)

    def now(self) -> int:
        """A fake clock: every call is one tick later."""
        return next(self._clock)


def in_memory(identity: Identity, name: str) -> Repo:
    return Repo.open(None, identity)


def open_peers(*names: str, make_repo: MakeRepo = in_memory) -> list[Peer]:
    """Peers (with keys derived from their names) sharing one space created by the first."""
    repos = [make_repo(Identity(hashlib.sha256(name.encode()).digest()), name=name) for name in names]
    genesis = repos[0].create_space("shared", NOW_MS)
    for repo in repos[1:]:
        repo.add_space(genesis)
    return [Peer(name, repo, Workspace(repo, genesis.space_id)) for name, repo in zip(names, repos, strict=True)]


def two_peers_with(path: str, text: str, make_repo: MakeRepo) -> list[Peer]:
    """Alice and Bob, both holding a text file ``path`` that Alice wrote."""
    alice, bob = open_peers("alice", "bob", make_repo=make_repo)
    alice.ws.write(path, text, now_ms=alice.now())
    sync(alice, bob)
    return [alice, bob]


def send(source: Peer, target: Peer) -> None:
    """Give ``target`` every change ``source`` has and it lacks, with ``source``'s tips."""
    for doc in source.repo.doc_ids(source.ws.space):
        sync_doc(source.repo, target.repo, source.ws.space, doc)


def sync(*peers: Peer) -> None:
    """Every peer ends up with every change: a full mesh, twice round so relayed changes arrive."""
    for _ in range(2):
        for source, target in itertools.permutations(peers, 2):
            send(source, target)


def listing(peer: Peer, version: int | None = None) -> dict[str, Content | None]:
    """Every path of the tree with its content (None for a directory): what a user sees."""
    tree = peer.ws.tree(version)
    return {node.path: peer.ws.read(node.path, version) if node.kind == "file" else None for node in tree.walk()}


def read_with_heads(peer: Peer, path: str) -> tuple[str, tuple[bytes, ...]]:
    """A text file's content and heads, as an editor loads them: its view and its base."""
    text, heads = peer.ws.read_with_heads(path)
    assert isinstance(text, str)
    return text, heads


@dataclass(frozen=True)
class Typed:
    """One splice or edit as its author meant it, in the text it read."""

    base_text: str
    position: int
    delete: int
    insert: str

    @property
    def deleted(self) -> set[str]:
        return set(self.base_text[self.position : self.position + self.delete])


def assert_every_insert_survives(final: str, initial: str, typed: list[Typed]) -> None:
    """Every inserted character is in ``final`` unless an edit that saw it deleted it; every
    author's characters are in the order typed, between the characters they were typed between.
    (Inserted characters must be unique, and none of ``initial``'s.)"""
    deleted = set().union(*(each.deleted for each in typed))
    written = initial + "".join(each.insert for each in typed)
    assert sorted(final) == sorted(set(written) - deleted)  # nothing lost, nothing deleted unseen
    where = {char: index for index, char in enumerate(final)}
    for each in typed:
        kept = [where[char] for char in each.insert if char in where]
        assert kept == sorted(kept), f"{each}: its characters out of the order typed"
        before = each.base_text[each.position - 1] if each.position else None
        after_index = each.position + each.delete
        after = each.base_text[after_index] if after_index < len(each.base_text) else None
        if kept and before in where:
            assert where[before] < kept[0], f"{each} landed before the character it followed"
        if kept and after in where:
            assert kept[-1] < where[after], f"{each} landed after the character it preceded"
