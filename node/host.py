"""A libp2p host whose identity is the peer's author key, and the one way to start and stop it.

The host's libp2p key is ``Identity``'s Ed25519 seed, so a connection authenticated by Noise
(TCP), TLS 1.3 (QUIC, where the libp2p spec builds security into the transport) or DTLS+Noise
(webrtc-direct) proves the same key whose signatures we check on tips. The transports are
listed explicitly: py-libp2p's defaults would also offer plaintext and secio, and would pick
transports from the listen addresses alone, so a host listening only on TCP could not dial QUIC.

``open_host`` is the lifecycle: it builds, listens, runs the circuit relay protocols, yields a
``Host``, and on exit closes every connection, listener and transport (which stops the asyncio
thread that libp2p's WebRTC transport runs aiortc on) before leaving. Leaving libp2p's own
``host.run()`` without ``host.close()`` first would run that cleanup under cancellation and
leak the asyncio thread; this module exists partly to get that order right once.

What a host announces (``Host.addrs``, and identify's listen addresses): a wildcard listen
address (``/ip4/0.0.0.0/...``, ``/ip6/::/...``) becomes one address per interface address of
this machine (``announce``), loopback last, since peers elsewhere can only use the others;
then the ``/p2p-circuit`` addresses of the relay reservations it holds (``hold_reservation``),
first when the host says it is not publicly reachable (``Host.private``). With
``hole_punch=True`` a host also runs libp2p's DCUtR (``/libp2p/dcutr``): it tries to turn a
relayed connection into a direct one (a direct dial first, then a simultaneous open on the
addresses each side observed); the relayed connection carries on when that fails.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Final

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.protocol_muxer.exceptions import MultiselectClientError, ProtocolNotSupportedError
from libp2p.relay.circuit_v2.dcutr import PROTOCOL_ID as DCUTR_PROTOCOL_ID
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from libp2p.transport.quic.config import QUICTransportConfig
from libp2p.transport.quic.transport import QUICTransport
from libp2p.transport.tcp.tcp import TCP
from libp2p.transport.webrtc.config import WebRTCTransportConfig
from libp2p.transport.webrtc.transport import WebRTCDirectTransport

from node.config import dialable_elsewhere
from node.errors import AddressError, DialError, HostStartError, NodeError, ProtocolRefused
from node.framing import MAX_FRAME_BYTES, FrameStream
from node.relay import (
    HOP_PROTOCOL_ID,
    RESERVATION_MIN_REFRESH_S,
    RESERVATION_REFRESH_FRACTION,
    CircuitRelay,
    RelayAdmission,
    circuit_addr,
    is_circuit_addr,
)
from protocol.identity import Identity
from protocol.recent import Recent

logger = logging.getLogger(__name__)

__all__ = [
    "LOOPBACK_LISTEN_ADDRS",
    "SYNC_PROTOCOL",
    "UNKNOWN_ADDRESS",
    "Host",
    "StreamHandler",
    "address_key",
    "announce",
    "build_libp2p_host",
    "hold_reservation",
    "is_loopback_key",
    "is_reachable_elsewhere",
    "open_host",
    "reachable_publicly",
    "serves_relay",
]

SYNC_PROTOCOL: Final = TProtocol("/distspace/sync/1")
# Port 0 everywhere: the OS picks; read the real addresses from ``Host.addrs()``.
LOOPBACK_LISTEN_ADDRS: Final = (
    "/ip4/127.0.0.1/tcp/0",
    "/ip4/127.0.0.1/udp/0/quic-v1",
    "/ip4/127.0.0.1/udp/0/webrtc-direct",
)
# One connection per peer: py-libp2p otherwise races a second dial and waits ~250 ms for it
# (happy eyeballs), and our sync streams gain nothing from a second connection.
MAX_CONNECTIONS_PER_PEER: Final = 1
DIAL_TIMEOUT_S: Final = 10.0  # TCP/QUIC connect ~30-60 ms, webrtc-direct ~50-250 ms on loopback
STREAM_OPEN_TIMEOUT_S: Final = 10.0  # multistream-select on an open connection: one round trip
STREAM_STALL_S: Final = 4.0  # a first try this slow on a silent connection has stalled: redial and try again
# Peers whose connection's last sign of life we keep (one entry each, the oldest forgotten):
# as many as connections a node holds, with room.
HEARD_PEERS_MAX: Final = 1_024
# Graceful close of every connection, listener and the aiortc thread (joined with a 5 s cap).
CLOSE_TIMEOUT_S: Final = 10.0
# py-libp2p's QUIC streams fail a read that waits 30 s for data; a sync stream may idle far
# longer between edits, and dead peers are the protocol's heartbeats' business, not this one's.
QUIC_STREAM_READ_TIMEOUT_S: Final = 24 * 3600.0

# What the per-address limits call a connection whose remote address the transport does not
# tell: py-libp2p 0.8.1's webrtc-direct listener keeps the dialer's address to itself (its own
# first-contact limiter uses it). All such connections share this one address's limits.
UNKNOWN_ADDRESS: Final = "unknown"
# An IPv6 host commonly owns a whole /64 (SLAAC, privacy addresses): limits per address count
# its /64 as one, as libp2p's resource manager does, or one machine would be 2**64 addresses.
IPV6_HOST_PREFIX_BITS: Final = 64

# Interface addresses are read again at most this often (a DHCP lease or a new interface
# shows in announcements this late); getifaddrs is cheap, identify asks on every connection.
INTERFACES_CACHE_S: Final = 5.0
WILDCARDS: Final = {"ip4": "0.0.0.0", "ip6": "::"}

StreamHandler = Callable[[FrameStream], Awaitable[None]]

_interfaces_cache: tuple[float, list[ipaddress.IPv4Address | ipaddress.IPv6Address]] = (-math.inf, [])


def interface_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This machine's interface addresses (IPv6 link-local left out: they need a zone)."""
    global _interfaces_cache
    now = time.monotonic()
    if now - _interfaces_cache[0] < INTERFACES_CACHE_S:
        return _interfaces_cache[1]
    import ifaddr  # zeroconf's dependency: reads getifaddrs

    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            raw = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                address = ipaddress.ip_address(raw.split("%", 1)[0])
            except ValueError:
                continue
            if not address.is_link_local and address not in found:
                found.append(address)
    _interfaces_cache = (now, found)
    return found


