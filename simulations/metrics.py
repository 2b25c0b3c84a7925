"""What a run measures: when each change reached each honest peer, and convergence over time.

Delivery is counted per change from the moment its author signed it (typing that waits in the
buffer is the editor's choice, not the network's) until the peers acknowledged it. The time to
99% delivery of each edit is the figure gossip studies report (gossipsub: ~98% within 300 ms at
1,000 nodes in vyzo's simulator; Whiteblock: 99% within 305 ms at 95 nodes), so it is reported
for every run, beside the time to full delivery and to full convergence.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from simulations.loop import US_PER_MS

GOSSIP_ANCHOR_MS = 300  # the gossip studies' delivery deadline
DELIVERY_SHARE = 0.99


@dataclass(frozen=True, slots=True)
class Sample:
    time_ms: float
    delivered_share: float  # of (honest peer, change) pairs, over changes signed so far
    up_to_date_share: float  # of honest peers holding every change signed so far


@dataclass(slots=True)
class Ledger:
    """Every change an honest writer signed, and who acknowledged it when."""

    signed_us: dict[bytes, int] = field(default_factory=dict)
    signed_split: set[bytes] = field(default_factory=set)  # signed while a partition, an offline or a crashed peer split the network
    arrivals: dict[bytes, list[tuple[int, int]]] = field(default_factory=dict)  # change -> [(time, peer)]
    holders: Counter[bytes] = field(default_factory=Counter)  # change -> honest present peers holding it
    lost_with_leavers: int = 0  # changes only peers that left ever held

    def signed(self, change_hash: bytes, now_us: int, *, split: bool) -> None:
        self.signed_us.setdefault(change_hash, now_us)
        if split:
            self.signed_split.add(change_hash)

    def arrived(self, change_hash: bytes, peer: int, now_us: int) -> None:
        self.arrivals.setdefault(change_hash, []).append((now_us, peer))
        self.holders[change_hash] += 1

    def left(self, held: Iterable[bytes]) -> None:
        for change_hash in held:
            self.holders[change_hash] -= 1
            if not self.holders[change_hash]:
                del self.holders[change_hash]
                self.lost_with_leavers += 1

    def withdraw(self, hashes: Iterable[bytes]) -> None:
        """Changes no longer owed to anyone (a revocation refused them): out of every figure."""
        for change_hash in hashes:
            self.signed_us.pop(change_hash, None)
            self.signed_split.discard(change_hash)
            self.arrivals.pop(change_hash, None)
            self.holders.pop(change_hash, None)

    def delivery_ms(self, joined_us: Mapping[int, int], share: float, *, whole_only: bool = False) -> list[float]:
        """Per change: ms from signing until ``share`` of the peers had it, counting the peers
        of ``joined_us`` (peer -> when it joined) that had joined by the signing; with
        ``whole_only``, only changes signed while the network was whole."""
        latencies = []
        for change_hash, signed in self.signed_us.items():
            if whole_only and change_hash in self.signed_split:
                continue
            eligible = sum(joined <= signed for joined in joined_us.values())
            needed = max(1, math.ceil(share * eligible))
            times = sorted(t for t, peer in self.arrivals.get(change_hash, ()) if joined_us.get(peer, signed + 1) <= signed)
            if len(times) >= needed:
                latencies.append((times[needed - 1] - signed) / US_PER_MS)
        return latencies


    def backlog_cleared_us(self, since_us: int, peers: Collection[int]) -> int:
        """When the last of ``peers`` got the last change signed before ``since_us`` (a heal)."""
        return max(
            (t for change_hash, signed in self.signed_us.items() if signed <= since_us for t, peer in self.arrivals[change_hash] if peer in peers),
            default=since_us,
        )


def distribution(values: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max (nearest rank), in the values' unit, rounded to 0.1."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)], 1)

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": round(ordered[-1], 1)}


def share_within(values: list[float], limit: float) -> float | None:
    return round(sum(v <= limit for v in values) / len(values), 4) if values else None
