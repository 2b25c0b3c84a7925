"""Length-prefixed frames over a libp2p stream, with every transport failure made typed.

A libp2p stream is a byte pipe; the sync protocol speaks in messages. Each frame on the wire is
an unsigned LEB128 varint (the libp2p convention, as in ``write_delimited_msg``) giving the
payload length, then the payload. The receiver checks the announced length against its limit
*before* reading the body, so a hostile peer cannot make us buffer more than one limit's worth.

Why a wrapper at all: yamux, QUIC and WebRTC streams end and fail differently (yamux and QUIC
report a reset as a plain EOF, WebRTC reports a clean FIN as a generic ``StreamError``, QUIC
can report EOF with data still buffered). Callers here see only: a clean end of frames
(iteration stops), ``StreamClosedError`` / ``TruncatedFrame``, ``StreamResetError``,
``FrameLimitExceeded`` or ``MalformedFrame``.

Keep reading: a yamux writer whose send window stays full for 5 s fails its stream, so the
consumer of ``receive_frames`` must hand frames off promptly (e.g. into a bounded channel, and
drop the peer when that channel is full) rather than do slow work between iterations.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Final

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamClosed, StreamEOF, StreamReset

from node.errors import (
    FrameLimitExceeded,
    FrameTooLarge,
    MalformedFrame,
    StreamClosedError,
    StreamResetError,
    TruncatedFrame,
)
from protocol.errors import WireError
from protocol.limits import MAX_FRAME_BYTES
from protocol.wire import decode_frame_header, varint

logger = logging.getLogger(__name__)

__all__ = ["MAX_FRAME_BYTES", "FrameStream", "connection_lost", "decode_header", "encode_header"]

# One read asks for at most this much; yamux hands out 64 KiB slices and WebRTC 16 KiB messages,
# so larger asks only cost memory.
READ_CHUNK_BYTES: Final = 256 * 1024
# The frame limit and header size are the wire format's (protocol.limits, with their reasons):
# protocol.wire.FrameDecoder parses exactly these frames from bytes, this module carries them.
encode_header = varint


def decode_header(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """``(payload_length, header_length)`` from the start of ``buffer``, or None if incomplete
    (``protocol.wire.decode_frame_header``, its errors typed for this package).

    Raises:
        MalformedFrame: the varint runs past ``MAX_FRAME_HEADER_BYTES`` or is not in its
            shortest form (as ``protocol.wire`` requires: one encoding per frame).
    """
    try:
        return decode_frame_header(buffer)
    except WireError as error:
        raise MalformedFrame(str(error)) from error


class FrameStream:
    """Frames over one libp2p stream: one sender at a time, one reader at a time.

    Concurrent ``send_frame`` calls are serialised with a lock: the muxers split large writes
    into chunks and two unserialised writers would interleave their chunks.
    """

    def __init__(self, stream: INetStream, *, max_frame_bytes: int = MAX_FRAME_BYTES, heard: Callable[[str, object], None] | None = None) -> None:
        self._stream = stream
        self._heard = heard  # told (peer, connection) each time bytes arrive: it is alive (node/host.py)
        # The transport's own stream (yamux, QUIC, WebRTC): asked how a stream ended, below.
        self._muxed: object = getattr(stream, "muxed_stream", None)
        self.max_frame_bytes = max_frame_bytes
        self.peer_id: str = stream.muxed_conn.peer_id.to_base58()
        self.protocol: str = str(stream.get_protocol())
        self._buffer = bytearray()
        self._send_lock = trio.Lock()
        self._reading = False
        self._at_eof = False

    @property
    def libp2p_stream(self) -> INetStream:
        """The underlying libp2p stream, for callers that need transport details."""
        return self._stream

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame; returns once the muxer has accepted it (not when the peer read it).

        Raises:
            FrameTooLarge: ``frame`` is above ``max_frame_bytes``.
            StreamClosedError: we or the peer closed the stream for writing.
            StreamResetError: the stream was reset, its connection died, or the peer stopped
                reading long enough for the muxer to give up.
        """
        if len(frame) > self.max_frame_bytes:
            raise FrameTooLarge(f"frame of {len(frame)} bytes is above the limit of {self.max_frame_bytes}")
        await self.send_bytes(encode_header(len(frame)) + frame)

    async def send_bytes(self, data: bytes) -> None:
        """Write bytes that are already whole frames (header included), e.g. several at once.

        For a sender that frames its own messages (the sync protocol's ``Send`` actions carry
        complete frames): one write of many small frames costs the muxer one chunk, not many.
        Same errors as ``send_frame``; the receiver still checks every frame against its limit.
        """
        async with self._send_lock:
            try:
                await self._stream.write(data)
            except Exception as error:  # every libp2p/transport failure: the stream is gone
                if isinstance(error, StreamClosed) and not _was_reset(self._muxed):
                    raise StreamClosedError("stream closed for writing", peer_id=self.peer_id) from error
                raise StreamResetError(f"send failed: {error!r}", peer_id=self.peer_id) from error

    def receive_frames(self, max_frame_bytes: int | None = None) -> AsyncIterator[bytes]:
        """Iterate over incoming frames until the peer closes the stream cleanly.

        Args:
            max_frame_bytes: refuse (reset the stream and raise ``FrameLimitExceeded``) any frame
                announced above this; defaults to the stream's ``max_frame_bytes``.

        Raises (from iteration): TruncatedFrame, StreamResetError, FrameLimitExceeded,
        MalformedFrame.
        """
        return _FrameIterator(self, self.max_frame_bytes if max_frame_bytes is None else max_frame_bytes)

    async def receive_frame(self, max_frame_bytes: int | None = None) -> bytes:
        """Read exactly one frame; a clean end of stream raises ``StreamClosedError``."""
        frame = await self._next_frame(self.max_frame_bytes if max_frame_bytes is None else max_frame_bytes)
        if frame is None:
            raise StreamClosedError("stream ended before a frame arrived", peer_id=self.peer_id)
        return frame

    async def receive_bytes(self, max_bytes: int = READ_CHUNK_BYTES) -> bytes:
        """Whatever bytes have arrived, at most ``max_bytes`` (frames not parsed), or b"" at a
        clean end of stream.

        For a consumer that parses frames itself (``protocol.wire.FrameDecoder`` applies the
        same limits). Not to be mixed with the frame-reading methods on one stream. A small
        ``max_bytes`` makes the transport keep the rest (within its flow-control window): a
        consumer with a byte budget, such as a session before its Hello, holds no more than it.

        Raises: StreamResetError (reset, lost connection, or any transport failure).
        """
        if self._reading:
            raise trio.BusyResourceError("another task is already reading from this stream")
        self._reading = True
        try:
            if not self._buffer and not await self._fill(min(max_bytes, READ_CHUNK_BYTES)):
                return b""
            data = bytes(self._buffer[:max_bytes])
            del self._buffer[:max_bytes]
            return data
        finally:
            self._reading = False

    async def close_write(self) -> None:
        """Tell the peer we send no more frames (its iteration ends cleanly).

        yamux and QUIC keep our read side open; WebRTC streams have no half-close and close both.
        """
        try:
            await self._stream.close_write()  # type: ignore[attr-defined]  # on every stream class libp2p gives us, not on INetStream
        except Exception as error:
            raise StreamResetError(f"close failed: {error!r}", peer_id=self.peer_id) from error

    async def close(self) -> None:
        """Close the stream gracefully and release it; errors are logged, not raised."""
        try:
            await self._stream.close()
        except Exception as error:
            logger.debug("frame_stream.close_failed peer_id=%s error=%r", self.peer_id, error)

    async def reset(self) -> None:
        """Abort the stream in both directions; never raises."""
        try:
            await self._stream.reset()
        except Exception as error:
            logger.debug("frame_stream.reset_failed peer_id=%s error=%r", self.peer_id, error)

    async def __aenter__(self) -> FrameStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close on a clean exit; reset when leaving with an error or a cancellation."""
        with trio.CancelScope(shield=True):
            if exc_type is None:
                await self.close()
            else:
                await self.reset()

    async def _next_frame(self, max_frame_bytes: int) -> bytes | None:
        """The next frame, or None at a clean end of stream (on a frame boundary)."""
        if self._reading:
            raise trio.BusyResourceError("another task is already reading frames from this stream")
        self._reading = True
        try:
            return await self._read_frame(max_frame_bytes)
        finally:
            self._reading = False

    async def _read_frame(self, max_frame_bytes: int) -> bytes | None:
        while True:
            try:
                header = decode_header(self._buffer)
            except MalformedFrame as error:
                await self.reset()
                error.peer_id = self.peer_id
                raise
            if header is not None:
                break
            if not await self._fill():
                if self._buffer:
                    raise TruncatedFrame("stream ended inside a frame header", peer_id=self.peer_id)
                return None
        length, header_bytes = header
        if length > max_frame_bytes:
            await self.reset()
            raise FrameLimitExceeded(f"peer announced a {length}-byte frame, limit is {max_frame_bytes}", peer_id=self.peer_id)
        end = header_bytes + length
        while len(self._buffer) < end:
            if not await self._fill():
                raise TruncatedFrame(f"stream ended {end - len(self._buffer)} bytes short of a frame", peer_id=self.peer_id)
        frame = bytes(self._buffer[header_bytes:end])
        del self._buffer[:end]
        return frame

    async def _fill(self, max_bytes: int = READ_CHUNK_BYTES) -> bool:
        """Append what the stream has (at most ``max_bytes``) to the buffer; False at a clean
        end of stream."""
        if self._at_eof:
            return False
        try:
            data = await self._read(max_bytes)
        except Exception as error:
            failure = self._failure_at_end(error)
            if failure is not None:
                raise failure from error
            data = b""
        if not data:
            failure = self._failure_at_end(None)
            if failure is not None:
                raise failure
            self._at_eof = True
            return False
        self._buffer += data
        if self._heard is not None:
            self._heard(self.peer_id, self._stream.muxed_conn)
        return True

    async def _read(self, max_bytes: int) -> bytes:
        """One read, working around py-libp2p 0.8.1's QUIC end-of-stream race.

        ``QUICStream.read`` checks its buffer, then (after yielding for a lock) whether FIN
        arrived; when the last data and the FIN land in between, it reports EOF with that data
        still buffered (seen: 1 run in 5 loses the last few hundred bytes). The data is still
        there, so read again while the stream holds any.
        """
        while True:
            try:
                return await self._stream.read(max_bytes)
            except StreamEOF:
                if not getattr(self._muxed, "_receive_buffer", None):
                    raise

    def _failure_at_end(self, error: Exception | None) -> StreamResetError | None:
        """Why reading stopped: None when the peer closed its side cleanly, else what to raise.

        The transports disagree on how they report the end. yamux and QUIC report a reset or a
        lost connection as a plain EOF; WebRTC reports a clean FIN as a generic ``StreamError``
        ("Stream closed by remote"). So the exception decides only the clear cases, and the
        muxed stream and its connection are asked about the rest. A FIN that arrives just
        before the connection drops is reported as a lost connection: the frames before it
        were all delivered, only the label differs.
        """
        if isinstance(error, StreamReset) or _was_reset(self._muxed):
            return StreamResetError("stream reset", peer_id=self.peer_id)
        if connection_lost(self._stream.muxed_conn):
            return StreamResetError("connection lost", peer_id=self.peer_id)
        if error is None or isinstance(error, StreamEOF) or _read_side_ended(self._muxed, error):
            return None
        return StreamResetError(f"stream failed: {error!r}", peer_id=self.peer_id)


def _was_reset(muxed_stream: object) -> bool:
    """Whether a yamux, QUIC or WebRTC stream saw a reset (each keeps the fact differently)."""
    if getattr(muxed_stream, "reset_received", False):  # yamux
        return True
    is_reset = getattr(muxed_stream, "is_reset", None)  # QUIC
    if callable(is_reset) and is_reset():
        return True
    state = getattr(muxed_stream, "_state", None)  # WebRTC
    return getattr(state, "value", None) == "reset"


def _read_side_ended(muxed_stream: object, error: Exception) -> bool:
    """Whether a generic WebRTC read error is its way of saying FIN: it raises "Stream closed
    by remote" on the first read after FIN and "Read side is closed" on later ones."""
    return bool(getattr(muxed_stream, "_read_closed", False)) or "closed by remote" in str(error)


def connection_lost(muxed_conn: object) -> bool:
    """Whether the stream's connection is closed or (yamux) shutting down."""
    if getattr(muxed_conn, "is_closed", False):
        return True
    shutting_down = getattr(muxed_conn, "event_shutting_down", None)
    return shutting_down is not None and shutting_down.is_set()


class _FrameIterator:
    """A plain async iterator (not an async generator): breaking out of ``async for`` leaves
    nothing to finalise later, and no cancel scope straddles a yield."""

    def __init__(self, stream: FrameStream, max_frame_bytes: int) -> None:
        self._stream = stream
        self._max_frame_bytes = max_frame_bytes

    def __aiter__(self) -> _FrameIterator:
        return self

    async def __anext__(self) -> bytes:
        frame = await self._stream._next_frame(self._max_frame_bytes)
        if frame is None:
            raise StopAsyncIteration
        return frame

