"""Alice and Bob on real libp2p hosts over TCP, QUIC and webrtc-direct on 127.0.0.1.

Each scenario runs once per transport: both hosts listen only on that transport, so identify
cannot hand Bob another of Alice's addresses and the connection provably uses the one named.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
import trio

from node.errors import (
    AddressError,
    DialError,
    FrameLimitExceeded,
    FrameTooLarge,
    HostStartError,
    MalformedFrame,
    NodeError,
    ProtocolRefused,
    StreamClosedError,
    StreamResetError,
    TruncatedFrame,
)
from node.framing import MAX_FRAME_BYTES, FrameStream, decode_header, encode_header
from node.host import SYNC_PROTOCOL, Host, open_host
from node_helpers import (
    ALICE,
    BOB,
    LISTEN_ADDR,
    STEP_TIMEOUT_S,
    TRANSPORTS,
    echo,
    living_tasks,
    percentiles,
    round_trip_ms,
)
from protocol.identity import Identity

Figures = Callable[[str, str], None]
FRAME_SIZES = (0, 1, 127, 128, 16_383, 16_384, 65_535, 65_536, 65_537, 262_145, 1024 * 1024)
SMALL_LIMIT = 64 * 1024


class Outcome:
    """What a handler on Alice's side ended with: the frames it saw and how the stream ended."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.error: NodeError | None = None
        self.done = trio.Event()


def record_streams(alice: Host, *, reply: bool = True, max_frame_bytes: int = MAX_FRAME_BYTES) -> Outcome:
    """Make Alice's sync handler record every frame (echoing it if ``reply``) and the error
    that ended the stream, if any; returns where it records."""
    outcome = Outcome()

    async def handler(frames: FrameStream) -> None:
        try:
            async for frame in frames.receive_frames():
                outcome.frames.append(frame)
                if reply:
                    await frames.send_frame(frame)
        except NodeError as error:
            outcome.error = error
            raise
        finally:
            outcome.done.set()

    alice.set_stream_handler(SYNC_PROTOCOL, handler, max_frame_bytes=max_frame_bytes)
    return outcome


@pytest.fixture(params=TRANSPORTS)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Host, Host]]:
    """Alice and Bob listening on one transport, Bob connected to Alice over it."""
    transport = request.param
    with trio.fail_after(STEP_TIMEOUT_S):
        async with open_host(ALICE, [LISTEN_ADDR[transport]]) as alice, open_host(BOB, [LISTEN_ADDR[transport]]) as bob:
            await bob.connect(alice.addrs(transport)[0])
            yield transport, alice, bob


def test_varint_header_round_trips() -> None:
    for length in (0, 1, 127, 128, 300, 16_384, 2**21, 2**28, 2**35 - 1):
        header = encode_header(length)
        assert decode_header(header + b"rest") == (length, len(header))
        assert decode_header(header[:-1]) is None
    for garbage in (b"\x80" * 5, b"\x81\x00"):
        with pytest.raises(MalformedFrame):
            decode_header(garbage)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bob_connects_to_alice_and_ids_are_the_identity_keys(transport: str, figures: Figures) -> None:
    with trio.fail_after(STEP_TIMEOUT_S):
        async with open_host(ALICE, [LISTEN_ADDR[transport]]) as alice, open_host(BOB, [LISTEN_ADDR[transport]]) as bob:
            assert alice.peer_id == ALICE.peer_id == str(alice.libp2p.get_id())
            assert bob.peer_id == BOB.peer_id == str(bob.libp2p.get_id())
            start = time.perf_counter()
            assert await bob.connect(alice.addrs(transport)[0]) == ALICE.peer_id
            connect_ms = (time.perf_counter() - start) * 1000
            assert ALICE.peer_id in bob.connected_peers()
            used = {p.name for addr in bob.connection_addrs(ALICE.peer_id) for p in addr.protocols()}
            assert transport in used
            figures(f"connect {transport}", f"{connect_ms:.1f} ms (fresh hosts, first dial)")


async def test_frames_of_1_byte_to_1_mib_round_trip(pair: tuple[str, Host, Host], figures: Figures) -> None:
    transport, alice, bob = pair
    alice.set_stream_handler(SYNC_PROTOCOL, echo)
    rng = random.Random(5)
    with trio.fail_after(STEP_TIMEOUT_S * 2):
        async with await bob.open_stream(ALICE.peer_id) as frames:
            for size in FRAME_SIZES:
                payload = rng.randbytes(size)
                start = time.perf_counter()
                await frames.send_frame(payload)
                assert await frames.receive_frame() == payload
            mib_ms = (time.perf_counter() - start) * 1000  # the last size is 1 MiB
            figures(f"stream round trip {transport} (64 B frames)", percentiles(await round_trip_ms(frames)))
            figures(f"1 MiB frame echoed {transport}", f"{mib_ms:.0f} ms ({2 / (mib_ms / 1000):.1f} MiB/s both ways)")


