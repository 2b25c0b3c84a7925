"""Scenario helpers shared by the node tests: named peers, transports, an echo peer, timing.

(A module of its own rather than conftest.py, so test files can import it by a unique name.)
"""

from __future__ import annotations

import statistics
import time

import trio

from node.framing import FrameStream
from protocol.identity import Identity

ALICE = Identity(b"\x01" * 32)
BOB = Identity(b"\x02" * 32)
CAROL = Identity(b"\x03" * 32)
RELAY = Identity(b"\x04" * 32)

TRANSPORTS = ("tcp", "quic-v1", "webrtc-direct")
LISTEN_ADDR = {
    "tcp": "/ip4/127.0.0.1/tcp/0",
    "quic-v1": "/ip4/127.0.0.1/udp/0/quic-v1",
    "webrtc-direct": "/ip4/127.0.0.1/udp/0/webrtc-direct",
}
# Anything on loopback finishes far inside this; a hang fails fast instead of eating the suite.
STEP_TIMEOUT_S = 20
LATENCY_SAMPLES = 200
LATENCY_WARMUP = 20

async def echo(frames: FrameStream) -> None:
    """Send every frame back: the peer under test for round trips."""
    async for frame in frames.receive_frames():
        await frames.send_frame(frame)


async def round_trip_ms(frames: FrameStream, *, samples: int = LATENCY_SAMPLES, size: int = 64) -> list[float]:
    """Round-trip times of ``size``-byte frames against an echoing peer, after a warm-up."""
    payload = bytes(size)
    times: list[float] = []
    for index in range(LATENCY_WARMUP + samples):
        start = time.perf_counter()
        await frames.send_frame(payload)
        assert await frames.receive_frame() == payload
        if index >= LATENCY_WARMUP:
            times.append((time.perf_counter() - start) * 1000)
    return times


def percentiles(times_ms: list[float]) -> str:
    ordered = sorted(times_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms (n={len(ordered)})"


def living_tasks() -> list[str]:
    """Names of every task in this trio run, for a before/after comparison."""
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        names.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return sorted(names)
