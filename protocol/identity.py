"""Who a peer is: one Ed25519 key that is its libp2p identity, its author id and actor id.

Using a single key for all three means Automerge history alone says who wrote each op, and a
libp2p connection authenticates the same key whose signatures we check on tips.

Key files hold the 32-byte seed, are written 0600 and refused when other users can read them.
"""

from __future__ import annotations

import enum
import functools
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nacl.exceptions
import nacl.signing

from protocol.errors import BadSignature, IdentityError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
# Domain-separation prefixes: a signature made for one purpose never verifies for another.

_B58_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# libp2p PublicKey protobuf: field 1 (KeyType) = 1 (Ed25519), field 2 (Data) = 32 bytes.
_LIBP2P_ED25519_PREFIX = bytes([0x08, 0x01, 0x12, PUBLIC_KEY_BYTES])


def base58btc(data: bytes) -> str:
    """Bitcoin base58, the encoding of libp2p peer ids."""
    number = int.from_bytes(data, "big")
    encoded = bytearray()
    while number:
        number, remainder = divmod(number, 58)
        encoded.append(_B58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return (_B58_ALPHABET[:1] * leading_zeros + bytes(reversed(encoded))).decode()


def peer_id_of(public_key: bytes) -> str:
    """The libp2p peer id (identity multihash, base58btc) of an Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise IdentityError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")
    protobuf = _LIBP2P_ED25519_PREFIX + public_key
    return base58btc(bytes([0x00, len(protobuf)]) + protobuf)


# A signed tip reaches a node once per neighbour that forwards it, and a check costs ~60 µs: the
# most recent answers are remembered (the check is a pure function of its inputs).
VERIFY_MEMO_ENTRIES = 4096


def verify_signature(public_key: bytes, domain: bytes, message: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``domain + message``; raise BadSignature if it does not verify."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise BadSignature("malformed key or signature length")
    if not _signature_verifies(public_key, domain + message, signature):
        raise BadSignature("signature does not verify")


@functools.lru_cache(maxsize=VERIFY_MEMO_ENTRIES)
def _signature_verifies(public_key: bytes, signed: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(signed, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
        return False
    return True


class PeerKind(enum.Enum):
    """What a peer is, carried in its signed record so history can tell people from agents."""

    HUMAN = "human"
    AGENT = "agent"
    RELAY = "relay"


@dataclass(frozen=True, slots=True)
class Identity:
    """A private Ed25519 key with the ids derived from it."""

    seed: bytes = field(repr=False)
    public_key: bytes = field(init=False)
    _signing_key: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise IdentityError(f"an Ed25519 seed is {SEED_BYTES} bytes, got {len(self.seed)}")
        signing_key = nacl.signing.SigningKey(self.seed)
        object.__setattr__(self, "_signing_key", signing_key)
        object.__setattr__(self, "public_key", bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> Identity:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.public_key)

    def sign(self, domain: bytes, message: bytes) -> bytes:
        """A detached signature over ``domain + message``."""
        return self._signing_key.sign(domain + message).signature

    def save(self, path: Path) -> None:
        """Write the seed to a new file readable only by its owner."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as error:
            raise IdentityError(f"key file {path} already exists") from error
        with os.fdopen(fd, "wb") as key_file:
            key_file.write(self.seed)

    @classmethod
    def load(cls, path: Path) -> Identity:
        """Read a key file, refusing one that other users could read or that is malformed."""
        try:
            mode = path.stat().st_mode
        except FileNotFoundError as error:
            raise IdentityError(f"no key file at {path}") from error
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityError(f"key file {path} is accessible by other users; run: chmod 600 {path}")
        seed = path.read_bytes()
        if len(seed) != SEED_BYTES:
            raise IdentityError(f"key file {path} is malformed ({len(seed)} bytes, expected {SEED_BYTES})")
        return cls(seed)

    @classmethod
    def load_or_create(cls, path: Path) -> Identity:
        if path.exists():
            return cls.load(path)
        identity = cls.generate()
        identity.save(path)
        return identity