async def test_concurrent_senders_never_interleave_frames(pair: tuple[str, Host, Host]) -> None:
    _transport, alice, bob = pair
    outcome = record_streams(alice, reply=False)
    size = 200_000  # several muxer chunks per frame, so unserialised writers would interleave

    async def send_many(frames: FrameStream, fill: int) -> None:
        for _ in range(3):
            await frames.send_frame(bytes([fill]) * size)

    with trio.fail_after(STEP_TIMEOUT_S * 2):
        async with await bob.open_stream(ALICE.peer_id) as frames:
            async with trio.open_nursery() as nursery:
                for fill in (1, 2):
                    nursery.start_soon(send_many, frames, fill)
            await frames.close_write()
            await outcome.done.wait()
    assert outcome.error is None
    assert sorted(frame[0] for frame in outcome.frames) == [1, 1, 1, 2, 2, 2]
    assert all(frame == bytes([frame[0]]) * size for frame in outcome.frames)


async def test_oversized_frame_is_refused_with_typed_errors(pair: tuple[str, Host, Host]) -> None:
    _transport, alice, bob = pair
    outcome = record_streams(alice, max_frame_bytes=SMALL_LIMIT)
    with trio.fail_after(STEP_TIMEOUT_S):
        async with await bob.open_stream(ALICE.peer_id, max_frame_bytes=SMALL_LIMIT) as frames:
            with pytest.raises(FrameTooLarge):  # our own limit: refused before touching the wire
                await frames.send_frame(bytes(SMALL_LIMIT + 1))
            await frames.send_frame(bytes(SMALL_LIMIT))  # exactly the limit is fine
            assert await frames.receive_frame() == bytes(SMALL_LIMIT)
            # A peer with a looser limit sends more than Alice accepts: she resets the stream.
            frames.max_frame_bytes = 2 * SMALL_LIMIT
            await frames.send_frame(bytes(SMALL_LIMIT + 1))
            await outcome.done.wait()
            with pytest.raises(StreamResetError):
                await frames.receive_frame()
    assert isinstance(outcome.error, FrameLimitExceeded)
    assert outcome.error.peer_id == BOB.peer_id
    assert len(outcome.frames) == 1


async def test_clean_close_ends_iteration_without_error(pair: tuple[str, Host, Host]) -> None:
    _transport, alice, bob = pair
    outcome = record_streams(alice, reply=False)
    with trio.fail_after(STEP_TIMEOUT_S):
        frames = await bob.open_stream(ALICE.peer_id)
        for index in range(3):
            await frames.send_frame(b"frame %d" % index)
        await frames.close_write()
        await outcome.done.wait()
        await frames.close()
    assert outcome.error is None
    assert outcome.frames == [b"frame 0", b"frame 1", b"frame 2"]


async def greeted_stream(bob: Host) -> FrameStream:
    """A stream from Bob to Alice's echoing handler, proven live by one round trip."""
    frames = await bob.open_stream(ALICE.peer_id)
    await frames.send_frame(b"hello")
    assert await frames.receive_frame() == b"hello"
    return frames


async def test_close_inside_a_frame_is_a_truncated_frame(pair: tuple[str, Host, Host]) -> None:
    _transport, alice, bob = pair
    outcome = record_streams(alice)
    with trio.fail_after(STEP_TIMEOUT_S):
        frames = await greeted_stream(bob)
        await frames.libp2p_stream.write(encode_header(100) + b"only ten b")  # 10 of 100 bytes
        await frames.close_write()
        await outcome.done.wait()
        await frames.close()
    assert isinstance(outcome.error, TruncatedFrame)
    assert isinstance(outcome.error, StreamClosedError)
    assert outcome.frames == [b"hello"]


@pytest.mark.parametrize("pair", ["tcp"], indirect=True)  # parsed before any transport matters
@pytest.mark.parametrize("garbage", [b"\x80" * 6, b"\x80\x00"], ids=["header-too-long", "not-shortest-form"])
async def test_a_malformed_header_resets_the_stream(pair: tuple[str, Host, Host], garbage: bytes) -> None:
    _transport, alice, bob = pair
    outcome = record_streams(alice)
    with trio.fail_after(STEP_TIMEOUT_S):
        frames = await greeted_stream(bob)
        await frames.libp2p_stream.write(garbage)
        await outcome.done.wait()
        with pytest.raises(StreamResetError):
            await frames.receive_frame()
    assert isinstance(outcome.error, MalformedFrame)
    assert outcome.error.peer_id == BOB.peer_id


