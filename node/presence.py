"""Presence between peers: where each editor's cursor is. Never stored, best effort.

A local client's presence update goes to every connected peer that syncs the space, as one
small CBOR message on a short stream of its own (``/distspace/presence/1``); a peer's update
arrives the same way and is shown under the sender's authenticated peer id, never under a
name the message claims. Updates to one peer are coalesced: while one is being sent, only the
newest per (space, client) waits, so a fast cursor never builds a queue. A peer may send
``PRESENCE_PER_S`` updates a second on average; more, malformed ones, and ones for a space the
peer does not sync with us are dropped — presence is advisory, so a bad update costs nothing
but itself and is not worth scoring a peer over. The streams and the rate limit are
node/space_streams.py's, shared with peer records.

Client names are the sender's to choose, so what one peer can make us hold is bounded: at most
MAX_PRESENCE_PER_PEER live (space, client) entries per peer — a new one beyond them removes that
peer's least recently updated — and state for at most MAX_PRESENCE_PEERS peers, the least
recently heard one forgotten (its entries removed) to make room. A flood of names costs the
flooding peer its own cursors, never our memory.

A cursor and a selection's anchor and head are ``Anchor``s: an Automerge cursor (a string,
``Document.get_cursor``) naming a character of the file's text, which each peer resolves against
its own copy of the doc, so it stays on that character while others type; or, for a path that is
not a text file where it was set, a plain count of code points. A message holding only counts is
version 1, which older peers read; one with a cursor is version 2. A cursor is checked to have
Automerge's form (``"<counter>@<actor hex>"``, ``"e"``, a bounded length): one naming a
character a peer does not hold (yet) resolves to nothing there, never to an error.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from node.events import Anchor
from node.logs import event
from node.space_streams import SpaceStream, SyncingPeers, TokenBucket
from protocol import cbor
from protocol.errors import WireError
from protocol.space import SPACE_ID_BYTES

logger = logging.getLogger(__name__)

__all__ = ["PRESENCE_PROTOCOL", "PresenceRelay", "PresenceUpdate", "is_anchor"]

PRESENCE_PROTOCOL: Final = "/distspace/presence/1"
COUNTS_VERSION: Final = 1  # positions are code point counts only
CURSORS_VERSION: Final = 2  # positions may be Automerge cursors
# An Automerge cursor: "[-]<op counter>@<actor hex>", or "s"/"e" for the start and the end; our
# actor ids are 16 bytes, Automerge's may be longer, 64 bytes is plenty.
CURSOR_FORM: Final = re.compile(r"-?[0-9]{1,20}@(?:[0-9a-f]{2}){1,64}|[se]")
# A presence message is a few short strings and numbers; a path is the longest part.
MAX_PRESENCE_BYTES: Final = 8 * 1024
MAX_CLIENT_CHARS: Final = 64
MAX_NAME_CHARS: Final = 128
MAX_PATH_CHARS: Final = 4096
# A cursor moved by a person or an agent: a few updates a second each, a handful of clients.
PRESENCE_PER_S: Final = 20.0
PRESENCE_BURST: Final = 40.0
PRESENCE_TIMEOUT_S: Final = 5.0
# A person runs an editor or two, an agent a few workers, in each of a few spaces: 32 live
# entries per peer is more than any honest one shows at once.
MAX_PRESENCE_PER_PEER: Final = 32
# Peers whose presence and rate we track: as many as the sync driver keeps sessions with.
MAX_PRESENCE_PEERS: Final = 1024


@dataclass(slots=True)
class _PeerPresence:
    """What we hold for one peer: its rate tokens, and its live entries, oldest first."""

    rate: TokenBucket
    entries: OrderedDict[tuple[bytes, str], None] = field(default_factory=OrderedDict)




def is_anchor(value: object) -> bool:
    """A count of code points, or a string of an Automerge cursor's form."""
    return CURSOR_FORM.fullmatch(value) is not None if isinstance(value, str) else _count(value)


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """One client's presence in a space (``removed``: it went away); positions are ``Anchor``s."""

    space: bytes
    client: str
    path: str | None = None
    cursor: Anchor | None = None
    selection: tuple[Anchor, Anchor] | None = None
    name: str | None = None
    removed: bool = False

    def encode(self) -> bytes:
        """``[version, space, client, [path], [cursor], [[anchor, head]], [name], removed]``: our
        canonical CBOR has no null, so an absent value is an empty list."""
        selection = [list(self.selection)] if self.selection is not None else []
        positions = [self.cursor, *(self.selection or ())]
        version = CURSORS_VERSION if any(isinstance(p, str) for p in positions) else COUNTS_VERSION
        fields = [_maybe(self.path), _maybe(self.cursor), selection, _maybe(self.name)]
        return cbor.dumps([version, self.space, self.client, *fields, self.removed])

    @classmethod
    def decode(cls, data: bytes) -> PresenceUpdate:
        """An update from untrusted bytes.

        Raises:
            WireError: not a well-formed presence message of a version we speak.
        """
        match cbor.loads_canonical(data, "presence message"):
            case [int() as version, bytes() as space, str() as client, list() as path, list() as cursor, list() as selection, list() as name, bool() as removed] if (
                version in (COUNTS_VERSION, CURSORS_VERSION)
                and len(space) == SPACE_ID_BYTES
                and 0 < len(client) <= MAX_CLIENT_CHARS
                and _optional(path, lambda v: isinstance(v, str) and len(v) <= MAX_PATH_CHARS)
                and _optional(name, lambda v: isinstance(v, str) and len(v) <= MAX_NAME_CHARS)
                and _optional(cursor, _positions[version])
                and _optional(selection, lambda v: isinstance(v, list) and len(v) == 2 and all(map(_positions[version], v)))
            ):
                anchor_head = tuple(selection[0]) if selection else None
                return cls(space, client, _first(path), _first(cursor), anchor_head, _first(name), removed)
        raise WireError("malformed presence message")


