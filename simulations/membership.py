"""A private space in a run: the root's genesis and grants, its revocations, and what each
revoked writer signed.

The root (peer 0) signs every grant at the start, each naming the log's heads as parents (what
a real root does: ``CapabilityLog.parents_for``), so the log is one chain every member holds.
A revocation is signed as the root's node would at that instant: ``seen`` is what the root's
store holds of the writer's changes (``author_seq`` per doc). Which of the revoked writer's
changes must stay is then fixed — the cutoff — and the simulator uses it to keep the doomed
ones out of the convergence target; the checkers judge the stores by the logs they end with,
never by this bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from protocol.capabilities import CapabilityLog, Grant, Revocation, Role
from protocol.identity import Identity
from protocol.memory import MemoryChangeStore
from protocol.space import Genesis
from simulations.loop import EPOCH_MS

SPACE_NAME = "simulation"
SPACE_NONCE = bytes(16)  # a fixed nonce: the space id is a function of the root's key


def found_space(root: Identity, members: Sequence[tuple[bytes, Role]]) -> tuple[Genesis, CapabilityLog]:
    """A private genesis by ``root`` and its log holding a grant to each (key, role), unscoped
    and never expiring, in the given order."""
    genesis = Genesis.create(root, SPACE_NAME, EPOCH_MS, nonce=SPACE_NONCE, private=True)
    log = CapabilityLog(genesis)
    for subject, role in members:
        parents = log.parents_for(root.public_key)
        log.add(Grant.issue(root, space=genesis.space_id, subject=subject, role=role, issued_ms=EPOCH_MS, parents=parents))
    return genesis, log


def private_store(genesis: Genesis, records: Sequence[bytes]) -> MemoryChangeStore:
    """A store that enforces ``genesis``'s log, holding ``records``."""
    store = MemoryChangeStore(geneses=[genesis])
    store.add_capability_records(genesis.space_id, records)
    return store


def revocation(root: Identity, store: MemoryChangeStore, space: bytes, subject: bytes, now_ms: int) -> Revocation:
    """The root revokes ``subject``, keeping what its ``store`` holds of the subject's changes."""
    seen = [(doc, seq) for doc in store.doc_ids(space) if (seq := store.author_seq(space, doc, subject))]
    parents = store.capability_log(space).parents_for(root.public_key)
    return Revocation.issue(root, space=space, subject=subject, seen=seen, issued_ms=now_ms, parents=parents)


@dataclass(eq=False, slots=True)
class RevokedWriter:
    """A writer the root revokes during the run, and every change it signed."""

    node: int  # its index among the peers
    key: bytes
    signed: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)  # change -> (doc, seq)
    cutoff: dict[bytes, int] | None = None  # doc -> last seq kept, once revoked

    def doomed(self, change_hash: bytes) -> bool:
        """Signed by this writer above the cutoff of its (issued) revocation."""
        if self.cutoff is None or change_hash not in self.signed:
            return False
        doc, seq = self.signed[change_hash]
        return seq > self.cutoff.get(doc, 0)

    def counts(self) -> dict[str, int]:
        kept = sum(1 for h in self.signed if not self.doomed(h))
        return {"signed": len(self.signed), "kept": kept, "refused": len(self.signed) - kept}