def announce(
    listening: Sequence[multiaddr.Multiaddr], interfaces: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address] | None = None
) -> list[multiaddr.Multiaddr]:
    """What to tell peers of ``listening``: each wildcard address once per interface address
    of its family, other addresses as they are; loopback last (only this machine can use it)."""
    if interfaces is None:
        interfaces = interface_addresses()
    out: list[multiaddr.Multiaddr] = []
    for addr in listening:
        text = str(addr)
        family = next((name for name, wildcard in WILDCARDS.items() if text.startswith(f"/{name}/{wildcard}/")), None)
        if family is None:
            out.append(addr)
            continue
        rest = text[len(f"/{family}/{WILDCARDS[family]}") :]
        version = 4 if family == "ip4" else 6
        out.extend(multiaddr.Multiaddr(f"/{family}/{ip}{rest}") for ip in interfaces if ip.version == version)
    unique = list({str(addr): addr for addr in out}.values())
    return sorted(unique, key=_is_loopback_addr)  # stable: the listen order within each group


def _ip_of(addr: multiaddr.Multiaddr) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    parts = str(addr).split("/")
    if len(parts) > 2 and parts[1] in ("ip4", "ip6"):
        try:
            return ipaddress.ip_address(parts[2])
        except ValueError:
            return None
    return None


def _is_loopback_addr(addr: multiaddr.Multiaddr) -> bool:
    ip = _ip_of(addr)
    return ip is not None and ip.is_loopback


def is_reachable_elsewhere(addr: multiaddr.Multiaddr | str) -> bool:
    """Whether another machine could dial the address (node/config.py's ``dialable_elsewhere``)."""
    return dialable_elsewhere(str(addr))


