"""A tiny deterministic driver for Replicators: peers, in-memory links, a clock, faults.

No sockets, no sleeps, no threads. Frames a peer sends wait on their link until the test calls
``flight()``, which delivers everything in flight at once (one one-way trip: two flights are a
round trip) and queues the replies for the next flight. Time moves only in ``advance``, which
fires due timers in order. Faults are injected per frame after a connection's Hellos, with the
network's seeded rng; a partition is a set of links that are cut (both ends see the connection
lost) until ``heal``.

It interprets the Replicator's actions exactly as a node or simulator must: Send queues bytes,
Disconnect closes both ends, SetTimer replaces the connection's timer, Applied and
PeerPenalized are recorded.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import native
from protocol.events import (
    Action,
    Applied,
    Connected,
    ConnectionLost,
    DataReceived,
    Disconnect,
    Event,
    LocalCommit,
    PeerPenalized,
    Send,
    SetTimer,
    TimerFired,
)
from protocol.identity import Identity
from protocol.limits import SyncConfig
from protocol.memory import Edit, MemoryChangeStore
from protocol.replicator import Replicator
from protocol.space import Genesis
from protocol.tips import coverage

START_MS = 1_700_000_000_000
# A run that has not gone quiet after this many flights is livelocked: fail loudly.
MAX_FLIGHTS = 200


def identity_of(name: str) -> Identity:
    """A stable key per name, so runs are reproducible."""
    return Identity(hashlib.sha256(b"harness identity " + name.encode()).digest())


def make_space(creator: str = "alice") -> bytes:
    genesis = Genesis.create(identity_of(creator), "harness space", START_MS, nonce=bytes(16))
    return genesis.space_id


def text_doc_id(name: str) -> bytes:
    return hashlib.sha256(b"harness doc " + name.encode()).digest()[:16]


def splice(text: str) -> Edit:
    """An edit that inserts ``text`` at the start of the doc's "text" object (made if absent)."""

    def edit(document: native.Document) -> None:
        found = document.get(native.ROOT, "text")
        obj = found.id if isinstance(found, native.ObjectRef) else document.put_object(native.ROOT, "text", "text")
        document.splice_text(obj, 0, 0, text)

    return edit


@dataclass
class Peer:
    name: str
    identity: Identity
    store: MemoryChangeStore
    replicator: Replicator
    timers: dict[tuple[str, str, int], int] = field(default_factory=dict)
    applied: list[Applied] = field(default_factory=list)
    penalties: list[PeerPenalized] = field(default_factory=list)
    disconnects: list[Disconnect] = field(default_factory=list)

    @property
    def key(self) -> bytes:
        return self.identity.public_key


@dataclass
class Link:
    """One connection: ``dialer`` opened it; frames queue per direction."""

    number: int
    dialer: str
    listener: str
    queues: dict[str, list[bytes]]  # receiver name -> frames in flight to it
    hellos_seen: dict[str, bool]  # receiver name -> its first frame (the Hello) has arrived
    bytes_to: dict[str, int]  # receiver name -> bytes delivered to it

    def conn(self, owner: str) -> tuple[str, str, int]:
        """The id the ``owner`` end uses for this connection."""
        other = self.listener if owner == self.dialer else self.dialer
        return (owner, other, self.number)


@dataclass
class Faults:
    loss: float = 0.0
    duplication: float = 0.0
    reordering: bool = False

    @property
    def any(self) -> bool:
        return bool(self.loss or self.duplication or self.reordering)


