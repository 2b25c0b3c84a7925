"""Plumtree's eager push, one tree per origin: which peers we push a batch to, which we only
announce it to, and when a duplicate prunes a link.

Each signed batch a local author commits is pushed as-is to every peer we push to and
forwarded verbatim once by each receiver (the seen-set of batch ids below): Plumtree's eager
push, with one tree per origin (the batch's author), as in Plumtree's per-source trees. A peer
that gets an origin's batch twice tells the later sender ``Prune(origin)``; from then on that
sender announces the origin's batches with ``Heads`` instead. A reply to a want grafts the
origins whose changes it carries: the replier pushes them again.

One tree per origin is what keeps concurrent writers from flapping: with a single shared tree,
a duplicate of Alice's batch prunes the link that is the only eager path for Bob's, whose
batches then go the slow lazy way and graft the link back, over and over. A prune is also sent
only while the copy that came first took a path we still take eagerly, so two prunes racing
each other never leave an origin with no eager path to us.

This module only decides; the Replicator sends the Prunes, pushes and announcements. A link is
named by the connection id of its session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol.events import ConnId
from protocol.limits import MAX_LAZY_ORIGINS, MAX_SEEN_BATCHES
from protocol.recent import Recent


@dataclass(frozen=True, slots=True)
class FirstCopy:
    """How a pushed batch first reached us: by which connection (None: we made it), from whom."""

    conn: ConnId | None
    origin: bytes


@dataclass(slots=True)
class _Link:
    """Our push state towards one peer, per origin."""

    # Whose batches we announce rather than push to the peer (it pruned them).
    lazy: Recent[bytes, None] = field(default_factory=lambda: Recent(MAX_LAZY_ORIGINS))
    # Whose batches we asked the peer not to push to us -> when we may ask again.
    pruned: dict[bytes, int] = field(default_factory=dict)


class PushTree:
    """The push trees of one space: the batches seen, and every link's eager/lazy state."""

    def __init__(self, prune_retry_ms: int) -> None:
        self._prune_retry_ms = prune_retry_ms
        self._seen: Recent[bytes, FirstCopy] = Recent(MAX_SEEN_BATCHES)
        self._links: dict[ConnId, _Link] = {}

    def add_link(self, conn: ConnId) -> None:
        self._links.setdefault(conn, _Link())

    def drop_link(self, conn: ConnId) -> None:
        self._links.pop(conn, None)

    def first_copy(self, batch_id: bytes) -> FirstCopy | None:
        """How the batch first reached us, if it did."""
        return self._seen.get(batch_id)

    def took(self, batch_id: bytes, conn: ConnId | None, origin: bytes) -> None:
        """A pushed batch of ``origin`` reached us first by ``conn`` (None: we made it)."""
        self._seen.put(batch_id, FirstCopy(conn, origin))

    def pushes(self, conn: ConnId, origin: bytes) -> bool:
        """Whether we push ``origin``'s batches to the peer, rather than announce them."""
        link = self._links.get(conn)
        return link is None or origin not in link.lazy

    def peer_pruned(self, conn: ConnId, origin: bytes) -> None:
        """The peer hears ``origin`` by another path: announce its batches instead."""
        self._link(conn).lazy.put(origin, None)

    def reply_sent(self, conn: ConnId, origins: Iterable[bytes]) -> None:
        """A graft: the peer lacked these origins' batches, so push them again."""
        lazy = self._link(conn).lazy
        for origin in origins:
            lazy.discard(origin)

    def reply_received(self, conn: ConnId, origins: Iterable[bytes]) -> None:
        """The peer replied with these origins' changes, so it pushes them to us again."""
        pruned = self._link(conn).pruned
        for origin in origins:
            pruned.pop(origin, None)

    def prune_on_duplicate(self, conn: ConnId, first: FirstCopy, now_ms: int) -> bool:
        """A pushed batch came again by ``conn``: whether to ask that peer not to push us its
        origin's batches (Plumtree prune) — not if the first copy came by this same link (the
        network repeated a frame), or by a path we no longer take eagerly for this origin (two
        prunes racing would leave it no eager path to us), or if we asked it lately."""
        link = self._link(conn)
        if first.conn == conn or link.pruned.get(first.origin, now_ms) > now_ms:
            return False
        if first.conn is not None:
            came_by = self._links.get(first.conn)
            if came_by is None or first.origin in came_by.pruned:
                return False
        link.pruned[first.origin] = now_ms + self._prune_retry_ms  # then ask again: it may be lost
        return True

    def _link(self, conn: ConnId) -> _Link:
        return self._links.setdefault(conn, _Link())
