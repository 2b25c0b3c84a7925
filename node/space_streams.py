"""What presence (node/presence.py) and peer records (node/peer_record_relay.py) share: a
protocol of short streams, one message each, sent to the peers that have an active session of
the message's space, and a per-peer token bucket that limits what comes in. One place, so both
bound a slow or flooding peer the same way: a send gives up after the protocol's timeout, a
receive drops what is over the peer's rate, and neither queues more than one drain per peer.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

import trio

from node.errors import NodeError
from node.framing import FrameStream
from node.host import Host
from node.logs import event

__all__ = ["SpaceStream", "SyncingPeers", "TokenBucket"]


class SyncingPeers(Protocol):
    """What a space stream needs of the network (``node.network.Network`` is one)."""

    @property
    def host(self) -> Host: ...

    def peers_syncing(self, space: bytes) -> set[str]: ...


@dataclass(slots=True)
class TokenBucket:
    """One peer's allowance: ``per_s`` messages a second on average, ``burst`` at once; it
    starts full, so a peer heard for the first time may send a burst."""

    per_s: float
    burst: float
    when: float
    tokens: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        """Spend a token if one is there (refilled for the time since the last call)."""
        self.tokens = min(self.burst, self.tokens + (now - self.when) * self.per_s)
        self.when = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class SpaceStream(ABC):
    """Sends and receives one-message streams of ``protocol``. A subclass keeps its own outbox
    (what it coalesces differs): it calls ``_wake(peer_id)`` after queueing for a peer, and
    ``_pending(peer_id)`` hands over, and forgets, what waits for it, as messages. Each message
    that arrives goes to ``_received`` (within the timeout). Run with ``nursery.start(run)``
    after the network has started; before that and after it, ``_wake`` sends nothing.
    """

    def __init__(self, network: SyncingPeers, protocol: str, *, max_message_bytes: int, timeout_s: float, log: logging.Logger, event_prefix: str) -> None:
        self._network = network
        self._protocol = protocol
        self._max_message_bytes = max_message_bytes
        self._timeout_s = timeout_s
        self._log = log  # the subclass's own, so its events keep their logger's name
        self._event_prefix = event_prefix
        self._sending: set[str] = set()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        host = self._network.host
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                host.set_stream_handler(self._protocol, self._receive, max_frame_bytes=self._max_message_bytes)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            host.remove_stream_handler(self._protocol)

    @property
    def _running(self) -> bool:
        return self._nursery is not None

    @abstractmethod
    def _pending(self, peer_id: str) -> list[bytes] | None:
        """Take what waits for ``peer_id`` out of the outbox (None or empty: nothing)."""

    @abstractmethod
    def _received(self, peer_id: str, data: bytes) -> None:
        """One message from ``peer_id``, not yet checked for anything but its size."""

    def _wake(self, peer_id: str) -> None:
        """Start sending to ``peer_id`` what waits for it, unless that is under way already."""
        if self._nursery is not None and peer_id not in self._sending:
            self._sending.add(peer_id)
            self._nursery.start_soon(self._drain, peer_id)

    async def _drain(self, peer_id: str) -> None:
        try:
            while messages := self._pending(peer_id):
                for message in messages:
                    await self._send(peer_id, message)
        finally:
            self._sending.discard(peer_id)

    async def _send(self, peer_id: str, message: bytes) -> None:
        try:
            with trio.fail_after(self._timeout_s):
                async with await self._network.host.open_stream(peer_id, self._protocol, max_frame_bytes=self._max_message_bytes) as frames:
                    await frames.send_frame(message)
                    await frames.close_write()
        except (NodeError, trio.TooSlowError) as error:
            event(self._log, f"{self._event_prefix}.send_failed", logging.DEBUG, peer_id=peer_id, error=repr(error))

    async def _receive(self, frames: FrameStream) -> None:
        with trio.move_on_after(self._timeout_s):
            data = await frames.receive_frame()
            self._received(frames.peer_id, data)