async def test_reset_by_bob_is_a_stream_reset_for_alice(pair: tuple[str, Host, Host]) -> None:
    _transport, alice, bob = pair
    outcome = record_streams(alice)
    with trio.fail_after(STEP_TIMEOUT_S):
        frames = await greeted_stream(bob)
        await frames.reset()
        await outcome.done.wait()
        with pytest.raises(StreamResetError):
            await frames.send_frame(b"after reset")
    assert isinstance(outcome.error, StreamResetError)
    assert outcome.error.peer_id == BOB.peer_id


async def test_reset_by_alice_is_a_stream_reset_for_bob(pair: tuple[str, Host, Host]) -> None:
    _transport, alice, bob = pair

    async def reset_after_first_frame(frames: FrameStream) -> None:
        await frames.receive_frame()
        await frames.reset()

    alice.set_stream_handler(SYNC_PROTOCOL, reset_after_first_frame)
    with trio.fail_after(STEP_TIMEOUT_S):
        frames = await bob.open_stream(ALICE.peer_id)
        await frames.send_frame(b"hello")
        with pytest.raises(StreamResetError) as raised:
            await frames.receive_frame()
        with pytest.raises(StreamResetError):
            await frames.send_frame(b"after reset")
    assert raised.value.peer_id == ALICE.peer_id


async def test_unknown_protocol_and_unreachable_peer_are_dial_errors() -> None:
    with trio.fail_after(STEP_TIMEOUT_S):
        async with open_host(ALICE, [LISTEN_ADDR["tcp"]]) as alice, open_host(BOB, [LISTEN_ADDR["tcp"]]) as bob:
            await bob.connect(alice.addrs()[0])
            with pytest.raises(ProtocolRefused):  # the peer's "na", told apart from a failing connection
                await bob.open_stream(ALICE.peer_id, "/distspace/unknown/1")
            alice_tcp = alice.addrs()[0]
        # Alice is gone: her address no longer answers.
        async with open_host(BOB, [LISTEN_ADDR["tcp"]]) as bob:
            with pytest.raises(DialError):
                await bob.connect(alice_tcp)
            with pytest.raises(AddressError):
                await bob.connect("/ip4/127.0.0.1/tcp/1")  # no /p2p/ peer id
            with pytest.raises(AddressError):
                await bob.connect("not a multiaddr")


@pytest.mark.parametrize(
    "listen_addr",
    [
        "/ip4/192.0.2.1/tcp/0",  # TEST-NET-1: not an address of this machine, bind fails locally
        "/ip4/127.0.0.1/tcp/0/ws",  # a transport we do not run
        "/ip4/127.0.0.1/udp/0",  # no transport at all
    ],
)
async def test_an_address_that_cannot_be_listened_on_fails_the_start(listen_addr: str) -> None:
    with trio.fail_after(STEP_TIMEOUT_S):
        with pytest.raises(HostStartError):
            async with open_host(ALICE, [LISTEN_ADDR["tcp"], listen_addr]):
                pass


async def test_host_stops_cleanly_with_connections_open() -> None:
    """Alice serves three dialers, one per transport, streams still open at exit: nothing may
    outlive the hosts (the autouse fixture checks threads, this test checks tasks)."""
    before = living_tasks()
    with trio.fail_after(STEP_TIMEOUT_S):
        async with AsyncExitStack() as stack:
            alice = await stack.enter_async_context(open_host(ALICE))
            alice.set_stream_handler(SYNC_PROTOCOL, echo)
            for index, transport in enumerate(TRANSPORTS):
                dialer = await stack.enter_async_context(
                    open_host(Identity(bytes([10 + index]) * 32), [LISTEN_ADDR[transport]])
                )
                await dialer.connect(alice.addrs(transport)[0])
                frames = await dialer.open_stream(ALICE.peer_id)
                await frames.send_frame(b"left open")
                assert await frames.receive_frame() == b"left open"
    assert living_tasks() == before


async def test_errors_in_the_host_body_arrive_unwrapped() -> None:
    with pytest.raises(StreamResetError):
        async with open_host(ALICE, [LISTEN_ADDR["tcp"]]):
            raise StreamResetError("raised by the caller")
