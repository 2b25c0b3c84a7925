"""Remote changes in: which of a batch the store takes, in what order, and the trial apply.

``Repo.apply`` stores changes already verified as covered by signed tips. Of a batch, a change
already stored is skipped, and one whose deps are neither stored nor in the batch is kept out
(the protocol keeps it pending); the rest are stored in causal order (``accept``).

Automerge refuses some signed, well-formed changes — a second change for an author's seq, a seq
that skips, ops naming an actor the doc does not know — and a store holding one could never load
the doc again, here or on any peer it forwards to. A cheap check of each author's chain (one
index seek per author, ``check_chains``) refuses the forks and gaps first; the trial
(``trial_apply``) catches the rest, and a refused apply stores nothing (``RefusedChanges``).
Each ``apply_changes`` call costs time in proportion to the document (~12–17 ms at 50k changes,
however few the changes), so the trial is the apply: it runs on the cached document when that
holds exactly the stored changes, which so stays current. While the cached document holds
uncommitted local ops (which Automerge would commit on its own), the trial runs on a copy loaded
from the store and the changes wait, stored, to reach the cached document once it is clean
(``after_trial``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import native
from protocol.causal import causal_order
from store.backend import Backend
from store.doc_cache import CachedDoc, DocCache, DocKey
from store.errors import RefusedChanges
from store.records import ChangeRow

# Remote changes a cached document may owe before they are applied without waiting for a
# read: bounds the memory they hold (~120 B each) while keeping apply calls, whose cost grows
# with the document, rare.
MAX_WAITING_CHANGES = 10_000


def change_row(
    space: bytes, doc: bytes, position: int, change: native.DecodedChange, change_hash: bytes, deps: list[bytes]
) -> ChangeRow:
    """The stored row of a decoded change (hash and deps passed in: each read of them builds bytes)."""
    return ChangeRow(space, doc, change_hash, position, change.actor, change.seq, tuple(deps), change.time, change.raw)


def accept(backend: Backend, space: bytes, doc: bytes, changes: Sequence[native.DecodedChange], start: int) -> list[ChangeRow]:
    """Rows for the new changes whose deps are all stored or accepted before them, in causal
    order, numbered from ``start`` (the doc's change count)."""
    # Every attribute read of a DecodedChange builds new bytes objects: read hash and deps once.
    batch: dict[bytes, tuple[native.DecodedChange, list[bytes]]] = {}
    for change in changes:
        change_hash = change.hash
        if change_hash not in batch:
            batch[change_hash] = (change, change.deps)
    outside = {dep for _, deps in batch.values() for dep in deps if dep not in batch}
    stored = backend.stored_hashes(space, doc, [*batch, *outside])
    ordered = causal_order({change_hash: deps for change_hash, (_, deps) in batch.items()}, stored)
    return [change_row(space, doc, start + i, batch[h][0], h, batch[h][1]) for i, h in enumerate(ordered)]


def check_chains(doc: bytes, rows: Sequence[ChangeRow], stored_seq: Callable[[bytes], int]) -> None:
    """Each author's changes must continue its stored chain: seq = the previous one + 1.

    ``stored_seq(author)`` is the highest seq the store holds of the author in the doc (0:
    none). Automerge refuses a second change for a seq it holds, and assumes an author's first
    change has seq 1 (it panics on a later one): cheaper to refuse them here, by name, than to
    find out in the trial apply.

    Raises:
        RefusedChanges: a change whose seq is already taken (a forked chain) or skips one.
    """
    newest: dict[bytes, int] = {}
    for row in rows:  # causal order: an author's seq s-1 comes before its seq s
        previous = newest.get(row.actor)
        if previous is None:
            previous = stored_seq(row.actor)
        if row.seq != previous + 1:
            why = "a second change for a seq it holds (a forked author chain)" if row.seq <= previous else "a gap"
            raise RefusedChanges(
                f"change {row.hash.hex()} of doc {doc.hex()} by {row.actor.hex()[:12]} has seq {row.seq}, but"
                f" the author's chain ends at seq {previous}: {why}; nothing of the batch is stored"
            )
        newest[row.actor] = row.seq


def trial_apply(cache: DocCache, key: DocKey, rows: Sequence[ChangeRow], load: Callable[[], native.Document]) -> native.Document:
    """Apply the rows to the doc's document before anything is stored; the document used.

    The cached document when it holds exactly the stored changes (it stays current: the trial
    was the apply), else a copy from ``load`` (the store's changes).

    Raises:
        RefusedChanges: Automerge refuses them; a cached document that may hold part of them is
            dropped.
    """
    cached = cache.get(key)
    if cached is not None:
        cache.catch_up(cached)
    clean = cached is not None and not cached.waiting and cached.clean()
    document = cached.document if cached is not None and clean else load()
    try:
        document.apply_changes([row.raw for row in rows if row.raw is not None])
    except native.AutomergeError as error:
        if clean:
            cache.drop(key)
        more = f" (or one of the {len(rows) - 1} after it)" if len(rows) > 1 else ""
        raise RefusedChanges(
            f"Automerge refuses change {rows[0].hash.hex()}{more} of doc {key[1].hex()}: {error}; nothing of the"
            " batch is stored"
        ) from error
    return document


def after_trial(cache: DocCache, key: DocKey, document: native.Document, rows: Sequence[ChangeRow]) -> None:
    """Once stored: the trial document becomes (or stays) the cached one, or the changes wait
    for a cached document that holds uncommitted work."""
    cached = cache.get(key)
    if cached is None:
        cache.keep(CachedDoc(key, document, document.heads()))
    elif cached.document is document:
        cached.synced_heads = document.heads()
        cache.resize(cached)
    else:
        cached.waiting.extend(row.raw for row in rows if row.raw is not None)
        if len(cached.waiting) >= MAX_WAITING_CHANGES:
            cache.catch_up(cached)


__all__ = ["MAX_WAITING_CHANGES", "accept", "after_trial", "change_row", "check_chains", "trial_apply"]
