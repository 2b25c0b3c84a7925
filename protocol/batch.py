"""Packing changes into a ``Changes`` message and unpacking them from untrusted bytes.

A keystroke-sized Automerge change is ~120 bytes raw, of which 36 (a checksum and a dep hash)
are random: deflate gets a batch down to ~50 bytes a change and no further. An Automerge saved
document stores the same history in columns with no per-change hash — about 1 byte a
keystroke — and the receiver recomputes every hash when it loads it. So a large reply is sent
as the sender's whole saved document plus the heads it assumed the receiver has (``base``);
the receiver loads it and takes the changes not reachable from ``base``. Every change that
comes out is then decoded and hashed here, on the receiving side: nothing the sender claims
about hashes is trusted.

Receiving is two steps, so that the cost of the second is known and paid for before it starts:
``scan_batch`` reads the batch's container and counts the ops of its Automerge chunks without
building anything (protocol/chunk_scan.py) — a saved document of a few KB can describe hundreds
of MB of ops — and ``unpack`` then loads and decodes. The sender plans its batches within the
same limits, so an honest batch is never refused.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import native
from protocol import cbor
from protocol.chunk_scan import ChunkCounts, scan_change, scan_document
from protocol.errors import LimitExceeded, OverLimit, WireError
from protocol.limits import (
    CHANGES_PER_SENT_BATCH,
    DOCUMENT_MIN_CHANGES,
    INCOMPRESSIBLE_BYTES_PER_CHANGE,
    MAX_CHANGES_PER_BATCH,
    MAX_FRAME_BYTES,
    MAX_INFLATED_BATCH_BYTES,
    MAX_OPS_PER_BATCH,
    MAX_SCAN_INFLATED_BYTES,
)
from protocol.wire import Encoding

# Leave room in a frame for the rest of the message (ids, base heads, tips) around the data.
_DATA_BYTES_MAX = MAX_FRAME_BYTES - 64 * 1024


def pack_changes(changes: Sequence[bytes]) -> tuple[Encoding, bytes]:
    """A list of raw changes as CHANGES or DEFLATE, whichever is smaller."""
    plain = cbor.dumps(list(changes))
    deflated = zlib.compress(plain, 6)
    return (Encoding.DEFLATE, deflated) if len(deflated) < len(plain) else (Encoding.CHANGES, plain)


def plan_reply(
    changes: Sequence[bytes], op_counts: Sequence[int], saved_document: Callable[[], bytes]
) -> list[tuple[Encoding, bytes, int]]:
    """How to send ``changes`` (raw, causal order; ``op_counts`` their ops) a peer lacks:
    [(encoding, data, how many)], each batch holding the next ``how many`` of ``changes``.

    One DOCUMENT batch when there are enough changes for it to pay off, it fits a frame and the
    receiver's op limit; else CHANGES/DEFLATE batches of at most CHANGES_PER_SENT_BATCH changes,
    MAX_OPS_PER_BATCH ops and one frame each.
    """
    if len(changes) >= DOCUMENT_MIN_CHANGES:
        saved = saved_document()
        small_enough = len(saved) < INCOMPRESSIBLE_BYTES_PER_CHANGE * len(changes)
        if len(saved) <= _DATA_BYTES_MAX and (small_enough or len(changes) > CHANGES_PER_SENT_BATCH) and _document_fits(saved):
            return [(Encoding.DOCUMENT, saved, len(changes))]
    batches = []
    chunk: list[bytes] = []
    chunk_bytes = chunk_ops = 0
    for change, ops in zip(changes, op_counts, strict=True):
        full = len(chunk) == CHANGES_PER_SENT_BATCH or chunk_bytes + len(change) > _DATA_BYTES_MAX
        if chunk and (full or chunk_ops + ops > MAX_OPS_PER_BATCH):
            batches.append((*pack_changes(chunk), len(chunk)))
            chunk, chunk_bytes, chunk_ops = [], 0, 0
        chunk.append(change)
        chunk_bytes += len(change)
        chunk_ops += ops
    if chunk:
        batches.append((*pack_changes(chunk), len(chunk)))
    return batches


def _document_fits(saved: bytes) -> bool:
    """Whether a receiver's scan takes our saved document (it holds every op of the doc)."""
    try:
        scan_document(saved, max_ops=MAX_OPS_PER_BATCH, max_changes=MAX_CHANGES_PER_BATCH, max_inflated_bytes=MAX_SCAN_INFLATED_BYTES)
    except WireError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ScannedBatch:
    """A batch's contents once its container is read and its ops counted, nothing built yet:
    the raw changes of a CHANGES/DEFLATE batch, or the saved document of a DOCUMENT batch."""

    encoding: Encoding
    ops: int
    raw_changes: list[bytes]
    document: bytes


