"""``repair``: make every doc load again by quarantining the changes that break it; keep the rest.

Before ingest checked author chains and trial-applied (issue 12), a store could take a change
Automerge refuses — a second change for an author's seq (a forked chain) with a valid tip, or
one whose ops name an actor the doc does not know — after which the doc, on every peer that
stored it, never loaded again. Repair undoes exactly that, nothing more:

1. Walking each doc's changes in causal order (``verify.chain_breaks``), a change that forks
   or skips its author's chain goes to the quarantine, with every change that depends on it:
   of two changes for one seq, the one stored first stays.
2. If the doc still does not load, the shortest prefix of its changes (after its snapshot)
   that fails ends with a change Automerge refuses: it goes too, with its dependents, and the
   search repeats (at most MAX_LOAD_ROUNDS times).
3. The doc's row (heads, count), its changes' positions (renumbered, still causal), the tips
   naming a quarantined change (quarantined too) and the version rows listing one (their
   heads step back to what is kept) are rewritten in one durable transaction.

Nothing is deleted: the ``quarantine`` table keeps every removed change's bytes and every
removed tip's signature, with the reason. Repair is idempotent: a store it has repaired has
nothing left to quarantine. A doc whose snapshot holds a change to quarantine is left alone and
reported (a snapshot is saved from a loaded doc, so a working store never has one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import native
from store import snapshots, verify
from store.backend import Backend
from store.blocks import checked
from store.errors import StoreError
from store.records import ChangeRow, DocRow, QuarantineRow, VersionRecord, VersionRow, WriteBatch

# Each round of the load search loads O(log n) prefixes of the doc; a doc broken by more than
# this many distinct refused changes (each found after the chain rule took the forks) is left
# for a person to look at rather than loaded dozens of times.
MAX_LOAD_ROUNDS = 16


@dataclass(frozen=True, slots=True)
class DocRepair:
    """What repair did to one doc."""

    space: bytes
    doc: bytes
    changes: tuple[bytes, ...]  # quarantined change hashes, in position order
    tips: tuple[bytes, ...]  # authors whose tip was quarantined
    reasons: tuple[str, ...]  # one per change that broke the doc (its dependents go with it)
    loads: bool  # whether the doc loads now
    note: str = ""  # why a doc was left alone


@dataclass(frozen=True, slots=True)
class RepairReport:
    docs: tuple[DocRepair, ...]

    @property
    def quarantined(self) -> int:
        return sum(len(repair.changes) for repair in self.docs)


def repair_backend(backend: Backend, now_ms: int) -> RepairReport:
    """Repair every doc of every space; writes only for docs that need it."""
    repaired = []
    for space, _ in backend.spaces():
        for row in backend.docs(space):
            result = _repair_doc(backend, row, now_ms)
            if result is not None:
                repaired.append(result)
    return RepairReport(tuple(repaired))


def _repair_doc(backend: Backend, row: DocRow, now_ms: int) -> DocRepair | None:
    changes = backend.changes(row.space, row.doc)
    reasons: dict[bytes, str] = {change.hash: detail for change, _, detail in verify.chain_breaks(changes)}
    out = with_dependents(changes, reasons)
    snapshot = backend.doc_snapshot(row.space, row.doc)
    start = snapshot.change_count if snapshot is not None else 0
    base = b""
    if snapshot is not None:
        try:
            base = snapshots.read_chunks(snapshot, lambda cid: checked(cid, backend.block(cid)))
        except StoreError as error:
            return _left_alone(row, reasons, f"its snapshot is damaged ({error})") if out else None
        if not _loads(base, []):
            return _left_alone(row, reasons, "its snapshot does not load")
    for _ in range(MAX_LOAD_ROUNDS):
        tail = [change for change in changes[start:] if change.hash not in out]
        refused = _first_refused(base, tail)
        if refused is None:
            break
        reasons[refused.hash] = f"Automerge refuses change {refused.hash.hex()[:12]} by {refused.actor.hex()[:12]}"
        out = with_dependents(changes, reasons)
    else:
        return _left_alone(row, reasons, f"more than {MAX_LOAD_ROUNDS} changes are refused")
    if not out:
        return None
    if any(change.hash in out for change in changes[:start]):
        return _left_alone(row, reasons, "its snapshot holds a change to quarantine")
    batch, tip_authors = quarantine_batch(backend, row, changes, out, reasons, "depends on a quarantined change", now_ms)
    backend.write(batch)
    return DocRepair(
        row.space,
        row.doc,
        tuple(_in_order(changes, out)),
        tip_authors,
        tuple(reasons[change_hash] for change_hash in _in_order(changes, set(reasons))),
        loads=True,
    )


def quarantine_batch(
    backend: Backend,
    row: DocRow,
    changes: Sequence[ChangeRow],
    out: set[bytes],
    reasons: dict[bytes, str],
    dependent_reason: str,
    now_ms: int,
) -> tuple[WriteBatch, tuple[bytes, ...]]:
    """The write that moves ``out`` (changes of the doc, closed under dependents) and the tips
    naming them into the quarantine, with the doc row, positions and version rows rewritten
    (step 3 of the module docstring); and the authors whose tip goes. A change of ``out`` not
    in ``reasons`` is quarantined with ``dependent_reason``. store/capabilities.py uses it too
    (a revocation cutoff)."""
    kept = [change for change in changes if change.hash not in out]
    batch = WriteBatch(docs=[DocRow(row.space, row.doc, _heads(kept), len(kept))])
    by_hash = {change.hash: change for change in changes}
    cause = {change_hash: reasons.get(change_hash, dependent_reason) for change_hash in out}
    batch.quarantined = [_quarantined(by_hash[change_hash], cause[change_hash], now_ms) for change_hash in _in_order(changes, out)]
    tips = [tip for tip in backend.tips(row.space, row.doc) if tip.change_hash in out]
    reason = "names a quarantined change"
    batch.quarantined += [
        QuarantineRow(row.space, row.doc, "tip", tip.change_hash, tip.author, tip.seq, (), 0, tip.signature, reason, now_ms)
        for tip in tips
    ]
    batch.rewritten_versions = _rewritten_versions(backend, row, by_hash, out)
    return batch, tuple(tip.author for tip in tips)


def _left_alone(row: DocRow, reasons: dict[bytes, str], note: str) -> DocRepair:
    return DocRepair(row.space, row.doc, (), (), tuple(reasons.values()), loads=False, note=f"not repaired: {note}")


def with_dependents(changes: Sequence[ChangeRow], roots: Iterable[bytes]) -> set[bytes]:
    """``roots`` and every change that depends on one, directly or not (position order is causal)."""
    out = set(roots)
    for change in changes:
        if change.hash not in out and any(dep in out for dep in change.deps):
            out.add(change.hash)
    return out


def _in_order(changes: Sequence[ChangeRow], hashes: set[bytes]) -> list[bytes]:
    return [change.hash for change in changes if change.hash in hashes]


def _loads(base: bytes, tail: Sequence[ChangeRow]) -> bool:
    try:
        native.Document.load(base + b"".join(change.raw or b"" for change in tail))
    except native.AutomergeError:
        return False
    return True


def _first_refused(base: bytes, tail: Sequence[ChangeRow]) -> ChangeRow | None:
    """The change ending the shortest prefix of ``tail`` that does not load onto ``base``
    (binary search: a prefix holding a refused change never loads; ``base`` alone loads), or
    None if all load."""
    if _loads(base, tail):
        return None
    good, bad = 0, len(tail)  # the prefix of ``good`` changes loads, that of ``bad`` does not
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if _loads(base, tail[:middle]) else (good, middle)
    return tail[bad - 1]


def _heads(kept: Sequence[ChangeRow]) -> tuple[bytes, ...]:
    depended = {dep for change in kept for dep in change.deps}
    return tuple(sorted(change.hash for change in kept if change.hash not in depended))


def _quarantined(change: ChangeRow, reason: str, now_ms: int) -> QuarantineRow:
    return QuarantineRow(
        change.space, change.doc, "change", change.hash, change.actor, change.seq, change.deps, change.time_s, change.raw,
        reason, now_ms,
    )


def _rewritten_versions(backend: Backend, row: DocRow, by_hash: dict[bytes, ChangeRow], out: set[bytes]) -> list[VersionRow]:
    """The doc's version rows that list a quarantined change, without it: their heads step
    back to the kept changes they reached, so reading at that version shows what is kept."""
    rewritten = []
    for record in backend.versions(row.space, 0, None):
        if record.doc != row.doc or not (out.intersection(record.heads) or out.intersection(record.hashes)):
            continue
        heads = _kept_frontier(record.heads, by_hash, out)
        hashes = tuple(change_hash for change_hash in record.hashes if change_hash not in out)
        rewritten.append(VersionRow(row.space, VersionRecord(record.number, record.doc, heads, hashes, record.origin, record.time_ms)))
    return rewritten


def _kept_frontier(heads: Sequence[bytes], by_hash: dict[bytes, ChangeRow], out: set[bytes]) -> tuple[bytes, ...]:
    """The kept changes reached from ``heads`` (a quarantined head is replaced by its kept deps)
    that no other of them depends on."""
    candidates: set[bytes] = set()
    stack = list(heads)
    while stack:
        change_hash = stack.pop()
        if change_hash in out:
            stack.extend(by_hash[change_hash].deps)
        else:
            candidates.add(change_hash)
    ancestors: set[bytes] = set()
    stack = [dep for change_hash in candidates if change_hash in by_hash for dep in by_hash[change_hash].deps]
    while stack:
        change_hash = stack.pop()
        if change_hash not in ancestors:
            ancestors.add(change_hash)
            stack.extend(by_hash[change_hash].deps if change_hash in by_hash else ())
    return tuple(sorted(candidates - ancestors))
