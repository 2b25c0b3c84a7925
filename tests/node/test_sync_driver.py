"""The sync driver on in-memory streams, under trio's MockClock: no sockets, no libp2p host.

Each peer is a real ``SyncDriver`` over a real ``Repo`` (SQLite in ``tmp_path``). Their sync
streams are ``trio.testing.memory_stream_pair`` ends inside the driver's own ``FrameStream``,
handed out by ``MemoryHosts`` as ``node.host.Host`` hands out libp2p streams. Time is the
``autojump_clock``: a deadline of seconds passes as soon as every task waits, so the timeouts
below are exercised without real waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing
from libp2p.peer.id import ID

from node.errors import DialError, StreamResetError
from node.events import NetworkEvent, SessionClosed, SessionOpened
from node.framing import FrameStream
from node.host import SYNC_PROTOCOL, StreamHandler
from node.sync_driver import DriverLimits, SyncDriver
from protocol.identity import Identity
from protocol.limits import SyncConfig
from protocol.space import Genesis
from store.repo import Repo
from store.workspace import Workspace
from store.workspace_errors import ContentUnavailable
from sync_helpers import NOW_MS, Signal, genesis_of, identity_of

# Heartbeats every second, so the Replicator hands its sync states over within a test step.
FAST_HEARTBEAT = SyncConfig(heartbeat_interval_ms=1_000)


class _MemoryConn:
    """What ``FrameStream`` and ``address_key`` ask of a libp2p connection."""

    def __init__(self, peer_id: str) -> None:
        self.peer_id = ID.from_base58(peer_id)

    def get_remote_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 4001)


class _MemoryNetStream:
    """One end of a memory stream pair as the libp2p stream a ``FrameStream`` wraps. A reset
    reaches the other end as yamux reports one: end of stream, and ``reset_received`` set."""

    def __init__(self, stream: trio.abc.HalfCloseableStream, remote_peer_id: str) -> None:
        self._stream = stream
        self.muxed_conn = _MemoryConn(remote_peer_id)
        self.muxed_stream = self
        self.reset_received = False
        self.other: _MemoryNetStream | None = None

    def get_protocol(self) -> str:
        return SYNC_PROTOCOL

    async def read(self, max_bytes: int) -> bytes:
        return await self._stream.receive_some(max_bytes)

    async def write(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def close_write(self) -> None:
        await self._stream.send_eof()

    async def close(self) -> None:
        await self._stream.aclose()

    async def reset(self) -> None:
        if self.other is not None:
            self.other.reset_received = True
        await self._stream.aclose()


class MemoryHosts:
    """Sync streams between peers of one trio run: each peer's ``host(peer_id)`` opens streams
    to the others and serves the ones they open, as ``node.host.Host`` does over libp2p."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._handlers: dict[tuple[str, str], StreamHandler] = {}
        self._streams: list[_MemoryNetStream] = []

    def host(self, peer_id: str) -> MemoryHost:
        return MemoryHost(self, peer_id)

    async def cut(self) -> None:
        """Reset every stream opened so far, as a lost connection does."""
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.reset_received = True
            await stream.close()

    async def open(self, dialer: str, peer_id: str, protocol: str) -> FrameStream:
        handler = self._handlers.get((peer_id, protocol))
        if handler is None:
            raise DialError(f"no {protocol} handler", peer_id=peer_id)
        dialer_end, listener_end = trio.testing.memory_stream_pair()
        ours, theirs = _MemoryNetStream(dialer_end, peer_id), _MemoryNetStream(listener_end, dialer)
        ours.other, theirs.other = theirs, ours
        self._streams += [ours, theirs]
        self._nursery.start_soon(self._serve, handler, FrameStream(theirs))  # type: ignore[arg-type]
        return FrameStream(ours)  # type: ignore[arg-type]

    @staticmethod
    async def _serve(handler: StreamHandler, frames: FrameStream) -> None:
        async with frames:  # closed after the handler, reset if it raised (as Host does)
            await handler(frames)


