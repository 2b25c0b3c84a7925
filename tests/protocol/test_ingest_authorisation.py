"""Ingest authorisation in private spaces (protocol/ingest.py): a change the capability log does
not allow is not applied, reported as unauthorised (not refused for good: our log may lag),
takes its dependants with it, and is applied once the log allows it. Open spaces are untouched.

The store under test is the protocol's MemoryChangeStore (unscoped grants: no index paths are
needed) and, for path scopes, a Repo with a real tree written through a Workspace.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from harness import edits, identity_of, text_doc_id
from protocol.capabilities import Grant, Revocation, Role
from protocol.clock import FIXED_NOW_MS
from protocol.events import LocalCommit
from protocol.identity import Identity
from protocol.ingest import DEPENDS_ON_UNAUTHORISED, Ingested, PendingChanges, VerifiedTips, ingest
from protocol.memory import MemoryChangeStore
from protocol.space import INDEX_DOC_ID, Genesis
from protocol.store_api import ChangeStore
from protocol.tips import SignedTip
from store.repo import Repo
from store.tree import DIR, IndexEdit, file_id_of
from store.workspace import Workspace

root, writer, reader, stranger = (identity_of(name) for name in ("root", "writer", "reader", "stranger"))
PRIVATE = Genesis.create(root, "private", FIXED_NOW_MS, nonce=bytes(16), private=True)
OPEN = Genesis.create(root, "open", FIXED_NOW_MS, nonce=bytes(16))
DOC = text_doc_id("notes")


def grant(subject: Identity, role: Role = Role.WRITE, paths: tuple[str, ...] = (), space: bytes = PRIVATE.space_id) -> Grant:
    return Grant.issue(root, space=space, subject=subject.public_key, role=role, paths=paths, issued_ms=FIXED_NOW_MS)


class Author:
    """Someone editing elsewhere (on a store that enforces nothing): each commit is a batch."""

    def __init__(self, identity: Identity, space: bytes) -> None:
        self.identity = identity
        self.space = space
        self.store = MemoryChangeStore()

    def commit(self, *texts: str) -> LocalCommit:
        return self.store.commit(self.identity, self.space, DOC, edits(list(texts)), now_ms=FIXED_NOW_MS)

    def learn(self, other: Author) -> None:
        raw = other.store.changes_since(self.space, DOC, [])
        self.store.apply(self.space, DOC, [native.decode_change(r) for r in raw], other.store.tips(self.space, DOC))


class Receiver:
    """The store under test with the per-peer state ingest keeps."""

    def __init__(self, store: ChangeStore, space: bytes) -> None:
        self.store = store
        self.space = space
        self.pending = PendingChanges()
        self.verified = VerifiedTips()

    def take(self, changes: list[bytes], tips: list[SignedTip], doc: bytes = DOC) -> Ingested:
        decoded = [native.decode_change(raw) for raw in changes]
        return ingest(self.store, self.space, doc, decoded, tips, self.pending, self.verified, FIXED_NOW_MS)

    def deliver(self, commit: LocalCommit) -> Ingested:
        return self.take(list(commit.changes), [commit.tip], commit.doc)


def memory_receiver(genesis: Genesis = PRIVATE, *records: Grant | Revocation) -> Receiver:
    store = MemoryChangeStore(geneses=[genesis])
    store.add_capability_records(genesis.space_id, [record.encode() for record in records])
    return Receiver(store, genesis.space_id)


def test_an_open_space_applies_every_key_and_reports_nothing_unauthorised() -> None:
    receiver = memory_receiver(OPEN)
    commit = Author(stranger, OPEN.space_id).commit("a", "b")
    result = receiver.deliver(commit)
    assert len(result.applied) == 2 and not result.unauthorised and not result.refused


def test_a_memory_store_serves_a_space_it_has_no_genesis_for_as_open() -> None:
    space = b"\x07" * 32
    receiver = Receiver(MemoryChangeStore(), space)
    assert not receiver.store.capability_log(space).private
    assert len(receiver.deliver(Author(stranger, space).commit("a")).applied) == 1


def test_root_and_an_unscoped_writer_are_applied_a_stranger_and_a_reader_are_not() -> None:
    receiver = memory_receiver(PRIVATE, grant(writer), grant(reader, Role.READ))
    space = PRIVATE.space_id
    assert receiver.deliver(Author(root, space).commit("r")).applied
    assert receiver.deliver(Author(writer, space).commit("w")).applied
    for who, reason in ((stranger, "not a member"), (reader, "holds read, not write")):
        result = receiver.deliver(Author(who, space).commit("x", "y"))
        assert not result.applied and not result.refused  # not refused for good: no blame
        first, second = result.unauthorised
        assert reason in first.reason and first.author == who.public_key
        assert second.reason == DEPENDS_ON_UNAUTHORISED  # its own next change, seq 2
    assert len(receiver.pending) == 0  # nothing waits for what will not be applied now
    assert receiver.store.author_seq(space, DOC, stranger.public_key) == 0


def test_a_readers_forged_write_is_noted_with_its_reason_and_bytes_and_not_applied() -> None:
    """What the Replicator does with ``Ingested.unauthorised``: ``note_refused`` keeps each one
    (store/refused.py) — once, however often it is refused — and forgets it once it is stored."""
    receiver = memory_receiver(PRIVATE, grant(reader, Role.READ))
    store, space = receiver.store, PRIVATE.space_id
    assert isinstance(store, MemoryChangeStore)
    commit = Author(reader, space).commit("forged", "more")
    result = receiver.deliver(commit)
    store.note_refused(space, DOC, result.unauthorised)
    store.note_refused(space, DOC, receiver.deliver(commit).unauthorised)  # offered again
    noted = store.refused(space)
    assert [(doc, it.change, it.author, it.seq) for doc, it in noted] == [
        (DOC, native.decode_change(raw).hash, reader.public_key, seq) for seq, raw in enumerate(commit.changes, start=1)
    ]
    assert "holds read, not write" in noted[0][1].reason and noted[1][1].reason == DEPENDS_ON_UNAUTHORISED
    assert [it.raw for _, it in noted] == list(commit.changes)
    assert store.heads(space, DOC) == [] and store.author_seq(space, DOC, reader.public_key) == 0
    store.add_capability_records(space, [grant(reader).encode()])  # promoted to writer
    assert receiver.deliver(commit).applied
    assert store.refused(space) == []  # stored after all: no longer refused


def test_a_change_refused_while_the_log_lags_is_applied_once_the_grant_arrives() -> None:
    receiver = memory_receiver(PRIVATE)
    commit = Author(writer, PRIVATE.space_id).commit("late grant")
    assert receiver.deliver(commit).unauthorised
    assert receiver.store.add_capability_records(PRIVATE.space_id, [grant(writer).encode()])
    result = receiver.deliver(commit)  # the peer offers it again
    assert result.applied and not result.unauthorised


def test_a_members_change_built_on_a_strangers_is_unauthorised_with_it() -> None:
    space = PRIVATE.space_id
    receiver = memory_receiver(PRIVATE, grant(writer))
    mallory, honest = Author(stranger, space), Author(writer, space)
    forged = mallory.commit("forged")
    honest.learn(mallory)
    merged = honest.commit("on top")
    result = receiver.take([*forged.changes, *merged.changes], [forged.tip, merged.tip])
    assert not result.applied
    assert {u.change for u in result.unauthorised} == {native.decode_change(r).hash for r in (*forged.changes, *merged.changes)}
    assert len(receiver.pending) == 0


def test_waiting_dependants_of_an_unauthorised_change_stop_waiting() -> None:
    """A member's change that arrived before the stranger's change it builds on waits for it;
    once that change is unauthorised, the waiting one is dropped with it, not left to expire."""
    space = PRIVATE.space_id
    receiver = memory_receiver(PRIVATE, grant(writer))
    mallory, honest = Author(stranger, space), Author(writer, space)
    forged = mallory.commit("forged")
    honest.learn(mallory)
    merged = honest.commit("on top", "and more")
    first = receiver.deliver(merged)
    assert not first.applied and len(receiver.pending) == 2
    result = receiver.deliver(forged)
    assert not result.applied and len(result.unauthorised) == 3
    assert len(receiver.pending) == 0


def test_a_revoked_writer_keeps_what_the_revoker_had_seen_and_loses_the_rest() -> None:
    space = PRIVATE.space_id
    author = Author(writer, space)
    kept = author.commit("one", "two")
    later = author.commit("three")
    revoke = Revocation.issue(root, space=space, subject=writer.public_key, seen=[(DOC, 2)], issued_ms=FIXED_NOW_MS + 1, parents=[grant(writer).hash])
    receiver = memory_receiver(PRIVATE, grant(writer), revoke)
    assert len(receiver.deliver(kept).applied) == 2
    result = receiver.deliver(later)
    assert not result.applied and "revoked" in result.unauthorised[0].reason


# ----- convergence: the same verdicts whatever the arrival order (hypothesis) -----


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_what_is_applied_does_not_depend_on_arrival_order(data: st.DataObject) -> None:
    """Root, a writer and a stranger edit one doc, each now and then learning the others'
    changes; delivered in any order and batching, the receiver ends holding exactly the changes
    that do not depend on a stranger's, and nothing waits."""
    space = PRIVATE.space_id
    authors = {name: Author(identity_of(name), space) for name in ("root", "writer", "stranger")}
    commits: list[LocalCommit] = []
    for step in range(data.draw(st.integers(1, 8), label="commits")):
        name = data.draw(st.sampled_from(sorted(authors)), label=f"author {step}")
        for other in data.draw(st.lists(st.sampled_from(sorted(authors)), max_size=2), label=f"learns {step}"):
            if other != name:
                authors[name].learn(authors[other])
        commits.append(authors[name].commit(f"{name} {step}"))
    every = {native.decode_change(raw).hash: native.decode_change(raw) for c in commits for raw in c.changes}
    tainted: set[bytes] = set()
    for change_hash, change in every.items():  # commits are in causal order, changes too
        if change.actor == stranger.public_key or tainted.intersection(change.deps):
            tainted.add(change_hash)
    order = data.draw(st.permutations(range(len(commits))), label="arrival")
    receiver = memory_receiver(PRIVATE, grant(writer))
    for _ in range(len(commits) + 1):  # re-offered until nothing more applies, as sync does
        progressed = False
        for index in order:
            result = receiver.deliver(commits[index])
            progressed |= bool(result.applied)
            assert not result.refused
        if not progressed:
            break
    stored = {h for h in every if receiver.store.has_change(space, DOC, h)}
    assert stored == set(every) - tainted


