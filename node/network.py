"""The node's network: a libp2p host, the sync driver, and the peers it keeps connected.

``Network.serve`` owns, in one nursery:

- the libp2p host (``node.host.open_host``): TCP, QUIC and webrtc-direct with Noise/TLS and
  yamux; a circuit relay v2 server too in relay mode;
- the ``SyncDriver`` (node/sync_driver.py) running the Replicator over sync streams;
- one *keeper* task per peer we want connected (bootstrap addresses, the persistent peerstore,
  mDNS finds, and every peer we synced with), node/keepers.py;
- joins: fetching a space's genesis from a peer when only its id is known,
  node/genesis_exchange.py;
- optional mDNS discovery, relay reservations, and a Prometheus metrics endpoint
  (presence between peers is ``node.presence``, run beside it by node/wiring.py);
- a maintenance tick that catches what events missed: dead connections, missing sync sessions.

A space the repo gains (created, joined or fetched: ``store.repo.SpaceStored``) is served from
the moment it is stored; the network listens to the repo for it, whoever stored it.

Who opens sync streams. On every new libp2p connection (either direction), the peer with the
smaller key opens one stream per space it serves whose capability log admits the peer (an
open space admits everyone; a private one its members: a stream's Hello names the space, so
a stranger is never offered one); the other serves what arrives. So a pair of peers needs no
negotiation and never syncs a space twice. A space added later is offered by whichever side
gains it (both may, at once: the driver then keeps the stream the smaller key opened). A
peer that says it does not serve a space is not asked again for a while. One exception: a
member of a private space that is not its root, with no session for it to a peer it admits,
opens one itself at the next maintenance tick, whatever the keys — the peer may not know it
yet (it joined by a ticket) and so would never open one; it presents its proof (see
protocol/replicator.py). Joining by a ticket is storing its genesis and records, then
``join`` with its addresses, which only dials them; until the space's first session opens,
every connection opens its session at once (not at the tick: a join took 2 s, the tick's
interval, in benchmarks/membership.py).

A peer the Replicator bans (forged tips, garbage, floods) is disconnected at the libp2p level
too, refused while banned, forgotten by the peerstore, and not redialled (one we were told to
keep, by bootstrap, ``connect`` or a join, is redialled once the ban is over).

Keys cost nothing, so bans and limits also look at where a connection comes from. A peer is
*known* if we dial it, or if it was in the peerstore, kept or synced with before its current
connection; every other inbound peer is a *stranger*. Strangers get what is left of
``max_peers`` after a reserve for known peers, at most ``connections_per_address_max`` from
one address (``node.host.address_key``: an IPv6 /64 is one), and none from an address whose
keys were banned ``address_bans_max`` times within ``address_ban_window_s``, for
``address_refused_s``. A stranger sharing a NAT with an attacker waits; a known peer behind it
does not. The driver applies the same rule to sync sessions. How many peers we remember and
keep is node/keepers.py's.

Contained failures of our own code count in ``stats["internal_failures"]`` (the driver's and
the host's have their own): logged at error level, and 0 on a healthy node.

Relay mode (``relay=True``) is an ordinary node that also serves circuit relay v2
reservations. As a member of the spaces it holds (join them like any node) it keeps every
change and forwards live batches between peers that reach only it; peers can also reach each
other through it over circuits (``reserve_on``). It serves reservations only to members of
the spaces it holds (role relay or more), or to anyone while it holds an open space
(``_relay_admits``; node/relay.py says why and that a relay can read what it serves).

NAT. A node whose addresses others cannot dial (``reachability``: ``private``, or ``auto``
with interface addresses none of which is global; a loopback-only node is never private, it
serves this machine alone) holds a reservation on a relay of its spaces and announces the
circuit address first (``Host.addrs``, so tickets carry it): on each relay in ``reserve_on``,
and on each peer it dials directly that grants one (node/relay.py: a relay serves only members
of its spaces, so a granted reservation is on a relay of ours; a peer that is no relay refuses,
and is not asked again while connected). Peers dial it at ``.../p2p/RELAY/p2p-circuit/p2p/US``
(node/keepers.py tries direct addresses first, circuits last). With ``hole_punch`` the host runs
DCUtR on relayed connections; a direct connection that replaces a relayed one is counted
(``stats["direct_upgrades"]``, event ``network.direct_upgrade``), and the relayed path stays
the fallback.

What it reports (node/events.py's ``NetworkEvent``) goes to ``on_event``; how a daemon wires
it to the rest of the node is node/wiring.py.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import multiaddr
import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee

from node.discovery import PEERSTORE_FILE, Backoff, MdnsDiscovery, MdnsPeer, PeerStore
from node.errors import AddressError, NodeError
from node.events import (
    NetworkEvent,
    NetworkEventSink,
    PeerConnected,
    PeerDisconnected,
    PeerPenalty,
    RelayReserved,
    SessionOpened,
)
from node.framing import connection_lost
from node.genesis_exchange import GENESIS_PROTOCOL, MAX_GENESIS_BYTES, fetch_space, serve_genesis
from node.host import (
    LOOPBACK_LISTEN_ADDRS,
    UNKNOWN_ADDRESS,
    Host,
    address_key,
    announce,
    hold_reservation,
    is_reachable_elsewhere,
    open_host,
    reachable_publicly,
    serves_relay,
)
from node.keepers import KEPT_PEERS_MAX, PEERS_REMEMBERED_MAX, Keepers, Peer
from node.logs import event
from node.relay import is_circuit_addr
from node.sync_driver import DriverLimits, SyncDriver, peer_key_of
from protocol.limits import SyncConfig
from store.repo import Repo, RepoEvent, SpaceStored, wall_clock_ms

logger = logging.getLogger(__name__)

__all__ = ["SIMULTANEOUS_DIAL_WINDOW_S", "Network", "NetworkOptions", "keeps_older_connection"]

# How often the maintenance tick runs: a missing session or a dead connection is noticed this
# late at worst (both are normally handled at once, by events).
MAINTENANCE_INTERVAL_S: Final = 2.0
# Closing a replaced libp2p connection; a dead one must not hold anything up.
CLOSE_CONNECTION_TIMEOUT_S: Final = 5.0
# Two connections to one peer this close together are a simultaneous dial, not a restart.
SIMULTANEOUS_DIAL_WINDOW_S: Final = 1.0
# Peers connected at once; inbound connections beyond it are closed (those we dial are ours).
MAX_PEERS: Final = 64
# Of MAX_PEERS, kept for known peers (see the module docstring): a team and its agents.
PEERS_RESERVED_FOR_KNOWN: Final = 16
# Strangers connected from one address: a home or office NAT in front of a few peers; one
# machine minting keys gets this many of our peer slots, not all of them.
CONNECTIONS_PER_ADDRESS_MAX: Final = 8
# An address whose keys got banned this many times within the window is refused new
# connections (of strangers) for ADDRESS_REFUSED_S: a new key per ban no longer buys a new
# try. Three: one honest peer behind a shared NAT is rarely banned even once.
ADDRESS_BANS_MAX: Final = 3
ADDRESS_BAN_WINDOW_S: Final = 3600.0
ADDRESS_REFUSED_S: Final = 3600.0
# Addresses whose bans we count, and refused addresses, remembered at most; the oldest go.
ADDRESS_RECORDS_MAX: Final = 4096


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    """How the network runs; every field has a default a test can override."""

    listen: tuple[str, ...] = LOOPBACK_LISTEN_ADDRS
    peers: tuple[str, ...] = ()  # bootstrap multiaddrs (with /p2p/), kept connected
    relay: bool = False  # serve circuit relay v2 reservations (headless relay mode)
    reserve_on: tuple[str, ...] = ()  # relays to hold a reservation on (dialable through them)
    reachability: str = "auto"  # auto | public | private (the module docstring, "NAT")
    hole_punch: bool = False  # run DCUtR on relayed connections (the daemon's config turns it on)
    mdns: bool = False
    metrics_port: int | None = None  # Prometheus text on 127.0.0.1:port (0: any free port)
    max_peers: int = MAX_PEERS
    peers_reserved_known: int = PEERS_RESERVED_FOR_KNOWN
    connections_per_address_max: int = CONNECTIONS_PER_ADDRESS_MAX
    address_bans_max: int = ADDRESS_BANS_MAX
    address_ban_window_s: float = ADDRESS_BAN_WINDOW_S
    address_refused_s: float = ADDRESS_REFUSED_S
    peers_remembered_max: int = PEERS_REMEMBERED_MAX
    kept_peers_max: int = KEPT_PEERS_MAX
    sync: SyncConfig = SyncConfig()
    limits: DriverLimits = DriverLimits()  # also: limit_loopback, for the limits here too
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 30.0

    def backoff(self, rng: random.Random) -> Backoff:
        """A fresh backoff for one retry loop (a keeper, a join, a reservation), its jitter drawn from ``rng``."""
        return Backoff(self.backoff_initial_s, self.backoff_max_s, random.Random(rng.random()))


class _Notifee(INotifee):
    """libp2p connection events, handed to the network synchronously (never blocking libp2p)."""

    def __init__(self, network: Network) -> None:
        self._network = network

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._network._on_connected(conn.muxed_conn.peer_id.to_base58(), conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._network._on_disconnected(conn.muxed_conn.peer_id.to_base58(), conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class Network:
    """A node's network side; see the module docstring. Run with ``nursery.start(net.serve)``.

    Once started: ``peer_id``, ``addrs()``, ``status()``, ``connect(addr)``,
    ``add_space(space)``, ``join(space, addrs)``; ``host``, ``driver`` and ``keepers`` for tests.
    """

    def __init__(
        self,
        repo: Repo,
        options: NetworkOptions = NetworkOptions(),
        *,
        home: Path | None = None,
        on_event: NetworkEventSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.repo = repo
        self.options = options
        self.identity = repo.identity
        self.peer_id = repo.identity.peer_id
        self._on_event = on_event
        self._rng = rng or random.Random()
        self.peerstore = PeerStore(home / PEERSTORE_FILE if home is not None else None)
        self.stats: Counter[str] = Counter()
        self.keepers = Keepers(
            self.peer_id,
            self.peerstore,
            self.stats,
            backoff=lambda: options.backoff(self._rng),
            peers_remembered_max=options.peers_remembered_max,
            kept_peers_max=options.kept_peers_max,
        )
        self._address_bans: dict[str, list[float]] = {}  # address -> trio times of its bans
        self._refused_until: dict[str, float] = {}  # address -> trio time
        self._joining: set[bytes] = set()
        # Spaces joined by a ticket with no session yet: we open their sessions as soon as a peer
        # connects, whatever the keys (the peer does not know us yet), not at the next tick.
        self._just_joined: set[bytes] = set()
        self._host: Host | None = None
        self._driver: SyncDriver | None = None
        self._nursery: trio.Nursery | None = None
        self._mdns: MdnsDiscovery | None = None
        self.metrics_port: int | None = None
        self.private = _is_private(options)
        # Relays (peer ids) we hold or are trying a reservation on, and peers that refused one
        # (no relay, or not of our spaces) while connected: never asked twice a connection.
        self._reserving: set[str] = set()
        self._not_relays: set[str] = set()
        self._last_relayed: set[str] = set()  # peers whose latest connection is a relayed one

    @property
    def host(self) -> Host:
        if self._host is None:
            raise RuntimeError("the network is not running")
        return self._host

    @property
    def driver(self) -> SyncDriver:
        if self._driver is None:
            raise RuntimeError("the network is not running")
        return self._driver

    # ----- lifecycle -----

    async def serve(self, *, task_status: trio.TaskStatus[Network] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``task_status.started(self)`` once listening and syncing."""
        options = self.options
        notifee = _Notifee(self)
        relay_admits = self._relay_admits if options.relay else None
        async with open_host(
            self.identity,
            options.listen,
            serve_relay=options.relay,
            relay_admits=relay_admits,
            private=self.private,
            hole_punch=options.hole_punch,
        ) as host:
            self._host = host
            swarm = host.libp2p.get_network()
            unsubscribe = self.repo.subscribe(self._on_repo_event)
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._driver = SyncDriver(
                        host,
                        self.repo,
                        config=options.sync,
                        limits=options.limits,
                        rng=self._rng,
                        on_event=self._on_driver_event,
                        is_known=self.keepers.is_known,
                    )
                    await nursery.start(self._driver.run)
                    self.keepers.start(host, nursery)
                    host.set_stream_handler(GENESIS_PROTOCOL, partial(serve_genesis, self.repo), max_frame_bytes=MAX_GENESIS_BYTES)
                    swarm.register_notifee(notifee)
                    for addr in options.peers:
                        self.keepers.want(addr, source="bootstrap")
                    for peer_id, addrs in self.peerstore.peers().items():
                        try:
                            for addr in addrs:
                                self.keepers.want(addr, source="peerstore", remember=False)
                        except AddressError:  # hints only: a bad entry is forgotten, not fatal
                            self.peerstore.forget(peer_id)
                    for relay_addr in options.reserve_on:
                        # Kept connected too: a relay joining our space by our ticket cannot
                        # dial us behind a NAT; it opens the session on the connection we made.
                        self.keepers.want(relay_addr, source="bootstrap")  # pinned: never let go
                        self._reserving.add(str(multiaddr.Multiaddr(relay_addr).get_peer_id()))
                        nursery.start_soon(self._keep_reservation, relay_addr)
                    if options.mdns:
                        # Not awaited: zeroconf's registration takes ~1.6 s we need not wait for.
                        nursery.start_soon(self._run_mdns)
                    if options.metrics_port is not None:
                        from node.metrics import serve_metrics

                        self.metrics_port = await nursery.start(serve_metrics, options.metrics_port, self.metrics)
                    nursery.start_soon(self._maintenance)
                    event(logger, "network.started", peer_id=self.peer_id, addrs=",".join(self.addrs()), relay=options.relay)
                    task_status.started(self)
                    await trio.sleep_forever()
            finally:
                unsubscribe()
                swarm.remove_notifee(notifee)
                host.remove_stream_handler(GENESIS_PROTOCOL)
                self._nursery = None
                self.keepers.stop()
                for peer in self.keepers.connected():
                    if peer.kept:
                        self.peerstore.remember(peer.peer_id, peer.addrs)
                self.peerstore.save_if_dirty()
                event(logger, "network.stopped", peer_id=self.peer_id)

    # ----- what the daemon, the API and tests ask -----

    def addrs(self) -> list[str]:
        return [str(addr) for addr in self.host.addrs()]

    def add_space(self, space: bytes) -> None:
        """Serve a space the repo just gained and offer it to every connected peer it admits."""
        if self.driver.add_space(space):
            for peer in self.keepers.connected():
                if self._admits(peer, space):
                    self.driver.request_session(peer.peer_id, space)
            self._announce()

    def join(self, space: bytes, addrs: Sequence[str]) -> None:
        """Fetch a space's genesis from the peers at ``addrs`` (kept connected), then serve it.

        For a space the repo holds (joined by a ticket, which carries the genesis), only dials
        ``addrs`` and keeps them connected; a no-op for a join already under way.
        """
        if space in self._joining or self._nursery is None:
            return
        if space in {g.space_id for g in self.repo.spaces()}:
            self._just_joined.add(space)
            for addr in addrs:
                try:
                    self.keepers.want(addr, source="join")
                except AddressError as error:
                    event(logger, "network.join_bad_address", logging.WARNING, space=space.hex()[:12], addr=addr, error=error)
            return
        peers = []
        for addr in addrs:
            try:
                peers.append(self.keepers.want(addr, source="join"))
            except AddressError as error:
                event(logger, "network.join_bad_address", logging.WARNING, space=space.hex()[:12], addr=addr, error=error)
        self._joining.add(space)
        self._nursery.start_soon(self._join, space, peers)

    async def _join(self, space: bytes, peers: list[Peer]) -> None:
        try:
            await fetch_space(self.host, self.repo, space, peers, self.options.backoff(self._rng))
        finally:
            self._joining.discard(space)

    async def connect(self, addr: str) -> str:
        """Dial a peer now and keep it connected from then on; returns its peer id.

        Raises:
            AddressError: not a dialable multiaddr with a /p2p/ peer id.
            DialError, RelayError: it could not be reached (it stays wanted: redialled later).
        """
        peer = self.keepers.want(addr, source="api")
        await self.keepers.dial(peer, [addr])
        return peer.peer_id

    def is_connected(self, peer_id: str) -> bool:
        peer = self.keepers.peers.get(peer_id)
        return peer is not None and peer.is_up

    def connection_addrs(self, peer_id: str) -> list[str]:
        """Remote addresses of our connections to the peer (``/p2p-circuit`` when relayed)."""
        return [str(addr) for addr in self.host.connection_addrs(peer_id)]

    def peers_syncing(self, space: bytes) -> set[str]:
        """The peers we sync ``space`` with right now."""
        return {s["peer_id"] for s in self.driver.sessions() if s["active"] and s["space"] == space.hex()}

    def peer_spaces(self, peer_id: str) -> list[bytes]:
        """The spaces we sync with a peer right now."""
        return sorted(
            bytes.fromhex(s["space"]) for s in self.driver.sessions() if s["peer_id"] == peer_id and s["active"] and s["space"]
        )

    def status(self) -> dict[str, Any]:
        """Peers, sessions and counters, as plain data for the API and logs."""
        peers = []
        for peer in self.keepers.peers.values():
            if not peer.is_up and not peer.kept:
                continue
            peers.append(
                {
                    "peer_id": peer.peer_id,
                    "connected": peer.is_up,
                    "addrs": self.connection_addrs(peer.peer_id) if peer.is_up else list(peer.addrs),
                    "spaces": [space.hex() for space in self.peer_spaces(peer.peer_id)],
                    "banned": peer.banned_until > trio.current_time(),
                }
            )
        addrs = self.addrs()
        return {
            "peer_id": self.peer_id,
            "addrs": addrs,
            "reachable": [addr for addr in addrs if is_reachable_elsewhere(addr)],
            "private": self.private,
            "reservations": sorted(str(addr) for addr in self.host.reservations.values()),
            "relay": self.options.relay,
            "peers": peers,
            "sessions": len(self.driver.sessions()),
            "stats": {
                **self.driver.replicator.stats,
                **self.driver.stats,
                **{f"network_{k}": v for k, v in self.stats.items()},
                **{f"host_{k}": v for k, v in self.host.stats.items()},
            },
        }

    def metrics(self) -> dict[str, float]:
        """Counters and gauges for ``node.metrics`` (names without the ``distspace_`` prefix)."""
        driver = self.driver
        values: dict[str, float] = {f"replicator_{k}_total": v for k, v in driver.replicator.stats.items()}
        values.update({f"driver_{k}_total": v for k, v in driver.stats.items()})
        values.update({f"network_{k}_total": v for k, v in self.stats.items()})
        values.update({f"host_{k}_total": v for k, v in self.host.stats.items()})
        values["peers_connected"] = len(self.keepers.connected())
        values["sessions_open"] = len(driver.sessions())
        values["send_queue_bytes"] = driver.queued_bytes
        return values

    # ----- connections -----

    def _on_connected(self, peer_id: str, conn: Any) -> None:
        """A libp2p connection opened. Every one (not only a peer's first) gets its sync
        sessions asked for: libp2p may report a dead connection's close only much later, so
        a peer that restarted fast reconnects while its old connection still seems open."""
        try:
            peer = self.keepers.peer(peer_id)
        except NodeError:
            return  # not an Ed25519 peer: nothing we would sync with; libp2p may keep it
        now = trio.current_time()
        for old, old_since in list(peer.conns.items()):
            if old is conn:
                continue
            keep_older = keeps_older_connection(
                _dialled_by_us(old), _dialled_by_us(conn), now - old_since, we_are_smaller=self.identity.public_key < peer.key
            )
            loser = conn if keep_older else old
            if self._nursery is not None:
                self._nursery.start_soon(self._close_connection, loser, peer_id)
            if loser is conn:
                return
            del peer.conns[old]
        peer.conns.setdefault(conn, now)
        if _relayed(conn):
            self._last_relayed.add(peer_id)
        elif peer_id in self._last_relayed:  # the relayed one may be closed already (DCUtR closes it)
            self._last_relayed.discard(peer_id)
            self.stats["direct_upgrades"] += 1
            event(logger, "network.direct_upgrade", peer_id=peer_id, addrs=",".join(self.connection_addrs(peer_id)))
        if self.private and not _relayed(conn) and _dialled_by_us(conn) and self._nursery is not None:
            self._try_relay(peer_id, conn)
        if not peer.is_up:
            peer.is_up = True
            peer.down = trio.Event()
            peer.up.set()
            self.keepers.peers[peer_id] = self.keepers.peers.pop(peer_id)  # the most recently connected last
            peer.address = address_key(conn)
            peer.connected_at = trio.current_time()
            peer.stranger = not peer.known
            refusal = self._connection_refusal(peer)
            if refusal is not None:
                self.stats[f"connections_refused_{refusal[0]}"] += 1
                self._drop(peer, refusal[1])
                return
            event(logger, "network.peer_connected", peer_id=peer_id, addrs=",".join(self.connection_addrs(peer_id)))
            self._emit(PeerConnected(peer_id, tuple(self.connection_addrs(peer_id))))
        driver = self._driver
        if driver is None or peer.banned_until > trio.current_time():
            return
        driver.peer_connected(peer_id)
        smaller = self.identity.public_key < peer.key
        for space in driver.spaces:
            if (smaller or space in self._just_joined) and self._admits(peer, space):
                driver.request_session(peer_id, space)

    def _admits(self, peer: Peer, space: bytes) -> bool:
        """Whether the space's capability log admits the peer now: only then may a sync stream
        for it (whose Hello names the space) be opened to the peer."""
        try:
            return self.repo.capability_log(space).admits(peer.key, wall_clock_ms())
        except Exception:  # a bug or an unreadable store: open nothing, say so
            self.stats["admission_check_failures"] += 1
            self.stats["internal_failures"] += 1
            event(logger, "network.admission_check_failed", logging.ERROR, exc_info=True, space=space.hex()[:12])
            return False

    def _relay_admits(self, peer_id: str) -> bool:
        """Whether our relay serves the peer (node/relay.py): a member (role relay or more) of a
        private space we hold, or anyone while we hold an open space."""
        try:
            key = peer_key_of(peer_id)
        except NodeError:
            return False  # not an Ed25519 peer id: no log could admit it
        now_ms = wall_clock_ms()
        try:
            return any(self.repo.capability_log(genesis.space_id).admits(key, now_ms) for genesis in self.repo.spaces())
        except Exception:  # a bug or an unreadable store: relay for nobody, say so
            self.stats["admission_check_failures"] += 1
            self.stats["internal_failures"] += 1
            event(logger, "network.relay_admission_check_failed", logging.ERROR, exc_info=True)
            return False

    def _presents_proof(self, space: bytes) -> bool:
        """Whether we are a member of the private space that is not its root: a peer may not
        know of us yet (we joined by a ticket), and so open us no session."""
        log = self.repo.capability_log(space)
        return log.private and log.root != self.identity.public_key

    def _connection_refusal(self, peer: Peer) -> tuple[str, str] | None:
        """Which rule refuses a peer's new connection, as (counter suffix, reason), or None."""
        options = self.options
        now = trio.current_time()
        if peer.banned_until > now:
            return "banned", "banned"
        if peer.dialled:
            return None
        admitted = [p for p in self.keepers.connected() if not p.dropping]
        if not peer.stranger:
            if len(admitted) > options.max_peers:
                return "peers", f"more than {options.max_peers} peers"
            return None
        strangers = [p for p in admitted if p.stranger]
        if len(strangers) > options.max_peers - options.peers_reserved_known:
            return "strangers", f"more than {options.max_peers - options.peers_reserved_known} peers we do not know"
        if not options.limits.limits_address(peer.address):
            return None
        if self._refused_until.get(peer.address, 0.0) > now:
            return "address_banned", f"{peer.address} is refused: keys from it were banned {options.address_bans_max} times"
        if sum(1 for p in strangers if p.address == peer.address) > options.connections_per_address_max:
            return "address", f"more than {options.connections_per_address_max} peers we do not know from {peer.address}"
        return None

    def _count_ban(self, address: str) -> None:
        """A key from ``address`` got banned: past ``address_bans_max`` recent bans, refuse the
        address. The shared ``UNKNOWN_ADDRESS`` is never refused (it is not one sender)."""
        options = self.options
        if address == UNKNOWN_ADDRESS or not options.limits.limits_address(address):
            return
        now = trio.current_time()
        recent = [t for t in self._address_bans.pop(address, []) if t > now - options.address_ban_window_s]
        recent.append(now)
        self._address_bans[address] = recent
        _keep_newest(self._address_bans, ADDRESS_RECORDS_MAX)
        if len(recent) < options.address_bans_max:
            return
        self._refused_until.pop(address, None)
        self._refused_until[address] = now + options.address_refused_s
        _keep_newest(self._refused_until, ADDRESS_RECORDS_MAX)
        self.stats["addresses_refused"] += 1
        event(logger, "network.address_refused", logging.WARNING, address=address, bans=len(recent), seconds=options.address_refused_s)

    def _on_disconnected(self, peer_id: str, conn: Any) -> None:
        peer = self.keepers.peers.get(peer_id)
        if peer is not None:
            peer.conns.pop(conn, None)
            self._check_down(peer)

    async def _until_down(self, peer_id: str) -> None:
        """Return once the peer, connected now or soon, is no longer (a peer id that is no
        Ed25519 key cannot be a member's relay: then never)."""
        try:
            peer = self.keepers.peer(peer_id)
        except NodeError:
            await trio.sleep_forever()
        if not peer.is_up:
            await peer.up.wait()
        await peer.down.wait()  # replaced as the peer came up: read after it did

    def _try_relay(self, peer_id: str, conn: Any) -> None:
        """Ask a peer we dialled directly for a reservation, once a connection (private nodes)."""
        if peer_id in self._reserving or peer_id in self._not_relays or self._nursery is None:
            return
        remote = next((addr for addr in conn.get_transport_addresses() if not is_circuit_addr(addr)), None)
        if remote is None:
            return
        self._reserving.add(peer_id)
        relay_addr = f"{remote}/p2p/{peer_id}" if "/p2p/" not in str(remote) else str(remote)
        self._nursery.start_soon(self._keep_reservation, relay_addr, True)

    def _check_down(self, peer: Peer) -> None:
        """Mark the peer down once none of its connections is alive (also run by the tick, for
        closes libp2p reports late or never)."""
        peer.conns = {conn: since for conn, since in peer.conns.items() if not connection_lost(getattr(conn, "muxed_conn", None))}
        if not peer.is_up or peer.conns:
            return
        peer.is_up = False
        self._not_relays.discard(peer.peer_id)
        peer.dialled = False
        peer.dropping = False
        peer.connected_at = math.inf
        if peer.synced:
            self.keepers.want_identified(peer)
        peer.up = trio.Event()
        peer.down.set()
        event(logger, "network.peer_disconnected", peer_id=peer.peer_id)
        self._emit(PeerDisconnected(peer.peer_id))

    def _drop(self, peer: Peer, reason: str) -> None:
        peer.dropping = True
        event(logger, "network.dropping", peer_id=peer.peer_id, reason=reason)
        if self._driver is not None:
            self._driver.close_peer(peer.peer_id, reason)
        if self._nursery is not None:
            self._nursery.start_soon(self._disconnect, peer.peer_id)

    async def _close_connection(self, conn: Any, peer_id: str) -> None:
        event(logger, "network.replacing_connection", peer_id=peer_id)
        with trio.move_on_after(CLOSE_CONNECTION_TIMEOUT_S):
            try:
                await conn.close()
            except Exception as error:  # already gone: nothing to do
                self.stats["close_failures"] += 1
                event(logger, "network.close_failed", logging.DEBUG, peer_id=peer_id, error=repr(error))

    async def _disconnect(self, peer_id: str) -> None:
        try:
            await self.host.disconnect(peer_id)
        except Exception as error:  # already gone, or libp2p's close failing: nothing to do
            self.stats["disconnect_failures"] += 1
            event(logger, "network.disconnect_failed", logging.DEBUG, peer_id=peer_id, error=repr(error))

    # ----- events from the driver and discovery -----

    def _on_driver_event(self, report: NetworkEvent) -> None:
        if isinstance(report, SessionOpened):
            self._just_joined.discard(report.space)
            peer = self.keepers.peers.get(report.peer_id)
            if peer is not None:
                peer.synced = True
                peer.make_known()
                self.keepers.want_identified(peer)
        elif isinstance(report, PeerPenalty) and report.banned:
            peer = self.keepers.peers.get(report.peer_id)
            if peer is not None:
                peer.banned_until = trio.current_time() + self.options.sync.ban_ms / 1000
                self.peerstore.forget(peer.peer_id)
                if peer.kept and not peer.pinned:
                    self.keepers.let_go(peer)  # we met it; we do not go looking for it again
                self._count_ban(peer.address)
                self._drop(peer, f"banned for {report.offense}")
        self._emit(report)

    def _on_repo_event(self, stored: RepoEvent) -> None:
        """A space stored (created, joined or fetched): serve it. Runs inside the repo's write."""
        if not isinstance(stored, SpaceStored) or self._driver is None:
            return  # before the driver: it serves every space the repo holds when it is made
        try:
            self.add_space(stored.space)
        except Exception:
            self.stats["space_stored_failures"] += 1
            self.stats["internal_failures"] += 1
            event(logger, "network.space_stored_failed", logging.ERROR, exc_info=True, space=stored.space.hex()[:12])

    def _on_mdns_peer(self, found: MdnsPeer) -> None:
        for addr in found.addrs:
            self.keepers.want(addr, source="mdns")

    def _emit(self, report: NetworkEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(report)
        except Exception:
            self.stats["event_sink_failures"] += 1
            self.stats["internal_failures"] += 1
            event(logger, "network.event_sink_failed", logging.ERROR, exc_info=True, kind=type(report).__name__)

    def _announce(self) -> None:
        if self._mdns is not None and self._nursery is not None:
            self._nursery.start_soon(self._mdns.update, self.addrs(), self.driver.spaces)

    # ----- background work -----

    async def _run_mdns(self) -> None:
        """mDNS for as long as it works: a failure (no multicast here) costs discovery only."""
        self._mdns = MdnsDiscovery(self.peer_id, self.addrs(), self.driver.spaces, self._on_mdns_peer)
        try:
            await self._mdns.run()
        except Exception as error:  # the LAN's doing (no multicast), or zeroconf's: counted
            self.stats["mdns_failures"] += 1
            event(logger, "network.mdns_failed", logging.WARNING, error=repr(error))
        finally:
            self._mdns = None

    async def _keep_reservation(self, relay_addr: str, found: bool = False) -> None:
        """Hold a reservation on a relay; when it fails, retry with backoff. A relay ``found``
        by dialling it (not configured) is let go when it refuses or its connection is gone."""
        backoff = self.options.backoff(self._rng)
        relay = str(multiaddr.Multiaddr(relay_addr).get_peer_id())
        try:
            if found and not await serves_relay(self.host, relay):
                self._not_relays.add(relay)
                return
            while True:
                held = False
                try:
                    async with trio.open_nursery() as nursery:
                        circuit = await nursery.start(hold_reservation, self.host, relay_addr)
                        held = True
                        backoff.reset()
                        self.stats["reservations_held"] += 1
                        event(logger, "network.reserved", relay=relay_addr, circuit=circuit)
                        self._announce()
                        self._emit(RelayReserved(str(relay_addr), str(circuit)))
                        # A relay that restarted has forgotten our slot: reserve again once
                        # it is back, not at the next renewal (up to 45 min later).
                        await self._until_down(relay)
                        nursery.cancel_scope.cancel()
                except* NodeError as group:  # the nursery wraps what hold_reservation raised
                    level = logging.DEBUG if found and not held else logging.INFO
                    event(logger, "network.reservation_failed", level, relay=relay_addr, error=group.exceptions[0])
                self._announce()
                if found and (not held or not self.is_connected(relay)):
                    if not held:
                        self._not_relays.add(relay)
                    return
                await trio.sleep(backoff.next())
        finally:
            self._reserving.discard(relay)

    async def _maintenance(self) -> None:
        while True:
            await trio.sleep(MAINTENANCE_INTERVAL_S)
            self._tick()

    def _tick(self) -> None:
        """Catch what events missed: connections that died unreported, sessions that should be open."""
        driver = self.driver
        for peer in self.keepers.connected():
            self._check_down(peer)
        for peer in self.keepers.connected():
            smaller = self.identity.public_key < peer.key
            for space in driver.spaces:
                if not self._admits(peer, space):
                    continue
                if smaller or (not driver.has_session(peer.peer_id, space) and self._presents_proof(space)):
                    driver.request_session(peer.peer_id, space)
        self.peerstore.save_if_dirty()


def keeps_older_connection(older_ours: bool | None, newer_ours: bool | None, gap_s: float, *, we_are_smaller: bool) -> bool:
    """Which of a peer's two connections survives (True: the older), decided alike at both ends.

    One connection per peer. Within ``SIMULTANEOUS_DIAL_WINDOW_S`` of each other, one dialled
    by each side, they are a simultaneous dial (mDNS, both keepers redialling): the one the
    smaller key dialled stays — each end closing the one *it* saw last closed both. Otherwise
    the newer stays: the older is a dead one libp2p has not noticed yet (the peer restarted),
    and would get streams. ``*_ours``: we dialled it (None: libp2p did not say).
    """
    if gap_s > SIMULTANEOUS_DIAL_WINDOW_S or older_ours is None or newer_ours is None or older_ours == newer_ours:
        return False
    return older_ours is we_are_smaller


def _is_private(options: NetworkOptions) -> bool:
    """Whether other machines cannot dial our listen addresses (the module docstring, "NAT")."""
    if options.reachability != "auto":
        return options.reachability == "private"
    if options.relay:
        return False  # a relay is there to be dialled: its operator says where
    announced = announce([multiaddr.Multiaddr(addr) for addr in options.listen])
    elsewhere = [addr for addr in announced if is_reachable_elsewhere(addr)]
    return bool(elsewhere) and not reachable_publicly(elsewhere)


def _relayed(conn: Any) -> bool:
    """Whether a libp2p connection runs through a relay circuit."""
    try:
        return any(is_circuit_addr(addr) for addr in conn.get_transport_addresses())
    except (AttributeError, OSError):
        return False


def _dialled_by_us(conn: Any) -> bool | None:
    """Whether we dialled the libp2p connection (None: libp2p did not say)."""
    return {"outbound": True, "inbound": False}.get(str(getattr(conn, "direction", "unknown")))


def _keep_newest(records: dict[str, Any], limit: int) -> None:
    """Forget the oldest entries (first inserted) of ``records`` beyond ``limit``."""
    while len(records) > limit:
        del records[next(iter(records))]