def reachable_publicly(addrs: Sequence[multiaddr.Multiaddr | str]) -> bool:
    """Whether an announced address is a global one (not RFC 1918, CGNAT, ULA, test ranges...):
    the ``auto`` reachability's test. A NAT is not detected, only the absence of a public address."""
    for addr in addrs:
        ip = _ip_of(multiaddr.Multiaddr(str(addr)))
        if ip is not None and ip.is_global:
            return True
    return False


def address_key(conn: object) -> str:
    """The remote address a connection counts against for per-address limits.

    ``conn`` is a libp2p connection (``INetConn``) or its muxed connection. An IPv4 address as
    is, an IPv6 address as its /64, ``UNKNOWN_ADDRESS`` when the transport does not say. A
    relayed connection counts against the relay's address (that is whom we see; a relay
    forwards for many peers, and an attacker can run one).
    """
    muxed = getattr(conn, "muxed_conn", conn)
    host: str | None = None
    try:
        remote = muxed.get_remote_address()  # type: ignore[attr-defined]
        if remote:
            host = str(remote[0])
        else:
            for addr in muxed.get_transport_addresses():  # type: ignore[attr-defined]
                host = next((value for proto, value in addr.items() if proto.name in ("ip4", "ip6")), None)
                if host is not None:
                    break
    except (AttributeError, OSError):  # a transport without the calls, or a socket already gone
        host = None
    if host is None:
        return UNKNOWN_ADDRESS
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone id is no part of the address
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if isinstance(ip, ipaddress.IPv6Address) and not ip.is_loopback:
        return str(ipaddress.IPv6Network((ip, IPV6_HOST_PREFIX_BITS), strict=False))
    return str(ip)


def is_loopback_key(key: str) -> bool:
    """Whether an ``address_key`` is this machine's loopback (127.0.0.0/8 or ::1)."""
    try:
        return ipaddress.ip_address(key).is_loopback
    except ValueError:
        return False


def _key_pair(identity: Identity) -> KeyPair:
    private_key = Ed25519PrivateKey.from_bytes(identity.seed)
    return KeyPair(private_key, private_key.get_public_key())


def build_libp2p_host(identity: Identity) -> IHost:
    """A libp2p host (not yet listening) with our key, transports and security; no I/O happens.

    TCP: Noise + yamux only. QUIC: its built-in TLS 1.3. webrtc-direct: DTLS + Noise, with no
    STUN servers (the spec path never needs them; an empty list keeps it that way).
    """
    key_pair = _key_pair(identity)
    private_key = key_pair.private_key
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={YAMUX_PROTOCOL_ID: Yamux},  # type: ignore[dict-item]  # libp2p's TProtocol is a NewType of str
        transports=[
            TCP(),
            QUICTransport(private_key, config=QUICTransportConfig(STREAM_READ_TIMEOUT=QUIC_STREAM_READ_TIMEOUT_S)),
            WebRTCDirectTransport(private_key, config=WebRTCTransportConfig(ice_servers=[])),
        ],
        connection_config=ConnectionConfig(max_connections_per_peer=MAX_CONNECTIONS_PER_PEER),
        addrs_factory=lambda candidates: announce(candidates),
    )
    # py-libp2p 0.8.1 caps inbound connections with a CapacityLimiter whose slot each inbound
    # handler holds until the whole swarm stops (it awaits the swarm manager, not the
    # connection): after 250 inbound connections in a node's life, closed or not, every new
    # one is dropped unanswered — any peer could make us unreachable with 250 dials. Our own
    # caps (node/network.py: peers, strangers, per address) bound live connections instead.
    host.get_network()._inbound_limiter = trio.CapacityLimiter(math.inf)  # type: ignore[attr-defined]
    return host


def _multiaddr(addr: multiaddr.Multiaddr | str) -> multiaddr.Multiaddr:
    try:
        return multiaddr.Multiaddr(str(addr))
    except Exception as error:
        raise AddressError(f"not a multiaddr: {addr!r}: {error}") from error


