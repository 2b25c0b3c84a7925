"""Plumtree's eager push, one tree per origin: which peers we push a batch to, which we only
announce it to, when a duplicate prunes a link, and which pushes wait for their deps.

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

Jitter (a loaded CPU, a busy link) made the trees flap anyway, ten writers into one file
taking a graft or more a second; each graft costs its edit a graft delay and a round trip, and
re-adds a link whose next duplicate prunes one of two paths at random. Three rules stop that:

- A pushed batch that arrives before the changes it depends on (they travel another origin's
  tree, and jitter reorders the two) is held (``hold``) and forwarded by push once they are
  stored (``released``), not merely announced: an announcement cut every peer below us off
  that origin's tree for that batch, and each of them grafted. Bounded by MAX_HELD_PUSHES
  and HELD_PUSH_BYTES_MAX (protocol/limits.py); a batch beyond them is announced as before.
- A link is pruned for an origin only once it has brought that origin's batches as
  duplicates ``prune_duplicates`` (3) times in a row; a first copy by it starts the count
  again. Under jitter two paths of about the same length win in turn, and pruning whichever
  lost once cut each peer's tree at a random place per batch: two peers pruning their links
  out of a pair in the same few milliseconds can leave the pair feeding only each other, a hole
  only a graft (graft delay, round trip) mends. Now such paths both stay eager, and a link
  that always loses (a calm mesh's second paths) is pruned after three batches. The
  simulator's cpu-saturation scenario (per-node queueing and stalls, per-frame jitter):
  14-20 wants a run -> 2-6, p99 to all 246-358 -> 144-171 ms, for 7-9% more frames; a calm
  mesh pays its two extra duplicates per link and origin once, at the start. Ten real daemons
  (benchmarks/node.py's mesh) on a machine with cores to spare kept p99 at 31-44 ms with
  either rule, this one for ~10% more frames (~600 duplicates a run, not ~110: loopback
  paths compete); with the daemons short of CPU (other work on the machine) both took wants
  and tails of 200-750 ms, this one fewer of both (53 wants in six runs, the old 79).
- A link grafted for an origin is not pruned for it for ``graft_hold_ms`` unless it brings
  ``graft_hold_duplicates`` (8) duplicates in a row: the graft means the tree had a hole
  there, and the duplicates that follow it (the stalled path's backlog) must not reopen it;
  but a graft in a passing stall kept a second eager link for the whole hold, a frame per
  batch that a saturated CPU pays for (the simulator counted 1,200-1,500 such duplicates a
  run under heavy stalls).

Not a rule: pruning only a duplicate that comes well after its first copy. Any lag threshold
floods a calm fast mesh (every path is within it: 2.7 times the frames at 20 ms, ten writers on
ten peers), and a frame costs a daemon CPU. Counted in tests/protocol/test_push_churn.py. Nor
two eager parents per origin (the third copy prunes): on the simulator a peer's own stall, not
its parents', makes the tail, and the extra copies cost the CPU the stalls come from.

This module only decides; the Replicator sends the Prunes, pushes and announcements. A link is
named by the connection id of its session, and time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol.events import ConnId
from protocol.limits import (
    HELD_PUSH_BYTES_MAX,
    MAX_HELD_PUSHES,
    MAX_LAZY_ORIGINS,
    MAX_SEEN_BATCHES,
    SyncConfig,
)
from protocol.recent import Recent


@dataclass(frozen=True, slots=True)
class FirstCopy:
    """How a pushed batch first reached us: by which connection (None: we made it), from whom."""

    conn: ConnId | None
    origin: bytes


@dataclass(frozen=True, slots=True)
class Push:
    """A pushed batch to forward: its frame as it came, its origin, and the link it came by
    (None: we made it), which never gets it back."""

    frame: bytes
    origin: bytes
    came_by: ConnId | None


@dataclass(slots=True)
class _Held:
    """A pushed batch held back until the changes it waits for are stored."""

    push: Push
    doc: bytes
    missing: set[bytes]  # its changes not yet stored


@dataclass(slots=True)
class _Link:
    """Our push state towards one peer, per origin."""

    # Whose batches we announce rather than push to the peer (it pruned them).
    lazy: Recent[bytes, None] = field(default_factory=lambda: Recent(MAX_LAZY_ORIGINS))
    # Whose batches we asked the peer not to push to us -> when we may ask again.
    pruned: dict[bytes, int] = field(default_factory=dict)
    # Whose batches the peer pushes us again since it answered a want of ours (a graft) ->
    # until when it takes graft_hold_duplicates duplicates, not prune_duplicates, to prune it.
    grafted: dict[bytes, int] = field(default_factory=dict)
    # Whose batches the peer brought only as duplicates lately -> how many in a row.
    late: Recent[bytes, int] = field(default_factory=lambda: Recent(MAX_LAZY_ORIGINS))


class PushTree:
    """The push trees of one space: the batches seen, and every link's eager/lazy state."""

    def __init__(self, config: SyncConfig) -> None:
        self._config = config
        self._seen: Recent[bytes, FirstCopy] = Recent(MAX_SEEN_BATCHES)
        self._links: dict[ConnId, _Link] = {}
        self._held: Recent[bytes, _Held] = Recent(MAX_HELD_PUSHES)

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
        link = self._links.get(conn) if conn is not None else None
        if link is not None:
            link.late.discard(origin)  # it is the fast path (again): its count starts over

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

    def reply_received(self, conn: ConnId, origins: Iterable[bytes], now_ms: int) -> None:
        """The peer replied with these origins' changes, so it pushes them to us again: a graft,
        which duplicates undo only after ``graft_hold_ms`` or ``graft_hold_duplicates``."""
        link = self._link(conn)
        for origin in origins:
            if link.pruned.pop(origin, None) is not None:
                link.grafted[origin] = now_ms + self._config.graft_hold_ms

    def hold(self, batch_id: bytes, doc: bytes, push: Push, missing: Iterable[bytes]) -> None:
        """A pushed batch came before what it depends on: forward it once that is stored
        (``released``), rather than only announce it (see the module docstring)."""
        if len(push.frame) <= HELD_PUSH_BYTES_MAX:
            self._held.put(batch_id, _Held(push, doc, set(missing)))

    def released(self, doc: bytes, stored: Iterable[bytes]) -> list[Push]:
        """The held batches of ``doc`` whose changes are all stored now that ``stored`` are."""
        stored = set(stored)
        out = []
        for batch_id, held in self._held.items():
            if held.doc == doc:
                held.missing -= stored
                if not held.missing:
                    out.append((batch_id, held.push))
        for batch_id, _ in out:
            self._held.discard(batch_id)
        return [push for _, push in out]

    def prune_on_duplicate(self, conn: ConnId, first: FirstCopy, now_ms: int) -> bool:
        """A pushed batch came again by ``conn``: whether to ask that peer not to push us its
        origin's batches (Plumtree prune). Only once the link has brought that origin's batches
        as duplicates ``prune_duplicates`` times in a row (``graft_hold_duplicates`` while a
        graft holds it), so a path that wins as often as it loses under jitter stays; never if
        the first copy came by this same link (the network repeated a frame) or by a path we no
        longer take eagerly for this origin (two prunes racing would leave it no eager path to
        us), nor again while a prune of ours may still be on its way."""
        link = self._link(conn)
        if first.conn == conn:
            return False
        late = (link.late.get(first.origin) or 0) + 1
        link.late.put(first.origin, late)
        if link.pruned.get(first.origin, now_ms) > now_ms:
            return False
        if first.conn is not None:
            came_by = self._links.get(first.conn)
            if came_by is None or first.origin in came_by.pruned:
                return False
            config = self._config
            held = link.grafted.get(first.origin, now_ms) > now_ms
            if late < (config.graft_hold_duplicates if held else config.prune_duplicates):
                return False
        link.grafted.pop(first.origin, None)
        link.late.discard(first.origin)
        link.pruned[first.origin] = now_ms + self._config.want_timeout_ms  # then ask again: it may be lost
        return True

    def _link(self, conn: ConnId) -> _Link:
        return self._links.setdefault(conn, _Link())
