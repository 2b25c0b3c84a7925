"""Issue 12, class 1, for stores poisoned before ingest checked author chains: verify names the
fork and the doc that does not load; repair quarantines the later change of the fork and what
depends on it, keeps everything else, and the doc loads again (also after reopening); idempotent.

The poison is written straight through the backend, as ``Repo.apply`` stored it before.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import native
from protocol.identity import Identity
from protocol.tips import SignedTip
from store.errors import CorruptionError
from store.repo import Repo
from store.verify import ProblemKind
from store_helpers import FILE_DOC, NOW_MS, OTHER_DOC, append, forked_pair, read_text, shared_space, store_unchecked, sync


@dataclass
class Poisoned:
    bob: Repo  # a fresh repo over the poisoned backend
    space: bytes
    kept: list[bytes]  # hashes repair must keep
    forked: bytes  # the later change of the fork
    dependent: bytes  # carol's change made on top of the fork
    carol: Repo  # carol's own store (which never took the fork)


def kinds(problems: list) -> set[tuple[ProblemKind, bytes]]:
    return {(problem.kind, problem.subject) for problem in problems}


@pytest.fixture
def poisoned(make_repo, alice: Identity, bob: Identity, carol: Identity) -> Poisoned:
    """Alice forks her own chain (both sides signed); bob's store took both, and a change carol
    made on the later side, and one she made on the honest history; another doc is untouched."""
    alice_repo, bob_repo, carol_repo = make_repo(alice, name="alice"), make_repo(bob, name="bob"), make_repo(carol, name="carol")
    space = shared_space(alice_repo, bob_repo, carol_repo)
    base = append(alice_repo, space, FILE_DOC, "base\n")
    other = append(alice_repo, space, OTHER_DOC, "other\n")
    for doc in (FILE_DOC, OTHER_DOC):
        sync(alice_repo, bob_repo, space, doc)
    sync(alice_repo, carol_repo, space, FILE_DOC)
    left, right = forked_pair(alice_repo, space, FILE_DOC)
    honest = append(carol_repo, space, FILE_DOC, "carol\n")  # on base: survives
    on_right = carol_repo.document(space, FILE_DOC).fork(carol.public_key)
    on_right.apply_changes([right.raw])
    on_right.put(native.ROOT, "seen", "right")
    on_right.commit("on the fork", time=NOW_MS // 1000)
    dependent = native.decode_change(on_right.get_last_local_change())

    def signed(identity: Identity, change: native.DecodedChange) -> SignedTip:
        return SignedTip.sign(identity, space, FILE_DOC, change.hash)

    store_unchecked(bob_repo, space, FILE_DOC, left, signed(alice, left))
    store_unchecked(bob_repo, space, FILE_DOC, right, signed(alice, right))
    honest_change = native.decode_change(carol_repo.changes_since(space, FILE_DOC, [base])[0])
    store_unchecked(bob_repo, space, FILE_DOC, honest_change, signed(carol, honest_change))
    store_unchecked(bob_repo, space, FILE_DOC, dependent)  # carol's tip stays on her honest change
    return Poisoned(Repo(bob_repo.backend, bob), space, [base, left.hash, honest, other], right.hash, dependent.hash, carol_repo)


def test_the_poisoned_doc_does_not_load_and_verify_names_the_fork(poisoned: Poisoned) -> None:
    with pytest.raises(CorruptionError, match="does not load"):
        poisoned.bob.document(poisoned.space, FILE_DOC)
    found = kinds(poisoned.bob.verify())
    assert (ProblemKind.CHAIN_FORKED, poisoned.forked) in found
    assert (ProblemKind.DOC_UNLOADABLE, FILE_DOC) in found
    assert read_text(poisoned.bob, poisoned.space, OTHER_DOC) == "other\n"  # only that doc is hurt


def test_repair_quarantines_the_fork_and_its_dependents_and_keeps_the_rest(poisoned: Poisoned, make_repo, backend_kind, bob) -> None:
    repo, space = poisoned.bob, poisoned.space
    before = repo.version(space)

    report = repo.repair(NOW_MS)

    assert [(doc.doc, doc.changes, doc.loads) for doc in report.docs] == [(FILE_DOC, (poisoned.forked, poisoned.dependent), True)]
    assert "second change for seq" in report.docs[0].reasons[0]
    assert repo.verify() == []
    document = repo.document(space, FILE_DOC)
    assert document.get(native.ROOT, "fork") == "left" and document.get(native.ROOT, "seen") is None
    assert read_text(repo, space, FILE_DOC) == "base\ncarol\n"
    for doc, change_hash in [(FILE_DOC, h) for h in poisoned.kept[:3]] + [(OTHER_DOC, poisoned.kept[3])]:
        assert repo.has_change(space, doc, change_hash)
    assert not repo.has_change(space, FILE_DOC, poisoned.forked)
    quarantined = repo.backend.quarantined(space)
    assert [(row.kind, row.hash) for row in quarantined] == [("change", poisoned.forked), ("change", poisoned.dependent)]
    assert native.decode_change(quarantined[0].raw).hash == poisoned.forked  # kept byte for byte
    # the version index no longer names the quarantined changes, and reads at every version work
    assert repo.version(space) == before
    for version in range(1, before + 1):
        heads = repo.heads_at(space, version).get(FILE_DOC, [])
        assert poisoned.forked not in heads and poisoned.dependent not in heads
        assert all(repo.has_change(space, FILE_DOC, head) for head in heads)
    assert repo.repair(NOW_MS).docs == ()  # idempotent
    if backend_kind == "sqlite":
        reopened = make_repo(bob, name="bob")
        assert read_text(reopened, space, FILE_DOC) == "base\ncarol\n" and reopened.verify() == []


def test_after_repair_the_doc_takes_honest_changes_again(poisoned: Poisoned) -> None:
    repo, space, carol_repo = poisoned.bob, poisoned.space, poisoned.carol
    repo.repair(NOW_MS)
    append(carol_repo, space, FILE_DOC, "more\n")
    changes = [native.decode_change(raw) for raw in carol_repo.changes_since(space, FILE_DOC, repo.heads(space, FILE_DOC))]
    fresh = [change for change in changes if change.hash != poisoned.dependent]
    assert repo.apply(space, FILE_DOC, fresh, carol_repo.tips(space, FILE_DOC), now_ms=NOW_MS)
    assert read_text(repo, space, FILE_DOC) == "base\ncarol\nmore\n"


def test_a_change_automerge_refuses_is_found_by_the_load_search_and_quarantined(make_repo, alice, bob, carol) -> None:
    """Not a fork: a change whose ops name an actor the doc never saw (deps stripped)."""
    from store_helpers import without_deps

    alice_repo, bob_repo, carol_repo = make_repo(alice, name="alice"), make_repo(bob, name="bob"), make_repo(carol, name="carol")
    space = shared_space(alice_repo, bob_repo, carol_repo)
    bob_repo.document(space, FILE_DOC).put(native.ROOT, "owner", "bob")
    mine = bob_repo.commit(space, FILE_DOC, "owner", now_ms=NOW_MS)
    append(alice_repo, space, FILE_DOC, "alice\n")
    sync(alice_repo, carol_repo, space, FILE_DOC)
    append(carol_repo, space, FILE_DOC, "carol\n")
    crafted = without_deps(carol_repo.document(space, FILE_DOC).get_last_local_change())
    store_unchecked(bob_repo, space, FILE_DOC, crafted, SignedTip.sign(carol, space, FILE_DOC, crafted.hash))
    repo = Repo(bob_repo.backend, bob)
    assert (ProblemKind.DOC_UNLOADABLE, FILE_DOC) in kinds(repo.verify())

    report = repo.repair(NOW_MS)

    assert report.docs[0].changes == (crafted.hash,) and report.docs[0].tips == (carol.public_key,)
    assert "Automerge refuses" in report.docs[0].reasons[0]
    assert repo.verify() == [] and repo.heads(space, FILE_DOC) == [mine]
    assert repo.document(space, FILE_DOC).get(native.ROOT, "owner") == "bob"


def test_maintain_skips_the_doc_that_does_not_load_and_maintains_the_others(poisoned: Poisoned, bob) -> None:
    repo = Repo(poisoned.bob.backend, bob, snapshot_every=1)  # every doc is due a snapshot
    assert repo.maintain(NOW_MS) == 1
    assert repo.last_maintenance.damaged_docs == 1
    assert [snapshot.doc for snapshot in repo.backend.doc_snapshots(poisoned.space)] == [OTHER_DOC]
    repo.repair(NOW_MS)
    assert repo.maintain(NOW_MS) == 1 and repo.last_maintenance.damaged_docs == 0
    assert repo.verify() == []