def scan_batch(encoding: Encoding, data: bytes) -> ScannedBatch:
    """Read a batch's container and count its ops, within the limits, building nothing.

    Raises:
        WireError: the data does not decode (LimitExceeded: its container inflates to too
            much; OverLimit: it holds more changes, ops or inflated column bytes than a batch
            may — a bomb, or an honest batch from a peer with other limits).
    """
    if encoding is Encoding.DOCUMENT:
        counts = _scanned(scan_document, data, max_changes=MAX_CHANGES_PER_BATCH, max_ops=MAX_OPS_PER_BATCH, max_inflated_bytes=MAX_SCAN_INFLATED_BYTES)
        return ScannedBatch(encoding, counts.ops, [], data)
    raw = _change_list(data if encoding is Encoding.CHANGES else _inflate(data))
    ops = inflated = 0
    for change in raw:
        counts = _scanned(scan_change, change, max_ops=MAX_OPS_PER_BATCH - ops, max_inflated_bytes=MAX_SCAN_INFLATED_BYTES - inflated)
        ops += counts.ops
        inflated += counts.inflated_bytes
    return ScannedBatch(encoding, ops, raw, b"")


def _scanned(scan: Callable[..., ChunkCounts], data: bytes, **limits: int) -> ChunkCounts:
    try:
        return scan(data, **limits)
    except OverLimit:
        raise
    except LimitExceeded as error:
        raise OverLimit(str(error)) from error


def unpack(scanned: ScannedBatch, base: Sequence[bytes]) -> list[bytes]:
    """The raw changes a scanned batch carries (a DOCUMENT batch is loaded now).

    Raises:
        WireError: the document does not load, or its base names a change it does not hold.
    """
    if scanned.encoding is Encoding.DOCUMENT:
        return _document_changes(scanned.document, base)
    return scanned.raw_changes


def decode_changes(raw_changes: Sequence[bytes]) -> list[native.DecodedChange]:
    """Decode (and so hash) every change; any undecodable one rejects the batch."""
    try:
        return [native.decode_change(raw) for raw in raw_changes]
    except native.AutomergeError as error:
        raise WireError(f"a change does not decode: {error}") from error


def _change_list(data: bytes) -> list[bytes]:
    changes = cbor.loads_canonical(data, "change list")
    if not isinstance(changes, list) or not all(isinstance(change, bytes) for change in changes):
        raise WireError("a change list is an array of byte strings")
    if len(changes) > MAX_CHANGES_PER_BATCH:
        raise OverLimit(f"a batch of {len(changes)} changes exceeds {MAX_CHANGES_PER_BATCH}")
    return changes


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(data, MAX_INFLATED_BATCH_BYTES)
    except zlib.error as error:
        raise WireError(f"a deflated batch does not inflate: {error}") from error
    if inflater.unconsumed_tail:
        raise LimitExceeded(f"a deflated batch inflates beyond {MAX_INFLATED_BATCH_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise WireError("a deflated batch is truncated or has trailing bytes")
    return inflated


def _document_changes(data: bytes, base: Sequence[bytes]) -> list[bytes]:
    try:
        document = native.Document.load(data)
        if any(document.get_change_by_hash(head) is None for head in base):
            raise WireError("a document batch's base names a change the document does not hold")
        changes = document.get_changes(list(base))
    except native.AutomergeError as error:
        raise WireError(f"a document batch does not load: {error}") from error
    if len(changes) > MAX_CHANGES_PER_BATCH:
        raise OverLimit(f"a document batch of {len(changes)} changes exceeds {MAX_CHANGES_PER_BATCH}")
    return changes
