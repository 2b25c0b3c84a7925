"""Spaces: a shared workspace is named by the hash of its signed genesis record.

Deriving the id from a signed record (creator, name, random nonce, time) makes ids
unforgeable and collision-free without any registry, and lets every peer check who made the
space.

A space is open (any key may write: the behaviour before issue 13) or private (the capability
log, protocol/capabilities.py, decides who reads and writes what). The flag is part of the
signed body, so no relay can open a private space by rewriting it; an open genesis keeps the
five-element encoding it always had, so the ids of spaces made before the flag are unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

from protocol import cbor
from protocol.errors import InvalidSpaceName, WireError
from protocol.identity import Identity, verify_signature

SPACE_ID_BYTES = 32
DOC_ID_BYTES = 16
NONCE_BYTES = 16
MAX_SPACE_NAME_CHARS = 200  # a human label; long enough for any sensible name
DOMAIN_GENESIS = b"distspace/genesis/v1\x00"
# The index doc (the file tree) has a fixed id in every space; file docs get random ids.
INDEX_DOC_ID = bytes(DOC_ID_BYTES)


def new_doc_id() -> bytes:
    return os.urandom(DOC_ID_BYTES)


@dataclass(frozen=True, slots=True)
class Genesis:
    """The signed record a space is born from."""

    creator: bytes
    name: str
    nonce: bytes
    created_ms: int
    signature: bytes
    private: bool = False  # last, with a default: the five fields keep their positions

    @classmethod
    def create(
        cls, identity: Identity, name: str, created_ms: int, nonce: bytes | None = None, *, private: bool = False
    ) -> Genesis:
        if not name or len(name) > MAX_SPACE_NAME_CHARS:
            raise InvalidSpaceName(f"a space name has 1 to {MAX_SPACE_NAME_CHARS} characters")
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        unsigned = cls(identity.public_key, name, nonce, created_ms, b"", private)
        return dataclasses.replace(unsigned, signature=identity.sign(DOMAIN_GENESIS, unsigned._body()))

    def _fields(self) -> list[object]:
        """The signed fields: an open genesis has no flag at all (its old encoding), a private
        one a ``True`` after the time — never a ``False``, so each genesis has one encoding."""
        return [self.creator, self.name, self.nonce, self.created_ms, *((True,) if self.private else ())]

    def _body(self) -> bytes:
        return cbor.dumps(self._fields())

    def encode(self) -> bytes:
        return cbor.dumps([*self._fields(), self.signature])

    @property
    def space_id(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    def verify(self) -> None:
        verify_signature(self.creator, DOMAIN_GENESIS, self._body(), self.signature)

    @classmethod
    def decode(cls, data: bytes) -> Genesis:
        """Decode and verify a genesis record from untrusted bytes."""
        match cbor.loads_canonical(data, "genesis record"):
            case [bytes() as creator, str() as name, bytes() as nonce, int() as created_ms, *flag, bytes() as signature] if (
                len(nonce) == NONCE_BYTES and 0 < len(name) <= MAX_SPACE_NAME_CHARS and (not flag or (len(flag) == 1 and flag[0] is True))
            ):
                genesis = cls(creator, name, nonce, created_ms, signature, private=bool(flag))
            case _:
                raise WireError("malformed genesis record")
        genesis.verify()
        return genesis