class Network:
    """Peers of one space wired by in-memory links."""

    def __init__(self, seed: int = 0, config: SyncConfig = SyncConfig(), space: bytes | None = None) -> None:
        self.rng = random.Random(seed)
        self.config = config
        self.space = space if space is not None else make_space()
        self.now_ms = START_MS
        self.peers: dict[str, Peer] = {}
        self.links: dict[int, Link] = {}
        self.faults = Faults()
        self.flights = 0
        self._next_link = 0

    # ----- building -----

    def add_peer(self, name: str, *, spaces: Sequence[bytes] | None = None, store: MemoryChangeStore | None = None) -> Peer:
        identity = identity_of(name)
        store = store if store is not None else MemoryChangeStore()
        replicator = Replicator(identity, store, random.Random(self.rng.random()), spaces or [self.space], self.config)
        peer = Peer(name, identity, store, replicator)
        self.peers[name] = peer
        return peer

    def connect(self, dialer: str, listener: str, space: bytes | None = None) -> Link:
        link = Link(self._next_link, dialer, listener, {dialer: [], listener: []}, {dialer: False, listener: False}, {dialer: 0, listener: 0})
        self._next_link += 1
        self.links[link.number] = link
        self._feed(listener, Connected(link.conn(listener), self.peers[dialer].key, None))
        self._feed(dialer, Connected(link.conn(dialer), self.peers[listener].key, space or self.space))
        return link

    def connect_all(self) -> None:
        names = sorted(self.peers)
        for i, dialer in enumerate(names):
            for listener in names[i + 1 :]:
                self.connect(dialer, listener)

    def cut(self, link: Link) -> None:
        """The connection breaks: frames in flight are lost, both ends are told."""
        if self.links.pop(link.number, None) is None:
            return
        for end in (link.dialer, link.listener):
            self.peers[end].timers.pop(link.conn(end), None)
            self._feed(end, ConnectionLost(link.conn(end)))

    def restart(self, name: str) -> Peer:
        """The peer crashes and comes back: its links break, its store survives, its
        Replicator starts from nothing but what the store persisted."""
        self.partition({name})
        return self.add_peer(name, store=self.peers[name].store)

    def partition(self, group: set[str]) -> None:
        """Cut every link between ``group`` and the other peers."""
        for link in list(self.links.values()):
            if (link.dialer in group) != (link.listener in group):
                self.cut(link)

    def heal(self) -> None:
        """Stop faults and make sure every pair of peers has a working link."""
        self.faults = Faults()
        linked = {frozenset((link.dialer, link.listener)) for link in self.links.values()}
        names = sorted(self.peers)
        for i, dialer in enumerate(names):
            for listener in names[i + 1 :]:
                if frozenset((dialer, listener)) not in linked:
                    self.connect(dialer, listener)

    # ----- driving -----

    def commit(self, name: str, doc: bytes, edits: Sequence[Edit]) -> LocalCommit:
        peer = self.peers[name]
        event = peer.store.commit(peer.identity, self.space, doc, edits, now_ms=self.now_ms)
        self._feed(name, event)
        return event

    def feed(self, name: str, event: Event) -> list[Action]:
        return self._feed(name, event)

    def flight(self) -> bool:
        """Deliver every frame in flight (one one-way trip). Returns whether any was delivered."""
        deliveries = []
        for link in list(self.links.values()):
            for receiver, queue in link.queues.items():
                frames = self._with_faults(link, receiver, queue)
                queue.clear()
                if frames:
                    deliveries.append((link, receiver, frames))
        for link, receiver, frames in deliveries:
            for frame in frames:
                if link.number not in self.links:
                    break  # closed by an earlier delivery of this flight
                link.hellos_seen[receiver] = True
                link.bytes_to[receiver] += len(frame)
                self._feed(receiver, DataReceived(link.conn(receiver), frame))
        if deliveries:
            self.flights += 1
        return bool(deliveries)

    def run(self, max_flights: int = MAX_FLIGHTS) -> int:
        """Deliver flights until nothing is in flight; return how many it took."""
        for flights in range(max_flights):
            if not self.flight():
                return flights
        raise AssertionError(f"still sending after {max_flights} flights")

    def advance(self, ms: int) -> None:
        """Move the clock ``ms`` forward, firing due timers in time order and running flights."""
        until = self.now_ms + ms
        while True:
            due = [(at, name, conn) for name, peer in self.peers.items() for conn, at in peer.timers.items() if at <= until]
            if not due:
                break
            at, name, conn = min(due)
            self.now_ms = max(self.now_ms, at)
            del self.peers[name].timers[conn]
            self._feed(name, TimerFired(conn))
            self.run()
        self.now_ms = until

    def settle(self, rounds: int = 6, step_ms: int | None = None) -> None:
        """Run, then let anti-entropy repair whatever is left, until every doc converged."""
        step_ms = step_ms or self.config.anti_entropy_interval_ms
        self.run()
        for _ in range(rounds):
            if self.converged():
                return
            self.advance(step_ms)

    # ----- checking -----

    def heads(self, name: str) -> dict[bytes, list[bytes]]:
        store = self.peers[name].store
        return {doc: store.heads(self.space, doc) for doc in store.doc_ids(self.space)}

    def converged(self) -> bool:
        all_heads = [self.heads(name) for name in self.peers]
        return all(heads == all_heads[0] for heads in all_heads)

    def assert_all_covered(self) -> None:
        """Every stored change is covered by a valid tip from its own author."""
        for name, peer in self.peers.items():
            for doc in peer.store.doc_ids(self.space):
                changes = [native.decode_change(raw) for raw in peer.store.changes_since(self.space, doc, [])]
                result = coverage(self.space, doc, changes, peer.store.tips(self.space, doc), is_stored=lambda h: False)
                assert not result.uncovered, f"{name} holds {len(result.uncovered)} uncovered changes of {doc.hex()}"

    def bytes_between(self, sender: str, receiver: str) -> int:
        return sum(
            link.bytes_to[receiver] for link in self.links.values() if {link.dialer, link.listener} == {sender, receiver}
        )

    # ----- interpreting actions -----

    def _feed(self, name: str, event: Event) -> list[Action]:
        peer = self.peers[name]
        actions = peer.replicator.handle(event, self.now_ms)
        for action in actions:
            self._perform(peer, action)
        return actions

    def _perform(self, peer: Peer, action: Action) -> None:
        match action:
            case Send():
                link = self._link_of(action.conn)
                if link is not None:
                    receiver = link.listener if peer.name == link.dialer else link.dialer
                    link.queues[receiver].append(action.data)
            case Disconnect():
                peer.disconnects.append(action)
                link = self._link_of(action.conn)
                if link is not None:
                    self.links.pop(link.number)
                    for end in (link.dialer, link.listener):
                        self.peers[end].timers.pop(link.conn(end), None)
                    other = link.listener if peer.name == link.dialer else link.dialer
                    self._feed(other, ConnectionLost(link.conn(other)))
            case SetTimer():
                link = self._link_of(action.conn)
                if link is not None:
                    peer.timers[link.conn(peer.name)] = action.at_ms
            case Applied():
                peer.applied.append(action)
            case PeerPenalized():
                peer.penalties.append(action)

    def _link_of(self, conn: object) -> Link | None:
        """The open link a connection id of ours names (ids are (owner, other, link number))."""
        match conn:
            case (str(), str(), int() as number):
                return self.links.get(number)
            case _:
                return None

    def _with_faults(self, link: Link, receiver: str, frames: list[bytes]) -> list[bytes]:
        """The frames as the faults let them through; a connection's Hello is never touched."""
        if not self.faults.any or not frames:
            return list(frames)
        first = [] if link.hellos_seen[receiver] else frames[:1]
        rest = frames[len(first) :]
        out = []
        for frame in rest:
            if self.rng.random() < self.faults.loss:
                continue
            out.append(frame)
            if self.rng.random() < self.faults.duplication:
                out.append(frame)
        if self.faults.reordering:
            self.rng.shuffle(out)
        return first + out


def edits(texts: Sequence[str]) -> list[Callable[[native.Document], None]]:
    return [splice(text) for text in texts]
