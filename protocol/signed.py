"""The signing scheme capability records (protocol/capability_records.py) and peer records
(protocol/peer_record.py) share: a record is the canonical CBOR list of its fields followed by
its signature, Ed25519 over a domain of the record's kind + the CBOR of the fields alone, and
it is named by the SHA-256 of its encoding. One place, so that the two can never differ in what
they sign or in how strictly they read bytes from a peer; each raises its own typed error.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, TypeVar

from protocol import cbor
from protocol.errors import BadSignature, ProtocolError
from protocol.identity import SIGNATURE_BYTES, Identity, verify_signature

__all__ = ["SignedRecord", "load_fields", "sign", "verified"]


class SignedRecord:
    """A base of frozen slotted dataclasses with fields ``signature``, ``encoded`` and ``hash``
    (the last two ``field(init=False)``): it fills ``encoded`` and ``hash`` from ``_fields()``."""

    __slots__ = ()
    signature: bytes
    encoded: bytes
    hash: bytes

    def __post_init__(self) -> None:
        encoded = cbor.dumps([*self._fields(), self.signature])
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", hashlib.sha256(encoded).digest())

    def _fields(self) -> list[object]:
        raise NotImplementedError

    def body(self) -> bytes:
        """The signed bytes (everything but the signature)."""
        return cbor.dumps(self._fields())

    def encode(self) -> bytes:
        return self.encoded


_S = TypeVar("_S", bound=SignedRecord)


def sign(unsigned: _S, identity: Identity, domain: bytes) -> _S:
    """``unsigned`` (its signature empty) signed by ``identity``; encoded and hash are recomputed."""
    # Every SignedRecord is a dataclass (the class docstring), which its type cannot say.
    signed: _S = dataclasses.replace(unsigned, signature=identity.sign(domain, unsigned.body()))  # type: ignore[type-var]
    return signed


def load_fields(data: bytes, what: str, error: type[ProtocolError]) -> Any:
    """The one canonical CBOR value of ``data`` from a peer.

    Raises:
        error: anything else, however it is malformed.
    """
    try:
        return cbor.loads_canonical(data, what)
    except ProtocolError as problem:
        raise error(str(problem)) from problem


def verified(record: _S, data: bytes, signer: bytes, domain: bytes, what: str, error: type[ProtocolError]) -> _S:
    """``record``, decoded from ``data``, once it is its canonical encoding and ``signer``'s
    signature verifies over its body under ``domain``.

    Raises:
        error: a non-canonical encoding (e.g. true where an integer belongs), or a signature
            that is not 64 bytes or does not verify.
    """
    if record.encoded != data:
        raise error(f"malformed {what}: not its canonical encoding")
    if len(record.signature) != SIGNATURE_BYTES:
        raise error(f"malformed {what}: a signature is {SIGNATURE_BYTES} bytes")
    try:
        verify_signature(signer, domain, record.body(), record.signature)
    except BadSignature as problem:
        raise error(f"{what}: {problem}") from problem
    return record
