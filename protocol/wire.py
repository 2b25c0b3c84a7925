"""The sync protocol's messages and how they travel as frames on a byte stream.

A frame is an unsigned LEB128 varint giving the payload length (the libp2p convention, as in
node/framing.py), then the payload: one canonical CBOR array ``[version, kind, *fields]``.
The version is in every message, so a future version can change any message; a Hello lists
the versions a peer speaks. Canonical encoding means every message has exactly one encoding:
a decoded message re-encodes to the same bytes, which is what batch ids hash.

Decoding is h11-style and never trusts the peer: ``FrameDecoder.receive_data`` takes whatever
bytes arrived, ``next_message`` returns one message or None when it needs more. Every size is
checked against ``protocol.limits`` before anything is allocated for it, and the only
exceptions that escape are ``WireError`` and its subclass ``LimitExceeded``.

Messages, in the order a session uses them (see protocol/replicator.py for what each does):

- ``Hello``: first message each way — versions, space, the sender's key, and its ``Status``.
- ``Status``: the space summary (a hash over every doc's heads) and the heads of the docs
  that changed since the sender last reported them to this peer; or all of them (complete).
- ``StatusRequest``: "my record of your heads disagrees with your summary; list them all".
- ``Heads``: one doc's heads — an announcement, or with ``want`` a request for what we lack.
- ``Changes``: a batch of changes of one doc with the signed tips that cover them.
- ``Prune``: "stop pushing me this origin's batches, announce heads instead" (Plumtree, with
  one tree per origin: the author whose local commit a pushed batch is).
- ``Capabilities``: the sender's capability-log digest, and records of the log (a joiner's
  proof before its Hello; after the Hellos, the records a peer whose digest differs lacks, and
  every record added since). Records travel as their own signed encodings.
- ``Ping``: a heartbeat. ``Bye``: a reason, before we close.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from protocol import cbor
from protocol.capabilities import MAX_REVOCATION_BYTES
from protocol.errors import LimitExceeded, MessageTooLarge, OverLimit, WireError
from protocol.identity import PUBLIC_KEY_BYTES
from protocol.limits import (
    MAX_DOCS_PER_STATUS,
    MAX_FRAME_BYTES,
    MAX_FRAME_HEADER_BYTES,
    MAX_HEADS,
    MAX_REASON_CHARS,
    MAX_RECORDS_PER_MESSAGE,
    MAX_TIPS_PER_BATCH,
    SUPPORTED_VERSIONS,
)
from protocol.space import DOC_ID_BYTES, SPACE_ID_BYTES
from protocol.tips import CHANGE_HASH_BYTES, TipSignature

WIRE_VERSION = 1
SUMMARY_BYTES = 32
DIGEST_BYTES = 32  # a capability log's digest (CapabilityLog.digest: sha256)
# Batch ids only need to tell batches apart in a bounded seen-set: 128 bits never collide.
BATCH_ID_BYTES = 16


class Kind(enum.IntEnum):
    HELLO = 1
    STATUS = 2
    STATUS_REQUEST = 3
    HEADS = 4
    CHANGES = 5
    PRUNE = 6
    PING = 7
    BYE = 8
    CAPABILITIES = 9


_KINDS = frozenset(int(kind) for kind in Kind)


class Encoding(enum.IntEnum):
    """How a batch's changes are packed in ``Changes.data``."""

    CHANGES = 0  # a CBOR array of raw Automerge changes: best for a few small changes
    DEFLATE = 1  # the same array, deflated: best for a few hundred changes
    DOCUMENT = 2  # an Automerge saved document: best for thousands (columnar, no per-change hash)


_ENCODINGS = frozenset(int(encoding) for encoding in Encoding)


