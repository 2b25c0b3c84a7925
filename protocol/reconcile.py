"""What one peer knows about another's copy of each doc, and the space summary.

Reconciliation needs, per peer and doc, the answer to "which of my changes does the peer lack?".
The peer's reported heads answer it exactly when we know every one of them: it lacks
``changes_since(their heads)``. When it reports heads we do not know (it has changes we lack),
we fall back on heads we know both sides hold — every known head it has ever reported, and the
shared heads of earlier sessions — and send what is not reachable from those: a superset of
what it lacks, never less. In the usual reconnect after both sides worked offline, the shared
heads are exactly where they diverged, so the superset is exact.

The state is persisted per (peer, space, doc) through ``ChangeStore.save_sync_state``, and also
records the heads we last reported to the peer. A Hello then lists only docs whose heads moved
since: the receiver fills in the rest from its own record of us, and checks the result against
our space summary. When the records disagree (a crash lost one), the summary tells, and one
``StatusRequest`` fetches the full listing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from protocol import cbor
from protocol.errors import WireError
from protocol.limits import MAX_HEADS, MAX_SHARED_HEADS
from protocol.tips import CHANGE_HASH_BYTES

Heads = tuple[bytes, ...]


def space_summary(heads_by_doc: Mapping[bytes, Sequence[bytes]]) -> bytes:
    """A hash over every non-empty doc's heads: equal summaries mean identical spaces."""
    digest = hashlib.sha256()
    for doc in sorted(heads_by_doc):
        heads = sorted(heads_by_doc[doc])
        if heads:
            digest.update(doc + len(heads).to_bytes(2, "big") + b"".join(heads))
    return digest.digest()


@dataclass(frozen=True, slots=True)
class PeerDocState:
    """What we know of one peer's copy of one doc (persisted)."""

    their_heads: Heads = ()  # the heads the peer last reported; may name changes we lack
    shared: Heads = ()  # heads of changes we know both sides hold
    sent_heads: Heads = ()  # our heads as we last reported them to the peer

    def encode(self) -> bytes:
        return cbor.dumps([list(self.their_heads), list(self.shared), list(self.sent_heads)])

    @classmethod
    def decode(cls, data: bytes) -> PeerDocState:
        """Raises WireError for bytes that are not a state this code wrote."""
        match cbor.loads_canonical(data, "peer sync state"):
            case [list() as their, list() as shared, list() as sent] if all(
                isinstance(h, bytes) and len(h) == CHANGE_HASH_BYTES for h in [*their, *shared, *sent]
            ) and max(len(their), len(shared), len(sent)) <= MAX_HEADS:
                return cls(tuple(their), tuple(shared), tuple(sent))
            case _:
                raise WireError("malformed peer sync state")

    def base(self, is_known: Callable[[bytes], bool], also: Sequence[bytes] = ()) -> list[bytes]:
        """Heads we hold that the peer holds too (``also``: more we know it holds, first): what
        it lacks is our changes beyond them."""
        return _unique([*also, *(h for h in self.their_heads if is_known(h)), *self.shared])[:MAX_SHARED_HEADS]

    def reported(self, heads: Sequence[bytes], is_known: Callable[[bytes], bool]) -> PeerDocState:
        """The state after the peer reports ``heads``."""
        heads = tuple(sorted(heads))
        if all(is_known(h) for h in heads):
            return PeerDocState(heads, heads, self.sent_heads)
        shared = _unique([*(h for h in heads if is_known(h)), *self.base(is_known)])[:MAX_SHARED_HEADS]
        return PeerDocState(heads, tuple(shared), self.sent_heads)

    def told(self, heads: Sequence[bytes]) -> PeerDocState:
        """The state after we report our ``heads`` to the peer."""
        return PeerDocState(self.their_heads, self.shared, tuple(sorted(heads)))


def _unique(hashes: Sequence[bytes]) -> list[bytes]:
    return list(dict.fromkeys(hashes))
