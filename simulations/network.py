"""Links between simulated peers: latency, jitter, loss, duplication, reordering, bandwidth,
partitions and offline peers.

A ``Link`` is one connection; side 0 dialed it, side 1 accepted it. Each direction is a stream:
frames arrive in the order they were sent (later frames wait for earlier ones) unless one is
picked for reordering, which delays it so that later frames overtake it. A connection's first
frame each way (its Hello) is never lost, duplicated or overtaken — the protocol treats a
missing Hello as a broken stream, not as weather. Frames leave a peer through its uplink one
after another, ``size / upload_bytes_per_s`` each, so a busy relay queues.

Reachability is separate from weather. A partition splits the peers into two sides and an
offline peer reaches nobody: frames that would cross are dropped (on sending and again on
arrival), dials fail, and connections die only when the Replicators' own timeouts notice the
silence. If a stream's first frame is dropped so, the stream is broken and drops the rest too,
as a connection that never completed its handshake would.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from simulations.loop import US_PER_MS, EventLoop
from simulations.scenario import LinkOptions

US_PER_S = 1_000_000


@dataclass(eq=False, slots=True)
class Link:
    id: int
    peers: tuple[int, int]  # (dialer, listener)
    open: list[bool] = field(default_factory=lambda: [True, True])  # each end, until it closes
    sent: list[int] = field(default_factory=lambda: [0, 0])  # frames sent from each side
    fifo_us: list[int] = field(default_factory=lambda: [0, 0])  # latest in-order arrival at each side
    broken: list[bool] = field(default_factory=lambda: [False, False])  # stream to that side lost its first frame

    def side_of(self, peer: int) -> int:
        return 0 if self.peers[0] == peer else 1


class Network:
    """Carries frames between peers as the link options and reachability say.

    ``deliver(link, side, frame)`` and ``closed(link, side)`` are called when a frame or the
    news that the other end closed reaches ``side`` of ``link``.
    """

    def __init__(
        self,
        options: LinkOptions,
        rng: random.Random,
        loop: EventLoop,
        relays: Container[int],
        deliver: Callable[[Link, int, bytes], None],
        closed: Callable[[Link, int], None],
    ) -> None:
        self.options = options
        self.partitions: list[frozenset[int]] = []  # one side of each active partition
        self.offline: set[int] = set()
        self.stats: Counter[str] = Counter()
        self.bytes_sent: Counter[int] = Counter()  # by peer
        self.bytes_received: Counter[int] = Counter()
        self._rng = rng
        self._loop = loop
        self._relays = relays
        self._deliver = deliver
        self._closed = closed
        self._next_link = 0
        self._latency_us: dict[tuple[int, int], int] = {}
        self._uplink_free_us: dict[int, int] = {}

    # ----- reachability -----

    def reachable(self, a: int, b: int) -> bool:
        if a in self.offline or b in self.offline:
            return False
        return all((a in side) == (b in side) for side in self.partitions)

    def one_way_us(self, a: int, b: int) -> int:
        """The pair's base latency plus this frame's jitter."""
        key = (a, b) if a < b else (b, a)
        base = self._latency_us.get(key)
        if base is None:
            base = self._latency_us[key] = self._draw_latency_us()
        jitter = self.options.jitter_ms * US_PER_MS
        return max(0, base + round(self._rng.uniform(-jitter, jitter)))

    def _draw_latency_us(self) -> int:
        o = self.options
        match o.latency_distribution:
            case "constant":
                ms = o.latency_ms_median
            case "uniform":
                ms = self._rng.uniform(o.latency_ms_min, o.latency_ms_max)
            case _:
                ms = o.latency_ms_median * math.exp(self._rng.gauss(0.0, o.latency_log_sigma))
        return round(min(max(ms, o.latency_ms_min), o.latency_ms_max) * US_PER_MS)

    # ----- connections -----

    def open_link(self, dialer: int, listener: int) -> Link:
        link = Link(self._next_link, (dialer, listener))
        self._next_link += 1
        return link

    def close(self, link: Link, side: int, *, tell_other: bool = True) -> None:
        """Close ``side``'s end; the other end hears of it after the latency, if reachable."""
        if not link.open[side]:
            return
        link.open[side] = False
        to = 1 - side
        if link.open[to] and tell_other:
            sender, receiver = link.peers[side], link.peers[to]
            arrival = max(self._loop.now_us + self.one_way_us(sender, receiver), link.fifo_us[to])
            self._loop.at(arrival, self._arrive_close, link, to)

    def _arrive_close(self, link: Link, side: int) -> None:
        if link.open[side] and self.reachable(*link.peers):
            self._closed(link, side)

    # ----- frames -----

    def send(self, link: Link, side: int, frame: bytes) -> None:
        o, rng, now = self.options, self._rng, self._loop.now_us
        sender, receiver = link.peers[side], link.peers[1 - side]
        to, size = 1 - side, len(frame)
        self.stats["frames_sent"] += 1
        self.bytes_sent[sender] += size
        departure = now
        bandwidth = o.relay_upload_bytes_per_s if sender in self._relays and o.relay_upload_bytes_per_s else o.upload_bytes_per_s
        if bandwidth:
            departure = max(now, self._uplink_free_us.get(sender, 0)) + size * US_PER_S // bandwidth
            self._uplink_free_us[sender] = departure
        number = link.sent[side]
        link.sent[side] += 1
        if not self.reachable(sender, receiver):
            self._blackhole(link, to, number)
            return
        weather = number > 0
        if weather and o.loss_rate and rng.random() < o.loss_rate:
            self.stats["frames_lost"] += 1
            return
        arrival = max(departure + self.one_way_us(sender, receiver), link.fifo_us[to])
        if weather and o.reorder_rate and rng.random() < o.reorder_rate:
            self.stats["frames_reordered"] += 1
            arrival += round(rng.uniform(0, o.reorder_delay_ms * US_PER_MS))
        else:
            link.fifo_us[to] = arrival
        self._loop.at(arrival, self._arrive, link, to, number, frame)
        if weather and o.duplication_rate and rng.random() < o.duplication_rate:
            self.stats["frames_duplicated"] += 1
            self._loop.at(arrival + self.one_way_us(sender, receiver) // 2, self._arrive, link, to, number, frame)

    def _arrive(self, link: Link, side: int, number: int, frame: bytes) -> None:
        if not link.open[side] or link.broken[side]:
            self.stats["frames_after_close"] += 1
            return
        if not self.reachable(*link.peers):
            self._blackhole(link, side, number)
            return
        self.bytes_received[link.peers[side]] += len(frame)
        self._deliver(link, side, frame)

    def _blackhole(self, link: Link, side: int, number: int) -> None:
        self.stats["frames_unreachable"] += 1
        if number == 0:
            link.broken[side] = True
