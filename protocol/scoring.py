"""How much each kind of misbehaviour counts against a peer, and the decaying score itself.

Anything a correct peer can never do on a reliable stream — broken framing, forged or
misattributed tips, an author forking its own chain, messages out of order, floods — scores
``DISCONNECT_SCORE`` at once. Lesser faults that a correct peer can cause by bad luck or by
relaying another's fault add up slowly and are forgiven with a half-life: a change whose tip
never came (the connection broke), an unusable change it only forwarded (it accepted it before
the change it conflicts with reached it), a well-formed message over one of our limits (the
session ends, without a ban), work pushed beyond its budget.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.errors import (
    BadSignature,
    Flood,
    InvalidActor,
    OverLimit,
    RemoteProtocolError,
    UnknownChange,
    WireError,
    WrongAuthor,
)
from protocol.limits import DISCONNECT_SCORE, SCORE_HALF_LIFE_MS


class Offense(enum.Enum):
    MALFORMED = "malformed"  # bytes that are not a valid message, or over a limit
    UNEXPECTED = "unexpected"  # a message not allowed now, or a Hello that lies
    FORGERY = "forgery"  # a tip that does not verify, or names another author's or no change
    INVALID_ACTOR = "invalid-actor"  # a change whose actor is not a public key
    FLOOD = "flood"  # frames faster than allowed, or more pending changes than allowed
    UNCOVERED_EXPIRED = "uncovered-expired"  # changes whose tip never arrived
    EQUIVOCATION = "equivocation"  # an author sent us a change that forks its own chain
    UNUSABLE_FORWARDED = "unusable-forwarded"  # relayed an unusable change (protocol/ingest.py)
    OVER_LIMIT = "over-limit"  # a well-formed message over one of our limits
    COSTLY = "costly"  # pushed more work than its budget pays

    @property
    def points(self) -> int:
        return _LESSER_POINTS.get(self, DISCONNECT_SCORE)


# Ten lesser faults within a half-life, or four messages over a limit, make a disconnect.
_LESSER_POINTS = {
    Offense.UNCOVERED_EXPIRED: 10,
    Offense.UNUSABLE_FORWARDED: 10,
    Offense.COSTLY: 10,
    Offense.OVER_LIMIT: 25,
}


def offense_of(error: RemoteProtocolError) -> Offense:
    """The offense a remote error shows; order matters, subclasses before their bases."""
    if isinstance(error, Flood):
        return Offense.FLOOD
    if isinstance(error, OverLimit):
        return Offense.OVER_LIMIT
    if isinstance(error, (BadSignature, WrongAuthor, UnknownChange)):
        return Offense.FORGERY
    if isinstance(error, InvalidActor):
        return Offense.INVALID_ACTOR
    if isinstance(error, WireError):
        return Offense.MALFORMED
    return Offense.UNEXPECTED


@dataclass(slots=True)
class PeerScore:
    """A peer's misbehaviour score, halving every SCORE_HALF_LIFE_MS, and its ban."""

    score: float = 0.0
    updated_ms: int = 0
    banned_until_ms: int = 0

    def add(self, offense: Offense, now_ms: int) -> float:
        elapsed = max(0, now_ms - self.updated_ms)
        self.score = self.score * 0.5 ** (elapsed / SCORE_HALF_LIFE_MS) + offense.points
        self.updated_ms = now_ms
        return self.score

    def banned(self, now_ms: int) -> bool:
        return now_ms < self.banned_until_ms

    def ban(self, until_ms: int) -> None:
        """Refuse the peer until then; it starts over with a clean score afterwards."""
        self.banned_until_ms = until_ms
        self.score = 0.0

    @property
    def should_disconnect(self) -> bool:
        return self.score >= DISCONNECT_SCORE