def _maybe(value: object) -> list[object]:
    return [] if value is None else [value]


def _first(values: list[Any]) -> Any:
    return values[0] if values else None


def _optional(values: list[Any], valid: Callable[[Any], bool]) -> bool:
    return len(values) <= 1 and all(valid(value) for value in values)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_positions: dict[int, Callable[[object], bool]] = {COUNTS_VERSION: _count, CURSORS_VERSION: is_anchor}


class PresenceRelay(SpaceStream):
    """Carries presence updates between this node and the peers it syncs spaces with.

    ``publish(update)`` sends a local update; ``on_remote(peer_id, update)`` is called (on the
    trio thread) for each accepted update from a peer. Run with ``nursery.start(relay.run)``
    after the network has started.
    """

    def __init__(self, network: SyncingPeers, on_remote: Callable[[str, PresenceUpdate], None]) -> None:
        super().__init__(
            network, PRESENCE_PROTOCOL, max_message_bytes=MAX_PRESENCE_BYTES, timeout_s=PRESENCE_TIMEOUT_S,
            log=logger, event_prefix="presence",
        )  # fmt: skip
        self._on_remote = on_remote
        self._outbox: dict[str, dict[tuple[bytes, str], bytes]] = {}  # peer -> newest per (space, client)
        self._peers: OrderedDict[str, _PeerPresence] = OrderedDict()  # least recently heard first

    def publish(self, update: PresenceUpdate) -> None:
        """Queue a local update for every peer syncing its space (the newest replaces older)."""
        if not self._running:
            return
        message = update.encode()
        for peer_id in self._network.peers_syncing(update.space):
            self._outbox.setdefault(peer_id, {})[update.space, update.client] = message
            self._wake(peer_id)

    def _pending(self, peer_id: str) -> list[bytes] | None:
        outbox = self._outbox.pop(peer_id, None)
        return None if outbox is None else list(outbox.values())

    def _received(self, peer_id: str, data: bytes) -> None:
        if not self._peer(peer_id).rate.take(trio.current_time()):
            return
        try:
            update = PresenceUpdate.decode(data)
        except WireError as error:
            event(logger, "presence.malformed", logging.DEBUG, peer_id=peer_id, error=error)
            return
        if peer_id in self._network.peers_syncing(update.space):
            self._accept(peer_id, update)

    def _accept(self, peer_id: str, update: PresenceUpdate) -> None:
        """Pass an update on, first removing the peer's oldest entry if it would hold too many."""
        entries = self._peer(peer_id).entries
        key = (update.space, update.client)
        if update.removed:
            entries.pop(key, None)
        else:
            entries[key] = None
            entries.move_to_end(key)
            while len(entries) > MAX_PRESENCE_PER_PEER:
                (space, client), _ = entries.popitem(last=False)
                self._on_remote(peer_id, PresenceUpdate(space, client, removed=True))
        self._on_remote(peer_id, update)

    def _peer(self, peer_id: str) -> _PeerPresence:
        """The peer's state, now the most recently heard; forgets the least recent beyond the cap."""
        state = self._peers.get(peer_id)
        if state is None:
            state = self._peers[peer_id] = _PeerPresence(TokenBucket(PRESENCE_PER_S, PRESENCE_BURST, trio.current_time()))
            while len(self._peers) > MAX_PRESENCE_PEERS:
                forgotten, old = self._peers.popitem(last=False)
                for space, client in old.entries:
                    self._on_remote(forgotten, PresenceUpdate(space, client, removed=True))
        self._peers.move_to_end(peer_id)
        return state
