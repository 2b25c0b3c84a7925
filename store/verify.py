"""``verify``: recheck everything the store holds against its hash or signature; change nothing.

What is checked, and why it is enough to trust the store:

- every change: its bytes decode and hash to the hash it is stored under, and the row's actor,
  seq and deps agree with the bytes (compacted changes are regenerated from their snapshot);
- every doc: each dep is stored, the stored heads are the changes no other change depends on;
- every tip: its signature verifies and it names a stored change by its own author, and every
  change is covered by its author's tip (``protocol.tips.coverage``, the same rule sync applies);
- every block hashes to its CID; every doc snapshot loads to the heads and change count it
  records; every manifest is signed and lists exactly the doc snapshots stored;
- every genesis verifies and hashes to its space id; every capability record decodes, verifies
  and hashes to the hash it is stored under; a change a revocation took out of its doc is
  listed with the reason (store/capabilities.py), kept in the quarantine, not materialised;
  so is a change ingest refused as unauthorised (store/refused.py). Both are ``expected``
  (``EXPECTED_KINDS``): kept and explained, not damage;
- every author's changes form one chain, as Automerge requires (seq 1, 2, ... in causal order;
  two changes for one seq are a forked chain), and every doc loads in Automerge. A store
  written before ingest checked this may hold a fork; ``store/repair.py`` quarantines it.

Problems come back as ``Problem`` records, one per damaged object, so a caller can repair
exactly those (for instance by fetching them from a peer).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import native
from protocol.errors import BadSignature, WireError
from protocol.identity import PUBLIC_KEY_BYTES
from protocol.space import Genesis
from protocol.tips import SignedTip, coverage
from store import capabilities, snapshots
from store.backend import Backend
from store.blocks import Block, checked, cid_text
from store.errors import CorruptionError, StoreError
from store.records import ChangeRow, DocRow, DocSnapshot, QuarantineRow


class ProblemKind(enum.Enum):
    CHANGE_DAMAGED = "change-damaged"  # bytes do not decode, or hash or metadata disagree
    CHANGE_MISSING = "change-missing"  # compacted, and its snapshot cannot regenerate it
    MISSING_DEP = "missing-dep"  # a change depends on a change the doc does not hold
    DOC_MISMATCH = "doc-mismatch"  # stored heads or change count disagree with the changes
    TIP_INVALID = "tip-invalid"  # bad signature, or names a missing change or another author's
    UNCOVERED_CHANGE = "uncovered-change"  # no tip of its author reaches it
    BLOCK_DAMAGED = "block-damaged"  # bytes no longer hash to the CID
    SNAPSHOT_DAMAGED = "snapshot-damaged"  # missing/damaged chunks, or loads to other heads
    MANIFEST_DAMAGED = "manifest-damaged"  # missing, unsigned, or disagrees with the snapshots
    GENESIS_DAMAGED = "genesis-damaged"
    CHAIN_FORKED = "author-chain-forked"  # a second stored change for an author's seq
    CHAIN_BROKEN = "author-chain-broken"  # a seq that does not continue its author's chain
    DOC_UNLOADABLE = "doc-unloadable"  # Automerge refuses the doc's stored changes
    CAPABILITY_DAMAGED = "capability-record-damaged"  # does not decode or verify, or another hash
    REVOKED_CHANGE = "revoked-change"  # taken out of its doc by a revocation (kept in the quarantine)
    REFUSED_CHANGE = "refused-change"  # refused at ingest as unauthorised (kept, store/refused.py)


# Kinds that are not damage: changes kept and explained, never materialised, as a private
# space's rules mean them to be. ``Problem.expected``; ``distspace doctor`` lists them apart
# and does not fail on them (node.verify's ``kept``).
EXPECTED_KINDS = frozenset({ProblemKind.REVOKED_CHANGE, ProblemKind.REFUSED_CHANGE})


@dataclass(frozen=True, slots=True)
class Problem:
    """One damaged object: what is wrong, where, and which object (hash, CID or key)."""

    kind: ProblemKind
    space: bytes | None
    doc: bytes | None
    subject: bytes
    detail: str

    @property
    def expected(self) -> bool:
        """Not damage: a change kept and explained (``EXPECTED_KINDS``)."""
        return self.kind in EXPECTED_KINDS


def decode_genesis(space: bytes, encoded: bytes) -> Genesis:
    """A stored genesis, checked: it must verify and hash to the id it is stored under."""
    try:
        genesis = Genesis.decode(encoded)
    except (WireError, BadSignature) as error:
        raise CorruptionError(f"the genesis record of space {space.hex()[:12]} is damaged: {error}") from error
    if genesis.space_id != space:
        raise CorruptionError(f"the genesis record stored for space {space.hex()[:12]} names another space")
    return genesis


def change_damage(row: ChangeRow, raw: bytes) -> str | None:
    """Why ``raw`` cannot be the change ``row`` describes, or None if it is."""
    try:
        decoded = native.decode_change(raw)
    except native.AutomergeError as error:
        return f"its bytes do not decode ({error})"
    if decoded.hash != row.hash:
        return f"its bytes hash to {decoded.hash.hex()}"
    if (decoded.actor, decoded.seq, tuple(decoded.deps)) != (row.actor, row.seq, row.deps):
        return "its actor, seq or deps columns disagree with its bytes"
    return None


def raise_for_corrupt_change(rows: Sequence[ChangeRow]) -> None:
    """Raise CorruptionError naming the first row whose bytes are damaged, if there is one."""
    for row in rows:
        damage = row.raw is not None and change_damage(row, row.raw)
        if damage:
            raise CorruptionError(
                f"change {row.hash.hex()} of doc {row.doc.hex()} in space {row.space.hex()[:12]} is damaged: {damage}"
            )


def verify_backend(backend: Backend) -> list[Problem]:
    """Every problem in the store, in a stable order; reads only."""
    problems: list[Problem] = []
    for cid, data in backend.blocks():
        try:
            Block(cid, data).check()
        except StoreError as error:
            problems.append(Problem(ProblemKind.BLOCK_DAMAGED, None, None, cid, str(error)))
    for space, encoded in backend.spaces():
        try:
            decode_genesis(space, encoded)
        except CorruptionError as error:
            problems.append(Problem(ProblemKind.GENESIS_DAMAGED, space, None, space, str(error)))
        for record_hash, detail in capabilities.damaged_records(backend, space):
            problems.append(Problem(ProblemKind.CAPABILITY_DAMAGED, space, None, record_hash, f"capability record {detail}"))
        revoked: dict[bytes, list[QuarantineRow]] = {}
        for held in backend.quarantined(space):
            if held.kind == "change" and capabilities.is_revoked_reason(held.reason):
                problems.append(Problem(ProblemKind.REVOKED_CHANGE, space, held.doc, held.hash, f"not materialised, {held.reason}"))
                revoked.setdefault(held.doc, []).append(held)
        quarantined_tips = [held for held in backend.quarantined(space) if held.kind == "tip"] if revoked else []
        for row in backend.docs(space):
            taken = revoked.get(row.doc, [])
            hashes = {held.hash for held in taken}
            tips = [held for held in quarantined_tips if held.doc == row.doc and held.hash in hashes]
            problems.extend(_verify_doc(backend, row, taken, tips))
        problems.extend(_verify_manifest(backend, space))
        for kept in backend.refused_changes(space):
            detail = f"not materialised, refused at ingest: {kept.reason}"
            problems.append(Problem(ProblemKind.REFUSED_CHANGE, space, kept.doc, kept.hash, detail))
    return problems


def _verify_doc(
    backend: Backend, row: DocRow, revoked: Sequence[QuarantineRow] = (), revoked_tips: Sequence[QuarantineRow] = ()
) -> list[Problem]:
    changes = backend.changes(row.space, row.doc)
    problems, saved = _verify_snapshot(backend, row)
    for change in changes:
        raw = change.raw
        if raw is None:
            raw = saved.get_change_by_hash(change.hash) if saved is not None else None
            if raw is None:
                problems.append(_problem(ProblemKind.CHANGE_MISSING, row, change.hash, "not held by a snapshot"))
                continue
        damage = change_damage(change, raw)
        if damage:
            problems.append(_problem(ProblemKind.CHANGE_DAMAGED, row, change.hash, damage))
    damaged = bool(problems)  # damaged bytes explain a doc that does not load: not reported twice
    problems += [_problem(kind, row, change.hash, detail) for change, kind, detail in chain_breaks(changes)]
    load_error = None if damaged else load_problem(backend, row, changes, saved)
    if load_error is not None:
        problems.append(_problem(ProblemKind.DOC_UNLOADABLE, row, row.doc, load_error))
    return problems + _verify_graph(row, changes) + _verify_tips(backend, row, changes, revoked, revoked_tips)


def chain_breaks(changes: Sequence[ChangeRow]) -> list[tuple[ChangeRow, ProblemKind, str]]:
    """The changes (in position order, which is causal) that fork or skip their author's chain.

    Walking in causal order, an author's next change must have the seq after its previous
    one; of two for one seq, the one stored first is the chain and the later one the fork.
    A change depending on a break is not reported on its own (it goes with it on repair).
    """
    next_seq: dict[bytes, int] = {}
    broken: set[bytes] = set()
    found = []
    for change in changes:
        if any(dep in broken for dep in change.deps):
            broken.add(change.hash)
            continue
        expected = next_seq.get(change.actor, 1)
        if change.seq == expected:
            next_seq[change.actor] = expected + 1
            continue
        broken.add(change.hash)
        author = change.actor.hex()[:12]
        if change.seq < expected:
            found.append((change, ProblemKind.CHAIN_FORKED, f"a second change for seq {change.seq} of author {author}"))
        else:
            found.append((change, ProblemKind.CHAIN_BROKEN, f"seq {change.seq} of author {author} follows seq {expected - 1}"))
    return found


def load_problem(
    backend: Backend, row: DocRow, changes: Sequence[ChangeRow], saved: native.Document | None
) -> str | None:
    """Why Automerge refuses the doc as stored (its snapshot, then the later changes), or None.

    ``saved`` is the doc's checked snapshot, loaded (it is changed here)."""
    snapshot = backend.doc_snapshot(row.space, row.doc)
    tail = changes[snapshot.change_count :] if snapshot is not None else changes
    if snapshot is not None and saved is None:
        return None  # the snapshot is damaged: reported as such, and there is nothing to load onto
    if any(change.raw is None for change in tail):
        return None  # reported as missing changes
    raws = [change.raw for change in tail if change.raw is not None]
    try:
        if saved is None:
            native.Document.load(b"".join(raws))
        else:
            saved.apply_changes(raws)
    except native.AutomergeError as error:
        return f"Automerge refuses the doc: {error}"
    return None