@dataclass
class MemoryHost:
    hosts: MemoryHosts
    peer_id: str

    async def open_stream(self, peer_id: str, protocol: str = SYNC_PROTOCOL) -> FrameStream:
        return await self.hosts.open(self.peer_id, peer_id, protocol)

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        self.hosts._handlers[self.peer_id, protocol] = handler

    def remove_stream_handler(self, protocol: str) -> None:
        self.hosts._handlers.pop((self.peer_id, protocol), None)


@dataclass
class Peer:
    name: str
    identity: Identity
    repo: Repo
    driver: SyncDriver
    scope: trio.CancelScope
    events: list[NetworkEvent] = field(default_factory=list)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def workspace(self, space: bytes) -> Workspace:
        return Workspace(self.repo, space)

    def sessions(self, kind: type[SessionOpened | SessionClosed]) -> list[NetworkEvent]:
        return [event for event in self.events if isinstance(event, kind)]


class Peers:
    """Named peers, each a driver over its own SQLite repo, on ``MemoryHosts``."""

    def __init__(self, nursery: trio.Nursery, tmp_path: Path) -> None:
        self._nursery = nursery
        self._tmp_path = tmp_path
        self.hosts = MemoryHosts(nursery)
        self.signal = Signal()

    async def start(
        self, name: str, genesis: Genesis, *, config: SyncConfig = SyncConfig(), limits: DriverLimits = DriverLimits()
    ) -> Peer:
        identity = identity_of(name)
        repo = Repo.open(self._tmp_path / f"{name}.sqlite", identity)
        repo.add_space(genesis)
        repo.subscribe(self.signal.poke)
        peer = Peer(name, identity, repo, None, trio.CancelScope())  # type: ignore[arg-type]

        def on_event(event: NetworkEvent) -> None:
            peer.events.append(event)
            self.signal.poke()

        peer.driver = SyncDriver(self.hosts.host(identity.peer_id), repo, config=config, limits=limits, on_event=on_event)

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with peer.scope:
                await peer.driver.run(task_status=task_status)

        await self._nursery.start(run)
        return peer

    async def alice_and_bob(self, genesis: Genesis, *, config: SyncConfig = SyncConfig()) -> tuple[Peer, Peer]:
        return await self.start("alice", genesis, config=config), await self.start("bob", genesis, config=config)

    async def until(self, predicate: Callable[[], object]) -> None:
        await self.signal.until(lambda: bool(predicate()))


@asynccontextmanager
async def peers(tmp_path: Path) -> AsyncIterator[Peers]:
    async with trio.open_nursery() as nursery:
        yield Peers(nursery, tmp_path)
        nursery.cancel_scope.cancel()


def files_of(peer: Peer, space: bytes, *names: str) -> list[object]:
    """The content of each file, None where the peer does not hold it (yet)."""
    workspace = peer.workspace(space)
    contents: list[object] = []
    for name in names:
        try:
            contents.append(workspace.read(name) if workspace.exists(name) else None)
        except ContentUnavailable:  # the tree has arrived, the file's own doc not yet
            contents.append(None)
    return contents


