"""Carrying peer records between the peers that sync a space, on a stream of their own
(``/distspace/peer-records/1``): node/peer_records.py says why and what is bounded; the
sending and the rate limit are node/space_streams.py's, as presence's."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import trio

from node.errors import NodeError
from node.logs import event
from node.peer_records import PeerDirectory
from node.space_streams import SpaceStream, SyncingPeers, TokenBucket
from node.sync_driver import peer_key_of
from protocol.errors import PeerRecordError
from protocol.peer_record import MAX_PEER_MESSAGE_BYTES, MAX_PEER_RECORDS_PER_MESSAGE, PeerRecord, decode_peer_records, encode_peer_records
from store.repo import Repo, wall_clock_ms

logger = logging.getLogger(__name__)

__all__ = ["PEER_RECORDS_PROTOCOL", "PeerRecordRelay"]

PEER_RECORDS_PROTOCOL: Final = "/distspace/peer-records/1"
PEER_RECORDS_TIMEOUT_S: Final = 10.0
# A peer sends a book when a session opens and a record when a member renames itself: a few
# messages a minute. The burst covers a node opening sessions of many spaces at once.
PEER_RECORD_MESSAGES_PER_S: Final = 1.0
PEER_RECORD_BURST: Final = 32.0
# Peers whose rate we track; the least recently heard is forgotten (it starts afresh).
MAX_RATED_PEERS: Final = 1024


class PeerRecordRelay(SpaceStream):
    """Carries peer records between this node and the peers it syncs spaces with (module
    docstring). ``session_opened(peer_id, space)`` sends that peer our book of the space;
    ``publish(space, records)`` sends records to every peer syncing it. Run with
    ``nursery.start(relay.run)`` after the network has started. ``stats`` counts what came in.
    """

    def __init__(self, network: SyncingPeers, repo: Repo, directory: PeerDirectory, *, on_kept: Callable[[bytes, list[PeerRecord]], None] | None = None) -> None:
        super().__init__(
            network, PEER_RECORDS_PROTOCOL, max_message_bytes=MAX_PEER_MESSAGE_BYTES, timeout_s=PEER_RECORDS_TIMEOUT_S,
            log=logger, event_prefix="peer_records",
        )  # fmt: skip
        self._repo = repo
        self._directory = directory
        self._on_kept = on_kept
        self._outbox: dict[str, dict[bytes, dict[bytes, PeerRecord]]] = {}  # peer -> space -> key -> newest record
        self._rates: OrderedDict[str, TokenBucket] = OrderedDict()
        self.stats: dict[str, int] = {"messages_received": 0, "records_kept": 0, "messages_dropped": 0, "messages_malformed": 0}

    def session_opened(self, peer_id: str, space: bytes) -> None:
        """A session of ``space`` with the peer is active: send it our whole book of the space."""
        self._queue(peer_id, space, self._directory.records(space))

    def publish(self, space: bytes, records: list[PeerRecord], *, exclude: str | None = None) -> None:
        """Send ``records`` to every peer syncing ``space`` (but ``exclude``, whence they came)."""
        for peer_id in self._network.peers_syncing(space):
            if peer_id != exclude:
                self._queue(peer_id, space, records)

    def _queue(self, peer_id: str, space: bytes, records: list[PeerRecord]) -> None:
        if not self._running or not records:
            return
        waiting = self._outbox.setdefault(peer_id, {}).setdefault(space, {})
        for record in records:
            held = waiting.get(record.key)
            if held is None or record.supersedes(held):
                waiting[record.key] = record
        self._wake(peer_id)

    def _pending(self, peer_id: str) -> list[bytes] | None:
        """The peer's waiting records, per space, in messages of at most MAX_PEER_RECORDS_PER_MESSAGE."""
        outbox = self._outbox.pop(peer_id, None)
        if outbox is None:
            return None
        messages = []
        for space, by_key in outbox.items():
            records = list(by_key.values())
            for start in range(0, len(records), MAX_PEER_RECORDS_PER_MESSAGE):
                messages.append(encode_peer_records(space, records[start : start + MAX_PEER_RECORDS_PER_MESSAGE]))
        return messages

    def _received(self, peer_id: str, data: bytes) -> None:
        self.stats["messages_received"] += 1
        if not self._take_token(peer_id):
            self.stats["messages_dropped"] += 1
            return
        try:
            space, records = decode_peer_records(data)
        except PeerRecordError as error:
            self.stats["messages_malformed"] += 1
            event(logger, "peer_records.malformed", logging.DEBUG, peer_id=peer_id, error=error)
            return
        if not self._admits(peer_id, space):
            self.stats["messages_dropped"] += 1  # the same silence for a space we do not hold
            return
        kept = self._directory.add(space, records, self._repo)
        if kept:
            self.stats["records_kept"] += len(kept)
            self.publish(space, kept, exclude=peer_id)
            if self._on_kept is not None:
                self._on_kept(space, kept)

    def _admits(self, peer_id: str, space: bytes) -> bool:
        """Whether we hold ``space`` and its log admits the sender now."""
        if space not in {genesis.space_id for genesis in self._repo.spaces()}:
            return False
        try:
            key = peer_key_of(peer_id)
        except NodeError:
            return False
        return self._repo.capability_log(space).admits(key, wall_clock_ms())

    def _take_token(self, peer_id: str) -> bool:
        now = trio.current_time()
        rate = self._rates.pop(peer_id, None) or TokenBucket(PEER_RECORD_MESSAGES_PER_S, PEER_RECORD_BURST, now)
        self._rates[peer_id] = rate
        while len(self._rates) > MAX_RATED_PEERS:
            self._rates.popitem(last=False)
        return rate.take(now)