def _problem(kind: ProblemKind, row: DocRow, subject: bytes, detail: str) -> Problem:
    return Problem(kind, row.space, row.doc, subject, detail)


def _verify_snapshot(backend: Backend, row: DocRow) -> tuple[list[Problem], native.Document | None]:
    """The doc's snapshot, loaded and checked (heads and change count), or the problem with it."""
    snapshot = backend.doc_snapshot(row.space, row.doc)
    if snapshot is None:
        return [], None
    try:
        return [], snapshots.load_checked(snapshot, lambda cid: checked(cid, backend.block(cid)))
    except StoreError as error:
        return [_problem(ProblemKind.SNAPSHOT_DAMAGED, row, row.doc, str(error))], None


def _verify_graph(row: DocRow, changes: Sequence[ChangeRow]) -> list[Problem]:
    """Every dep stored; the doc row's heads and count are what the changes say."""
    problems = []
    stored = {change.hash for change in changes}
    depended = set()
    for change in changes:
        for dep in change.deps:
            depended.add(dep)
            if dep not in stored:
                detail = f"depends on {dep.hex()}, which is not stored"
                problems.append(_problem(ProblemKind.MISSING_DEP, row, change.hash, detail))
    heads = tuple(sorted(stored - depended))
    if heads != row.heads or len(changes) != row.change_count:
        detail = f"stored heads/count {len(row.heads)}/{row.change_count}, the changes say {len(heads)}/{len(changes)}"
        problems.append(_problem(ProblemKind.DOC_MISMATCH, row, row.doc, detail))
    return problems


