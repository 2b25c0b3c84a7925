"""Refused changes: what ingest would not apply in a private space, kept with the reason.

Ingest (protocol/ingest.py) refuses a covered change whose author the capability log does not
allow (a reader's write, a scoped writer's path outside its scope, a revoked key's later change,
a stranger's) — not for good, since our log may lag. Before, only a counter and a log line told
of it; now the store keeps each one (``ChangeStore.note_refused``): its hash, doc, author, seq,
the reason, when it was first refused, and its bytes — kept for causality, never materialised,
never served to a peer. ``verify`` lists them as kept, not as damage (store/verify.py
``EXPECTED_KINDS``), and ``history.log {refused: true}`` shows them.

Bounds: at most ``REFUSED_CHANGES_KEPT`` per space, the oldest dropped first (a hostile member
can fill its own space's list, never grow the store); bytes kept only up to
``REFUSED_CHANGE_BYTES_MAX`` a change (a bigger one keeps its row, not its bytes). A change
refused again stays one row, with its first time and reason. Once such a change is stored after
all (a grant or an index entry that came late lets the replicator's next ask bring it), its row
goes, in the same transaction: a row means "refused, and not held".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import native
from protocol.store_api import Unauthorised
from store.records import RefusedRow

# Refused changes kept per space: a few screens of `distspace log --refused`, ~1,000 x (a row's
# ~150 bytes + its bytes) — at most ~64 MB with every one at the byte bound, a few hundred KB
# for keystroke-sized changes.
REFUSED_CHANGES_KEPT: Final = 1_000
# A refused change's bytes are kept up to this size (a typical edit is well under 1 KB; a whole
# file pasted in is a few tens of KB); a bigger one is listed without its bytes.
REFUSED_CHANGE_BYTES_MAX: Final = 64 * 1024


def rows_of(space: bytes, doc: bytes, refused: Sequence[Unauthorised], now_ms: int) -> list[RefusedRow]:
    """The rows to keep for ``refused`` (each once), their bytes read for seq and time."""
    rows: dict[bytes, RefusedRow] = {}
    for unauthorised in refused:
        if unauthorised.change in rows:
            continue
        seq, time_s, raw = unauthorised.seq, 0, unauthorised.raw or None
        if raw is not None:
            try:
                decoded = native.decode_change(raw)
            except native.AutomergeError:
                raw = None  # verified by ingest, so never in practice: keep the row, not bytes we cannot read
            else:
                seq, time_s = decoded.seq, decoded.time
                if len(raw) > REFUSED_CHANGE_BYTES_MAX:
                    raw = None
        rows[unauthorised.change] = RefusedRow(
            space, unauthorised.change, doc, unauthorised.author, seq, time_s, raw, unauthorised.reason, now_ms
        )
    return list(rows.values())


def over_budget(kept: Iterable[bytes], new: int) -> list[bytes]:
    """The oldest of ``kept`` (hashes, oldest first) to drop so that ``new`` more fit the budget."""
    held = list(kept)
    excess = len(held) + new - REFUSED_CHANGES_KEPT
    return held[: max(0, excess)]
