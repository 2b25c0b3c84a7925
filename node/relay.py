"""Circuit relay v2: reach peers that can only reach a relay.

Two peers behind NATs both dial a relay R they can reach. B *reserves* a slot on R (a HOP
RESERVE exchange); from then on anyone connected to R can dial B at
``<R's addr>/p2p/R/p2p-circuit/p2p/B``: R opens a STOP stream to B and splices the two
streams, and A and B then run Noise and yamux end to end over that splice, so R sees only
ciphertext. Every host accepts relayed connections and can dial through relays; a host opened
with ``serve_relay=True`` (a headless relay node) also serves reservations and circuits.

py-libp2p 0.8.1 gives the protocol pieces (``CircuitV2Protocol``, ``CircuitV2Transport``) but
its swarm never dials ``/p2p-circuit`` addresses and its reservation refresher is a task that
one caller's nursery owns for every relay; so ``CircuitRelay.dial`` calls the circuit
transport directly, and ``node.host.hold_reservation`` runs its own RESERVE exchange and
refresh loop, owned by whoever starts it.

Who a relay serves. A relay node of Dist-Space is a member of the spaces it holds, and serves
reservations only to peers that are members too: ``CircuitRelay(admits=...)`` asks, for the
peer the connection authenticated (never a peer id a RESERVE message names: py-libp2p would
reserve in the name of whatever peer the message claims, so a RESERVE naming another peer is
refused), and a relay holding an open space admits every peer (node/network.py's
``_relay_admits``: a member, role ``relay`` or more, of one of its private spaces, or anyone
if it holds an open one; a relay that holds no space serves nobody). A circuit (CONNECT) is
spliced only into a peer that holds a reservation and is admitted still, so a revoked member's
slot stops carrying circuits at once; the dialling side is not asked, since a joiner that the
relay's log does not know yet (it joined by a ticket, its grant not synced) must still reach
the member that invited it, whose own node then decides whether to sync with it. The sync
sessions a relay node serves (its replicas) are admitted as every node's are
(protocol/replicator.py: nothing of a private space to a peer its log does not admit).

**A relay can read the spaces it serves.** Spaces are not end-to-end encrypted yet: a node
invited with role ``relay`` stores and forwards every change of the space, and so holds every
file in the clear, like any member. A circuit is different: it carries Noise/TLS end to end,
so a relay that only splices a circuit sees ciphertext; but a relay node that is a member
syncs the space itself. Invite as relay only a node you would let read the space.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Final

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import STOP_PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
from libp2p.relay.circuit_v2.resources import RelayLimits, RelayResourceManager
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg
from libp2p.tools.anyio_service import background_trio_service

from node.errors import AddressError, RelayError

logger = logging.getLogger(__name__)

__all__ = [
    "HOP_PROTOCOL_ID",
    "STOP_PROTOCOL_ID",
    "CircuitRelay",
    "RelayAdmission",
    "circuit_addr",
    "is_circuit_addr",
    "relay_limits",
]

# A headless relay is a full member of its spaces, not a scarce public relay: circuits carry
# whole sync sessions, so the caps are generous and exist only to bound a misbehaving client.
RELAY_MAX_RESERVATIONS: Final = 128  # peers that may hold a slot at once (a team, its agents)
RELAY_MAX_CIRCUITS_PER_PEER: Final = 16  # concurrent relayed connections into one peer
RELAY_CIRCUIT_DURATION_S: Final = 24 * 3600  # a circuit is re-dialled at most daily
RELAY_CIRCUIT_BYTES: Final = 64 * 1024**3  # a full workspace history many times over
RESERVATION_TTL_S: Final = 3600  # the circuit relay v2 default; refreshed long before expiry
# Refresh when this fraction of the remaining time has passed: at 3/4 of a 1 h slot there are
# still 15 min of retries before the slot lapses.
RESERVATION_REFRESH_FRACTION: Final = 0.75
RESERVATION_MIN_REFRESH_S: Final = 1.0  # never spin, even if a relay hands out tiny TTLs
RESERVE_TIMEOUT_S: Final = 10.0  # one RESERVE round trip, including the relay's 0.1 s pause
CIRCUIT_DIAL_TIMEOUT_S: Final = 15.0  # relay CONNECT + STOP + Noise/yamux over two hops


# Whether a peer (its libp2p peer id, as the connection authenticated it) may hold a
# reservation and be dialled through us; None: every peer may (a bare host, as in tests).
RelayAdmission = Callable[[str], bool]


def relay_limits(
    *,
    reservation_ttl_s: int = RESERVATION_TTL_S,
    max_reservations: int = RELAY_MAX_RESERVATIONS,
    max_circuits_per_peer: int = RELAY_MAX_CIRCUITS_PER_PEER,
    circuit_duration_s: int = RELAY_CIRCUIT_DURATION_S,
    circuit_bytes: int = RELAY_CIRCUIT_BYTES,
) -> RelayLimits:
    """libp2p relay limits with our defaults.

    Never pass 0 for ``circuit_bytes``: in py-libp2p 0.8.1 a zero data cap falls back to a
    per-reservation counter whose limit is then 0, which kills every circuit on its first byte.
    """
    return RelayLimits(
        duration=circuit_duration_s,
        data=circuit_bytes,
        max_circuit_conns=max_circuits_per_peer,
        max_reservations=max_reservations,
        reservation_ttl=reservation_ttl_s,
    )


def is_circuit_addr(addr: multiaddr.Multiaddr) -> bool:
    return any(protocol.name == "p2p-circuit" for protocol in addr.protocols())


def circuit_addr(relay_addr: multiaddr.Multiaddr | str, peer_id: str) -> multiaddr.Multiaddr:
    """``<relay_addr>/p2p-circuit/p2p/<peer_id>``; ``relay_addr`` must end in ``/p2p/<relay>``."""
    relay = multiaddr.Multiaddr(str(relay_addr))
    if relay.get_peer_id() is None:
        raise AddressError(f"relay address {relay} has no /p2p/ peer id")
    return relay.encapsulate(multiaddr.Multiaddr(f"/p2p-circuit/p2p/{peer_id}"))


class CircuitRelay:
    """The circuit relay v2 side of one libp2p host.

    Always: accepts relayed connections (the STOP protocol) and dials through relays. With
    ``serve=True``: also serves reservations and circuits for others (the HOP protocol).
    ``Host`` owns one and runs it for its whole life, because the STOP handler is registered
    once per host and removed when the protocol service stops. ``admits`` says which peers
    are served (the module docstring); ``stats`` counts the refusals
    (``relay_reservations_refused``, ``relay_reservations_impersonating``,
    ``relay_circuits_refused``) and ``relay_reservations_served``.
    """

    def __init__(
        self, libp2p_host: IHost, *, serve: bool, limits: RelayLimits | None = None, admits: RelayAdmission | None = None
    ) -> None:
        self._host = libp2p_host
        self.serving = serve
        self.stats: Counter[str] = Counter()
        limits = limits or relay_limits()
        self._protocol = _AdmittingProtocol(libp2p_host, limits, allow_hop=serve, admits=admits, stats=self.stats)
        # No CLIENT role: libp2p would otherwise also reserve a slot on the relay at every dial.
        roles = RelayRole.STOP | RelayRole.HOP if serve else RelayRole.STOP
        self._transport = CircuitV2Transport(libp2p_host, self._protocol, RelayConfig(roles=roles, limits=limits))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the relay protocols until cancelled."""
        async with background_trio_service(self._protocol):
            await self._protocol.event_started.wait()
            logger.info("relay.started peer_id=%s serving=%s", self._host.get_id(), self.serving)
            task_status.started()
            await trio.sleep_forever()

    async def dial(self, addr: multiaddr.Multiaddr) -> ID:
        """Connect to the peer at a ``.../p2p/RELAY/p2p-circuit/p2p/PEER`` address.

        Raises:
            AddressError: not a circuit address.
            RelayError: the relay is unreachable, the peer holds no reservation on it, the peer
                refused, or the end-to-end handshake failed.
        """
        try:
            _, peer = self._transport.parse_circuit_ma(addr)
        except ValueError as error:
            raise AddressError(str(error)) from error
        try:
            with trio.fail_after(CIRCUIT_DIAL_TIMEOUT_S):
                await self._transport.dial(addr)
        except trio.TooSlowError as error:
            raise RelayError(f"circuit dial timed out after {CIRCUIT_DIAL_TIMEOUT_S} s", peer_id=str(peer)) from error
        except Exception as error:  # ConnectionError, RelayConnectionError, SwarmException, ...
            raise RelayError(f"circuit dial via {addr} failed: {error}", peer_id=str(peer)) from error
        logger.info("relay.dialled peer_id=%s addr=%s", peer, addr)
        return peer

    async def reserve(self, relay: ID) -> float:
        """Make (or renew) a reservation on ``relay``; returns its expiry as a Unix time.

        Raises:
            RelayError: the relay refused (its status code is in the message) or failed.
        """
        try:
            with trio.fail_after(RESERVE_TIMEOUT_S):
                stream = await self._host.new_stream(relay, [HOP_PROTOCOL_ID])
                try:
                    # The peer field is left out on purpose: the relay must take the reserving
                    # peer from the authenticated connection (see the module notes in the report).
                    await write_delimited_msg(stream, HopMessage(type=HopMessage.RESERVE))
                    response = await read_delimited_msg(stream, HopMessage)
                finally:
                    with trio.CancelScope(shield=True):
                        await stream.close()
        except trio.TooSlowError as error:
            raise RelayError(f"reservation timed out after {RESERVE_TIMEOUT_S} s", peer_id=str(relay)) from error
        except Exception as error:
            raise RelayError(f"reservation failed: {error!r}", peer_id=str(relay)) from error
        status = StatusCode(response.status) if response.HasField("status") else StatusCode.UNUSED
        if status != StatusCode.OK or not response.HasField("reservation"):
            raise RelayError(f"reservation refused: {status.name}", peer_id=str(relay))
        return float(response.reservation.expire)