# ----- path scopes, with a real tree (a Repo and its Workspace) -----


@pytest.fixture
def scoped() -> tuple[Repo, Repo, Workspace]:
    """Root's repo (the receiver) and the scoped writer's, both holding the private space and a
    grant of write on src/*; the writer's workspace over its own repo."""
    receiver, repo = Repo.open(None, root), Repo.open(None, writer)
    for each in (receiver, repo):
        each.add_space(PRIVATE)
        each.add_capability_records(PRIVATE.space_id, [grant(writer, paths=("src/*",)).encode()])
    Workspace(receiver, PRIVATE.space_id).mkdir("src", now_ms=FIXED_NOW_MS)
    Workspace(receiver, PRIVATE.space_id).mkdir("docs", now_ms=FIXED_NOW_MS)
    send(receiver, repo)
    return receiver, repo, Workspace(repo, PRIVATE.space_id)


def send(source: Repo, target: Repo) -> list[Ingested]:
    """Everything ``source`` holds that ``target`` lacks, index last (as a mirror or an editor
    makes them: a file's content doc before its entry), through ingest."""
    space = PRIVATE.space_id
    receiver = Receiver(target, space)
    docs = sorted(source.doc_ids(space), key=lambda doc: doc == INDEX_DOC_ID)
    results = []
    for _ in range(2):  # a file's content refused before its entry arrived is offered again
        for doc in docs:
            raw = source.changes_since(space, doc, target.heads(space, doc) if doc in target.doc_ids(space) else [])
            if raw:
                results.append(receiver.take(raw, source.tips(space, doc), doc))
    return results


