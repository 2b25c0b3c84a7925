"""Every error the network layer raises, so the node can tell "drop this peer" from "fix me".

Two families, as in ``protocol.errors`` (and h11): a ``RemoteNodeError`` is the network's or the
peer's doing (unreachable, stream reset, oversized or malformed frame) and is handled by
disconnecting, scoring or retrying that peer; a ``LocalNodeError`` is our own misuse (a bad
listen address, a frame larger than we allow ourselves to send) and is a bug or a config error.

libp2p raises a zoo of its own exceptions that differ per transport (yamux, QUIC, WebRTC); the
node layer catches them at the boundary and re-raises one of these, chained with ``from``.
"""

from __future__ import annotations


class NodeError(Exception):
    """Base class of every node (network) error."""


class LocalNodeError(NodeError):
    """We used the network layer wrongly; nothing a remote peer did."""


class HostStartError(LocalNodeError):
    """The host could not be built or could not listen on an address (bad multiaddr, port taken)."""


class AddressError(LocalNodeError):
    """A multiaddr we were given cannot be dialled (malformed, or missing its /p2p/ peer id)."""


class FrameTooLarge(LocalNodeError):
    """We tried to send a frame above the stream's limit; the receiver would refuse it."""


class RemoteNodeError(NodeError):
    """The peer or the network failed us; carries the peer id (base58) when known."""

    def __init__(self, message: str, *, peer_id: str | None = None) -> None:
        super().__init__(message if peer_id is None else f"{message} (peer {peer_id})")
        self.peer_id = peer_id


class DialError(RemoteNodeError):
    """Connecting to a peer, or opening a stream to it, failed or timed out."""


class ProtocolRefused(DialError):
    """The peer answered that it does not speak the stream's protocol (multistream "na")."""


class StreamClosedError(RemoteNodeError):
    """The stream ended (peer closed it, or we already closed our side) where data was expected."""


class TruncatedFrame(StreamClosedError):
    """The peer closed the stream in the middle of a frame."""


class StreamResetError(RemoteNodeError):
    """The stream was reset or its connection was lost (includes a peer that stopped reading)."""


class FrameLimitExceeded(RemoteNodeError):
    """The peer announced a frame larger than our limit; the stream has been reset."""


class MalformedFrame(RemoteNodeError):
    """The peer sent a frame header that is not a valid length prefix; the stream has been reset."""


class RelayError(RemoteNodeError):
    """A circuit relay refused a reservation or a relayed connection, or could not be reached."""


class ConfigError(LocalNodeError):
    """``config.toml`` is malformed or holds an unknown or out-of-range setting."""


class HomeLocked(LocalNodeError):
    """Another daemon already runs on this node home."""


class PeerKeyError(RemoteNodeError):
    """A peer id that does not embed an Ed25519 key: not a peer our protocol can authenticate."""


class SessionLimitExceeded(RemoteNodeError):
    """A peer opened more sync streams than we serve (in all, or for one peer); refused."""


class IpfsError(NodeError):
    """Publishing to or joining from IPFS (node/ipfs.py, config.toml's ``ipfs_api``) failed."""


class IpfsUnavailable(IpfsError):
    """The IPFS daemon cannot be reached at ``ipfs_api``, or refused a request."""


class IpfsBlockMissing(IpfsError):
    """A block the publication links is not in IPFS (or did not arrive in time): nothing was stored."""


class IpfsContentRefused(IpfsError):
    """What IPFS returned does not check out — a block that does not hash to its CID, a pointer,
    manifest or bundle that does not verify or does not match, a replayed pointer: nothing was stored."""


class PublishRefused(IpfsError):
    """A publication this node will not make: a private space without ``allow_private``, an empty space."""