class _AdmittingResources(RelayResourceManager):
    """libp2p's reservation book, splicing circuits only into peers still admitted."""

    def __init__(self, limits: RelayLimits, host: IHost, admits: RelayAdmission | None, stats: Counter[str]) -> None:
        super().__init__(limits, host)
        self._admits = admits
        self._stats = stats

    def can_accept_connection(self, peer_id: ID) -> bool:
        if not super().can_accept_connection(peer_id):
            return False
        if self._admits is not None and not self._admits(peer_id.to_base58()):
            self._stats["relay_circuits_refused"] += 1  # its reservation outlived its membership
            return False
        return True


class _AdmittingProtocol(CircuitV2Protocol):
    """py-libp2p's circuit relay v2 with a RESERVE served only to an admitted peer, itself.

    ``_handle_reserve`` is libp2p's own (0.8.1, pinned in pyproject.toml) after a check of the
    peer the connection authenticated: libp2p takes the peer to reserve for from the message
    when it names one, which would let any peer take a slot in a member's name.
    """

    def __init__(
        self, host: IHost, limits: RelayLimits, *, allow_hop: bool, admits: RelayAdmission | None, stats: Counter[str]
    ) -> None:
        super().__init__(host, limits=limits, allow_hop=allow_hop)
        self.resource_manager = _AdmittingResources(self.limits, host, admits, stats)
        self._admits = admits
        self._stats = stats

    async def _handle_reserve(self, stream: INetStream, msg: HopMessage) -> None:
        remote = stream.muxed_conn.peer_id
        if msg.HasField("peer") and msg.peer.id and ID(msg.peer.id) != remote:
            self._stats["relay_reservations_impersonating"] += 1
            await self._refuse(stream, remote, "a reservation names a peer other than its sender")
            return
        if self._admits is not None and not self._admits(remote.to_base58()):
            self._stats["relay_reservations_refused"] += 1
            await self._refuse(stream, remote, "not a member of a space this relay holds")
            return
        self._stats["relay_reservations_served"] += 1
        await super()._handle_reserve(stream, msg)

    async def _refuse(self, stream: INetStream, remote: ID, why: str) -> None:
        logger.info("relay.reservation_refused peer_id=%s reason=%s", remote.to_base58(), why.replace(" ", "_"))
        await self._send_status(stream, StatusCode.PERMISSION_DENIED, why)
