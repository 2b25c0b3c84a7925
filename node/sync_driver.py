"""The trio driver of the sans-IO ``Replicator``: libp2p streams in, actions out.

``protocol.replicator.Replicator`` decides everything about sync; this module only performs
what it asks, exactly as ``tests/protocol/harness.py`` does in memory:

- one sync stream (``/distspace/sync/1``) is one Replicator connection. Each has a *reader*
  task that feeds every byte it reads to the Replicator at once (``DataReceived``) — reading
  never waits on anything else, so a yamux peer is never left with a full window — and a
  *writer* task that drains the connection's own send queue, several frames per write.
- ``Send`` appends a whole frame to that queue. The queue is bounded in bytes: a peer that
  stops reading (its writes stall for ``write_stall_s``) or lets ``send_queue_bytes_max``
  pile up is dropped, so it can never stall the others or make us hold unbounded memory.
  It catches up when it reconnects: the Hello exchange resends whatever it lacks.
- ``Disconnect`` flushes what is queued (the ``Bye``), then closes; ``SetTimer`` sets the
  connection's single deadline, served by one timer task for all connections;
  ``Applied`` / ``PeerPenalized`` become events for the API and the peer manager.
- a stream reset, a lost connection or a clean end of stream is ``ConnectionLost``.

Who may hold a session. Peer ids cost nothing, so every key we never met is a *stranger*, and
strangers share what is left after a reserve kept for peers we know (we dialled them, they are
in the peerstore, we synced with them: the network says, through ``is_known``). Strangers are
also capped per remote address (an IPv6 /64 counts as one), in all and before their Hello. A
session not yet past its Hello is read at most ``hello_bytes_max`` bytes, and is dropped if
the Hello exchange has not finished within ``hello_deadline_s``: a peer that trickles a byte
now and then never gets to hold a partial 4 MiB frame, nor a slot for long.

The Replicator is synchronous and not reentrant, and the store it calls must be used from one
thread, so every event goes through ``_feed`` on the trio thread, one at a time; events raised
while one is being handled (a local commit announced by the store) wait in a queue.

Group commit: the events waiting in that queue are handled inside one ``Repo.group``, so every
remote batch they carry — a read of a busy stream holds dozens of single-change pushes — is
stored by one transaction, not one each. Their actions are performed once it has committed:
nothing is forwarded, answered or reported before it is stored. Should that commit fail, the
Replicator has seen changes the store does not hold, so it is replaced by a fresh one and every
stream is dropped; peers reconnect and reconcile with what the store really holds.

Local edits reach the Replicator through the store: every commit by the local author is
announced by ``Repo.subscribe`` and queued in ``node.local_commits``, which merges the commits
that continue each other into one batch, fed at the next checkpoint. The Replicator reads and
writes the repo through ``node.replica_store.ReplicaStore``, which holds per-peer sync states
and writes them behind (flushed every ``SYNC_STATE_FLUSH_S``, when a stream closes, on stop).

Time is trio's clock in milliseconds (``SyncConfig`` timings are durations, and nothing the
Replicator persists holds a time), so tests can run it on a fake clock.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import trio
from libp2p.peer.id import ID

from node.errors import NodeError, PeerKeyError, ProtocolRefused, SessionLimitExceeded
from node.events import ChangesApplied, NetworkEvent, NetworkEventSink, PeerPenalty, SessionClosed, SessionOpened
from node.framing import FrameStream
from node.host import SYNC_PROTOCOL, StreamHandler, address_key, is_loopback_key
from node.local_commits import LocalCommitQueue
from node.logs import event as log
from node.replica_store import SYNC_STATE_FLUSH_S, ReplicaStore
from protocol.capabilities import MAX_RECORD_BYTES
from protocol.errors import LocalProtocolError
from protocol.events import (
    Action,
    Applied,
    CapabilitiesAdded,
    Connected,
    ConnectionLost,
    ConnId,
    DataReceived,
    Disconnect,
    Event,
    PeerPenalized,
    Send,
    SetTimer,
    SpaceAdded,
    TimerFired,
)
from protocol.identity import PUBLIC_KEY_BYTES, peer_id_of
from protocol.limits import (
    DISCONNECT_SCORE,
    MAX_FRAME_BYTES,
    MAX_FRAME_HEADER_BYTES,
    MAX_PRE_HELLO_FRAME_BYTES,
    MAX_PROOF_RECORDS,
    SyncConfig,
)
from protocol.replicator import Replicator
from store.errors import StorageError
from store.repo import CapabilitiesAdded as StoredCapabilities
from store.repo import ChangesRevoked, Repo, RepoEvent, StoreEvent, wall_clock_ms

logger = logging.getLogger(__name__)

__all__ = ["DriverLimits", "KnownPeers", "SyncDriver", "SyncStreams", "peer_key_of"]

# Whether a peer id is one we know (see the module docstring); the network answers.
KnownPeers = Callable[[str], bool]
# libp2p peer id bytes of an Ed25519 key: identity multihash (0x00, length 36) of the key's
# protobuf (field 1 = Ed25519, field 2 = 32 bytes).
_ED25519_PEER_ID_PREFIX: Final = bytes([0x00, 36, 0x08, 0x01, 0x12, PUBLIC_KEY_BYTES])
# Shut-down of one stream (flush is bounded separately); a dead peer must not hold us up.
STREAM_CLOSE_TIMEOUT_S: Final = 2.0
# A peer that refused a space (or does not speak our protocol) is asked again after this long
# even if it stays connected: it may have joined the space meanwhile.
NOT_SHARED_RETRY_S: Final = 60.0
# (peer, space) refusals remembered; beyond this the oldest is forgotten (which only means
# asking that peer again). Many times our peers times our spaces.
NOT_SHARED_MAX: Final = 4096

# --- DriverLimits' defaults: what one peer, one address and all strangers can hold ---
# Sync streams at once, over all peers: each holds a Replicator session and up to a frame.
SESSIONS_MAX: Final = 1024
# Per peer: one per space we share with it, and a twin for a moment when both sides open one
# at once. A person shares a handful of spaces with a colleague; a peer sharing more syncs the
# rest once it retries (NOT_SHARED_RETRY_S) after others closed.
SESSIONS_PER_PEER_MAX: Final = 16
# Of SESSIONS_MAX, kept for peers we know: a flood of fresh keys fills the rest, no more.
# A quarter: 16 known peers sharing 16 spaces each still fit.
SESSIONS_RESERVED_FOR_KNOWN: Final = 256
# Sessions of strangers from one address: a NAT in front of a few peers sharing a few spaces
# each fits; one machine minting keys gets this many, not the whole stranger share.
SESSIONS_PER_ADDRESS_MAX: Final = 64
# Inbound sessions of strangers not yet past their Hello, in all and from one address: an
# honest Hello comes within a round trip, so only a few wait at any moment.
HELLO_PENDING_MAX: Final = 64
HELLO_PENDING_PER_ADDRESS_MAX: Final = 8
# A joiner's proof before its Hello (protocol/replicator.py): MAX_PROOF_RECORDS records of at
# most MAX_RECORD_BYTES, each with its CBOR header, in one frame with room for its digest.
PROOF_BYTES_MAX: Final = MAX_PROOF_RECORDS * (MAX_RECORD_BYTES + 3) + 64
# Bytes read on a stream before its Hello is handled: the largest Hello the Replicator takes
# (one frame of at most MAX_PRE_HELLO_FRAME_BYTES, a status page with room to spare), a proof
# before it, and their headers. Reads stop there, so a peer that has not said who it is makes
# us hold no more; what follows an honest Hello is read once it is handled.
HELLO_BYTES_MAX: Final = MAX_PRE_HELLO_FRAME_BYTES + PROOF_BYTES_MAX + 2 * MAX_FRAME_HEADER_BYTES
# The wall-clock deadline of the Hello exchange (both Hellos handled) is the Replicator's
# SyncConfig.hello_timeout_ms plus this: a backstop, for the Replicator's clock only moves
# with events, and one that fails to close a session must not let a trickle hold it.
HELLO_DEADLINE_MARGIN_S: Final = 2.0


class SyncStreams(Protocol):
    """Where the driver's streams come from: ``node.host.Host`` over libp2p; tests hand out
    in-memory ones (tests/node/test_sync_driver.py)."""

    async def open_stream(self, peer_id: str, protocol: str) -> FrameStream: ...

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None: ...

    def remove_stream_handler(self, protocol: str) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverLimits:
    """What one peer can make the driver hold or wait for."""

    # Bytes queued for one connection before it is dropped as too slow. A reconciliation
    # reply is queued at once and may hold several saved documents of up to MAX_FRAME_BYTES,
    # so this is many frames' worth; 32 connections at the limit stay within 2 GiB.
    send_queue_bytes_max: int = 16 * MAX_FRAME_BYTES
    # A write (of at most write_slice_bytes) that makes no progress this long means the peer
    # stopped reading: drop it. Below yamux's own 5 s give-up on a full window, so the cause
    # is named and counted; QUIC and WebRTC streams have no such give-up of their own.
    write_stall_s: float = 4.0
    # Frames coalesced into one write: ~45 MB/s over yamux at this size (libraries.md).
    write_chunk_bytes: int = 256 * 1024
    # A chunk goes in slices of this, each given write_stall_s: a slice returns once the peer
    # has read enough to open yamux's 256 KiB window for it, and a live peer slower than us (a
    # fresh peer applying a 20,000-file space at ~300 KB/s) took over 4 s to drain a whole
    # chunk's worth, so it was dropped as stalled and the fetch started over, again and again.
    write_slice_bytes: int = 64 * 1024
    # After a Disconnect, the Bye and anything queued before it get this long to leave.
    flush_on_close_s: float = 2.0
    # Sessions, and who may hold them (the constants above say why these numbers).
    sessions_max: int = SESSIONS_MAX
    sessions_per_peer_max: int = SESSIONS_PER_PEER_MAX
    sessions_reserved_known: int = SESSIONS_RESERVED_FOR_KNOWN
    sessions_per_address_max: int = SESSIONS_PER_ADDRESS_MAX
    hello_pending_max: int = HELLO_PENDING_MAX
    hello_pending_per_address_max: int = HELLO_PENDING_PER_ADDRESS_MAX
    hello_bytes_max: int = HELLO_BYTES_MAX
    hello_deadline_s: float | None = None  # None: hello_timeout_ms + HELLO_DEADLINE_MARGIN_S
    # Per-address limits (here and the network's) skip loopback unless this is set: a peer on
    # 127.0.0.1 runs on this machine, whose users can read our store anyway, and tests and the
    # demo run many honest peers there. Set it when remote peers reach us through a local
    # proxy or tunnel (then they all seem to come from 127.0.0.1).
    limit_loopback: bool = False

    def limits_address(self, key: str) -> bool:
        """Whether per-address limits apply to an ``address_key``."""
        return self.limit_loopback or not is_loopback_key(key)


def peer_key_of(peer_id: str) -> bytes:
    """The Ed25519 public key a libp2p peer id embeds (our peers' ids always do).

    Raises:
        PeerKeyError: not a peer id, or one of a key type we do not accept (RSA, secp256k1...).
    """
    try:
        raw = ID.from_base58(peer_id).to_bytes()
    except Exception as error:
        raise PeerKeyError(f"not a peer id: {error}", peer_id=peer_id) from error
    key = raw[len(_ED25519_PEER_ID_PREFIX) :]
    if not raw.startswith(_ED25519_PEER_ID_PREFIX) or len(key) != PUBLIC_KEY_BYTES or peer_id_of(key) != peer_id:
        raise PeerKeyError("not an Ed25519 peer id", peer_id=peer_id)
    return key


@dataclass(eq=False, slots=True)
class _Conn:
    """One sync stream and what the driver holds for it."""

    id: int
    peer_id: str
    peer_key: bytes
    frames: FrameStream
    outbound: bool  # we opened it (and so chose its space)
    space: bytes | None  # known at once when outbound, after the peer's Hello when inbound
    address: str  # node.host.address_key of its connection
    stranger: bool  # inbound from a peer we did not know when it opened
    queue: deque[bytes] = field(default_factory=deque)
    queued_bytes: int = 0
    wake: trio.Event = field(default_factory=trio.Event)
    active: bool = False  # past the Hello exchange: the Replicator syncs it
    known: bool = True  # the Replicator still has it (not yet Disconnect-ed or lost)
    closing: str | None = None  # why we are closing it
    flushed: bool = False  # the writer sent everything queued before closing
    timer_at_ms: int | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class SyncDriver:
    """Runs one ``Replicator`` over libp2p sync streams; see the module docstring.

    Start it with ``await nursery.start(driver.run)``; it then serves inbound sync streams.
    ``request_session(peer_id, space)`` opens one to a connected peer. Everything happens on
    the trio thread that runs it (the store's thread). ``is_known`` tells peers we know from
    strangers (default: none is known; sessions we open are always ours).

    ``stats`` counts what happened; ``stats["internal_failures"]`` every failure of our own
    code or store that was contained (logged at error level with its traceback): a healthy
    node keeps it at 0.
    """

    def __init__(
        self,
        host: SyncStreams,
        repo: Repo,
        *,
        config: SyncConfig = SyncConfig(),
        limits: DriverLimits = DriverLimits(),
        rng: random.Random | None = None,
        on_event: NetworkEventSink | None = None,
        is_known: KnownPeers = lambda peer_id: False,
    ) -> None:
        self.host = host
        self.repo = repo
        self.limits = limits
        self.key = repo.identity.public_key
        self.stats: Counter[str] = Counter()
        self._on_event = on_event
        self._is_known = is_known
        self._spaces: set[bytes] = {genesis.space_id for genesis in repo.spaces()}
        self._store = ReplicaStore(repo, self._failed)
        self._config = config
        self._hello_deadline_s = (
            limits.hello_deadline_s if limits.hello_deadline_s is not None else config.hello_timeout_ms / 1000 + HELLO_DEADLINE_MARGIN_S
        )
        self._rng = rng or random.Random()
        self.replicator = self._new_replicator()
        self._conns: dict[ConnId, _Conn] = {}
        self._next_conn = 0
        self._pending: deque[Event] = deque()
        self._busy = False
        self._local_commits = LocalCommitQueue(repo)
        self._opening: set[tuple[str, bytes]] = set()
        # (peer, space) -> trio time until which we do not offer the space to the peer again:
        # it said it does not serve it, or it does not speak our protocol at all.
        self._not_shared: dict[tuple[str, bytes], float] = {}
        self._nursery: trio.Nursery | None = None
        self._timer_scope: trio.CancelScope | None = None

    # ----- lifecycle -----

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve sync streams until cancelled; on the way out, close every stream."""
        unsubscribe = self.repo.subscribe(self._on_store_event)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timers)
                nursery.start_soon(self._flush_sync_states)
                nursery.start_soon(self._local_commits.push_to, self._feed)
                self.host.set_stream_handler(SYNC_PROTOCOL, self._on_inbound)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            unsubscribe()
            self.host.remove_stream_handler(SYNC_PROTOCOL)
            self._store.flush()

    async def _flush_sync_states(self) -> None:
        while True:
            await trio.sleep(SYNC_STATE_FLUSH_S)
            self._store.flush()

    # ----- what the peer manager asks -----

    @property
    def spaces(self) -> frozenset[bytes]:
        return frozenset(self._spaces)

    def add_space(self, space: bytes) -> bool:
        """Serve a space the repo gained (created or joined); False if already served."""
        if space in self._spaces:
            return False
        self._spaces.add(space)
        self._not_shared = {pair: until for pair, until in self._not_shared.items() if pair[1] != space}
        self._feed(SpaceAdded(space))
        return True

    def has_session(self, peer_id: str, space: bytes) -> bool:
        """Whether a sync stream for ``space`` with the peer is open, or being opened."""
        if (peer_id, space) in self._opening:
            return True
        return any(c.peer_id == peer_id and c.space == space and c.closing is None for c in self._conns.values())

    def is_shared(self, peer_id: str, space: bytes) -> bool:
        """False for a while once the peer refused ``space`` (or our protocol): until it
        reconnects, or ``NOT_SHARED_RETRY_S`` passed."""
        return self._not_shared.get((peer_id, space), 0.0) <= trio.current_time()

    def peer_connected(self, peer_id: str) -> None:
        """A new libp2p connection: forget what the peer said about its spaces before."""
        self._not_shared = {pair: until for pair, until in self._not_shared.items() if pair[0] != peer_id}

    def _refused(self, peer_id: str, space: bytes) -> None:
        now = trio.current_time()
        if len(self._not_shared) >= NOT_SHARED_MAX:
            self._not_shared = {pair: until for pair, until in self._not_shared.items() if until > now}
            while len(self._not_shared) >= NOT_SHARED_MAX:
                del self._not_shared[next(iter(self._not_shared))]  # the oldest refusal
        self._not_shared.pop((peer_id, space), None)  # re-inserted: newest last
        self._not_shared[peer_id, space] = now + NOT_SHARED_RETRY_S

    def request_session(self, peer_id: str, space: bytes) -> None:
        """Open a sync stream for ``space`` to a connected peer, in the background.

        A no-op when one is open or opening, or the peer said it does not serve the space.
        """
        if self._nursery is None or space not in self._spaces:
            return
        if self.has_session(peer_id, space) or not self.is_shared(peer_id, space):
            return
        self._opening.add((peer_id, space))
        self._nursery.start_soon(self._open, peer_id, space)

    def close_peer(self, peer_id: str, reason: str) -> None:
        """Drop every sync stream with a peer (the peer manager is closing its connection)."""
        for conn in [c for c in self._conns.values() if c.peer_id == peer_id]:
            self._lose(conn, reason, graceful=False)

    def sessions(self) -> list[dict[str, Any]]:
        """The open sync streams, for status and metrics."""
        return [
            {
                "peer_id": conn.peer_id,
                "space": conn.space.hex() if conn.space else None,
                "outbound": conn.outbound,
                "active": conn.active,
                "queued_bytes": conn.queued_bytes,
            }
            for conn in self._conns.values()
            if conn.closing is None
        ]

    @property
    def queued_bytes(self) -> int:
        return sum(conn.queued_bytes for conn in self._conns.values())

    # ----- streams -----

    async def _open(self, peer_id: str, space: bytes) -> None:
        try:
            frames = await self.host.open_stream(peer_id, SYNC_PROTOCOL)
        except NodeError as error:
            log(logger, "sync.open_failed", logging.DEBUG, peer_id=peer_id, space=space.hex()[:12], error=repr(error))
            self.stats["session_open_failures"] += 1
            if isinstance(error, ProtocolRefused):
                self._refused(peer_id, space)
            # Otherwise the connection failed under the stream (a duplicate being closed, a
            # peer restarting): the network's next tick or connection asks again.
            return
        finally:
            self._opening.discard((peer_id, space))
        try:
            conn = self._admit(frames, outbound=True, space=space)
        except NodeError as error:
            log(logger, "sync.refused", peer_id=peer_id, error=error)
            await frames.reset()
            return
        await self._serve(conn)

    async def _on_inbound(self, frames: FrameStream) -> None:
        """libp2p's handler for a sync stream a peer opened: serve it in our nursery.

        The connection task must belong to the driver (it is cancelled with it); this handler,
        running in libp2p's task, only waits for it so libp2p does not close the stream early.
        """
        nursery = self._nursery
        if nursery is None:
            await frames.reset()
            return
        try:
            conn = self._admit(frames, outbound=False, space=None)
        except NodeError as error:
            log(logger, "sync.refused", peer_id=frames.peer_id, error=error)
            self.stats["sessions_refused"] += 1
            await frames.reset()
            return
        done = trio.Event()

        async def serve() -> None:
            try:
                await self._serve(conn)
            finally:
                done.set()

        nursery.start_soon(serve)
        await done.wait()

    def _admit(self, frames: FrameStream, *, outbound: bool, space: bytes | None) -> _Conn:
        """A connection record for a new stream, within the session limits (see the module
        docstring: strangers get what the reserve for known peers leaves, per address too).

        Raises:
            PeerKeyError: the peer id does not carry an Ed25519 key.
            SessionLimitExceeded: a limit is reached; the peer may try again later.
        """
        peer_id = frames.peer_id
        key = peer_key_of(peer_id)
        address = address_key(frames.libp2p_stream.muxed_conn)
        stranger = not outbound and not self._is_known(peer_id)
        refusal = self._session_refusal(peer_id, address, stranger=stranger)
        if refusal is not None:
            self.stats[f"sessions_refused_{refusal[0]}"] += 1
            raise SessionLimitExceeded(refusal[1], peer_id=peer_id)
        self._next_conn += 1
        conn = _Conn(self._next_conn, peer_id, key, frames, outbound, space, address, stranger)
        self._conns[conn.id] = conn
        return conn

    def _session_refusal(self, peer_id: str, address: str, *, stranger: bool) -> tuple[str, str] | None:
        """Which limit a new session would break, as (counter suffix, reason), or None."""
        limits = self.limits
        conns = self._conns.values()
        if len(self._conns) >= limits.sessions_max:
            return "total", f"{len(self._conns)} sync streams open"
        with_peer = sum(1 for conn in conns if conn.peer_id == peer_id)
        if with_peer >= limits.sessions_per_peer_max:
            return "peer", f"{with_peer} sync streams with this peer"
        if not stranger:
            return None
        strangers = [conn for conn in conns if conn.stranger]
        if len(strangers) >= limits.sessions_max - limits.sessions_reserved_known:
            return "strangers", f"{len(strangers)} sync streams of peers we do not know"
        waiting = [conn for conn in strangers if not conn.active and conn.closing is None]
        if len(waiting) >= limits.hello_pending_max:
            return "hello_pending", f"{len(waiting)} sync streams of strangers wait for their Hello"
        if not limits.limits_address(address):
            return None
        if sum(1 for conn in strangers if conn.address == address) >= limits.sessions_per_address_max:
            return "address", f"{limits.sessions_per_address_max} sync streams of strangers from {address}"
        if sum(1 for conn in waiting if conn.address == address) >= limits.hello_pending_per_address_max:
            return "address_hello_pending", f"{limits.hello_pending_per_address_max} sync streams from {address} wait for their Hello"
        return None

    async def _serve(self, conn: _Conn) -> None:
        """Run one connection: its reader and writer, until either ends or we close it."""
        self.stats["sessions_opened"] += 1
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop, conn)
                    nursery.start_soon(self._read_loop, conn)
                    self._feed(Connected(conn.id, conn.peer_key, conn.space))
        finally:
            self._conns.pop(conn.id, None)
            if conn.known:
                conn.known = False
                self._feed(ConnectionLost(conn.id))
            if conn.outbound and not conn.active and conn.space is not None:
                # It closed before the Hello exchange finished: the peer does not serve the
                # space (or refused us); do not ask again for a while.
                self._refused(conn.peer_id, conn.space)
            with trio.CancelScope(shield=True), trio.move_on_after(STREAM_CLOSE_TIMEOUT_S):
                if conn.flushed:
                    await conn.frames.close()
                else:
                    await conn.frames.reset()
            self.stats["sessions_closed"] += 1
            self._store.flush()
            if conn.active and conn.space is not None:  # active: its space is known
                self._emit(SessionClosed(conn.peer_id, conn.space, conn.closing or ""))
            log(logger, "sync.closed", logging.DEBUG, peer_id=conn.peer_id, conn=conn.id, reason=conn.closing)

    async def _read_loop(self, conn: _Conn) -> None:
        try:
            if not await self._read_hello(conn):
                return
            while True:
                data = await conn.frames.receive_bytes()
                if not self._received(conn, data):
                    return
        except NodeError as error:
            self._lose(conn, f"stream failed: {error}", graceful=False)

    async def _read_hello(self, conn: _Conn) -> bool:
        """Read until the Hello exchange is done, within its byte budget and deadline;
        whether the session got past it (else it is closing)."""
        limits = self.limits
        budget = limits.hello_bytes_max
        with trio.move_on_after(self._hello_deadline_s):
            while not conn.active:
                if budget <= 0:
                    self.stats["hello_bytes_exceeded"] += 1
                    self._lose(conn, f"sent more than {limits.hello_bytes_max} bytes before its Hello", graceful=False)
                    return False
                data = await conn.frames.receive_bytes(budget)
                budget -= len(data)
                if not self._received(conn, data):
                    return False
            return True
        if conn.closing is None:  # not already being closed (by the Replicator's own timeout)
            self.stats["hello_timeouts"] += 1
            self._lose(conn, f"no Hello exchange within {self._hello_deadline_s} s", graceful=False)
        return False

    def _received(self, conn: _Conn, data: bytes) -> bool:
        """Hand what was read to the Replicator; whether to keep reading."""
        if not data:
            self._lose(conn, "peer closed the stream", graceful=True)
            return False
        self.stats["bytes_received"] += len(data)
        self._feed(DataReceived(conn.id, data))
        if not conn.active:
            self._check_active(conn)
        return conn.closing is None

    async def _write_loop(self, conn: _Conn) -> None:
        while True:
            if not conn.queue:
                if conn.closing is not None:
                    conn.flushed = True
                    conn.scope.cancel()
                    return
                conn.wake = trio.Event()
                await conn.wake.wait()
                continue
            chunk = [conn.queue.popleft()]
            size = len(chunk[0])
            while conn.queue and size + len(conn.queue[0]) <= self.limits.write_chunk_bytes:
                frame = conn.queue.popleft()
                chunk.append(frame)
                size += len(frame)
            data = b"".join(chunk)
            # In slices (write_slice_bytes): the stall limit is about progress, and a 4 MiB
            # frame, or a whole chunk, to a slow but live peer takes longer than that to leave.
            for start in range(0, len(data), self.limits.write_slice_bytes):
                piece = data[start : start + self.limits.write_slice_bytes]
                try:
                    with trio.fail_after(self.limits.write_stall_s):
                        await conn.frames.send_bytes(piece)
                except trio.TooSlowError:
                    self.stats["slow_peer_disconnects"] += 1
                    self._lose(conn, f"slow peer: a write made no progress for {self.limits.write_stall_s} s", graceful=False)
                    return
                except NodeError as error:
                    self._lose(conn, f"send failed: {error}", graceful=False)
                    return
                conn.queued_bytes -= len(piece)
                self.stats["bytes_sent"] += len(piece)

    def _lose(self, conn: _Conn, reason: str, *, graceful: bool) -> None:
        """Give up on a connection: the Replicator forgets it, and its tasks stop."""
        if conn.closing is None:
            conn.closing = reason
        if not graceful:
            conn.queue.clear()
            conn.queued_bytes = 0
        if conn.known:
            conn.known = False
            self._feed(ConnectionLost(conn.id))
        if graceful:
            conn.wake.set()  # the writer flushes what is queued, then closes
            conn.scope.deadline = min(conn.scope.deadline, trio.current_time() + self.limits.flush_on_close_s)
        else:
            conn.scope.cancel()

    def _check_active(self, conn: _Conn) -> None:
        """Notice when a connection got past its Hello exchange: learn its space, drop a twin."""
        spaces = [conn.space] if conn.space is not None else list(self._spaces)
        for space in spaces:
            if conn.id in self.replicator.connections(space):
                conn.space = space
                conn.active = True
                break
        if not conn.active or conn.space is None:
            return
        self.stats["sessions_active"] += 1
        self._emit(SessionOpened(conn.peer_id, conn.space, conn.outbound))
        twins = [
            c for c in self._conns.values()
            if c is not conn and c.active and c.closing is None and c.peer_id == conn.peer_id and c.space == conn.space
        ]
        if twins:
            # Both peers opened a stream for the space at once: both keep the one opened by
            # the peer with the smaller key (the older on a tie), so they agree without talking.
            ranked = sorted([conn, *twins], key=lambda c: (self._opener(c), c.id))
            for loser in ranked[1:]:
                self.stats["duplicate_sessions"] += 1
                self._lose(loser, "duplicate session for the space", graceful=True)

    def _opener(self, conn: _Conn) -> bytes:
        return self.key if conn.outbound else conn.peer_key

    # ----- the Replicator -----

    def _now_ms(self) -> int:
        return math.floor(trio.current_time() * 1000 + 1e-6)

    def _new_replicator(self) -> Replicator:
        return Replicator(self.repo.identity, self._store, self._rng, self._spaces, self._config, wall_clock_ms=wall_clock_ms)

    def _feed(self, *events: Event) -> None:
        """Hand events to the Replicator and perform their actions, one event at a time."""
        self._pending.extend(events)
        if self._busy:
            return  # raised while handling another event: handled right after it
        self._busy = True
        try:
            while self._pending:
                for action in self._handle_pending():
                    self._perform(action)  # may queue more events (a lost connection)
        finally:
            self._busy = False

    def _handle_pending(self) -> list[Action]:
        """Every queued event through the Replicator in one store group; their actions, in order."""
        actions: list[Action] = []
        try:
            with self.repo.group():
                while self._pending:
                    actions += self._handle(self._pending.popleft())
        except StorageError:
            self._failed("group_commit_failures", "sync.group_commit_failed", conns=len(self._conns))
            self._restart_replicator()
            return []
        except Exception:
            # A subscriber failed on a committed write (the actions stand), or the repo is
            # closed (nothing was handled, and nothing can be: drop what waits).
            self._failed("group_failures", "sync.group_failed")
            self._pending.clear()
        return actions

    def _handle(self, event: Event) -> list[Action]:
        try:
            return self.replicator.handle(event, self._now_ms())
        except LocalProtocolError as error:
            log(logger, "sync.local_error", logging.WARNING, event=type(event).__name__, error=error)
        except Exception:
            # A bug: contain it to the connection. (A store failure also fails the group.)
            self._failed("handle_failures", "sync.handle_failed", event=type(event).__name__)
            conn = self._conns.get(getattr(event, "conn", None))
            if conn is not None and not isinstance(event, ConnectionLost):
                self._lose(conn, "internal error", graceful=False)
        return []

    def _restart_replicator(self) -> None:
        """Start over from what the store holds: a fresh Replicator, every stream dropped."""
        for conn in list(self._conns.values()):
            conn.known = False  # the new Replicator never knew it
            self._lose(conn, "store write failed", graceful=False)
        self._store.reset()
        self.replicator = self._new_replicator()

    def _perform(self, action: Action) -> None:
        match action:
            case Send():
                conn = self._conns.get(action.conn)
                if conn is None or conn.closing is not None:
                    return
                conn.queue.append(action.data)
                conn.queued_bytes += len(action.data)
                conn.wake.set()
                if conn.queued_bytes > self.limits.send_queue_bytes_max:
                    self.stats["slow_peer_disconnects"] += 1
                    self._lose(conn, f"slow peer: more than {self.limits.send_queue_bytes_max} bytes queued", graceful=False)
            case Disconnect():
                conn = self._conns.get(action.conn)
                if conn is None:
                    return
                conn.known = False  # the Replicator has already forgotten it
                log(logger, "sync.disconnect", peer_id=conn.peer_id, reason=action.reason)
                self._lose(conn, action.reason, graceful=True)
            case SetTimer():
                conn = self._conns.get(action.conn)
                if conn is None:
                    return
                conn.timer_at_ms = action.at_ms
                scope = self._timer_scope
                if scope is not None and action.at_ms / 1000 < scope.deadline:
                    scope.deadline = action.at_ms / 1000
            case Applied():
                conn = self._conns.get(action.conn)
                self.stats["changes_applied"] += len(action.hashes)
                self._emit(ChangesApplied(conn.peer_id if conn else None, action.space, action.doc, len(action.hashes)))
            case PeerPenalized():
                conn = self._conns.get(action.conn)
                peer_id = conn.peer_id if conn else peer_id_of(action.peer)
                log(
                    logger, "sync.penalized", logging.WARNING,
                    peer_id=peer_id, offense=action.offense, score=round(action.score), detail=action.detail,
                )
                self.stats[f"penalties_{action.offense}"] += 1
                self._emit(PeerPenalty(peer_id, action.offense, action.detail, action.score, action.score >= DISCONNECT_SCORE))

    async def _timers(self) -> None:
        """Deliver every connection's ``TimerFired`` when due: one task, one deadline."""
        while True:
            due = [conn.timer_at_ms for conn in self._conns.values() if conn.timer_at_ms is not None and conn.known]
            with trio.CancelScope(deadline=min(due) / 1000 if due else math.inf) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            now = self._now_ms()
            for conn in list(self._conns.values()):
                if conn.timer_at_ms is not None and conn.timer_at_ms <= now and conn.known:
                    conn.timer_at_ms = None
                    self._feed(TimerFired(conn.id))

    # ----- the store -----

    def _on_store_event(self, event: RepoEvent) -> None:
        """A committed write: the local author's is queued as a ``LocalCommit``, pushed at the
        next checkpoint (see ``node.local_commits``); records a capability log gained (a local
        grant or revocation, or the Replicator's own add of a peer's) go to the Replicator,
        which pushes them and re-checks who its sessions' peers may be.

        Runs inside ``Repo.commit``; it must never raise, or the caller's commit would seem to
        fail although it is durable.
        """
        if isinstance(event, StoredCapabilities):
            try:
                self._feed(CapabilitiesAdded(event.space, tuple(event.hashes)))
            except Exception:
                self._failed("capabilities_event_failures", "sync.capabilities_event_failed", space=event.space.hex()[:12])
            return
        if isinstance(event, ChangesRevoked):
            self._store.forget(event.space, event.doc, event.hashes)  # taken out of the doc: no longer held
            return
        if not isinstance(event, StoreEvent) or event.origin != "local":
            return
        try:
            self._store.remember(event.space, event.doc, event.hashes)
            self._local_commits.add(event)
        except Exception:
            self._failed("local_commit_failures", "sync.local_commit_unreadable", space=event.space.hex()[:12], doc=event.doc.hex())

    def _emit(self, report: NetworkEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(report)
        except Exception:
            self._failed("event_sink_failures", "sync.event_sink_failed", kind=type(report).__name__)

    def _failed(self, counter: str, name: str, **fields: Any) -> None:
        """A contained failure of our own code or store (call it from an ``except``): logged
        with its traceback, counted under ``counter`` and in ``internal_failures``."""
        self.stats[counter] += 1
        self.stats["internal_failures"] += 1
        log(logger, name, logging.ERROR, exc_info=True, **fields)


