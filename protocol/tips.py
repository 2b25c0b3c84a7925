"""Signed tips: how a peer proves who wrote every change without signing every keystroke.

Every Automerge change's actor id is its author's Ed25519 public key. An author signs only a
*tip* — (space, doc, author, change hash) — for its latest change. Because a change hash
commits to the change's deps, a valid tip authenticates that change and every earlier change
by the same author reachable from it through deps. So a batch of N changes costs one
signature, and a forger cannot add, alter or reorder an author's changes below a tip.

``coverage`` is the one rule: given a batch of decoded changes and some tips, which changes
are covered by a valid tip from their own author.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import native

from protocol.errors import BadSignature, InvalidActor, WireError, WrongAuthor
from protocol.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity, verify_signature
from protocol.space import DOC_ID_BYTES, SPACE_ID_BYTES

CHANGE_HASH_BYTES = 32
DOMAIN_TIP = b"distspace/tip/v1\x00"


@dataclass(frozen=True, slots=True)
class SignedTip:
    """An author's signature over its latest change in one doc of one space."""

    space: bytes
    doc: bytes
    author: bytes
    change_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        lengths = (
            (self.space, SPACE_ID_BYTES, "space id"),
            (self.doc, DOC_ID_BYTES, "doc id"),
            (self.author, PUBLIC_KEY_BYTES, "author key"),
            (self.change_hash, CHANGE_HASH_BYTES, "change hash"),
            (self.signature, SIGNATURE_BYTES, "signature"),
        )
        for value, expected, what in lengths:
            if not isinstance(value, bytes) or len(value) != expected:
                raise WireError(f"a tip's {what} is {expected} bytes")

    @staticmethod
    def _message(space: bytes, doc: bytes, author: bytes, change_hash: bytes) -> bytes:
        return space + doc + author + change_hash

    @classmethod
    def sign(cls, identity: Identity, space: bytes, doc: bytes, change_hash: bytes) -> SignedTip:
        message = cls._message(space, doc, identity.public_key, change_hash)
        return cls(space, doc, identity.public_key, change_hash, identity.sign(DOMAIN_TIP, message))

    def verify(self) -> None:
        """Raise BadSignature unless the author really signed this (space, doc, hash)."""
        message = self._message(self.space, self.doc, self.author, self.change_hash)
        verify_signature(self.author, DOMAIN_TIP, message, self.signature)

    def to_wire(self) -> list[bytes]:
        return [self.space, self.doc, self.author, self.change_hash, self.signature]

    @classmethod
    def from_wire(cls, fields: object) -> SignedTip:
        match fields:
            case [bytes(), bytes(), bytes(), bytes(), bytes()]:
                return cls(*fields)
            case _:
                raise WireError("a tip is a list of five byte strings")


@dataclass(frozen=True, slots=True)
class Coverage:
    """The outcome of checking a batch: which changes are covered, which still wait."""

    covered: tuple[native.DecodedChange, ...]
    uncovered: tuple[native.DecodedChange, ...]
    valid_tips: tuple[SignedTip, ...]


def check_actor(change: native.DecodedChange) -> None:
    if len(change.actor) != PUBLIC_KEY_BYTES:
        raise InvalidActor(f"change {change.hash.hex()[:12]} has a {len(change.actor)}-byte actor id, not a public key")


def coverage(
    space: bytes,
    doc: bytes,
    changes: Sequence[native.DecodedChange],
    tips: Iterable[SignedTip],
    *,
    is_stored: Callable[[bytes], bool],
    is_verified: Callable[[SignedTip], bool] = lambda tip: False,
) -> Coverage:
    """Split ``changes`` into those covered by a valid tip from their author and the rest.

    A tip covers its own change and every change by the same author reachable from it through
    deps inside this batch (changes already stored were covered when they were stored).

    Args:
        is_stored: whether a change hash is already in the store (and so already verified).
        is_verified: a cache of tips whose signature was already checked, to skip the cost.

    Raises:
        InvalidActor: a change's actor is not a 32-byte key.
        BadSignature: a tip for this space and doc does not verify.
        WrongAuthor: a tip's hash names a change written by someone else.
        WireError: a tip for another space or doc (a replay).
    """
    by_hash = {}
    for change in changes:
        check_actor(change)
        by_hash[change.hash] = change
    covered: set[bytes] = set()
    valid: list[SignedTip] = []
    for tip in tips:
        if tip.space != space or tip.doc != doc:
            raise WireError("tip for another space or doc")
        tip_change = by_hash.get(tip.change_hash)
        if tip_change is None:
            if not is_stored(tip.change_hash):
                continue  # its change has not arrived yet; the caller may keep the tip pending
        elif tip_change.actor != tip.author:
            raise WrongAuthor(f"tip by {tip.author.hex()[:12]} names a change by {tip_change.actor.hex()[:12]}")
        if not is_verified(tip):
            tip.verify()
        valid.append(tip)
        _mark_reachable(tip, by_hash, covered)
    return Coverage(
        covered=tuple(c for c in changes if c.hash in covered),
        uncovered=tuple(c for c in changes if c.hash not in covered),
        valid_tips=tuple(valid),
    )


def _mark_reachable(tip: SignedTip, by_hash: dict[bytes, native.DecodedChange], covered: set[bytes]) -> None:
    """Mark the author's changes reachable from the tip through deps within the batch."""
    stack = [tip.change_hash]
    seen: set[bytes] = set()
    while stack:
        change = by_hash.get(stack.pop())
        if change is None or change.hash in seen:
            continue
        seen.add(change.hash)
        if change.actor == tip.author:
            covered.add(change.hash)
        stack.extend(change.deps)


__all__ = ["BadSignature", "Coverage", "SignedTip", "check_actor", "coverage"]
