"""Node events: what the network part reports, and what a node's halves tell each other.

Every event is a frozen dataclass carrying values as they are (space ids and doc ids as bytes);
they become hex only where they leave the node, as the API's JSON (node/api_json.py). They
travel on one ``EventBus`` per node (``NodeServices.bus``), dispatched by type:

- the network part's reports, ``NetworkEvent`` (``PeerConnected`` ... ``RelayReserved``): the
  sync driver and the peer manager hand them to the network's sink, which in a daemon is the
  bus (node/wiring.py); the peer table follows the peer and session ones;
- ``PeerEvent`` and ``PresenceEvent``: the peer and presence tables changed (API subscribers
  hear of them; local presence goes to peers);
- ``JoinRequested``: a space to fetch from peers.

The store's own events come through ``Repo.subscribe`` and are put on the bus as they are:
``store.repo.StoreEvent`` (a write moved a doc's heads) and ``store.repo.SpaceStored`` (a
genesis was stored: created, joined or fetched; the network serves the space from then on).

Nothing here imports trio. The bus calls listeners synchronously, in the thread that published
— in the daemon the trio thread, inside ``Repo.commit`` for store events — so a listener must be
quick and must not raise: one with slow work records it and wakes a task of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = [
    "ChangesApplied",
    "EventBus",
    "JoinRequest",
    "JoinRequested",
    "NetworkEvent",
    "NetworkEventSink",
    "PeerConnected",
    "PeerDisconnected",
    "PeerEvent",
    "PeerInfo",
    "PeerPenalty",
    "Presence",
    "PresenceEvent",
    "PresenceKey",
    "RelayReserved",
    "SessionClosed",
    "SessionOpened",
]

Event = TypeVar("Event")


class EventBus:
    """Synchronous publish/subscribe of node events, by event type."""

    def __init__(self) -> None:
        self._listeners: dict[type, list[Callable[[object], None]]] = {}

    def listen(self, kind: type[Event], callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every published event of type ``kind``; returns the unlisten."""
        listeners = self._listeners.setdefault(kind, [])
        listeners.append(callback)  # type: ignore[arg-type]

        def unlisten() -> None:
            if callback in listeners:
                listeners.remove(callback)

        return unlisten

    def publish(self, event: object) -> None:
        for callback in list(self._listeners.get(type(event), ())):
            callback(event)


# ----- the network part's reports -----


@dataclass(frozen=True, slots=True)
class PeerConnected:
    peer_id: str
    addrs: tuple[str, ...]  # remote addresses of its connection (``/p2p-circuit`` when relayed)


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer_id: str


@dataclass(frozen=True, slots=True)
class SessionOpened:
    """A sync session with a peer got past its Hello exchange: we sync ``space`` with it."""

    peer_id: str
    space: bytes
    outbound: bool  # we opened its stream


@dataclass(frozen=True, slots=True)
class SessionClosed:
    peer_id: str
    space: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class ChangesApplied:
    """Remote changes were stored (``peer_id`` None: their connection is already gone)."""

    peer_id: str | None
    space: bytes
    doc: bytes
    changes: int


@dataclass(frozen=True, slots=True)
class PeerPenalty:
    """The Replicator scored a peer's misbehaviour; ``banned``: it is disconnected and refused."""

    peer_id: str
    offense: str
    detail: str
    score: float
    banned: bool


@dataclass(frozen=True, slots=True)
class RelayReserved:
    """A reservation on a relay is held: we are dialable at ``circuit_addr``."""

    relay: str
    circuit_addr: str


NetworkEvent = PeerConnected | PeerDisconnected | SessionOpened | SessionClosed | ChangesApplied | PeerPenalty | RelayReserved
NetworkEventSink = Callable[[NetworkEvent], None]


# ----- the node's tables changed -----


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A connected peer, as the peer table holds it."""

    peer_id: str
    addrs: tuple[str, ...] = ()
    spaces: tuple[bytes, ...] = ()  # the spaces we sync with it now
    connected_ms: int = 0


@dataclass(frozen=True, slots=True)
class PeerEvent:
    kind: Literal["connected", "updated", "disconnected"]
    peer: PeerInfo


PresenceKey = tuple[bytes, str, str]  # (space, peer id, client)
# A position in presence: an Automerge cursor of a file's text (str), or a count of code points (int).
Anchor = int | str


@dataclass(frozen=True, slots=True)
class Presence:
    """Where one client of one peer is in a space: never stored, gone after PRESENCE_TTL_MS.

    Positions are Automerge cursors of the path's text (str), resolved where shown, or counts of
    code points (int) where the path is not a text file (node/presence_anchors.py).
    """

    space: bytes
    peer_id: str
    client: str  # which editor or agent of that peer ("vim", "agent-1"); one peer may run several
    path: str | None
    cursor: Anchor | None
    selection: tuple[Anchor, Anchor] | None  # (anchor, head)
    name: str | None  # a display name
    updated_ms: int

    @property
    def key(self) -> PresenceKey:
        return (self.space, self.peer_id, self.client)


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    presence: Presence
    removed: bool
    local: bool  # set by a client of this node (the network gossips these), not a remote peer


# ----- joins -----


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A space to fetch from peers; persisted in HOME/joins.json until the network acts on it."""

    space: bytes
    peers: tuple[str, ...]
    requested_ms: int


@dataclass(frozen=True, slots=True)
class JoinRequested:
    request: JoinRequest
