"""What goes into the ``Replicator`` (events) and what comes out (actions): plain frozen data.

The node, the tests and the simulator are three interpreters of the same actions: ``Send``
writes bytes to a connection, ``Disconnect`` closes it, ``SetTimer`` asks for a
``TimerFired`` no later than a time, and ``Applied`` / ``PeerPenalized`` report what happened.
A connection is named by any hashable id the driver picks (``ConnId``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from protocol.tips import SignedTip

ConnId = Hashable


# ----- events -----


@dataclass(frozen=True, slots=True)
class Connected:
    """A stream to ``peer`` (its key, as the transport authenticated it) is open.

    ``space`` is set when we opened it to sync that space: we speak first. A stream the peer
    opened has ``space=None``; its Hello names the space.
    """

    conn: ConnId
    peer: bytes
    space: bytes | None


@dataclass(frozen=True, slots=True)
class DataReceived:
    conn: ConnId
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    conn: ConnId


@dataclass(frozen=True, slots=True)
class TimerFired:
    conn: ConnId


@dataclass(frozen=True, slots=True)
class LocalCommit:
    """The local author stored a signed batch: ``changes`` (raw, causal order), ``tip`` over the last.

    Every change the local author stores must be reported so: the Replicator keeps each doc's
    heads in step with the store from these events and from what it applies itself."""

    space: bytes
    doc: bytes
    changes: tuple[bytes, ...]
    tip: SignedTip


@dataclass(frozen=True, slots=True)
class SpaceAdded:
    """Serve this space from now on (created or joined after the Replicator started)."""

    space: bytes


@dataclass(frozen=True, slots=True)
class CapabilitiesAdded:
    """The store's capability log of ``space`` gained records (``hashes``), whoever added them:
    a local grant or revocation, or the Replicator itself taking a peer's. The Replicator pushes
    the ones its sessions lack and closes sessions of peers the log no longer admits. The node
    forwards the store's event of the same name; the harness feeds it after a local add."""

    space: bytes
    hashes: tuple[bytes, ...]


Event = Connected | DataReceived | ConnectionLost | TimerFired | LocalCommit | SpaceAdded | CapabilitiesAdded


# ----- actions -----


@dataclass(frozen=True, slots=True)
class Send:
    conn: ConnId
    data: bytes


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection; the Replicator has already forgotten it."""

    conn: ConnId
    reason: str


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Deliver ``TimerFired(conn)`` at ``at_ms`` (replacing any earlier request for ``conn``).
    A timer of a connection that has since closed is ignored, so it need not be cancelled."""

    conn: ConnId
    at_ms: int


@dataclass(frozen=True, slots=True)
class Applied:
    """Changes from ``conn`` were verified and stored (hashes in causal order)."""

    space: bytes
    doc: bytes
    hashes: tuple[bytes, ...]
    conn: ConnId


@dataclass(frozen=True, slots=True)
class PeerPenalized:
    """A peer misbehaved; ``score`` is its total after decay. Nothing of what it sent was used."""

    conn: ConnId
    peer: bytes
    offense: str
    detail: str
    score: float


Action = Send | Disconnect | SetTimer | Applied | PeerPenalized
