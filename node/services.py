"""What the local API and the network share inside one node: store, peers, presence, an event bus.

A running daemon builds one ``NodeServices`` and hands it to both halves: the local API reads and
writes the workspace through it and fans its events out to subscribers; how the network part is
wired to it is node/wiring.py. A CLI command run without a daemon builds one too, for its one
call, so both paths run the same method code. The events on its bus are node/events.py's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from node.config import NodeConfig
from node.events import (
    EventBus,
    JoinRequest,
    JoinRequested,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    PeerInfo,
    Presence,
    PresenceEvent,
    PresenceKey,
    SessionClosed,
    SessionOpened,
)
from node.home import NodeHome, write_atomically
from node.logs import event
from node.peer_records import PEER_RECORDS_FILE, PeerDirectory
from protocol.errors import InvalidPeerRecord
from protocol.identity import Identity, PeerKind
from protocol.peer_record import PeerRecord
from protocol.space import SPACE_ID_BYTES, Genesis
from store.errors import InvalidInput, UnknownSpace
from store.repo import Repo, SpaceStored, wall_clock_ms
from store.workspace import Workspace

if TYPE_CHECKING:
    from store.history import History

log = logging.getLogger("distspace.services")

# How long a presence entry lives without a refresh: an editor that crashed or lost its peer
# stops showing a cursor after this, while one that refreshes every ~10 s never flickers.
PRESENCE_TTL_MS = 60_000
# The least of a space id's hex a caller may give: 8 hex digits make an accidental match among
# a node's few spaces negligible, as with git's short hashes.
MIN_SPACE_PREFIX_CHARS = 8
JOINS_FILE = "joins.json"


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """How ``distspace up`` asked the network part to run (config.toml fills what it left out)."""

    listen: tuple[str, ...]
    peers: tuple[str, ...]
    relay: bool
    mdns: bool
    folder: Path | None = None  # the folder to mirror a space into (node/wiring.py's Mirrors)
    folder_space: str | None = None  # its space (a name or id); None: the default space


class RunningNetwork(Protocol):
    """What the daemon needs of a started network part (the value of its ``task_status.started``)."""

    def addrs(self) -> list[str]: ...


class RunningMirrors(Protocol):
    """What the API needs of the daemon's folder mirrors (node/wiring.py's ``Mirrors``)."""

    def start_soon(self, space: bytes, folder: Path) -> Path: ...

    def status(self) -> list[dict[str, Any]]: ...


class PeerTable:
    """The peers connected now, kept current from the network's reports on the bus; the API reads it."""

    def __init__(self, bus: EventBus, clock: Callable[[], int]) -> None:
        self._bus = bus
        self._clock = clock
        self._peers: dict[str, PeerInfo] = {}
        bus.listen(PeerConnected, lambda e: self._connected(PeerInfo(e.peer_id, e.addrs, connected_ms=self._clock())))
        bus.listen(PeerDisconnected, lambda e: self._disconnected(e.peer_id))
        bus.listen(SessionOpened, lambda e: self._session(e.peer_id, e.space, opened=True))
        bus.listen(SessionClosed, lambda e: self._session(e.peer_id, e.space, opened=False))

    def _connected(self, peer: PeerInfo) -> None:
        """A peer connected, or what is known of a connected one changed (its addresses, spaces)."""
        known = self._peers.get(peer.peer_id)
        if known == peer:
            return
        self._peers[peer.peer_id] = peer
        self._bus.publish(PeerEvent("updated" if known is not None else "connected", peer))

    def _disconnected(self, peer_id: str) -> None:
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            self._bus.publish(PeerEvent("disconnected", peer))

    def _session(self, peer_id: str, space: bytes, *, opened: bool) -> None:
        known = self._peers.get(peer_id)
        if known is not None:
            spaces = {*known.spaces, space} if opened else set(known.spaces) - {space}
            self._connected(dataclasses.replace(known, spaces=tuple(sorted(spaces))))

    def get(self, peer_id: str) -> PeerInfo | None:
        return self._peers.get(peer_id)

    def list(self) -> list[PeerInfo]:
        return sorted(self._peers.values(), key=lambda peer: peer.peer_id)


