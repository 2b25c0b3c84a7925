"""What one peer may make us spend, as token buckets: one per kind of work, each named.

A correct peer's cost is bounded by what it has to say; a hostile one's only by what we let it
make us do. Every piece of work a peer can cause beyond reading its bytes — decoding ops,
checking signatures, building replies, holding state for docs we do not hold — draws from a
bucket of that peer's session (libp2p's resource manager has the same shape: scopes with
limits). A bucket refills at a steady rate up to its burst, so an honest catch-up that needs a
large burst gets it, and a peer that keeps asking for more than the rate waits or is refused.
The dear buckets (decoding, signatures) start nearly empty and fill within a second or two: a
key costs nothing to make, so what a fresh session may make us spend at once must be small —
else every throwaway key buys a full burst of work before its first offense bans it.

What happens when a bucket is empty is the caller's choice, made in protocol/replicator.py:
received work that can be asked for again is dropped and asked for later (``deferred``); work
nobody asked for counts against the peer's score.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.limits import SyncConfig


@dataclass(slots=True)
class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_s``; time comes in as milliseconds."""

    rate_per_s: float
    burst: float
    tokens: float
    updated_ms: int

    @classmethod
    def full(cls, rate_per_s: float, burst: float, now_ms: int) -> TokenBucket:
        return cls(rate_per_s, burst, burst, now_ms)

    @classmethod
    def starting(cls, rate_per_s: float, burst: float, start: float, now_ms: int) -> TokenBucket:
        """A bucket that holds ``start`` at first and fills up to ``burst`` at its rate."""
        return cls(rate_per_s, burst, min(start, burst), now_ms)

    def _refill(self, now_ms: int) -> None:
        elapsed_s = max(0, now_ms - self.updated_ms) / 1000
        self.tokens = min(self.burst, self.tokens + elapsed_s * self.rate_per_s)
        self.updated_ms = now_ms

    def take(self, amount: float, now_ms: int) -> bool:
        """Spend ``amount`` if the bucket holds it; False (and nothing spent) if not.

        An amount above the burst is allowed from a full bucket, which it leaves in debt: a
        single honest request larger than the burst (one huge document) is served, once.
        """
        if self.can_pay(amount, now_ms):
            self.tokens -= amount
            return True
        return False

    def can_pay(self, amount: float, now_ms: int) -> bool:
        """Whether ``take(amount)`` would succeed now (nothing spent)."""
        self._refill(now_ms)
        return self.tokens >= amount or self.tokens >= self.burst > 0

    def available(self, now_ms: int) -> float:
        self._refill(now_ms)
        return self.tokens

    def ready_ms(self, amount: float, now_ms: int) -> int:
        """When ``amount`` (capped at the burst) will be available."""
        self._refill(now_ms)
        lacking = min(amount, self.burst) - self.tokens
        return now_ms if lacking <= 0 else now_ms + int(lacking / self.rate_per_s * 1000) + 1


@dataclass(slots=True)
class PeerBudget:
    """The buckets of one session."""

    frames: TokenBucket
    # Our side: requests and replies we send the peer are paced within half of what its own
    # frames budget allows us (both sides run these limits), so a catch-up of many small docs
    # never looks like a flood to it; the other half is left for live pushes and the rest.
    sent_frames: TokenBucket
    decoded_ops: TokenBucket
    signature_checks: TokenBucket
    reply_bytes: TokenBucket

    @classmethod
    def start(cls, limits: SyncConfig, now_ms: int) -> PeerBudget:
        return cls(
            frames=TokenBucket.full(limits.frames_per_second_max, limits.frames_burst_max, now_ms),
            sent_frames=TokenBucket.full(limits.frames_per_second_max / 2, limits.frames_burst_max / 2, now_ms),
            decoded_ops=TokenBucket.starting(limits.decoded_ops_per_s, limits.decoded_ops_burst, limits.decoded_ops_start, now_ms),
            signature_checks=TokenBucket.starting(
                limits.signature_checks_per_s, limits.signature_checks_burst, limits.signature_checks_start, now_ms
            ),
            reply_bytes=TokenBucket.full(limits.reply_bytes_per_s, limits.reply_bytes_burst, now_ms),
        )

    def take(self, name: str, amount: float, now_ms: int) -> bool:
        """Spend from the bucket called ``name`` (the caller counts, in its stats, when it cannot)."""
        bucket: TokenBucket = getattr(self, name)
        return bucket.take(amount, now_ms)
