"""In-process nodes for the sync tests: a real SQLite Repo and a real Network on 127.0.0.1 each.

``Cluster`` starts named nodes in one trio run, each in a cancel scope of its own so a test can
stop one (its store survives in ``tmp_path``) and start it again. Waiting is event-driven:
every store write and every network event pokes one ``Signal``, and ``until`` re-checks its
predicate on each poke, under a deadline — never a fixed sleep.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import trio

from node.events import NetworkEvent, PeerPenalty
from node.network import Network, NetworkOptions
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.identity import Identity
from protocol.limits import SyncConfig
from protocol.space import Genesis
from store.repo import Repo
from store.workspace import Workspace

STEP_TIMEOUT_S = 20
TCP_ONLY = ("/ip4/127.0.0.1/tcp/0",)
# Timings for tests: connections that die are noticed in seconds, not the production minute.
FAST_SYNC = SyncConfig(heartbeat_interval_ms=1_000, peer_timeout_ms=3_000, anti_entropy_interval_ms=2_000)

Report = TypeVar("Report", bound=NetworkEvent)


def identity_of(name: str) -> Identity:
    return Identity(hashlib.sha256(b"sync test identity " + name.encode()).digest())


def genesis_of(creator: str = "alice", name: str = "team") -> Genesis:
    return Genesis.create(identity_of(creator), name, NOW_MS, nonce=bytes(16))


class Signal:
    """Wakes every waiter whenever anything happened; ``until`` waits for a predicate."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def poke(self, *_: Any) -> None:
        self._event.set()
        self._event = trio.Event()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = STEP_TIMEOUT_S, what: str = "") -> None:
        with trio.fail_after(timeout_s):
            while not predicate():
                event = self._event
                # Re-check at least every half second: some states (libp2p connections) change
                # without a poke.
                with trio.move_on_after(0.5):
                    await event.wait()


@dataclass
class Node:
    name: str
    identity: Identity
    path: Path
    repo: Repo
    network: Network
    scope: trio.CancelScope
    events: list[NetworkEvent] = field(default_factory=list)  # what its network reported
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def reports(self, kind: type[Report]) -> list[Report]:
        """What its network reported of one kind, oldest first."""
        return [report for report in self.events if isinstance(report, kind)]

    def penalties(self, peer_id: str | None = None) -> list[PeerPenalty]:
        """The penalties it gave (to ``peer_id``, or to anyone)."""
        return [p for p in self.reports(PeerPenalty) if peer_id is None or p.peer_id == peer_id]

    def addr(self, transport: str = "tcp") -> str:
        return str(self.network.host.addrs(transport)[0])

    def workspace(self, space: bytes) -> Workspace:
        return Workspace(self.repo, space)

    def heads(self, space: bytes) -> dict[bytes, list[bytes]]:
        return {doc: self.repo.heads(space, doc) for doc in self.repo.doc_ids(space)}

    def connected_to(self, other: Node) -> bool:
        return other.peer_id in self.network.host.connected_peers()

    def syncing_with(self, other: Node, space: bytes) -> bool:
        return any(
            s["peer_id"] == other.peer_id and s["space"] == space.hex() and s["active"] for s in self.network.driver.sessions()
        )


class Cluster:
    """Named nodes sharing one trio run; stop and restart any of them."""

    def __init__(self, nursery: trio.Nursery, tmp_path: Path, options: NetworkOptions) -> None:
        self.nursery = nursery
        self.tmp_path = tmp_path
        self.options = options
        self.signal = Signal()
        self.nodes: dict[str, Node] = {}

    async def start(
        self,
        name: str,
        geneses: Sequence[Genesis] = (),
        *,
        peers: Sequence[str] = (),
        **overrides: Any,
    ) -> Node:
        """Open (or reopen) the node's store, join the spaces, start its network."""
        identity = identity_of(name)
        path = self.tmp_path / name
        path.mkdir(exist_ok=True)
        repo = Repo.open(path / "store.sqlite", identity)
        for genesis in geneses:
            repo.add_space(genesis)
        options = replace(self.options, peers=tuple(peers), **overrides)
        holder: dict[str, Node] = {}

        def on_event(report: NetworkEvent) -> None:
            holder["node"].events.append(report)
            self.signal.poke()

        network = Network(repo, options, home=path, on_event=on_event)
        node = Node(name, identity, path, repo, network, trio.CancelScope())
        holder["node"] = node
        repo.subscribe(self.signal.poke)
        self.nodes[name] = node
        await self.nursery.start(self._run, node)
        return node

    async def _run(self, node: Node, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with node.scope:
                await node.network.serve(task_status=task_status)
        finally:
            node.repo.close()
            node.stopped.set()
            self.signal.poke()

    async def stop(self, name: str) -> None:
        node = self.nodes[name]
        node.scope.cancel()
        with trio.fail_after(STEP_TIMEOUT_S):
            await node.stopped.wait()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = STEP_TIMEOUT_S) -> None:
        await self.signal.until(predicate, timeout_s)

    async def converged(self, space: bytes, names: Sequence[str] | None = None, timeout_s: float = STEP_TIMEOUT_S) -> None:
        nodes = [self.nodes[n] for n in (names or list(self.nodes))]

        def same() -> bool:
            first = nodes[0].heads(space)
            return bool(first) and all(node.heads(space) == first for node in nodes[1:])

        await self.until(same, timeout_s)


@asynccontextmanager
async def cluster(tmp_path: Path, options: NetworkOptions = NetworkOptions(listen=TCP_ONLY, sync=FAST_SYNC)) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        group = Cluster(nursery, tmp_path, options)
        try:
            yield group
        finally:
            nursery.cancel_scope.cancel()