class PresenceTable:
    """Every live presence entry, local and remote."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._entries: dict[PresenceKey, Presence] = {}

    def update(self, presence: Presence, *, local: bool) -> None:
        self._entries[presence.key] = presence
        self._bus.publish(PresenceEvent(presence, removed=False, local=local))

    def remove(self, key: PresenceKey, *, local: bool) -> bool:
        presence = self._entries.pop(key, None)
        if presence is not None:
            self._bus.publish(PresenceEvent(presence, removed=True, local=local))
        return presence is not None

    def entries(self, space: bytes) -> list[Presence]:
        return sorted((p for p in self._entries.values() if p.space == space), key=lambda p: (p.peer_id, p.client))

    def expire(self, now_ms: int, local_peer: str) -> int:
        """Drop entries not refreshed within PRESENCE_TTL_MS; returns how many went."""
        stale = [p for p in self._entries.values() if now_ms - p.updated_ms > PRESENCE_TTL_MS]
        for presence in stale:
            self.remove(presence.key, local=presence.peer_id == local_peer)
        return len(stale)


class NodeServices:
    """One node's shared state: identity, config, repo and workspaces, peers, presence, the bus.

    The owner opens and closes the repo; ``close`` only detaches from it.
    """

    def __init__(
        self,
        home: NodeHome,
        config: NodeConfig,
        identity: Identity,
        repo: Repo,
        *,
        options: DaemonOptions | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.home = home
        self.config = config
        self.identity = identity
        self.repo = repo
        self.options = options  # None: no daemon, a CLI command on the store
        self.clock = clock
        self.started_ms = clock()
        self.bus = EventBus()
        self.peers = PeerTable(self.bus, clock)
        self.presence = PresenceTable(self.bus)
        self.api: dict[str, str] = {}  # the daemon's API endpoints, once it listens
        self.network: RunningNetwork | None = None  # once the network part listens
        self.mirrors: RunningMirrors | None = None  # once the daemon runs its folder mirrors
        self.revoked_tokens: set[str] = set()  # scoped tokens revoked while connections they opened live
        self._workspaces: dict[bytes, Workspace] = {}
        self._histories: dict[bytes, History] = {}
        # Who each member of each space says it is (node/peer_records.py); ours is issued as a
        # space is stored, and read by log, blame and members.
        self.peer_records = PeerDirectory(home.path / PEER_RECORDS_FILE)
        self.bus.listen(SpaceStored, self._on_space_stored)
        self._detach = repo.subscribe(self.bus.publish)

    @property
    def daemon(self) -> bool:
        return self.options is not None

    def close(self) -> None:
        self._detach()

    def publish_own_record(self, space: bytes) -> PeerRecord | None:
        """Our peer record of ``space``, issued if we hold none saying config.toml's ``name``
        and ``kind`` (``relay`` for a node that runs as a relay); None if we hold that one.

        A name no record can carry, or a home we cannot write, costs the record (logged),
        never what asked for it (a space being stored, the daemon starting)."""
        relay = self.options.relay if self.options is not None else self.config.relay
        kind = PeerKind.RELAY if relay else self.config.kind
        try:
            return self.peer_records.publish_own(self.identity, space, self.config.name, kind, self.clock())
        except (InvalidPeerRecord, OSError) as error:
            event(log, "peer_records.own_record_failed", logging.WARNING, space=space.hex()[:12], error=repr(error))
            return None

    def _on_space_stored(self, stored: SpaceStored) -> None:
        self.publish_own_record(stored.space)

    def addrs(self) -> list[str]:
        """The network part's listen addresses (none without one)."""
        return self.network.addrs() if self.network is not None else []

    # ----- spaces -----

    def space_id(self, spec: str | None) -> bytes:
        """The space a caller means: its name, its id or a unique id prefix; for None, the
        config's default space, else the only one.

        Raises:
            UnknownSpace: no such space (or none at all). InvalidInput: the spec names several.
        """
        spaces = self.repo.spaces()
        if spec is None and self.config.space is not None:
            try:
                return self.space_id(self.config.space)
            except UnknownSpace:
                raise UnknownSpace(
                    f"the default space {self.config.space!r} ({self.home.config_file}) is not on this node yet; say which"
                ) from None
        if spec is None:
            if len(spaces) == 1:
                return spaces[0].space_id
            if not spaces:
                raise UnknownSpace("this node holds no space yet: create one (distspace init NAME) or join one")
            raise InvalidInput(f"this node holds {len(spaces)} spaces ({_names(spaces)}); say which")
        by_name = [g for g in spaces if g.name == spec]
        lowered = spec.lower()
        by_id = [g for g in spaces if len(spec) >= MIN_SPACE_PREFIX_CHARS and g.space_id.hex().startswith(lowered)]
        matches = by_name or by_id
        if len(matches) == 1:
            return matches[0].space_id
        if matches:
            raise InvalidInput(f"{spec!r} names {len(matches)} spaces ({_names(matches)}); give more of the id")
        raise UnknownSpace(f"no space {spec!r} on this node (it holds: {_names(spaces) or 'none'})")

    def adopt_default_space(self, space: bytes) -> None:
        """Make ``space`` the default of calls that name none, unless the config has one.

        The first space a node creates or joins is the one its user means from then on, even
        after joining more; the line goes first in config.toml, where a top-level key belongs.
        """
        if self.config.space is not None:
            return
        config_file = self.home.config_file
        rest = config_file.read_text() if config_file.exists() else ""
        write_atomically(config_file, f'space = "{space.hex()}"\n{rest}')
        self.config = dataclasses.replace(self.config, space=space.hex())

    def workspace(self, space: bytes) -> Workspace:
        """The space's workspace, kept so its tree cache serves every caller."""
        if space not in self._workspaces:
            self._workspaces[space] = Workspace(self.repo, space)
        return self._workspaces[space]

    def history(self, space: bytes) -> History:
        # Imported here: store.history costs ~15 ms that ``distspace cat`` on the store must not pay.
        from store.history import History

        if space not in self._histories:
            self._histories[space] = History(self.workspace(space))
        return self._histories[space]

    # ----- joins -----

    def joins(self) -> list[JoinRequest]:
        """Every recorded join request, oldest first."""
        try:
            raw = json.loads((self.home.path / JOINS_FILE).read_text())
        except FileNotFoundError:
            return []
        except ValueError as error:
            raise InvalidInput(f"{self.home.path / JOINS_FILE} is damaged ({error}); delete it and join again") from error
        return [JoinRequest(bytes.fromhex(r["space"]), tuple(r["peers"]), r["requested_ms"]) for r in raw]

    def request_join(self, space: bytes, peers: tuple[str, ...]) -> JoinRequest:
        """Record that ``space`` is to be fetched from ``peers`` (merged with earlier requests)."""
        if len(space) != SPACE_ID_BYTES:
            raise InvalidInput(f"a space id is {SPACE_ID_BYTES} bytes")
        earlier = {r.space: r for r in self.joins()}
        known = earlier[space].peers if space in earlier else ()
        request = JoinRequest(space, tuple(dict.fromkeys([*known, *peers])), self.clock())
        earlier[space] = request
        rows = [{"space": r.space.hex(), "peers": list(r.peers), "requested_ms": r.requested_ms} for r in earlier.values()]
        write_atomically(self.home.path / JOINS_FILE, json.dumps(rows, indent=1))
        self.bus.publish(JoinRequested(request))
        return request


def _names(spaces: list[Genesis]) -> str:
    return ", ".join(f"{g.name} {g.space_id.hex()[:MIN_SPACE_PREFIX_CHARS]}" for g in spaces)


__all__ = [
    "DaemonOptions",
    "NodeServices",
    "PeerTable",
    "PresenceTable",
    "RunningMirrors",
    "RunningNetwork",
]
