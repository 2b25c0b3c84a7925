"""Who is who in a space: each member's signed peer record (its display name and its kind,
``human``, ``agent`` or ``relay``), so that ``log``, ``blame`` and ``members`` can tell people
from agents on every member's node by what the key itself signed, never by a local label.

A record is per space: a name is disclosed only to the space's members (a key's records in two
spaces do not link what it calls itself in each), and a person may go by another name in
another space. It replaces the older space-less ``protocol.identity.PeerRecord``, which nothing
published. Ed25519 over ``DOMAIN_PEER_RECORD`` + canonical CBOR of the body, as capability
records (the scheme both use is protocol/signed.py), under a domain of its own so that neither
signature ever verifies as the other.

The newest record per key wins: by ``issued_ms``, then by hash (so every peer holding the same
records shows the same one). A key only speaks for itself; a record is kept only for a key the
space's capability log has had as a member (``may_publish``), so a member cannot fill others'
books with names for keys that never joined; an open space has no log, so a count bounds it
(``MAX_PEER_RECORDS_PER_SPACE``). Names are the key holder's claim: shown beside the peer id,
never instead of it.

How records travel between members is node/peer_records.py (a stream of its own between peers
that sync the space: the capability log's wire message belongs to the Replicator, and
admission is decided there already).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from protocol import cbor
from protocol.capabilities import CapabilityLog
from protocol.errors import InvalidPeerRecord, PeerRecordError
from protocol.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity, PeerKind
from protocol.signed import SignedRecord, load_fields, sign, verified
from protocol.space import SPACE_ID_BYTES

__all__ = [
    "DOMAIN_PEER_RECORD",
    "MAX_PEER_NAME_CHARS",
    "MAX_PEER_RECORDS_PER_MESSAGE",
    "MAX_PEER_RECORDS_PER_SPACE",
    "MAX_PEER_RECORD_BYTES",
    "PeerBook",
    "PeerKind",
    "PeerRecord",
    "decode_peer_record",
    "decode_peer_records",
    "encode_peer_records",
    "may_publish",
    "name_problem",
]

DOMAIN_PEER_RECORD: Final = b"distspace/space-peer-record/v1\x00"
# A display name: what a table column shows. Counted in characters; each is at most 4 UTF-8 bytes.
MAX_PEER_NAME_CHARS: Final = 64
# Two keys, a name, a kind, a time, a signature: ~200 bytes with the longest name.
MAX_PEER_RECORD_BYTES: Final = 512
# The records one space's book keeps: a private space's are bounded by its log already (one per
# member); an open space admits every key, so this is what a flood of fresh keys can cost us.
MAX_PEER_RECORDS_PER_SPACE: Final = 4096
# Records in one message between peers: 128 KiB at most, far under a frame.
MAX_PEER_RECORDS_PER_MESSAGE: Final = 256
MAX_PEER_MESSAGE_BYTES: Final = MAX_PEER_RECORDS_PER_MESSAGE * (MAX_PEER_RECORD_BYTES + 8) + 64

_TAG: Final = "peer"  # the first field: a record of this kind, not some other signed CBOR


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a peer's display name (None: it can)."""
    if not name or len(name) > MAX_PEER_NAME_CHARS:
        return f"a peer's name has 1 to {MAX_PEER_NAME_CHARS} characters"
    if not name.isprintable() or name != name.strip():
        return "a peer's name has no control characters and no surrounding spaces"
    return None


@dataclass(frozen=True, slots=True)
class PeerRecord(SignedRecord):
    """``key`` says, in ``space``, that it goes by ``name`` and is a ``kind``."""

    space: bytes
    key: bytes
    name: str
    kind: PeerKind
    issued_ms: int
    signature: bytes
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)

    def _fields(self) -> list[object]:
        return [_TAG, self.space, self.key, self.name, self.kind.value, self.issued_ms]

    def supersedes(self, other: PeerRecord) -> bool:
        """Whether this record wins over ``other`` (the same key's): newer, or as new with the
        greater hash, so every peer keeps the same one."""
        return (self.issued_ms, self.hash) > (other.issued_ms, other.hash)

    @classmethod
    def issue(cls, identity: Identity, *, space: bytes, name: str, kind: PeerKind, issued_ms: int) -> PeerRecord:
        """Sign a record for ``identity``'s own key.

        Raises:
            InvalidPeerRecord: a name ``name_problem`` refuses, or a negative time.
        """
        if (problem := name_problem(name)) is not None:
            raise InvalidPeerRecord(problem)
        if issued_ms < 0:
            raise InvalidPeerRecord("a peer record's time is a Unix time in ms")
        return sign(cls(space, identity.public_key, name, kind, issued_ms, b""), identity, DOMAIN_PEER_RECORD)