def _verify_tips(
    backend: Backend,
    row: DocRow,
    changes: Sequence[ChangeRow],
    revoked: Sequence[QuarantineRow] = (),
    revoked_tips: Sequence[QuarantineRow] = (),
) -> list[Problem]:
    """Every tip valid, and every change reached by a valid tip of its own author — counting
    the tips a revocation took out with the changes they name (``revoked``): a revoked key's
    kept changes stay covered by its tip over a change that is no longer materialised."""
    problems = []
    by_hash = {change.hash: change for change in changes}
    valid = []
    for stored in backend.tips(row.space, row.doc):
        try:
            tip = SignedTip(stored.space, stored.doc, stored.author, stored.change_hash, stored.signature)
            tip.verify()
        except (WireError, BadSignature) as error:
            problems.append(_problem(ProblemKind.TIP_INVALID, row, stored.author, f"tip does not verify: {error}"))
            continue
        change = by_hash.get(tip.change_hash)
        if change is None or change.actor != tip.author:
            detail = "tip names a change that is not stored or not its author's"
            problems.append(_problem(ProblemKind.TIP_INVALID, row, tip.author, detail))
            continue
        valid.append(tip)
    authored = []
    for change in changes:
        if len(change.actor) == PUBLIC_KEY_BYTES:
            authored.append(change)
        else:
            problems.append(_problem(ProblemKind.UNCOVERED_CHANGE, row, change.hash, "its actor is not a public key"))
    # coverage reads only hash, actor and deps. The rows carry them (checked against the bytes
    # above), so a change whose bytes are damaged does not cut its ancestors off their tip.
    for held in revoked_tips:
        tip = SignedTip(row.space, row.doc, held.actor, held.hash, held.raw or b"")
        try:
            tip.verify()
        except (WireError, BadSignature):
            continue
        valid.append(tip)
    result = coverage(
        row.space,
        row.doc,
        cast(Sequence[native.DecodedChange], [*authored, *revoked]),
        valid,
        is_stored=lambda change_hash: False,
        is_verified=lambda tip: True,
    )
    taken = {held.hash for held in revoked}
    for uncovered in result.uncovered:
        if uncovered.hash in taken:
            continue
        detail = f"no tip of author {uncovered.actor.hex()[:12]} reaches it"
        problems.append(_problem(ProblemKind.UNCOVERED_CHANGE, row, uncovered.hash, detail))
    return problems


def _verify_manifest(backend: Backend, space: bytes) -> list[Problem]:
    latest = backend.space_snapshot(space)
    if latest is None:
        return []
    try:
        data = checked(latest.manifest_cid, backend.block(latest.manifest_cid))
        manifest = snapshots.Manifest.load(Block(latest.manifest_cid, data), lambda cid: checked(cid, backend.block(cid)))
    except StoreError as error:
        return [Problem(ProblemKind.MANIFEST_DAMAGED, space, None, latest.manifest_cid, str(error))]
    listed = {(e.doc, e.heads, e.change_count, e.chunks) for e in manifest.docs}
    stored = {_entry(s) for s in backend.doc_snapshots(space)}
    if manifest.space != space or listed != stored:
        detail = f"manifest {cid_text(latest.manifest_cid)} disagrees with the stored doc snapshots"
        return [Problem(ProblemKind.MANIFEST_DAMAGED, space, None, latest.manifest_cid, detail)]
    return []


def _entry(snapshot: DocSnapshot) -> tuple[bytes, tuple[bytes, ...], int, tuple[bytes, ...]]:
    return (snapshot.doc, snapshot.heads, snapshot.change_count, snapshot.chunks)