def _is_uint(value: object) -> bool:
    """An integer that is not a bool: CBOR true must not pass for 1, or a message has two encodings."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class DocHeads:
    doc: bytes
    heads: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Status:
    summary: bytes
    docs: tuple[DocHeads, ...]
    complete: bool  # docs lists every doc the sender holds, not only those that changed
    # More pages of this status follow (as Status messages); the receiver takes the status in
    # once the last page (more=False) has come. A large space's status is paged.
    more: bool = False


@dataclass(frozen=True, slots=True)
class Hello:
    versions: tuple[int, ...]
    space: bytes
    peer: bytes
    status: Status


@dataclass(frozen=True, slots=True)
class StatusRequest:
    pass


@dataclass(frozen=True, slots=True)
class Heads:
    doc: bytes
    heads: tuple[bytes, ...]
    want: bool  # the sender lacks changes the receiver has: please send them


@dataclass(frozen=True, slots=True)
class Changes:
    doc: bytes
    encoding: Encoding
    data: bytes
    # For DOCUMENT: the heads the sender assumed the receiver has; the batch is every change of
    # the document not reachable from them. Empty for the other encodings.
    base: tuple[bytes, ...]
    tips: tuple[TipSignature, ...]
    push: bool  # a new batch pushed as its author made it, forwarded verbatim; else a reply

    @property
    def batch_id(self) -> bytes:
        """What the seen-set remembers: a hash of the doc, the changes and their signatures."""
        digest = hashlib.sha256(self.doc + bytes([self.encoding]) + self.data)
        for tip in self.tips:
            digest.update(tip.signature)
        return digest.digest()[:BATCH_ID_BYTES]


@dataclass(frozen=True, slots=True)
class Prune:
    origin: bytes  # the author key whose pushed batches reach the sender by another path


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Bye:
    reason: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    digest: bytes  # the sender's log digest as it sends: equal digests, equal logs
    records: tuple[bytes, ...]  # encoded records (protocol.capabilities.decode_record verifies them)


Message = Hello | Status | StatusRequest | Heads | Changes | Prune | Ping | Bye | Capabilities

_KIND_OF: dict[type, Kind] = {
    Hello: Kind.HELLO,
    Status: Kind.STATUS,
    StatusRequest: Kind.STATUS_REQUEST,
    Heads: Kind.HEADS,
    Changes: Kind.CHANGES,
    Prune: Kind.PRUNE,
    Ping: Kind.PING,
    Bye: Kind.BYE,
    Capabilities: Kind.CAPABILITIES,
}


# ----- encoding -----


def _status_fields(status: Status) -> list[Any]:
    return [status.summary, [[entry.doc, list(entry.heads)] for entry in status.docs], status.complete, status.more]


def _fields(message: Message) -> list[Any]:
    match message:
        case Hello():
            return [list(message.versions), message.space, message.peer, *_status_fields(message.status)]
        case Status():
            return _status_fields(message)
        case Heads():
            return [message.doc, list(message.heads), message.want]
        case Changes():
            tips = [[t.change, t.signature] for t in message.tips]
            return [message.doc, int(message.encoding), message.data, list(message.base), tips, message.push]
        case Bye():
            return [message.reason]
        case Prune():
            return [message.origin]
        case Capabilities():
            return [message.digest, list(message.records)]
        case StatusRequest() | Ping():
            return []


def encode_payload(message: Message) -> bytes:
    """The canonical CBOR payload of a message, without its length prefix."""
    return cbor.dumps([WIRE_VERSION, int(_KIND_OF[type(message)]), *_fields(message)])


def encode_frame(message: Message) -> bytes:
    """A message as it goes on the stream: varint length, then the payload."""
    payload = encode_payload(message)
    if len(payload) > MAX_FRAME_BYTES:
        raise MessageTooLarge(f"a {type(message).__name__} of {len(payload)} bytes exceeds the frame limit")
    return varint(len(payload)) + payload


def varint(value: int) -> bytes:
    """Unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# ----- decoding -----