def decode_peer_record(data: bytes) -> PeerRecord:
    """Decode and verify a peer record from untrusted bytes.

    Raises:
        PeerRecordError: anything wrong (size, shape, types, a name ``name_problem`` refuses,
            non-canonical encoding, signature).
    """
    if len(data) > MAX_PEER_RECORD_BYTES:
        raise PeerRecordError(f"a peer record is at most {MAX_PEER_RECORD_BYTES} bytes")
    match load_fields(data, "peer record", PeerRecordError):
        case ["peer", bytes() as space, bytes() as key, str() as name, str() as kind, int() as issued, bytes() as signature] if (
            len(space) == SPACE_ID_BYTES and len(key) == PUBLIC_KEY_BYTES and len(signature) == SIGNATURE_BYTES and issued >= 0
        ):
            pass
        case _:
            raise PeerRecordError("malformed peer record: wrong shape")
    if (problem := name_problem(name)) is not None:
        raise PeerRecordError(f"malformed peer record: {problem}")
    try:
        record = PeerRecord(space, key, name, PeerKind(kind), issued, signature)
    except ValueError as error:
        raise PeerRecordError(f"malformed peer record: unknown kind {kind!r}") from error
    return verified(record, data, key, DOMAIN_PEER_RECORD, "peer record", PeerRecordError)


def encode_peer_records(space: bytes, records: Iterable[PeerRecord]) -> bytes:
    """One message between peers: ``[space, [record, ...]]`` (at most MAX_PEER_RECORDS_PER_MESSAGE)."""
    encoded = [record.encode() for record in records]
    if len(encoded) > MAX_PEER_RECORDS_PER_MESSAGE:
        raise ValueError(f"a message holds at most {MAX_PEER_RECORDS_PER_MESSAGE} peer records")
    return cbor.dumps([space, encoded])


def decode_peer_records(data: bytes) -> tuple[bytes, list[PeerRecord]]:
    """A message of peer records from untrusted bytes: its space and its records, each verified
    and of that space.

    Raises:
        PeerRecordError: a malformed message, or any record in it.
    """
    if len(data) > MAX_PEER_MESSAGE_BYTES:
        raise PeerRecordError(f"a message of peer records is at most {MAX_PEER_MESSAGE_BYTES} bytes")
    match load_fields(data, "peer records", PeerRecordError):
        case [bytes() as space, list() as items] if len(space) == SPACE_ID_BYTES and len(items) <= MAX_PEER_RECORDS_PER_MESSAGE:
            pass
        case _:
            raise PeerRecordError("malformed peer records: wrong shape")
    records = []
    for item in items:
        if type(item) is not bytes:
            raise PeerRecordError("malformed peer records: a record is bytes")
        record = decode_peer_record(item)
        if record.space != space:
            raise PeerRecordError("a peer record of another space")
        records.append(record)
    return space, records


def may_publish(log: CapabilityLog, key: bytes) -> bool:
    """Whether a record of ``key`` is kept for the log's space: any key in an open space; in a
    private one the root and every key the log has granted access (a revoked member's too, so
    ``log`` still names who wrote its earlier changes). Invitation keys are not members."""
    return not log.private or log.role(key) is not None or log.revocation_cutoff(key) is not None


class PeerBook:
    """The newest record per key of one space (``PeerRecord.supersedes``), bounded."""

    def __init__(self, space: bytes, records: Iterable[PeerRecord] = ()) -> None:
        self.space = space
        self._by_key: dict[bytes, PeerRecord] = {}
        for record in records:
            self.add(record)

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: bytes) -> PeerRecord | None:
        return self._by_key.get(key)

    def records(self) -> list[PeerRecord]:
        """Every record held, by key."""
        return [self._by_key[key] for key in sorted(self._by_key)]

    def add(self, record: PeerRecord) -> bool:
        """Keep ``record`` if it is the newest of its key; False if not (an older or the same
        record, or a new key once MAX_PEER_RECORDS_PER_SPACE are held).

        Raises:
            PeerRecordError: a record of another space.
        """
        if record.space != self.space:
            raise PeerRecordError("a peer record of another space")
        held = self._by_key.get(record.key)
        if held is None and len(self._by_key) >= MAX_PEER_RECORDS_PER_SPACE:
            return False
        if held is not None and not record.supersedes(held):
            return False
        self._by_key[record.key] = record
        return True
