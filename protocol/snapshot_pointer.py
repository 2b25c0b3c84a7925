"""A member's signed pointer to the latest snapshot of a space it published into IPFS, and the
bundle beside it: what a node that has never met a member needs to join from IPFS alone.

Blocks are content-addressed, so a CID names exactly one manifest; what it cannot say is which
manifest is the *latest*. The pointer does: a signed, sequence-numbered record, Ed25519 by the
publishing member under ``DOMAIN_POINTER`` (the scheme of protocol/signed.py), holding the CID
of the new manifest and of the one it replaces. A node keeps the newest pointer it has seen per
(space, signer) (``PointerChain``) and refuses an older or equal seq — a replayed pointer, say an
old IPNS record served again — and a next seq whose ``previous`` is not the manifest it knows
(a fork of the publisher's own history).

The pointer is a dag-cbor block (a CBOR array with IPLD links, tag 42), so kubo pins and walks
the whole publication from it::

    ["snapshot-pointer", space, seq, manifest-link, previous-link | null, [bundle-link...],
     published_ms, signer, [peer address...], signature]

``bundle`` links raw blocks whose concatenation is the canonical CBOR of
``[genesis, [capability record...], [[doc, author, change hash, tip signature]...]]``: the
space's genesis (its id is the genesis hash, so it checks itself), the capability log (each
record signed; a private space's joiner checks the signer and every author against it) and the
signed tips that cover every change the snapshots hold (protocol/tips.py: one per author per
doc, over the newest change of that author). Split because a large space's tips outgrow a block.

``peers`` are hints — the publisher's listen addresses — for catching up over libp2p later;
they authenticate nothing (a dialled peer proves its own key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import cbor2

from protocol import cbor
from protocol.errors import BadSignature, SnapshotPointerError, WireError
from protocol.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity
from protocol.signed import SignedRecord, load_fields, sign, verified
from protocol.space import DOC_ID_BYTES, SPACE_ID_BYTES, Genesis
from protocol.tips import CHANGE_HASH_BYTES, SignedTip

__all__ = [
    "DOMAIN_POINTER",
    "MAX_BUNDLE_BYTES",
    "MAX_PEER_ADDR_CHARS",
    "MAX_POINTER_BYTES",
    "MAX_POINTER_PEERS",
    "Bundle",
    "PointerChain",
    "SnapshotPointer",
    "decode_bundle",
    "decode_pointer",
    "encode_bundle",
]

DOMAIN_POINTER: Final = b"distspace/snapshot-pointer/v1\x00"
_TAG: Final = "snapshot-pointer"
_CID_LINK_TAG: Final = 42  # IPLD's CBOR tag for links: a 0x00 byte, then the binary CID
# CIDv1 of sha2-256: version, codec, hash function, length, 32-byte digest (store/blocks.py).
_CID_BYTES: Final = 36
# Peer addresses a pointer carries as hints, and their length: a few listen addresses each.
MAX_POINTER_PEERS: Final = 16
MAX_PEER_ADDR_CHARS: Final = 512
# Bundle blocks one pointer links: 4096 × 256 KiB = 1 GiB, far above any bundle allowed.
MAX_BUNDLE_BLOCKS: Final = 4096
# A pointer: ~36 B per link and the addresses; read before anything else is fetched.
MAX_POINTER_BYTES: Final = 256 * 1024
# The bundle's tips and records: 160 B per tip, so ~400k (doc, author) pairs; a joiner holds
# it in memory whole.
MAX_BUNDLE_BYTES: Final = 64 * 1024 * 1024


def _link(cid: bytes) -> cbor2.CBORTag:
    return cbor2.CBORTag(_CID_LINK_TAG, b"\x00" + cid)


def _unlink(value: Any) -> bytes:
    """The binary CID of a link from untrusted bytes."""
    if not isinstance(value, cbor2.CBORTag) or value.tag != _CID_LINK_TAG or type(value.value) is not bytes:
        raise SnapshotPointerError("malformed snapshot pointer: a link is CBOR tag 42 over bytes")
    data = value.value
    if len(data) != _CID_BYTES + 1 or data[0] != 0:
        raise SnapshotPointerError("malformed snapshot pointer: a link is 0x00 and a 36-byte CIDv1")
    return bytes(data[1:])


@dataclass(frozen=True, slots=True)
class SnapshotPointer(SignedRecord):
    """``signer`` says: my ``seq``-th publication of ``space`` is the manifest ``manifest``,
    replacing ``previous`` (None for the first), with ``bundle`` beside it."""

    space: bytes
    seq: int
    manifest: bytes  # binary CID of the signed manifest (store/snapshots.py), dag-cbor
    previous: bytes | None  # the manifest of this signer's seq - 1 pointer
    bundle: tuple[bytes, ...]  # binary CIDs of the bundle's raw blocks, in order
    published_ms: int
    signer: bytes
    peers: tuple[str, ...]
    signature: bytes
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)

    def _fields(self) -> list[object]:
        previous = None if self.previous is None else _link(self.previous)
        bundle = [_link(cid) for cid in self.bundle]
        return [_TAG, self.space, self.seq, _link(self.manifest), previous, bundle, self.published_ms, self.signer, list(self.peers)]

    @classmethod
    def issue(
        cls,
        identity: Identity,
        *,
        space: bytes,
        seq: int,
        manifest: bytes,
        previous: bytes | None,
        bundle: Sequence[bytes],
        published_ms: int,
        peers: Sequence[str] = (),
    ) -> SnapshotPointer:
        """Sign a pointer with ``identity``'s key.

        Raises:
            ValueError: a seq below 1, a first pointer naming a previous manifest (or a later
                one naming none), or more peers or bundle blocks than a pointer holds.
        """
        if seq < 1 or (seq == 1) != (previous is None):
            raise ValueError("a pointer's seq starts at 1, and only the first has no previous manifest")
        if len(peers) > MAX_POINTER_PEERS or any(len(peer) > MAX_PEER_ADDR_CHARS for peer in peers):
            raise ValueError(f"a pointer carries at most {MAX_POINTER_PEERS} peer addresses of {MAX_PEER_ADDR_CHARS} characters")
        if not 1 <= len(bundle) <= MAX_BUNDLE_BLOCKS:
            raise ValueError(f"a pointer links 1 to {MAX_BUNDLE_BLOCKS} bundle blocks")
        unsigned = cls(space, seq, manifest, previous, tuple(bundle), published_ms, identity.public_key, tuple(peers), b"")
        return sign(unsigned, identity, DOMAIN_POINTER)


def decode_pointer(data: bytes) -> SnapshotPointer:
    """Decode and verify a pointer from untrusted bytes (its signature by its own ``signer``:
    whether that key may publish for the space is the joiner's check, against the log).

    Raises:
        SnapshotPointerError: too large, the wrong shape or types, not its canonical
            encoding, or a signature that does not verify.
    """
    if len(data) > MAX_POINTER_BYTES:
        raise SnapshotPointerError(f"a snapshot pointer is at most {MAX_POINTER_BYTES} bytes")
    try:
        fields = cbor.loads(data, "snapshot pointer")  # links are tags: not the canonical subset
    except WireError as error:
        raise SnapshotPointerError(str(error)) from error
    match fields:
        case ["snapshot-pointer", bytes() as space, int() as seq, manifest, previous, list() as bundle, int() as published, bytes() as signer, list() as peers, bytes() as signature] if (
            len(space) == SPACE_ID_BYTES
            and type(seq) is int
            and seq >= 1
            and type(published) is int
            and published >= 0
            and len(signer) == PUBLIC_KEY_BYTES
            and len(signature) == SIGNATURE_BYTES
            and 1 <= len(bundle) <= MAX_BUNDLE_BLOCKS
            and len(peers) <= MAX_POINTER_PEERS
            and all(type(peer) is str and len(peer) <= MAX_PEER_ADDR_CHARS for peer in peers)
        ):
            pass
        case _:
            raise SnapshotPointerError("malformed snapshot pointer: wrong shape")
    if (seq == 1) != (previous is None):
        raise SnapshotPointerError("malformed snapshot pointer: only the first (seq 1) has no previous manifest")
    pointer = SnapshotPointer(
        space,
        seq,
        _unlink(manifest),
        None if previous is None else _unlink(previous),
        tuple(_unlink(link) for link in bundle),
        published,
        signer,
        tuple(peers),
        signature,
    )
    return verified(pointer, data, signer, DOMAIN_POINTER, "snapshot pointer", SnapshotPointerError)


@dataclass(frozen=True, slots=True)
class Bundle:
    """What a pointer's bundle holds, decoded: each part still to be checked where it is used
    (records by the capability log, tips by their signatures — ``decode_bundle`` checks those)."""

    genesis: Genesis
    records: tuple[bytes, ...]
    tips: tuple[SignedTip, ...]


def encode_bundle(genesis: Genesis, records: Sequence[bytes], tips: Sequence[SignedTip]) -> bytes:
    """The canonical CBOR of a bundle (``tips`` must all be of the genesis's space)."""
    space = genesis.space_id
    if any(tip.space != space for tip in tips):
        raise ValueError("a bundle holds tips of its own space only")
    return cbor.dumps([genesis.encode(), list(records), [[tip.doc, tip.author, tip.change_hash, tip.signature] for tip in tips]])


def decode_bundle(data: bytes, space: bytes) -> Bundle:
    """Decode a bundle from untrusted bytes, for the pointer of ``space``: its genesis must be
    that space's and every tip's signature must verify.

    Raises:
        SnapshotPointerError: too large, malformed, another space's genesis, a bad tip.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise SnapshotPointerError(f"a snapshot bundle is at most {MAX_BUNDLE_BYTES} bytes")
    match load_fields(data, "snapshot bundle", SnapshotPointerError):
        case [bytes() as genesis_bytes, list() as records, list() as tip_fields] if all(type(r) is bytes for r in records):
            pass
        case _:
            raise SnapshotPointerError("malformed snapshot bundle: wrong shape")
    try:
        genesis = Genesis.decode(genesis_bytes)
    except (WireError, BadSignature, ValueError) as error:
        raise SnapshotPointerError(f"snapshot bundle: its genesis does not decode ({error})") from error
    if genesis.space_id != space:
        raise SnapshotPointerError(f"snapshot bundle: its genesis is of space {genesis.space_id.hex()}, not {space.hex()}")
    tips = []
    for item in tip_fields:
        match item:
            case [bytes() as doc, bytes() as author, bytes() as change_hash, bytes() as signature] if (
                len(doc) == DOC_ID_BYTES and len(author) == PUBLIC_KEY_BYTES and len(change_hash) == CHANGE_HASH_BYTES and len(signature) == SIGNATURE_BYTES
            ):
                tip = SignedTip(space, doc, author, change_hash, signature)
            case _:
                raise SnapshotPointerError("malformed snapshot bundle: a tip is [doc, author, change hash, signature]")
        try:
            tip.verify()
        except BadSignature as error:
            raise SnapshotPointerError(f"snapshot bundle: a tip of doc {doc.hex()} does not verify") from error
        tips.append(tip)
    return Bundle(genesis, tuple(records), tuple(tips))


class PointerChain:
    """The newest pointer seen per (space, signer): which later ones to take.

    ``check`` refuses a pointer whose seq is not above the one held (a replay; the very same
    pointer again is fine), and one right after it whose ``previous`` is not the held one's
    manifest. A pointer further ahead is taken: the ones between were missed, not forged — each
    is signed, so only the signer could have made them.
    """

    def __init__(self, held: Sequence[SnapshotPointer] = ()) -> None:
        self._newest: dict[tuple[bytes, bytes], SnapshotPointer] = {}
        for pointer in held:
            self._newest[(pointer.space, pointer.signer)] = pointer

    def newest(self, space: bytes, signer: bytes) -> SnapshotPointer | None:
        return self._newest.get((space, signer))

    def all(self) -> list[SnapshotPointer]:
        return list(self._newest.values())

    def check(self, pointer: SnapshotPointer) -> None:
        """Raise SnapshotPointerError unless ``pointer`` may replace the newest one held."""
        held = self._newest.get((pointer.space, pointer.signer))
        if held is None or held.hash == pointer.hash:
            return
        if pointer.seq <= held.seq:
            raise SnapshotPointerError(
                f"snapshot pointer {pointer.seq} of space {pointer.space.hex()[:12]} is older than pointer {held.seq} already seen from that publisher: a replay"
            )
        if pointer.seq == held.seq + 1 and pointer.previous != held.manifest:
            raise SnapshotPointerError(
                f"snapshot pointer {pointer.seq} of space {pointer.space.hex()[:12]} does not follow pointer {held.seq}: its previous manifest is not that one's"
            )

    def take(self, pointer: SnapshotPointer) -> None:
        """``check``, then hold ``pointer`` as the newest of its (space, signer)."""
        self.check(pointer)
        self.hold(pointer)

    def hold(self, pointer: SnapshotPointer) -> None:
        """Hold ``pointer`` as the newest of its (space, signer) unchecked: a node's own, just
        published, is the newest of its own by construction."""
        self._newest[(pointer.space, pointer.signer)] = pointer