class Host:
    """A running host: our peer id and addresses, dialling, and framed streams.

    Get one from ``open_host``. ``libp2p`` is the underlying py-libp2p host, for subsystems
    (gossip, DHT) that need it directly; they must be stopped before the host is. ``stats``
    counts stream handlers that failed: ``handler_crashes`` (also in ``internal_failures``)
    are bugs of ours, ``stream_failures`` the peer's or the network's doing; and the relay's
    reservations and refusals (``relay_*``, node/relay.py), in the same counter.
    """

    def __init__(self, identity: Identity, libp2p_host: IHost, circuits: CircuitRelay, *, private: bool = False) -> None:
        self.identity = identity
        self.libp2p = libp2p_host
        self.circuits = circuits
        self.stats: Counter[str] = circuits.stats
        # Not reachable from elsewhere: our relay circuits are announced before direct addresses.
        self.private = private
        # Relay peer id -> our circuit address through it, while we hold a reservation there.
        self.reservations: dict[str, multiaddr.Multiaddr] = {}
        self.dcutr: DCUtRProtocol | None = None
        self._heard: Recent[str, tuple[object, float]] = Recent(HEARD_PEERS_MAX)  # peer -> (connection, when bytes last came)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def addrs(self, transport: str | None = None) -> list[multiaddr.Multiaddr]:
        """What we announce, each ending in ``/p2p/<peer id>``: the listen addresses (a wildcard
        as each interface's address, loopback last) and the circuits of the reservations we
        hold on relays still connected (first if ``private``).

        Args:
            transport: keep only addresses using this multiaddr protocol, e.g. ``"tcp"``,
                ``"quic-v1"``, ``"webrtc-direct"``, ``"p2p-circuit"``.
        """
        direct = self.libp2p.get_addrs()
        connected = set(self.connected_peers())
        circuits = [addr for relay, addr in self.reservations.items() if relay in connected]
        addrs = [*circuits, *direct] if self.private else [*direct, *circuits]
        if transport is None:
            return addrs
        return [addr for addr in addrs if any(p.name == transport for p in addr.protocols())]

    def connected_peers(self) -> list[str]:
        return [peer.to_base58() for peer in self.libp2p.get_connected_peers()]

    def connection_addrs(self, peer_id: str) -> list[multiaddr.Multiaddr]:
        """The remote addresses of our connections to a peer: says which transport carries it,
        and whether it is relayed (``/p2p-circuit``)."""
        connections = self.libp2p.get_network().get_connections(ID.from_base58(peer_id))
        return [addr for connection in connections for addr in connection.get_transport_addresses()]

    async def connect(self, addr: multiaddr.Multiaddr | str) -> str:
        """Connect to the peer at ``addr`` (direct, or a relay circuit); returns its peer id.

        A no-op when already connected. Noise/TLS authenticate the peer: the connection fails
        unless the remote key matches the address's ``/p2p/`` id.

        Raises:
            AddressError: ``addr`` is malformed or lacks ``/p2p/<peer id>``.
            DialError: the peer cannot be reached, or the handshake fails or times out.
            RelayError: for a circuit address, the relay or the relayed peer refuses.
        """
        maddr = _multiaddr(addr)
        if is_circuit_addr(maddr):
            return (await self.circuits.dial(maddr)).to_base58()
        try:
            peer_info = info_from_p2p_addr(maddr)
        except Exception as error:
            raise AddressError(f"cannot dial {maddr}: {error}") from error
        peer_id = peer_info.peer_id.to_base58()
        with _dial_errors(f"connect to {maddr}", peer_id, DIAL_TIMEOUT_S):
            await self.libp2p.connect(peer_info)
        logger.debug("host.connected peer_id=%s addr=%s", peer_id, maddr)
        return peer_id

    async def disconnect(self, peer_id: str) -> None:
        await self.libp2p.disconnect(ID.from_base58(peer_id))

    async def open_stream(
        self, peer_id: str, protocol: str = SYNC_PROTOCOL, *, max_frame_bytes: int = MAX_FRAME_BYTES
    ) -> FrameStream:
        """Open a framed stream to a peer (dialling known addresses if not connected).

        Raises:
            DialError: no connection could be made, or the peer does not speak ``protocol``.
        """
        if self._alive(peer_id):  # a busy peer answers late; its connection carries live sessions
            return await self._new_stream(peer_id, protocol, max_frame_bytes)
        with trio.move_on_after(STREAM_STALL_S):
            return await self._new_stream(peer_id, protocol, max_frame_bytes)
        # No answer in many round trips on a silent connection: one whose handshake stalled (seen
        # with webrtc-direct on a loaded machine, and on a fresh TCP one to a peer that just
        # restarted) does not recover, so try once more on a fresh one.
        logger.info("host.stream_stalled peer_id=%s protocol=%s", peer_id, protocol)
        await self.disconnect(peer_id)
        return await self._new_stream(peer_id, protocol, max_frame_bytes)

    def _alive(self, peer_id: str) -> bool:
        """Whether bytes came from the peer, on the connection we hold to it now, within the last
        STREAM_STALL_S: then a slow stream open is a busy peer (seconds of CPU taking in a
        20,000-doc status), not a stuck connection, and dropping it would drop its sessions."""
        heard = self._heard.get(peer_id)
        if heard is None or trio.current_time() - heard[1] > STREAM_STALL_S:
            return False
        return any(connection is heard[0] for connection in self.libp2p.get_network().get_connections(ID.from_base58(peer_id)))

    def _heard_from(self, peer_id: str, connection: object) -> None:
        self._heard.put(peer_id, (connection, trio.current_time()))

    async def _new_stream(self, peer_id: str, protocol: str, max_frame_bytes: int) -> FrameStream:
        with _dial_errors(f"open {protocol}", peer_id, STREAM_OPEN_TIMEOUT_S):
            stream = await self.libp2p.new_stream(ID.from_base58(peer_id), [TProtocol(protocol)])
        return FrameStream(stream, max_frame_bytes=max_frame_bytes, heard=self._heard_from)

    def set_stream_handler(
        self, protocol: str, handler: StreamHandler, *, max_frame_bytes: int = MAX_FRAME_BYTES
    ) -> None:
        """Run ``handler(frames)`` for each stream a peer opens with ``protocol``.

        The handler owns the stream while it runs; afterwards the stream is closed, or reset if
        the handler raised. A ``NodeError`` is the peer's or the network's doing and is logged
        at info; anything else is a bug, logged with its traceback. Neither reaches libp2p,
        so one bad stream never takes its connection down.
        """

        async def on_stream(stream: INetStream) -> None:
            frames = FrameStream(stream, max_frame_bytes=max_frame_bytes, heard=self._heard_from)
            try:
                await handler(frames)
            except NodeError as error:
                self.stats["stream_failures"] += 1
                logger.info("stream.failed peer_id=%s protocol=%s error=%r", frames.peer_id, protocol, error)
                await frames.reset()
            except Exception:
                self.stats["handler_crashes"] += 1
                self.stats["internal_failures"] += 1
                logger.exception("stream.handler_crashed peer_id=%s protocol=%s", frames.peer_id, protocol)
                await frames.reset()
            else:
                await frames.close()

        self.libp2p.set_stream_handler(TProtocol(protocol), on_stream)

    def remove_stream_handler(self, protocol: str) -> None:
        self.libp2p.remove_stream_handler(TProtocol(protocol))


