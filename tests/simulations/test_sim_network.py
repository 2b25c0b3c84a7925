"""The simulated links: streams stay in order, a Hello is never weather's victim, reordering
lets later frames overtake, a busy uplink queues, and partitions blackhole traffic.

Alice (peer 0) dials bob (peer 1) over a link with a fixed 10 ms latency unless a test says
otherwise; bob records what arrives and when.
"""

from __future__ import annotations

import random

from simulations.loop import US_PER_MS, EventLoop
from simulations.network import Link, Network
from simulations.scenario import LinkOptions

ALICE, BOB = 0, 1
FIXED_10_MS = LinkOptions(latency_distribution="constant", latency_ms_median=10, jitter_ms=0)


class Wire:
    def __init__(self, options: LinkOptions = FIXED_10_MS, seed: int = 0) -> None:
        self.loop = EventLoop()
        self.arrivals: list[tuple[int, bytes]] = []
        self.closed: list[int] = []
        self.network = Network(options, random.Random(seed), self.loop, set(), self._deliver, self._closed)
        self.link = self.network.open_link(ALICE, BOB)

    def _deliver(self, link: Link, side: int, frame: bytes) -> None:
        self.arrivals.append((self.loop.now_us, frame))

    def _closed(self, link: Link, side: int) -> None:
        self.closed.append(side)

    def alice_sends(self, *frames: bytes) -> None:
        for frame in frames:
            self.network.send(self.link, 0, frame)

    def frames(self) -> list[bytes]:
        self.loop.run()
        return [frame for _, frame in self.arrivals]


FRAMES = [b"hello"] + [b"frame %d" % i for i in range(200)]


def test_a_stream_arrives_in_order_however_the_frames_jitter():
    wire = Wire(LinkOptions(latency_ms_median=40, jitter_ms=30))
    wire.alice_sends(*FRAMES)
    assert wire.frames() == FRAMES


def test_loss_never_takes_the_hello():
    wire = Wire(LinkOptions(latency_distribution="constant", loss_rate=0.9))
    wire.alice_sends(*FRAMES)
    arrived = wire.frames()
    assert arrived[0] == b"hello" and len(arrived) < len(FRAMES) // 2


def test_reordering_lets_later_frames_overtake_but_not_the_hello():
    wire = Wire(LinkOptions(latency_distribution="constant", reorder_rate=0.3))
    wire.alice_sends(*FRAMES)
    arrived = wire.frames()
    assert arrived[0] == b"hello" and arrived != FRAMES and sorted(arrived) == sorted(FRAMES)


def test_duplication_delivers_some_frames_twice():
    wire = Wire(LinkOptions(latency_distribution="constant", duplication_rate=0.2))
    wire.alice_sends(*FRAMES)
    assert len(wire.frames()) > len(FRAMES) and set(wire.arrivals[0][1:]) == {b"hello"}


def test_a_busy_uplink_queues_frames_behind_each_other():
    wire = Wire(LinkOptions(latency_distribution="constant", latency_ms_median=10, jitter_ms=0, upload_bytes_per_s=1000))
    wire.alice_sends(b"x" * 100, b"y" * 100)  # 100 ms each on the wire
    wire.frames()
    assert [t // US_PER_MS for t, _ in wire.arrivals] == [110, 210]


def test_a_partition_blackholes_frames_and_a_lost_hello_breaks_the_stream():
    wire = Wire()
    wire.network.partitions.append(frozenset({ALICE}))
    wire.alice_sends(b"hello")
    wire.network.partitions.clear()
    wire.alice_sends(b"after the heal")
    assert wire.frames() == []
    assert wire.network.stats["frames_unreachable"] == 1


def test_an_established_stream_survives_a_short_partition_minus_what_was_sent_meanwhile():
    wire = Wire()
    wire.alice_sends(b"hello")
    wire.network.offline.add(BOB)
    wire.alice_sends(b"into the void")
    wire.network.offline.clear()
    wire.alice_sends(b"back")
    assert wire.frames() == [b"hello", b"back"]


def test_closing_one_end_tells_the_other_after_the_frames_before_it():
    wire = Wire()
    wire.alice_sends(b"hello", b"bye")
    wire.network.close(wire.link, 0)
    wire.loop.run()
    assert [frame for _, frame in wire.arrivals] == [b"hello", b"bye"] and wire.closed == [1]
