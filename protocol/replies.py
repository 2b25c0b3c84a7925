"""The replies we send a peer that lacks changes of a doc: built once, cached by what they
depend on.

A reply carries every change of a doc beyond a base (heads the peer is known to hold) up to our
heads, in the batches ``protocol/batch.py`` plans, each with the signed tips that cover it.
Reading, decoding and encoding a large doc's history is the dearest thing a peer can ask of us,
and a reply depends on nothing but (space, doc, base, our heads), so the same want from many
peers, or again and again from one, costs one build and then lookups.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from protocol.batch import decode_changes, plan_reply
from protocol.errors import MessageTooLarge
from protocol.limits import REPLY_CACHE_BYTES
from protocol.reconcile import Heads
from protocol.store_api import ChangeStore
from protocol.tips import TipSignature
from protocol.wire import Changes, Encoding, encode_frame

ReplyKey = tuple[bytes, bytes, Heads, Heads]  # (space, doc, base, our heads)


@dataclass(frozen=True, slots=True)
class Reply:
    """The frames of one reply, the authors of its changes (``origins``), and what they weigh."""

    frames: tuple[bytes, ...]
    origins: frozenset[bytes]
    count: int
    size: int


class ReplyCache:
    """Replies by (space, doc, base, our heads), newest last, bounded by the bytes they hold."""

    def __init__(self, store: ChangeStore, stats: Counter[str], limit_bytes: int = REPLY_CACHE_BYTES) -> None:
        self._store = store
        self._stats = stats
        self._limit = limit_bytes
        self._size = 0
        self._replies: dict[ReplyKey, Reply] = {}

    def reply(self, space: bytes, doc: bytes, base: Heads, ours: Heads) -> Reply:
        """The reply carrying every change of ``doc`` beyond ``base``, from the cache if it is there."""
        key = (space, doc, base, ours)
        reply = self._replies.pop(key, None)
        if reply is not None:
            self._replies[key] = reply  # now the newest
            return reply
        self._stats["replies_built"] += 1
        reply = self._build(space, doc, list(self._store.changes_since(space, doc, base)), base)
        self._put(key, reply)
        return reply

    def _put(self, key: ReplyKey, reply: Reply) -> None:
        if reply.size > self._limit:
            return
        self._replies[key] = reply
        self._size += reply.size
        while self._size > self._limit:
            self._size -= self._replies.pop(next(iter(self._replies))).size

    def _build(self, space: bytes, doc: bytes, lack: list[bytes], base: Heads) -> Reply:
        """The reply carrying ``lack`` (changes beyond ``base``)."""
        if not lack:
            return Reply((), frozenset(), 0, 0)
        decoded = decode_changes(lack)
        hashes = [change.hash for change in decoded]
        signatures = {tip.change_hash: tip.signature for tip in self._store.tips(space, doc)}
        frames = []
        start = 0
        op_counts = [change.op_count for change in decoded]
        for encoding, data, count in plan_reply(lack, op_counts, lambda: self._store.save_document(space, doc)):
            in_batch = hashes[start : start + count]
            # A document batch's changes come out in the receiver's order: name them by hash.
            by_hash = encoding is Encoding.DOCUMENT
            batch_tips = tuple(
                TipSignature(h if by_hash else i, signatures[h]) for i, h in enumerate(in_batch) if h in signatures
            )
            batch_base = base if by_hash else ()
            try:
                frames.append(encode_frame(Changes(doc, encoding, data, batch_base, batch_tips, push=False)))
            except MessageTooLarge:
                self._stats["own_frames_too_large"] += 1  # a batch our planning got wrong: the rest still go
            start += count
        return Reply(tuple(frames), frozenset(change.actor for change in decoded), len(lack), sum(map(len, frames)))