@contextmanager
def _dial_errors(action: str, peer_id: str, timeout_s: float) -> Iterator[None]:
    """Bound a libp2p dial with a deadline and turn its many failure types into ``DialError``."""
    try:
        with trio.fail_after(timeout_s):
            yield
    except trio.TooSlowError as error:
        raise DialError(f"{action} timed out after {timeout_s} s", peer_id=peer_id) from error
    except NodeError:
        raise
    except Exception as error:  # SwarmException, StreamFailure, MultiselectClientError, OSError...
        if _is_protocol_refusal(error):
            raise ProtocolRefused(f"{action}: the peer does not speak it", peer_id=peer_id) from error
        raise DialError(f"{action} failed: {error}", peer_id=peer_id) from error


def _is_protocol_refusal(error: BaseException) -> bool:
    """Whether libp2p's error (StreamFailure from MultiselectClientError) is the peer's "na".

    py-libp2p 0.8.1 raises a plain MultiselectClientError once every protocol was refused,
    so its message is the only mark that tells it from a connection failing mid-handshake.
    """
    cause = error.__cause__
    return isinstance(cause, ProtocolNotSupportedError) or (
        isinstance(cause, MultiselectClientError) and str(cause).startswith("protocols not supported")
    )


@contextmanager
def _single_error() -> Iterator[None]:
    """Re-raise a lone exception out of the exception groups our nurseries wrap it in.

    Callers of ``open_host`` should be able to ``except StreamResetError``; with trio's strict
    exception groups a failure in the ``async with`` body would otherwise arrive wrapped (once
    per nursery between it and the caller). Real multi-failures stay grouped.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, BaseExceptionGroup):
            raise
        raise leaf from None


@asynccontextmanager
async def open_host(
    identity: Identity,
    listen_addrs: Sequence[multiaddr.Multiaddr | str] = LOOPBACK_LISTEN_ADDRS,
    *,
    serve_relay: bool = False,
    relay_limits: RelayLimits | None = None,
    relay_admits: RelayAdmission | None = None,
    private: bool = False,
    hole_punch: bool = False,
) -> AsyncIterator[Host]:
    """Start a host listening on ``listen_addrs``; stop it, leaving no task or thread, on exit.

    ``listen_addrs`` may be empty: a host that only dials out (and is reached through relays).

    Args:
        private: not reachable from elsewhere: announce relay circuits first (``Host.addrs``).
        hole_punch: run DCUtR, upgrading relayed connections to direct ones where it can.
        serve_relay: also serve circuit relay v2 reservations and circuits (a headless relay).
        relay_limits: caps for serving; ``node.relay.relay_limits()`` by default.
        relay_admits: which peers (by peer id) may reserve and be dialled through us; None:
            every peer (node/relay.py's module docstring says whom a node's relay serves).

    Raises:
        HostStartError: an address could not be listened on (malformed, a transport we do
            not run, not an address of this machine). Not "port in use": py-libp2p listens on
            TCP with SO_REUSEPORT, so a second host on a taken TCP port starts and shares it.
    """
    addrs = [_multiaddr(addr) for addr in listen_addrs]
    libp2p_host = build_libp2p_host(identity)
    circuits = CircuitRelay(libp2p_host, serve=serve_relay, limits=relay_limits, admits=relay_admits)
    with _single_error():
        async with libp2p_host.run(addrs):
            try:
                # libp2p's auto-connector redials every peer in the peerstore (aiming at 150
                # connections, every 10 s while below 50): reconnect policy is the node's, and a
                # peer we dropped for misbehaving must stay dropped.
                await libp2p_host.get_network().auto_connector.stop()  # type: ignore[attr-defined]  # Swarm's, not INetworkService's
                listening = libp2p_host.get_transport_addrs()
                if len(listening) < len(addrs):
                    raise HostStartError(
                        f"listening on {[str(a) for a in listening]}, asked for {[str(a) for a in addrs]}"
                    )
                async with trio.open_nursery() as nursery:
                    await nursery.start(circuits.run)
                    host = Host(identity, libp2p_host, circuits, private=private)
                    if hole_punch:
                        _demote_hole_punch_failures()
                        host.dcutr = DCUtRProtocol(libp2p_host)
                        nursery.start_soon(_run_service, host.dcutr)
                        await host.dcutr.event_started.wait()
                    logger.info(
                        "host.started peer_id=%s addrs=%s", identity.peer_id, ",".join(map(str, host.addrs()))
                    )
                    try:
                        yield host
                    finally:
                        nursery.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
                    await libp2p_host.close()
                if scope.cancelled_caught:
                    logger.warning("host.close_timeout peer_id=%s timeout_s=%s", identity.peer_id, CLOSE_TIMEOUT_S)
                logger.info("host.stopped peer_id=%s", identity.peer_id)


# How long to wait for identify to tell whether a peer we dialled serves circuit relay v2 HOP
# (identify runs at once on a connection: one round trip), and how often to look.
IDENTIFY_WAIT_S: Final = 5.0
IDENTIFY_POLL_S: Final = 0.1


async def serves_relay(host: Host, peer_id: str) -> bool:
    """Whether the peer's identify lists the relay HOP protocol (False if identify does not
    answer in ``IDENTIFY_WAIT_S``): asked before a RESERVE, so a peer that is no relay is
    never sent one (py-libp2p logs every refused protocol as an error)."""
    peer = ID.from_base58(peer_id)
    peerstore = host.libp2p.get_peerstore()
    with trio.move_on_after(IDENTIFY_WAIT_S):
        while True:
            identified = peer in getattr(host.libp2p, "_identified_peers", ())
            try:
                protocols = [str(p) for p in peerstore.get_protocols(peer)]
            except Exception:  # PeerStoreError: nothing known of it yet
                protocols = []
            if str(HOP_PROTOCOL_ID) in protocols:
                return True
            if identified:
                return False
            await trio.sleep(IDENTIFY_POLL_S)  # pacing a poll: libp2p has no identify-done event to wait on
    return False


class _ExpectedHolePunchFailures(logging.Filter):
    """A failed hole punch is an expected outcome (a NAT that answers unsolicited SYNs with a
    reset, a peer that does not speak DCUtR), not a failure of ours: the relayed connection
    carries on. py-libp2p logs them as warnings and errors; they are demoted to info here, so
    a daemon's error lines stay ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO and (record.name == DCUTR_LOGGER or str(DCUTR_PROTOCOL_ID) in record.getMessage()):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


