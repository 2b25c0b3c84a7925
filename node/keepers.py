"""Keeping peers connected: what we know of each libp2p peer, and a keeper task per peer we want.

A peer is *wanted* (``Keepers.want``) when we are told to keep it (bootstrap addresses, the
API's ``connect``, a join: those are *pinned*, never let go) or learn of it ourselves (the
persistent peerstore, mDNS, identify's listen addresses of a peer we synced with). Each wanted
peer gets one keeper task: it dials the peer's addresses, best transport first, waits for the
connection to drop, and dials again, with exponential backoff while the peer cannot be reached
and never while it is banned. Unpinned kept peers beyond ``kept_peers_max`` are let go while
down, least recently connected first; peers we hold nothing for (not connected, not kept, not
banned) are forgotten beyond ``peers_remembered_max``. Which connections are admitted, and what
a ban does, is the network's (node/network.py); this module only keeps the records it reads.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import multiaddr
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError

from node.discovery import PEERSTORE_MAX_PEERS, Backoff, PeerStore, transport_rank
from node.errors import AddressError, NodeError
from node.host import UNKNOWN_ADDRESS, Host
from node.logs import event
from node.sync_driver import peer_key_of

logger = logging.getLogger(__name__)

__all__ = ["KEPT_PEERS_MAX", "PEERS_REMEMBERED_MAX", "PINNED_SOURCES", "Keepers", "Peer"]

# Peers remembered although we hold nothing for them (not connected, kept or banned): what
# ``status`` may still say of a recent peer. Beyond it the oldest are forgotten.
PEERS_REMEMBERED_MAX: Final = 1024
# Peers kept connected (a keeper task each, redialling with backoff) that we learnt of
# ourselves (we synced with them, mDNS, peers.json) rather than were told to keep (bootstrap,
# ``connect``, a join): as many as peers.json remembers. Beyond it the least recently
# connected one that is down is let go: keys that each synced once cannot pile up keepers.
KEPT_PEERS_MAX: Final = PEERSTORE_MAX_PEERS
# Sources of peers we were told to keep: never let go.
PINNED_SOURCES: Final = frozenset({"bootstrap", "api", "join"})


@dataclass(eq=False, slots=True)
class Peer:
    """What we know of a libp2p peer: connections, where to dial it, ban."""

    peer_id: str
    key: bytes
    conns: dict[Any, float] = field(default_factory=dict)  # its libp2p connections (INetConn) we were told of → trio time each came up
    is_up: bool = False  # connected, as last reported to the driver and the event sink
    down: trio.Event = field(default_factory=trio.Event)  # set while not connected
    up: trio.Event = field(default_factory=trio.Event)  # set while connected
    addrs: list[str] = field(default_factory=list)  # where to dial it, best transport first
    kept: bool = False  # a keeper task redials it
    pinned: bool = False  # we were told to keep it (PINNED_SOURCES): never let go
    keeper: trio.CancelScope | None = None  # its keeper task's
    banned_until: float = 0.0  # trio time
    dialled: bool = False  # the current connection is one we made (exempt from max_peers)
    synced: bool = False  # a sync session with it got past the Hello: keep it connected
    address: str = UNKNOWN_ADDRESS  # node.host.address_key of its current connection
    connected_at: float = math.inf  # trio time its current connection came up
    known_since: float = math.inf  # trio time it was first kept, dialled or synced with
    stranger: bool = False  # its current connection is inbound and it was not known before
    dropping: bool = False  # we are closing its connection (it no longer takes a slot)

    def make_known(self) -> None:
        self.known_since = min(self.known_since, trio.current_time())

    @property
    def known(self) -> bool:
        """We dialled it, or knew it before its current connection came up."""
        return self.dialled or self.known_since < self.connected_at


class Keepers:
    """Every peer we know of (``peers``, least recently connected first) and their keepers.

    Keepers run in the nursery given to ``start``; before it (and after ``stop``) ``want``
    records a peer without keeping it. ``stats`` is the network's counter, shared.
    """

    def __init__(
        self,
        own_peer_id: str,
        peerstore: PeerStore,
        stats: Counter[str],
        *,
        backoff: Callable[[], Backoff],
        peers_remembered_max: int = PEERS_REMEMBERED_MAX,
        kept_peers_max: int = KEPT_PEERS_MAX,
    ) -> None:
        self.peers: dict[str, Peer] = {}
        self._own_peer_id = own_peer_id
        self._peerstore = peerstore
        self._stats = stats
        self._backoff = backoff
        self._peers_remembered_max = peers_remembered_max
        self._kept_peers_max = kept_peers_max
        self._host: Host | None = None
        self._nursery: trio.Nursery | None = None

    def start(self, host: Host, nursery: trio.Nursery) -> None:
        self._host = host
        self._nursery = nursery

    def stop(self) -> None:
        self._nursery = None

    def peer(self, peer_id: str) -> Peer:
        """The peer's record, made if it is new.

        Raises:
            PeerKeyError: not the peer id of an Ed25519 key.
        """
        peer = self.peers.get(peer_id)
        if peer is None:
            peer = self.peers[peer_id] = Peer(peer_id, peer_key_of(peer_id))
            peer.down.set()
            self._forget_idle_peers()
        return peer

    def is_known(self, peer_id: str) -> bool:
        """Whether a connected peer is known (node/network.py's docstring); the driver asks it too."""
        peer = self.peers.get(peer_id)
        return peer is not None and peer.known

    def connected(self) -> list[Peer]:
        return [peer for peer in self.peers.values() if peer.is_up]

    def want(self, addr: str, *, source: str, remember: bool = True) -> Peer:
        """Keep the peer at ``addr`` connected (a keeper task redials it with backoff).

        Raises:
            AddressError: not a multiaddr with a /p2p/ peer id of an Ed25519 key.
        """
        try:
            peer_id = multiaddr.Multiaddr(str(addr)).get_peer_id()
        except Exception as error:
            raise AddressError(f"not a multiaddr: {addr!r}: {error}") from error
        if peer_id is None:
            raise AddressError(f"{addr} has no /p2p/ peer id")
        try:
            peer = self.peer(peer_id)
        except NodeError as error:
            raise AddressError(f"{addr}: {error}") from error
        if peer_id == self._own_peer_id:
            return peer
        if str(addr) not in peer.addrs:
            peer.addrs.append(str(addr))
            peer.addrs.sort(key=transport_rank)
        if remember:
            self._peerstore.remember(peer_id, [str(addr)], seen=False)
        peer.pinned = peer.pinned or source in PINNED_SOURCES
        if not peer.kept and self._nursery is not None:
            peer.kept = True
            peer.make_known()
            self._nursery.start_soon(self._keep, peer)
            event(logger, "network.keeping", logging.DEBUG, peer_id=peer_id, source=source)
            self._let_go_of_excess()
        return peer

    def want_identified(self, peer: Peer) -> None:
        """Keep a peer we sync with connected, at the listen addresses identify told us: a
        peer that dialled us is redialled by us when it drops, whoever restarts first."""
        if self._host is None:
            return
        try:
            addrs = self._host.libp2p.get_peerstore().addrs(ID.from_base58(peer.peer_id))
        except PeerStoreError:  # libp2p knows no addresses for it (yet)
            return
        for addr in addrs:
            # py-libp2p 0.8.1 stores them with the peer's own /p2p/ id (earlier, without).
            text = str(addr)
            if "/p2p-circuit" in text:
                continue
            if "/p2p/" not in text:
                text = f"{text}/p2p/{peer.peer_id}"
            if addr.get_peer_id() in (None, peer.peer_id):
                self.want(text, source="identify")

    def let_go(self, peer: Peer) -> None:
        """Stop keeping a peer connected: its keeper ends, and it may be forgotten."""
        peer.kept = False
        if peer.keeper is not None:
            peer.keeper.cancel()
        self._stats["peers_let_go"] += 1

    async def dial(self, peer: Peer, addrs: Sequence[str]) -> None:
        """Try each address, best transport first, until one connects.

        Each try starts libp2p afresh for the peer: its negative cache would otherwise refuse
        any dial for 60 s after a failure (our backoff is the policy), and addresses learnt
        by identify would make it pick QUIC over the TCP address we chose.

        Raises:
            DialError, RelayError, AddressError: the last address's failure.
        """
        host = self._host
        if host is None:
            raise RuntimeError("the network is not running")
        last: NodeError | None = None
        for addr in sorted(addrs, key=transport_rank):
            if peer.is_up:
                return
            peer_id = ID.from_base58(peer.peer_id)
            host.libp2p.get_network().unblock_peer(peer_id)  # type: ignore[attr-defined]  # Swarm's, not INetworkService's
            host.libp2p.get_peerstore().clear_addrs(peer_id)
            peer.dialled = True
            peer.make_known()
            try:
                await host.connect(addr)
            except NodeError as error:
                peer.dialled = peer.is_up
                last = error
                continue
            self._peerstore.remember(peer.peer_id, [addr])
            return
        raise last if last is not None else AddressError(f"no address to dial {peer.peer_id}")

    def _forget_idle_peers(self) -> None:
        """Beyond ``peers_remembered_max``, forget the least recently connected peers we hold
        nothing for: every key that ever connected would otherwise stay forever."""
        excess = len(self.peers) - self._peers_remembered_max
        if excess <= 0:
            return
        now = trio.current_time()
        idle = [p for p in self.peers.values() if not p.is_up and not p.kept and p.banned_until <= now]
        for peer in idle[:excess]:
            del self.peers[peer.peer_id]
        self._stats["peers_forgotten"] += min(excess, len(idle))

    def _let_go_of_excess(self) -> None:
        """Beyond ``kept_peers_max`` kept peers, stop redialling the least recently connected
        ones that are down and not pinned (they stay in peers.json, and may connect again)."""
        kept = [peer for peer in self.peers.values() if peer.kept]
        excess = len(kept) - self._kept_peers_max
        for peer in [p for p in kept if not p.is_up and not p.pinned][: max(excess, 0)]:
            self.let_go(peer)

    async def _keep(self, peer: Peer) -> None:
        """Dial the peer whenever it is not connected, backing off while it cannot be reached."""
        backoff = self._backoff()
        with trio.CancelScope() as scope:
            peer.keeper = scope
            while True:
                if peer.is_up:
                    backoff.reset()
                    await peer.down.wait()
                    continue
                if peer.banned_until > trio.current_time():
                    await trio.sleep_until(peer.banned_until)
                    continue
                try:
                    await self.dial(peer, peer.addrs)
                except NodeError as error:
                    event(logger, "network.dial_failed", logging.DEBUG, peer_id=peer.peer_id, error=error)
                    await trio.sleep(backoff.next())
                    continue
                if not peer.is_up:  # connected and dropped at once: do not spin
                    await trio.sleep(backoff.next())
        if peer.keeper is scope:  # let go (not kept again since)
            peer.keeper = None