def forge_index(repo: Repo, edit: object) -> None:
    """An index edit made around the Workspace (which would refuse it), as a hostile writer's."""
    document = repo.document(PRIVATE.space_id, INDEX_DOC_ID)
    assert callable(edit)
    edit(IndexEdit(document))
    repo.commit(PRIVATE.space_id, INDEX_DOC_ID, "forged", now_ms=FIXED_NOW_MS)


def test_a_scoped_writers_file_in_scope_is_applied(scoped: tuple[Repo, Repo, Workspace]) -> None:
    receiver, _, workspace = scoped
    workspace.write("src/a.py", "print(1)\n", now_ms=FIXED_NOW_MS)
    workspace.write("src/a.py", "print(2)\n", now_ms=FIXED_NOW_MS)
    results = send(workspace.repo, receiver)
    assert Workspace(receiver, PRIVATE.space_id).read("src/a.py") == "print(2)\n"
    first, index, retried = results  # the content came before its entry: unknown, then offered again
    assert "needs unscoped write" in first.unauthorised[0].reason and first.unauthorised[0].unknown_doc and index.applied
    assert retried.applied and not retried.unauthorised


def test_a_scoped_writers_forged_entry_outside_its_scope_is_not_materialised(scoped: tuple[Repo, Repo, Workspace]) -> None:
    receiver, repo, _ = scoped
    docs = Workspace(repo, PRIVATE.space_id).node("docs").file_id
    forge_index(repo, lambda edit: edit.add(file_id_of(b"\x05" * 16), DIR, None, docs, "evil"))
    results = send(repo, receiver)
    reasons = [u.reason for r in results for u in r.unauthorised]
    assert reasons and "docs/evil is outside it" in reasons[0]
    assert not Workspace(receiver, PRIVATE.space_id).exists("docs/evil")


