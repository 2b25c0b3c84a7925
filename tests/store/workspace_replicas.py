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