def _id(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise WireError(f"{what} must be {length} bytes")
    return value


def _hashes(value: object, what: str, limit: int = MAX_HEADS) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise WireError(f"{what} must be a list")
    if len(value) > limit:
        raise OverLimit(f"{what} holds {len(value)} hashes, more than {limit}")
    return tuple(_id(h, CHANGE_HASH_BYTES, f"a hash in {what}") for h in value)


def _status(fields: object) -> Status:
    match fields:
        case [bytes() as summary, list() as docs, bool() as complete, bool() as more]:
            if len(docs) > MAX_DOCS_PER_STATUS:
                raise OverLimit(f"a status lists {len(docs)} docs, more than {MAX_DOCS_PER_STATUS}")
            entries = []
            for entry in docs:
                match entry:
                    case [doc, heads]:
                        entries.append(DocHeads(_id(doc, DOC_ID_BYTES, "a doc id"), _hashes(heads, "doc heads")))
                    case _:
                        raise WireError("a status entry is [doc, heads]")
            if len({entry.doc for entry in entries}) != len(entries):
                raise WireError("a status lists a doc twice")
            return Status(_id(summary, SUMMARY_BYTES, "a summary"), tuple(entries), complete, more)
        case _:
            raise WireError("a status is [summary, docs, complete, more]")


def _tips(value: object) -> tuple[TipSignature, ...]:
    if not isinstance(value, list):
        raise WireError("tips must be a list")
    if len(value) > MAX_TIPS_PER_BATCH:
        raise OverLimit(f"a batch carries {len(value)} tips, more than {MAX_TIPS_PER_BATCH}")
    tips = []
    for fields in value:
        match fields:
            case [int() | bytes() as change, bytes() as signature]:
                tips.append(TipSignature(change, signature))
            case _:
                raise WireError("a tip is [change position or hash, signature]")
    return tuple(tips)


def _records(value: list[Any]) -> tuple[bytes, ...]:
    """Encoded capability records, bounded in count and size; their content is checked when
    they are added to a log, not here."""
    if len(value) > MAX_RECORDS_PER_MESSAGE:
        raise OverLimit(f"a Capabilities message carries {len(value)} records, more than {MAX_RECORDS_PER_MESSAGE}")
    if not all(isinstance(record, bytes) and 0 < len(record) <= MAX_REVOCATION_BYTES for record in value):
        raise WireError(f"a capability record is 1 to {MAX_REVOCATION_BYTES} bytes")
    return tuple(value)


def _versions(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_HEADS:
        raise WireError("versions must be a short non-empty list")
    if not all(_is_uint(v) for v in value):
        raise WireError("versions must be integers")
    return tuple(value)


def _decode_fields(kind: Kind, fields: list[Any]) -> Message:
    match kind, fields:
        case Kind.HELLO, [versions, space, peer, *status]:
            return Hello(
                _versions(versions), _id(space, SPACE_ID_BYTES, "a space id"), _id(peer, PUBLIC_KEY_BYTES, "a peer key"), _status(status)
            )
        case Kind.STATUS, [*status]:
            return _status(status)
        case Kind.HEADS, [doc, heads, bool() as want]:
            return Heads(_id(doc, DOC_ID_BYTES, "a doc id"), _hashes(heads, "heads"), want)
        case Kind.CHANGES, [doc, encoding, bytes() as data, base, tips, bool() as push]:
            if not _is_uint(encoding) or encoding not in _ENCODINGS:
                raise WireError(f"unknown batch encoding {encoding!r}")
            base_heads = _hashes(base, "a batch base")
            if base_heads and encoding != Encoding.DOCUMENT:
                raise WireError("only a document batch has a base")
            return Changes(_id(doc, DOC_ID_BYTES, "a doc id"), Encoding(encoding), data, base_heads, _tips(tips), push)
        case Kind.BYE, [str() as reason] if len(reason) <= MAX_REASON_CHARS:
            return Bye(reason)
        case Kind.STATUS_REQUEST, []:
            return StatusRequest()
        case Kind.PRUNE, [origin]:
            return Prune(_id(origin, PUBLIC_KEY_BYTES, "an origin key"))
        case Kind.PING, []:
            return Ping()
        case Kind.CAPABILITIES, [digest, list() as records]:
            return Capabilities(_id(digest, DIGEST_BYTES, "a log digest"), _records(records))
        case _:
            raise WireError(f"malformed {kind.name} message")


def decode_payload(payload: bytes) -> Message:
    """One message from one frame's payload.

    Raises:
        WireError: not a message of a version we speak (LimitExceeded: over a limit).
    """
    match cbor.loads_canonical(payload, "message"):
        case [version, kind, *fields] if _is_uint(version) and _is_uint(kind):
            if version not in SUPPORTED_VERSIONS:
                raise WireError(f"wire version {version} is not supported (we speak {list(SUPPORTED_VERSIONS)})")
            if kind not in _KINDS:
                raise WireError(f"unknown message kind {kind}")
            return _decode_fields(Kind(kind), fields)
        case _:
            raise WireError("a message is [version, kind, *fields]")


class FrameDecoder:
    """Bytes in, messages out, for one stream.

    A malformed payload costs only its own frame; a malformed length prefix (or one over the
    limit) leaves no way to find the next frame, so the decoder then refuses all further input.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max_frame_bytes = max_frame_bytes
        self._broken: WireError | None = None
        # The whole frame (length prefix and payload) of the message last returned. Encoding is
        # canonical, so it is exactly what encode_frame would make of that message: a message
        # forwarded verbatim needs no encoding.
        self.frame = b""

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    @max_frame_bytes.setter
    def max_frame_bytes(self, limit: int) -> None:
        """Change the limit from the next frame on (a session lifts it once the Hello is in)."""
        self._max_frame_bytes = limit

    def next_message(self) -> Message | None:
        """The next complete message, or None until more bytes arrive.

        Raises:
            WireError: the frame is malformed (LimitExceeded: larger than the limit).
        """
        if self._broken is not None:
            raise self._broken
        header = self._frame_length()
        if header is None:
            return None
        length, header_bytes = header
        if len(self._buffer) < header_bytes + length:
            return None
        self.frame = bytes(self._buffer[: header_bytes + length])
        del self._buffer[: header_bytes + length]
        return decode_payload(self.frame[header_bytes:])

    def _frame_length(self) -> tuple[int, int] | None:
        """(payload length, header length) once the whole varint has arrived."""
        try:
            header = decode_frame_header(self._buffer)
        except WireError as error:
            self._broken = error
            raise
        if header is not None and header[0] > self._max_frame_bytes:
            self._broken = LimitExceeded(f"a frame of {header[0]} bytes exceeds the limit of {self._max_frame_bytes}")
            raise self._broken
        return header


def decode_frame_header(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """``(payload_length, header_length)`` from the start of ``buffer``, or None until the
    whole varint has arrived. The one parser of frame headers (``node.framing`` uses it too).

    Raises:
        WireError: the varint is not in its shortest form (one encoding per frame), or runs
            past ``MAX_FRAME_HEADER_BYTES``.
    """
    length = 0
    for index, byte in enumerate(buffer[:MAX_FRAME_HEADER_BYTES]):
        length |= (byte & 0x7F) << (7 * index)
        if byte & 0x80:
            continue
        if index > 0 and byte == 0:
            raise WireError("a frame length is not in its shortest form")
        return length, index + 1
    if len(buffer) >= MAX_FRAME_HEADER_BYTES:
        raise WireError(f"a frame length longer than {MAX_FRAME_HEADER_BYTES} bytes")
    return None