def test_a_move_out_of_scope_is_refused_by_its_old_or_new_path(scoped: tuple[Repo, Repo, Workspace]) -> None:
    receiver, repo, workspace = scoped
    workspace.write("src/a.py", "x", now_ms=FIXED_NOW_MS)
    send(repo, receiver)
    file_id = workspace.node("src/a.py").file_id
    docs = workspace.node("docs").file_id
    forge_index(repo, lambda edit: edit.move(file_id, docs, "a.py"))
    reasons = [u.reason for r in send(repo, receiver) for u in r.unauthorised]
    assert reasons and "docs/a.py is outside it" in reasons[0]
    assert Workspace(receiver, PRIVATE.space_id).exists("src/a.py")


def test_a_file_edit_is_judged_by_the_files_path(scoped: tuple[Repo, Repo, Workspace]) -> None:
    """Root made docs/readme; the src/*-scoped writer edits its content doc around the workspace."""
    receiver, repo, _ = scoped
    Workspace(receiver, PRIVATE.space_id).write("docs/readme", "hello", now_ms=FIXED_NOW_MS)
    send(receiver, repo)
    node = Workspace(repo, PRIVATE.space_id).node("docs/readme")
    document = repo.document(PRIVATE.space_id, node.doc_id)
    text = document.get(native.ROOT, "text")
    assert isinstance(text, native.ObjectRef)
    document.splice_text(text.id, 0, 0, "evil ")
    repo.commit(PRIVATE.space_id, node.doc_id, "forged", now_ms=FIXED_NOW_MS)
    reasons = [u.reason for r in send(repo, receiver) for u in r.unauthorised]
    assert reasons and "docs/readme is outside it" in reasons[0]
    assert Workspace(receiver, PRIVATE.space_id).read("docs/readme") == "hello"


def test_shuffled_private_ingest_agrees_with_in_order_ingest() -> None:
    """Two receivers, one in order, one shuffled batch by batch: the same changes end applied."""
    space = PRIVATE.space_id
    authors = [Author(root, space), Author(writer, space), Author(stranger, space)]
    rng = random.Random(7)
    commits = []
    for step in range(12):
        author = rng.choice(authors)
        author.learn(rng.choice(authors))
        commits.append(author.commit(f"step {step}"))
    stores = []
    for order in (commits, rng.sample(commits, len(commits))):
        receiver = memory_receiver(PRIVATE, grant(writer))
        for _ in range(len(commits)):
            for commit in order:
                receiver.deliver(commit)
        stores.append(receiver.store)
    assert stores[0].heads(space, DOC) == stores[1].heads(space, DOC)
