"""Who may do what in a private space: the capability log and the pure rule that reads it.

An **open** space admits every key with role ``write`` (the behaviour before private spaces). In
a **private** space the genesis creator is the root admin, never revocable, and the capability
log decides everything else. The log is a set of signed records (protocol/capability_records.py),
Grants and Revocations, each naming as ``parents`` the hashes of records its issuer had seen.
The evaluation below is a pure function of that set, so every peer holding the same records
reaches the same verdicts.

The rule, with the reason for each choice:

1. Records are read in one fixed linear order, (height in the parents DAG, hash): every peer
   sorts the same set the same way, and a record always follows its ancestors.
2. A parent we do not hold is ignored: a record is judged on the part of its ancestry we hold
   (an invalid record with a gap in it reads ``"missing parent"``). So a proof is a delegation
   chain of a few records, not the whole log, and a joiner's log judges its ticket before any
   sync. A gap can only hide authority or what a revoker had seen, and peers holding the same
   set still agree.
3. A record is valid iff its issuer is root, or holds authority through a *valid* grant naming
   it that is an *ancestor* of the record (an issuer can only use what it had seen), in force
   at the record's ``issued_ms`` and not spent. Grants to ANYONE confer access, never authority
   (else any stranger could sign grants). Revocations need an unscoped, non-invitation admin.
4. Delegation only narrows: role no higher, expiry no later, ``may_delegate`` only if the
   issuer may, and every glob textually one of the issuer's globs unless the issuer's grant is
   unscoped (glob containment is hard in general; textual equality is simple and sound).
   Admins may always delegate; other members only with ``may_delegate``.
5. ``uses=N`` makes the subject an invitation key: no access of its own (so a ticket's secret is
   not a login), at most N grants of its own rights or narrower (the first N valid ones in the
   fixed order count), no invitations and no revocations. The order is only the tie-break for
   redemptions made concurrently at different nodes, each of which admitted its joiner before
   their logs met: then one that sorts first takes the use from one already admitted, the same
   on every peer. A node never takes a proof that would displace anyone (protocol/replicator.py
   admits a joiner only if every record and member valid in its log stays so), so a second
   redemption at the node that holds the first is refused outright. A ticket is a secret, and
   a leaked one is contested by whoever holds it.
6. Strong removal: a record by a key that an effective revocation names is invalid unless it is
   an ancestor of that revocation (the revoker had seen it). Acts concurrent with a removal are
   what an attacker holding the key would race in, so they lose. A revocation is for the key
   and for good: a removed person comes back with a new key.
7. Conflicting revocations (A revokes B while B revokes A): the first effective one in the fixed
   order wins, since rule 6 then cuts off the other's issuer. A later revocation can invalidate
   an earlier record, so the order is read in passes, each taking this pass's verdicts for the
   records before the current one and the previous pass's for those after it, until the set of
   effective revocations is stable (at most their number + 1 passes; deterministic either way,
   so peers agree even on a pathological set).
8. The root admin and ANYONE cannot be revoked (root anchors the space; a public grant cannot be
   withdrawn in phase 1).

Data changes (Automerge changes, author = actor key) are allowed iff the space is open, the
author is root, or it holds ``write`` covering every path the change touches (valid grants in
force at the change's time); a revoked author's change to a doc stays only if its seq is at most
what the first effective revocation of it had seen of that doc. Read scopes are recorded but
not enforced by sync in phase 1. Times are the issuer's claims (``issued_ms``, a change's
``time_ms``): expiry bounds honest use, not a key holder who backdates.

Records name ``parents_for(issuer)`` as parents: the issuer's own grants (its authority, as
direct parents, so a proof needs no records between) and the log's heads (what the issuer had
seen, which is what a revocation keeps).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from protocol.capability_records import (
    ANYONE,
    DOMAIN_CAPABILITY,
    MAX_CAPABILITY_RECORDS,
    MAX_GLOB_CHARS,
    MAX_PARENTS,
    MAX_PATHS_PER_GRANT,
    MAX_RECORD_BYTES,
    MAX_REVOCATION_BYTES,
    MAX_SEEN_DOCS,
    Grant,
    Record,
    Revocation,
    Role,
    compile_globs,
    decode_record,
)
from protocol.errors import CapabilityError, CapabilityLimit
from protocol.space import Genesis

__all__ = [
    "ANYONE",
    "DOMAIN_CAPABILITY",
    "MAX_CAPABILITY_RECORDS",
    "MAX_GLOB_CHARS",
    "MAX_PARENTS",
    "MAX_PATHS_PER_GRANT",
    "MAX_RECORD_BYTES",
    "MAX_REVOCATION_BYTES",
    "MAX_SEEN_DOCS",
    "CapabilityLog",
    "Grant",
    "Member",
    "Record",
    "Revocation",
    "Role",
    "decode_record",
]

MISSING_PARENT = "missing parent"
_NO_AUTHORITY = ("issuer is not a member", "issuer is not an admin")


@dataclass(frozen=True, slots=True)
class Member:
    """One valid grant in force (or the root admin, whose ``grant`` is the space id)."""

    key: bytes
    role: Role
    paths: tuple[str, ...]
    expires_ms: int | None
    grant: bytes
    revoked: bool
    invitation: bool


@dataclass(slots=True)
class _Pass:
    verdicts: list[str | None]
    effective: frozenset[int]  # indexes of effective revocations
    authority: dict[int, int]  # record index -> index of the grant that authorised it


def _order(held: dict[bytes, Record]) -> list[Record]:
    """Every held record by (height over the held parents, hash)."""
    waiting: dict[bytes, int] = {}
    children: dict[bytes, list[bytes]] = {}
    height: dict[bytes, int] = {}
    queue: list[bytes] = []
    for record_hash, record in held.items():
        parents = [parent for parent in record.parents if parent in held]
        waiting[record_hash] = len(parents)
        for parent in parents:
            children.setdefault(parent, []).append(record_hash)
        if not parents:
            height[record_hash] = 0
            queue.append(record_hash)
    while queue:
        for child in children.get(queue.pop(), ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                height[child] = 1 + max(height[parent] for parent in held[child].parents if parent in held)
                queue.append(child)
    # a hash cycle cannot be built (a record would name its own hash); if one were, it is left out
    return [held[h] for h in sorted(height, key=lambda h: (height[h], h))]


def _shape_problem(record: Record, root: bytes) -> str | None:
    if isinstance(record, Grant):
        if record.subject == ANYONE and (record.role is Role.ADMIN or record.may_delegate or record.invitation):
            return "a grant to anyone confers access only"
        return None
    if record.subject == root:
        return "the root admin cannot be revoked"
    if record.subject == ANYONE:
        return "anyone cannot be revoked"
    return None


def _permits(authority: Grant, record: Record, uses_left: int | None) -> str | None:
    """Why ``authority`` (a valid grant naming the issuer) does not cover ``record``."""
    if not authority.in_force(record.issued_ms):
        if authority.expires_ms is not None and record.issued_ms >= authority.expires_ms:
            return "expired"
        return "the issuer's grant is not yet in force"
    if isinstance(record, Revocation):
        if authority.role is Role.ADMIN and not authority.paths and not authority.invitation:
            return None
        return "issuer is not an admin"
    may_delegate = authority.may_delegate or authority.role is Role.ADMIN
    if not authority.invitation and not may_delegate:
        return "issuer may not delegate"
    if authority.invitation and record.invitation:
        return "an invitation key may not issue invitations"
    if record.role > authority.role:
        return f"wider than the issuer's grant (role {record.role.label} over {authority.role.label})"
    if authority.paths and (not record.paths or not set(record.paths) <= set(authority.paths)):
        return "wider than the issuer's grant (paths)"
    if authority.expires_ms is not None and (record.expires_ms is None or record.expires_ms > authority.expires_ms):
        return "wider than the issuer's grant (expiry)"
    if record.may_delegate and not may_delegate:
        return "wider than the issuer's grant (may_delegate)"
    if uses_left == 0:
        return "uses spent"
    return None


def _pass(order: list[Record], ancestors: list[int], root: bytes, previous: frozenset[int]) -> _Pass:
    """One reading of the order (rule 7): revocations before a record as decided in this pass,
    those after it as the previous pass decided."""
    later: dict[bytes, list[int]] = {}
    for index in sorted(previous):
        later.setdefault(order[index].subject, []).append(index)
    revoked_now: set[bytes] = set()  # subjects of revocations effective earlier in this pass
    grants_to: dict[bytes, list[int]] = {}  # valid grants by exact subject, in order
    uses_left: dict[int, int] = {}
    verdicts: list[str | None] = []
    authority: dict[int, int] = {}
    for index, record in enumerate(order):
        reason = _shape_problem(record, root)
        issuer = record.issuer
        if reason is None and issuer != root:
            if issuer in revoked_now or any(v > index and not ancestors[v] >> index & 1 for v in later.get(issuer, ())):
                reason = "revoked"
            else:
                reason = "issuer is not an admin" if isinstance(record, Revocation) else "issuer is not a member"
                for candidate in grants_to.get(issuer, ()):
                    if ancestors[index] >> candidate & 1:
                        problem = _permits(_grant(order[candidate]), record, uses_left.get(candidate))
                        if problem is None:
                            authority[index] = candidate
                            if candidate in uses_left:
                                uses_left[candidate] -= 1
                            reason = None
                            break
                        if reason.startswith("issuer is not a"):
                            reason = problem
        verdicts.append(reason)
        if reason is None:
            if isinstance(record, Grant):
                grants_to.setdefault(record.subject, []).append(index)
                if record.uses is not None:
                    uses_left[index] = record.uses
            else:
                revoked_now.add(record.subject)
    effective = frozenset(i for i, r in enumerate(order) if isinstance(r, Revocation) and verdicts[i] is None)
    return _Pass(verdicts, effective, authority)


def _grant(record: Record) -> Grant:
    assert isinstance(record, Grant)  # grants_to only holds grants
    return record


class _Evaluation:
    """Everything the queries need, computed once per record set."""

    def __init__(self, held: dict[bytes, Record], root: bytes) -> None:
        self.order = _order(held)
        self.index = {record.hash: i for i, record in enumerate(self.order)}
        self.ancestors: list[int] = []
        gap: list[bool] = []  # a parent of the record or of an ancestor is not held
        for record in self.order:
            bits = 0
            missing = False
            for parent in record.parents:
                position = self.index.get(parent)
                if position is None:
                    missing = True
                else:
                    bits |= self.ancestors[position] | (1 << position)
                    missing = missing or gap[position]
            self.ancestors.append(bits)
            gap.append(missing)
        revocations = sum(isinstance(record, Revocation) for record in self.order)
        result = _pass(self.order, self.ancestors, root, frozenset())
        for _ in range(revocations):
            if not result.effective:
                break
            following = _pass(self.order, self.ancestors, root, result.effective)
            stable = following.effective == result.effective
            result = following
            if stable:
                break
        self.verdicts: dict[bytes, str | None] = {h: MISSING_PARENT for h in held}
        for record, verdict, incomplete in zip(self.order, result.verdicts, gap, strict=True):
            self.verdicts[record.hash] = MISSING_PARENT if incomplete and verdict in _NO_AUTHORITY else verdict
        self.authority = result.authority
        self.valid = [record for record, verdict in zip(self.order, result.verdicts, strict=True) if verdict is None]
        self.access: dict[bytes, list[Grant]] = {}  # valid non-invitation grants by subject
        self.invitations: dict[bytes, list[Grant]] = {}
        self.cutoff: dict[bytes, dict[bytes, int]] = {}  # revoked key -> doc -> last seq kept
        for record in self.valid:
            if isinstance(record, Grant):
                (self.invitations if record.invitation else self.access).setdefault(record.subject, []).append(record)
            else:
                self.cutoff.setdefault(record.subject, dict(record.seen))
        self._writes: dict[bytes, tuple[list[Grant], list[Grant]]] = {}

    def grants_of(self, key: bytes) -> tuple[list[Grant], list[Grant]]:
        """(write grants, other access grants) of ``key``, ANYONE's included: memoised, so a
        change costs a dict lookup and a look at one or two grants."""
        cached = self._writes.get(key)
        if cached is None:
            grants = self.access.get(key, []) + (self.access.get(ANYONE, []) if key != ANYONE else [])
            cached = ([g for g in grants if g.role >= Role.WRITE], [g for g in grants if g.role < Role.WRITE])
            self._writes[key] = cached
        return cached

    def write_refusal(self, author: bytes, paths: Sequence[str] | None, at_ms: int) -> str | None:
        writes, others = self.grants_of(author)
        in_force = [grant for grant in writes if grant.in_force(at_ms)]
        if not in_force:
            if writes:
                return "the author's write grant is not in force at the change's time (expired or not yet valid)"
            if any(grant.in_force(at_ms) for grant in others):
                best = max(grant.role for grant in others if grant.in_force(at_ms))
                return f"the author holds {best.label}, not write"
            return "the author is not a member of this space"
        if any(not grant.paths for grant in in_force):
            return None
        scope = ", ".join(sorted({glob for grant in in_force for glob in grant.paths}))
        if paths is None:
            return f"write is scoped to {scope}; a doc the index does not name needs unscoped write"
        specs = [compile_globs(grant.paths) for grant in in_force]
        for path in paths:
            if not any(spec.match_file(path) for spec in specs):
                return f"write is scoped to {scope}; {path} is outside it"
        return None

    def proof(self, grant: Grant) -> list[Record]:
        """``grant`` and, for it and each record on the way, the records from it up to the grant
        that authorised it (one hop with ``parents_for``), in order: what a peer holding none of
        them needs to find the grant valid."""
        needed: set[int] = set()
        work = [self.index[grant.hash]]
        while work:
            position = work.pop()
            if position in needed:
                continue
            needed.add(position)
            authority = self.authority.get(position)
            if authority is not None:
                path = self._path(position, authority)
                needed.update(path[:-1])
                work.append(authority)
        return [self.order[i] for i in sorted(needed)]

    def _path(self, start: int, goal: int) -> list[int]:
        """A shortest chain of parents from ``start`` (excluded) to its ancestor ``goal``."""
        previous: dict[int, int] = {start: start}
        frontier = [start]
        while frontier:
            following: list[int] = []
            for position in frontier:
                for parent in self.order[position].parents:
                    step = self.index.get(parent)
                    if step is None or step in previous or not (step == goal or self.ancestors[step] >> goal & 1):
                        continue
                    previous[step] = position
                    if step == goal:
                        path = [step]
                        while previous[path[-1]] != start:
                            path.append(previous[path[-1]])
                        return path[::-1]
                    following.append(step)
            frontier = following
        raise AssertionError("goal is an ancestor of start")  # the pass only takes authority among ancestors


class CapabilityLog:
    """The capability records of one space and the verdicts the rule (module docstring) gives them."""

    def __init__(self, genesis: Genesis, records: Iterable[Record] = ()) -> None:
        self.genesis = genesis
        self.space = genesis.space_id
        self.root = genesis.creator
        self.private = genesis.private
        self._held: dict[bytes, Record] = {}
        self._evaluation: _Evaluation | None = None
        self._digest: bytes | None = None
        for record in records:
            self.add(record)

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, record_hash: object) -> bool:
        return record_hash in self._held

    def get(self, record_hash: bytes) -> Record | None:
        return self._held.get(record_hash)

    def add(self, record: Record) -> bool:
        """Hold ``record``; False if already held.

        Raises:
            CapabilityError: a record of another space.
            CapabilityLimit: the log already holds MAX_CAPABILITY_RECORDS.
        """
        if record.space != self.space:
            raise CapabilityError("a capability record of another space")
        if record.hash in self._held:
            return False
        if len(self._held) >= MAX_CAPABILITY_RECORDS:
            raise CapabilityLimit(f"a space's capability log holds at most {MAX_CAPABILITY_RECORDS} records")
        self._held[record.hash] = record
        self._evaluation = None
        self._digest = None
        return True

    def _evaluated(self) -> _Evaluation:
        if self._evaluation is None:
            self._evaluation = _Evaluation(self._held, self.root)
        return self._evaluation

    def records(self) -> list[Record]:
        """Every held record, in the fixed order."""
        order = self._evaluated().order
        if len(order) == len(self._held):
            return list(order)
        placed = {record.hash for record in order}  # only a hash cycle is left out
        return order + [self._held[h] for h in sorted(self._held) if h not in placed]

    @property
    def heads(self) -> tuple[bytes, ...]:
        """The valid records no valid record names as parent (the latest MAX_PARENTS in order),
        sorted: the ``parents`` of a revocation we issue. Invalid records confer nothing, so
        naming them would only spend the parents budget."""
        valid = self._evaluated().valid
        named = {parent for record in valid for parent in record.parents}
        tips = [record.hash for record in valid if record.hash not in named]
        return tuple(sorted(tips[-MAX_PARENTS:]))

    def parents_for(self, issuer: bytes) -> tuple[bytes, ...]:
        """The ``parents`` of a record ``issuer`` signs now: its own valid grants (its authority,
        named directly so a proof is its delegation chain), then the heads, MAX_PARENTS at most."""
        evaluation = self._evaluated()
        own = [] if issuer == self.root else evaluation.access.get(issuer, []) + evaluation.invitations.get(issuer, [])
        chosen = list(dict.fromkeys([grant.hash for grant in reversed(own)] + list(self.heads)))
        return tuple(sorted(chosen[:MAX_PARENTS]))

    @property
    def digest(self) -> bytes:
        """sha256 over the sorted hashes of every held record: equal digests, equal logs."""
        if self._digest is None:
            self._digest = hashlib.sha256(b"".join(sorted(self._held))).digest()
        return self._digest

    def verdict(self, record_hash: bytes) -> str | None:
        """None for a valid record, else why not (a record we do not hold: ``"not held"``)."""
        if record_hash not in self._held:
            return "not held"
        return self._evaluated().verdicts[record_hash]

    def admits(self, key: bytes, now_ms: int) -> bool:
        """May ``key`` learn anything about this space now (role relay or more)?"""
        return not self.private or key == self.root or self.role(key, now_ms) is not None

    def role(self, key: bytes, now_ms: int | None = None) -> Role | None:
        """The highest role ``key`` holds over any path (at ``now_ms``; None: at any time)."""
        if key == self.root:
            return Role.ADMIN
        if not self.private:
            return Role.WRITE
        evaluation = self._evaluated()
        if key in evaluation.cutoff:
            return None
        writes, others = evaluation.grants_of(key)
        roles = [grant.role for grant in writes + others if now_ms is None or grant.in_force(now_ms)]
        return max(roles) if roles else None

    def change_refusal(self, author: bytes, doc: bytes, seq: int, paths: Sequence[str] | None, at_ms: int) -> str | None:
        """Why a data change may not be materialised (None: it may). ``paths`` None: the doc is
        not in the index, so only unscoped write covers it."""
        if not self.private or author == self.root:
            return None
        evaluation = self._evaluated()
        cutoff = evaluation.cutoff.get(author)
        if cutoff is not None and seq > cutoff.get(doc, 0):
            return f"the author's key was revoked; its changes to this doc after seq {cutoff.get(doc, 0)} are refused"
        return evaluation.write_refusal(author, paths, at_ms)

    def write_refusal(self, author: bytes, paths: Sequence[str], now_ms: int) -> str | None:
        """Why a local write to ``paths`` would be refused (None: allowed)."""
        if not self.private or author == self.root:
            return None
        evaluation = self._evaluated()
        if author in evaluation.cutoff:
            return "this key was revoked from the space"
        return evaluation.write_refusal(author, paths, now_ms)

    def members(self, now_ms: int) -> list[Member]:
        """The root admin, then every valid grant in force at ``now_ms`` (invitations included,
        revoked keys flagged), in the fixed order."""
        evaluation = self._evaluated()
        members = [Member(self.root, Role.ADMIN, (), None, self.space, revoked=False, invitation=False)]
        for record in evaluation.valid:
            if isinstance(record, Grant) and record.in_force(now_ms):
                revoked = record.subject in evaluation.cutoff
                members.append(Member(record.subject, record.role, record.paths, record.expires_ms, record.hash, revoked, record.invitation))
        return members

    def proof_for(self, key: bytes) -> list[Record]:
        """The records that admit ``key`` to a peer holding none of them: its best valid grant
        and its delegation chain (``_Evaluation.proof``), in order. [] for root, an open space,
        a revoked key or one with no grant."""
        if not self.private or key == self.root:
            return []
        evaluation = self._evaluated()
        if key in evaluation.cutoff:
            return []
        writes, others = evaluation.grants_of(key)
        grants = writes + others
        if not grants:
            return []
        best = max(grants, key=lambda g: (g.subject == key, g.role, g.expires_ms is None, g.expires_ms or 0, -evaluation.index[g.hash]))
        return evaluation.proof(best)

    def revocation_cutoff(self, key: bytes) -> dict[bytes, int] | None:
        """doc -> the last seq of ``key``'s changes kept, if an effective revocation names it."""
        cutoff = self._evaluated().cutoff.get(key)
        return None if cutoff is None else dict(cutoff)

    def revocation_cutoffs(self) -> dict[bytes, dict[bytes, int]]:
        """Every key an effective revocation names, with its cutoff (doc -> last seq kept)."""
        return {key: dict(cutoff) for key, cutoff in self._evaluated().cutoff.items()}