async def test_a_session_opens_and_changes_sync_both_ways(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with peers(tmp_path) as net:
        alice, bob = await net.alice_and_bob(genesis)
        alice.workspace(space).write("alice.txt", "from alice", now_ms=NOW_MS)
        bob.workspace(space).write("bob.txt", "from bob", now_ms=NOW_MS)
        alice.driver.request_session(bob.peer_id, space)
        await net.until(lambda: bob.sessions(SessionOpened) and alice.sessions(SessionOpened))
        assert alice.sessions(SessionOpened) == [SessionOpened(bob.peer_id, space, outbound=True)]
        assert bob.sessions(SessionOpened) == [SessionOpened(alice.peer_id, space, outbound=False)]
        both = ("alice.txt", "bob.txt")
        await net.until(lambda: files_of(alice, space, *both) == files_of(bob, space, *both) == ["from alice", "from bob"])
        # A live edit on the open session is pushed.
        bob.workspace(space).write("live.txt", "pushed", now_ms=NOW_MS)
        await net.until(lambda: files_of(alice, space, "live.txt") == ["pushed"])
        docs = alice.repo.doc_ids(space)
        assert sorted(docs) == sorted(bob.repo.doc_ids(space))
        assert [alice.repo.heads(space, doc) for doc in docs] == [bob.repo.heads(space, doc) for doc in docs]
        assert alice.driver.stats["sessions_opened"] == bob.driver.stats["sessions_opened"] == 1
        assert alice.driver.stats["internal_failures"] == bob.driver.stats["internal_failures"] == 0


async def test_the_hello_deadline_closes_a_silent_peer(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """The driver's own deadline (here 1 s, before the Replicator's 10-s Hello timeout) drops
    a stream that never says Hello; the mock clock jumps there."""
    genesis = genesis_of()
    async with peers(tmp_path) as net:
        bob = await net.start("bob", genesis, config=SyncConfig(hello_timeout_ms=10_000), limits=DriverLimits(hello_deadline_s=1.0))
        mallory = identity_of("mallory")
        frames = await net.hosts.host(mallory.peer_id).open_stream(bob.peer_id)
        opened_s = trio.current_time()
        with pytest.raises(StreamResetError):
            await frames.receive_bytes()
        assert 1.0 <= trio.current_time() - opened_s < 10.0
        assert bob.driver.stats["hello_timeouts"] == 1
        assert bob.driver.sessions() == [] and not bob.sessions(SessionOpened)


async def test_a_lost_stream_closes_the_session_and_a_new_one_resumes(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    genesis = genesis_of()
    space = genesis.space_id
    async with peers(tmp_path) as net:
        alice, bob = await net.alice_and_bob(genesis)
        alice.workspace(space).write("before.txt", "synced", now_ms=NOW_MS)
        alice.driver.request_session(bob.peer_id, space)
        await net.until(lambda: files_of(bob, space, "before.txt") == ["synced"])
        await net.hosts.cut()
        await net.until(lambda: alice.sessions(SessionClosed) and bob.sessions(SessionClosed))
        [closed] = bob.sessions(SessionClosed)
        assert isinstance(closed, SessionClosed) and (closed.peer_id, closed.space) == (alice.peer_id, space)
        assert alice.driver.sessions() == bob.driver.sessions() == []
        # Edits on both sides while apart reach the other once a new session is opened.
        alice.workspace(space).write("apart-alice.txt", "a", now_ms=NOW_MS)
        bob.workspace(space).write("apart-bob.txt", "b", now_ms=NOW_MS)
        alice.driver.request_session(bob.peer_id, space)
        apart = ("before.txt", "apart-alice.txt", "apart-bob.txt")
        await net.until(lambda: files_of(alice, space, *apart) == files_of(bob, space, *apart) == ["synced", "a", "b"])
        assert len(alice.sessions(SessionOpened)) == len(bob.sessions(SessionOpened)) == 2
        assert alice.driver.stats["internal_failures"] == bob.driver.stats["internal_failures"] == 0


async def test_sync_states_are_written_behind_and_flushed(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """The Replicator hands Bob's driver its sync states for Alice (at its timers and when the
    session ends); the driver holds them and writes them to the repo every second while the
    session is open, and once more when it stops. Bob's reopened SQLite file holds the changes
    applied and those states."""
    genesis = genesis_of()
    space = genesis.space_id
    alice_key = identity_of("alice").public_key

    def states(repo: Repo) -> dict[bytes, bytes | None]:
        return {doc: repo.load_sync_state(alice_key, space, doc) for doc in repo.doc_ids(space)}

    async with peers(tmp_path) as net:
        alice, bob = await net.alice_and_bob(genesis, config=FAST_HEARTBEAT)
        alice.workspace(space).write("doc.txt", "applied by bob", now_ms=NOW_MS)
        alice.driver.request_session(bob.peer_id, space)
        await net.until(lambda: files_of(bob, space, "doc.txt") == ["applied by bob"])
        await net.until(lambda: all(states(bob.repo).values()))
        assert bob.driver.sessions() != []  # written while the session is open
        while_open = states(bob.repo)
        bob.scope.cancel()
        await net.until(lambda: bob.sessions(SessionClosed))
        bob.repo.close()
    reopened = Repo.open(tmp_path / "bob.sqlite", identity_of("bob"))
    try:
        assert Workspace(reopened, space).read("doc.txt") == "applied by bob"
        assert states(reopened) == while_open
    finally:
        reopened.close()
