"""Alice and Bob can each reach only the relay; Bob reserves a slot and Alice dials him through it.

All three are real libp2p hosts on 127.0.0.1 over TCP. Alice and Bob never learn each other's
direct addresses, so their connection is provably the relayed one (its address says
``/p2p-circuit``).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import trio

from node.errors import RelayError
from node.framing import FrameStream
from node.host import SYNC_PROTOCOL, Host, hold_reservation, open_host
from node.relay import circuit_addr, relay_limits
from node_helpers import ALICE, BOB, CAROL, LISTEN_ADDR, RELAY, STEP_TIMEOUT_S, echo, percentiles, round_trip_ms

Figures = Callable[[str, str], None]


@dataclass
class Triangle:
    relay: Host
    alice: Host
    bob: Host
    bob_circuit: object  # the multiaddr Bob is dialable at, through the relay


def is_relayed(host: Host, peer_id: str) -> bool:
    addrs = host.connection_addrs(peer_id)
    return bool(addrs) and all("p2p-circuit" in {p.name for p in addr.protocols()} for addr in addrs)


@pytest.fixture
async def triangle() -> AsyncIterator[Triangle]:
    """The relay serving; Bob holding a reservation on it; Alice connected to the relay only."""
    tcp = [LISTEN_ADDR["tcp"]]
    with trio.fail_after(STEP_TIMEOUT_S):
        async with (
            open_host(RELAY, tcp, serve_relay=True) as relay,
            open_host(ALICE, tcp) as alice,
            open_host(BOB, tcp) as bob,
            trio.open_nursery() as nursery,
        ):
            bob_circuit = await nursery.start(hold_reservation, bob, relay.addrs()[0])
            await alice.connect(relay.addrs()[0])
            yield Triangle(relay, alice, bob, bob_circuit)
            nursery.cancel_scope.cancel()


async def test_alice_and_bob_exchange_frames_through_the_relay(triangle: Triangle, figures: Figures) -> None:
    alice, bob, relay = triangle.alice, triangle.bob, triangle.relay
    assert str(triangle.bob_circuit) == f"{relay.addrs()[0]}/p2p-circuit/p2p/{BOB.peer_id}"
    bob.set_stream_handler(SYNC_PROTOCOL, echo)
    rng = random.Random(7)
    with trio.fail_after(STEP_TIMEOUT_S * 2):
        start = time.perf_counter()
        assert await alice.connect(triangle.bob_circuit) == BOB.peer_id
        figures("connect relay circuit", f"{(time.perf_counter() - start) * 1000:.1f} ms (A already connected to R)")
        assert is_relayed(alice, BOB.peer_id) and is_relayed(bob, ALICE.peer_id)
        async with await alice.open_stream(BOB.peer_id) as frames:
            for size in (1, 1000, 65_537, 1024 * 1024):
                payload = rng.randbytes(size)
                await frames.send_frame(payload)
                assert await frames.receive_frame() == payload
            figures("stream round trip relay/tcp (64 B frames)", percentiles(await round_trip_ms(frames)))


async def test_bob_opens_streams_back_to_alice_over_the_same_circuit(triangle: Triangle) -> None:
    alice, bob = triangle.alice, triangle.bob
    received: list[bytes] = []
    got_frame = trio.Event()

    async def collect(frames: FrameStream) -> None:
        received.append(await frames.receive_frame())
        got_frame.set()

    alice.set_stream_handler(SYNC_PROTOCOL, collect)
    with trio.fail_after(STEP_TIMEOUT_S):
        await alice.connect(triangle.bob_circuit)
        async with await bob.open_stream(ALICE.peer_id) as frames:
            await frames.send_frame(b"hello from bob")
            await got_frame.wait()
    assert received == [b"hello from bob"]
    assert is_relayed(bob, ALICE.peer_id)


async def test_a_peer_without_a_reservation_cannot_be_dialled_through_the_relay(triangle: Triangle) -> None:
    async with open_host(CAROL, [LISTEN_ADDR["tcp"]]) as carol:
        with trio.fail_after(STEP_TIMEOUT_S):
            await carol.connect(triangle.relay.addrs()[0])
            with pytest.raises(RelayError) as raised:
                await triangle.alice.connect(circuit_addr(triangle.relay.addrs()[0], CAROL.peer_id))
    assert raised.value.peer_id == CAROL.peer_id


async def test_a_host_that_does_not_serve_relays_refuses_reservations() -> None:
    tcp = [LISTEN_ADDR["tcp"]]
    with trio.fail_after(STEP_TIMEOUT_S):
        async with open_host(ALICE, tcp) as alice, open_host(BOB, tcp) as bob, trio.open_nursery() as nursery:
            with pytest.raises(RelayError):
                await nursery.start(hold_reservation, bob, alice.addrs()[0])


async def test_the_relay_refuses_reservations_beyond_its_limit() -> None:
    tcp = [LISTEN_ADDR["tcp"]]
    limits = relay_limits(max_reservations=1)
    with trio.fail_after(STEP_TIMEOUT_S):
        async with (
            open_host(RELAY, tcp, serve_relay=True, relay_limits=limits) as relay,
            open_host(ALICE, tcp) as alice,
            open_host(BOB, tcp) as bob,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(hold_reservation, alice, relay.addrs()[0])
            with pytest.raises(RelayError, match="RESOURCE_LIMIT_EXCEEDED"):
                await nursery.start(hold_reservation, bob, relay.addrs()[0])
            nursery.cancel_scope.cancel()
