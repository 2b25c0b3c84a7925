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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import native
from protocol.errors import InvalidActor, UnknownChange, WireError, WrongAuthor
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
        _check_lengths(
            (self.space, SPACE_ID_BYTES, "space id"),
            (self.doc, DOC_ID_BYTES, "doc id"),
            (self.author, PUBLIC_KEY_BYTES, "author key"),
            (self.change_hash, CHANGE_HASH_BYTES, "change hash"),
            (self.signature, SIGNATURE_BYTES, "signature"),
        )

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



@dataclass(frozen=True, slots=True)
class TipSignature:
    """A signed tip as it travels beside the changes it covers: which change it names — its
    position in the batch, or its hash — and the signature.

    The receiver rebuilds the full tip from what it knows rather than from what the sender
    claims: the space from its session, the doc from the batch, the author and hash from the
    named change as the receiver decoded it. So a tip replayed from another space or doc, or
    signed by anyone but the change's author, fails its signature check; and a tip costs 64
    bytes and an index on the wire instead of 160.
    """

    change: int | bytes  # position in the batch's change list, or a change hash
    signature: bytes

    def __post_init__(self) -> None:
        if isinstance(self.change, bytes):
            _check_lengths((self.change, CHANGE_HASH_BYTES, "change hash"))
        elif not isinstance(self.change, int) or isinstance(self.change, bool) or self.change < 0:
            raise WireError("a tip names its change by position or by hash")
        _check_lengths((self.signature, SIGNATURE_BYTES, "signature"))

    def resolve(
        self, space: bytes, doc: bytes, changes: Sequence[native.DecodedChange], by_hash: Mapping[bytes, native.DecodedChange]
    ) -> SignedTip:
        """The full tip, for the named change of this batch.

        Raises:
            WireError: the position is outside the batch.
            UnknownChange: the hash names no change of the batch.
            InvalidActor: the named change's actor is not a public key.
        """
        if isinstance(self.change, int):
            if self.change >= len(changes):
                raise WireError(f"a tip names change {self.change} of a batch of {len(changes)}")
            change = changes[self.change]
        elif self.change in by_hash:
            change = by_hash[self.change]
        else:
            raise UnknownChange(f"a tip names change {self.change.hex()[:12]}, which the batch does not hold")
        check_actor(change)
        return SignedTip(space, doc, change.actor, change.hash, self.signature)


def _check_lengths(*fields: tuple[object, int, str]) -> None:
    for value, expected, what in fields:
        if not isinstance(value, bytes) or len(value) != expected:
            raise WireError(f"a tip's {what} is {expected} bytes")


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
    deps inside this batch (changes already stored were covered when they were stored). A
    sender puts each tip beside the changes it covers, so a tip naming a change that is neither
    in the batch nor stored is a protocol violation, not something to wait for.

    Args:
        is_stored: whether a change hash is already in the store (and so already verified).
        is_verified: a cache of tips whose signature was already checked, to skip the cost.

    Raises:
        InvalidActor: a change's actor is not a 32-byte key.
        BadSignature: a tip for this space and doc does not verify.
        WrongAuthor: a tip's hash names a change written by someone else.
        UnknownChange: a tip's hash names a change neither in the batch nor stored.
        WireError: a tip for another space or doc (a replay).
    """
    by_hash = {}
    uncovered_by_author: dict[bytes, int] = {}
    for change in changes:
        check_actor(change)
        if change.hash not in by_hash:
            by_hash[change.hash] = change
            uncovered_by_author[change.actor] = uncovered_by_author.get(change.actor, 0) + 1
    covered: set[bytes] = set()
    valid: list[SignedTip] = []
    for tip in tips:
        if tip.space != space or tip.doc != doc:
            raise WireError("tip for another space or doc")
        tip_change = by_hash.get(tip.change_hash)
        if tip_change is None:
            if not is_stored(tip.change_hash):
                raise UnknownChange(f"tip by {tip.author.hex()[:12]} names change {tip.change_hash.hex()[:12]}, which was not sent")
        elif tip_change.actor != tip.author:
            raise WrongAuthor(f"tip by {tip.author.hex()[:12]} names a change by {tip_change.actor.hex()[:12]}")
        if not is_verified(tip):
            tip.verify()
        valid.append(tip)
        _mark_reachable(tip, by_hash, covered, uncovered_by_author)
    return Coverage(
        covered=tuple(c for c in by_hash.values() if c.hash in covered),
        uncovered=tuple(c for c in by_hash.values() if c.hash not in covered),
        valid_tips=tuple(valid),
    )


def _mark_reachable(
    tip: SignedTip,
    by_hash: dict[bytes, native.DecodedChange],
    covered: set[bytes],
    uncovered_by_author: dict[bytes, int],
) -> None:
    """Mark the author's changes reachable from the tip through deps within the batch.

    The walk stops as soon as every change of the author in the batch is covered, which in the
    usual batch (one tip on the author's newest change) is long before it has seen the batch.
    """
    stack = [tip.change_hash]
    seen: set[bytes] = set()
    while stack and uncovered_by_author.get(tip.author, 0):
        change = by_hash.get(stack.pop())
        if change is None or change.hash in seen:
            continue
        seen.add(change.hash)
        if change.actor == tip.author and change.hash not in covered:
            covered.add(change.hash)
            uncovered_by_author[tip.author] -= 1
        stack.extend(change.deps)


__all__ = ["Coverage", "SignedTip", "TipSignature", "check_actor", "coverage"]