DCUTR_LOGGER: Final = "libp2p.relay.circuit_v2.dcutr"
_HOLE_PUNCH_FILTER: Final = _ExpectedHolePunchFailures()


def _demote_hole_punch_failures() -> None:
    for name in (DCUTR_LOGGER, "libp2p.host.basic_host"):
        target = logging.getLogger(name)
        if _HOLE_PUNCH_FILTER not in target.filters:
            target.addFilter(_HOLE_PUNCH_FILTER)


async def _run_service(service: DCUtRProtocol) -> None:
    async with background_trio_service(service):
        await trio.sleep_forever()


async def hold_reservation(
    host: Host, relay_addr: multiaddr.Multiaddr | str, *, task_status: trio.TaskStatus[multiaddr.Multiaddr] = trio.TASK_STATUS_IGNORED
) -> None:
    """Keep a reservation on a relay so this host is dialable through it, until cancelled.

    Connects to the relay, reserves, reports the circuit address through
    ``task_status.started(addr)``, then renews before each expiry. Run it in a nursery:
    ``circuit = await nursery.start(hold_reservation, host, relay_addr)``.

    Raises:
        DialError: the relay cannot be reached.
        RelayError: the relay refuses or stops renewing; the owner decides when to retry.
    """
    relay = ID.from_base58(await host.connect(relay_addr))
    address = circuit_addr(relay_addr, host.peer_id)
    expires = await host.circuits.reserve(relay)
    logger.info("relay.reserved relay=%s circuit_addr=%s ttl_s=%.0f", relay, address, expires - time.time())
    host.reservations[relay.to_base58()] = address
    try:
        task_status.started(address)
        while True:
            await trio.sleep(max(RESERVATION_MIN_REFRESH_S, (expires - time.time()) * RESERVATION_REFRESH_FRACTION))
            expires = await host.circuits.reserve(relay)
            logger.debug("relay.renewed relay=%s ttl_s=%.0f", relay, expires - time.time())
    finally:
        if host.reservations.get(relay.to_base58()) == address:
            del host.reservations[relay.to_base58()]
