"""Content-addressed blocks: CIDv1 with sha2-256, exactly as IPFS computes them.

A snapshot is published as blocks so any IPFS node (kubo, bitswap) can serve and check it:
Automerge's saved bytes go in ``raw`` blocks, the signed manifest that links them in a
``dag-cbor`` block. A CID is ``0x01`` (version 1), the codec as a varint (``0x55`` raw, ``0x71``
dag-cbor — both one byte), then the multihash ``0x12 0x20`` + sha256(data). Its text form is
multibase base32 (lower case, no padding) with the prefix ``b`` — what ``ipfs block put`` prints.

Every read of a block recomputes its CID, so a damaged block is refused, never returned.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from store.errors import CorruptionError, InvalidInput, UnknownBlock

CID_VERSION = 0x01
CODEC_RAW = 0x55
CODEC_DAG_CBOR = 0x71
_SHA2_256 = 0x12
_SHA2_256_BYTES = 32
_CID_PREFIX_BYTES = 4  # version, codec, hash function, digest length: one byte each here
CID_BYTES = _CID_PREFIX_BYTES + _SHA2_256_BYTES
_CODECS = {CODEC_RAW: "raw", CODEC_DAG_CBOR: "dag-cbor"}
# IPFS's default chunk size: bitswap carries blocks up to 512 KiB (see libraries.md) and kubo
# splits files at 256 KiB, so a block this size travels through every IPFS implementation.
MAX_BLOCK_BYTES = 256 * 1024


def cid_for(codec: int, data: bytes) -> bytes:
    """The binary CIDv1 (sha2-256) of ``data`` under ``codec``."""
    if codec not in _CODECS:
        raise InvalidInput(f"unsupported block codec 0x{codec:x}; expected raw (0x55) or dag-cbor (0x71)")
    return bytes([CID_VERSION, codec, _SHA2_256, _SHA2_256_BYTES]) + hashlib.sha256(data).digest()


def codec_of(cid: bytes) -> int:
    """The codec of a binary CID we can check, or InvalidInput if it is not one."""
    if len(cid) != CID_BYTES or cid[0] != CID_VERSION or cid[1] not in _CODECS or cid[2:4] != bytes(
        [_SHA2_256, _SHA2_256_BYTES]
    ):
        raise InvalidInput(f"not a CIDv1 sha2-256 raw/dag-cbor CID: {cid.hex()}")
    return cid[1]


def cid_text(cid: bytes) -> str:
    """Multibase base32 text of a binary CID, e.g. ``bafkrei...`` (raw) or ``bafyrei...`` (dag-cbor)."""
    return "b" + base64.b32encode(cid).decode("ascii").lower().rstrip("=")


def cid_from_text(text: str) -> bytes:
    """Parse the base32 text form back to a binary CID."""
    if not text.startswith("b"):
        raise InvalidInput(f"only base32 ('b...') CIDs are supported, got {text[:12]!r}")
    body = text[1:].upper()
    try:
        cid = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as error:
        raise InvalidInput(f"malformed CID text {text[:12]!r}: {error}") from error
    codec_of(cid)
    return cid


@dataclass(frozen=True, slots=True)
class Block:
    """Bytes and the CID that names them."""

    cid: bytes
    data: bytes

    @classmethod
    def raw(cls, data: bytes) -> Block:
        return cls(cid_for(CODEC_RAW, data), data)

    @classmethod
    def dag_cbor(cls, data: bytes) -> Block:
        return cls(cid_for(CODEC_DAG_CBOR, data), data)

    def check(self) -> None:
        """Raise CorruptionError unless the data still hashes to the CID."""
        if cid_for(codec_of(self.cid), self.data) != self.cid:
            raise CorruptionError(f"block {cid_text(self.cid)} is corrupted: its bytes no longer hash to its CID")


def checked(cid: bytes, data: bytes | None) -> bytes:
    """The bytes a backend returned for ``cid``, refused unless present and intact.

    Raises:
        UnknownBlock: no such block. CorruptionError: the bytes no longer hash to the CID.
    """
    if data is None:
        raise UnknownBlock(f"no block {cid_text(cid)}")
    Block(cid, data).check()
    return data


def split_raw(data: bytes) -> list[Block]:
    """Cut ``data`` into raw blocks of at most MAX_BLOCK_BYTES (at least one, even if empty)."""
    return [Block.raw(data[start : start + MAX_BLOCK_BYTES]) for start in range(0, max(len(data), 1), MAX_BLOCK_BYTES)]
