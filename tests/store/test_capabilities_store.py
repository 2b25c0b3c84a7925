"""The store side of private spaces: the capability log persisted and announced, verify over
its records, and local writes checked against it (store/capabilities.py, store/workspace.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from protocol.capabilities import Grant, Revocation, Role
from protocol.errors import CapabilityError
from protocol.identity import Identity
from protocol.space import INDEX_DOC_ID, Genesis
from store.errors import NotAuthorised
from store.repo import CapabilitiesAdded, ChangesRevoked, Repo, RepoEvent
from store.verify import ProblemKind
from store.workspace import Workspace
from store_helpers import NOW_MS, sync
from workspace_replicas import MakeRepo


def grant(issuer: Identity, space: bytes, subject: Identity, role: Role = Role.WRITE, paths: tuple[str, ...] = ()) -> Grant:
    return Grant.issue(issuer, space=space, subject=subject.public_key, role=role, paths=paths, issued_ms=NOW_MS)


def private_space(repo: Repo) -> Genesis:
    return repo.create_space("private", NOW_MS, private=True)


# ----- the log -----


def test_create_space_is_open_unless_asked(make_repo: MakeRepo, alice: Identity) -> None:
    repo = make_repo(alice)
    opened, private = repo.create_space("open", NOW_MS), private_space(repo)
    assert not opened.private and not repo.capability_log(opened.space_id).private
    log = repo.capability_log(private.space_id)
    assert private.private and log.private and log.root == alice.public_key


def test_records_are_stored_announced_and_survive_a_reopen(tmp_path: Path, alice: Identity, bob: Identity) -> None:
    repo = Repo.open(tmp_path / "a.db", alice)
    space = private_space(repo).space_id
    events: list[RepoEvent] = []
    repo.subscribe(events.append)
    record = grant(alice, space, bob)
    assert repo.add_capability_records(space, [record.encode()]) == [record.hash]
    assert repo.add_capability_records(space, [record.encode()]) == []  # held: no event either
    assert events == [CapabilitiesAdded(space, (record.hash,), (record.encode(),))]
    assert repo.capability_log(space).admits(bob.public_key, NOW_MS)
    repo.close()
    reopened = Repo.open(tmp_path / "a.db", alice)
    assert reopened.capability_log(space).admits(bob.public_key, NOW_MS)
    reopened.close()


def test_a_bad_record_stores_nothing_of_its_call(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    repo = make_repo(alice)
    space = private_space(repo).space_id
    good = grant(alice, space, bob)
    with pytest.raises(CapabilityError):
        repo.add_capability_records(space, [good.encode(), b"not a record"])
    assert good.hash not in repo.capability_log(space)
    assert repo.backend.capability_records(space) == []


def test_records_added_in_a_group_are_announced_after_it_and_forgotten_if_it_fails(
    make_repo: MakeRepo, alice: Identity, bob: Identity
) -> None:
    repo = make_repo(alice)
    space = private_space(repo).space_id
    events: list[RepoEvent] = []
    repo.subscribe(events.append)
    record = grant(alice, space, bob)
    with pytest.raises(RuntimeError), repo.group():
        repo.add_capability_records(space, [record.encode()])
        assert not events
        raise RuntimeError("the group fails")
    assert not events and record.hash not in repo.capability_log(space)
    with repo.group():
        repo.add_capability_records(space, [record.encode()])
    assert [type(event) for event in events] == [CapabilitiesAdded]
    assert record.hash in repo.capability_log(space)


def test_issue_capability_stores_a_record_signed_here(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    repo = make_repo(alice)
    space = private_space(repo).space_id
    record = grant(alice, space, bob, Role.READ)
    assert repo.issue_capability(space, record.encode()) == record.hash
    assert repo.issue_capability(space, record.encode()) == record.hash  # again: held, same hash
    assert repo.capability_log(space).role(bob.public_key) == Role.READ


def test_verify_reports_a_damaged_capability_record(tmp_path: Path, alice: Identity, bob: Identity) -> None:
    repo = Repo.open(tmp_path / "a.db", alice)
    space = private_space(repo).space_id
    record = grant(alice, space, bob)
    repo.add_capability_records(space, [record.encode()])
    assert repo.verify() == []
    repo.close()
    with sqlite3.connect(tmp_path / "a.db") as connection:
        connection.execute("UPDATE capability_records SET data = ?", (record.encode()[:-1] + b"\x00",))
    reopened = Repo.open(tmp_path / "a.db", alice)
    problems = reopened.verify()
    assert [(p.kind, p.subject) for p in problems] == [(ProblemKind.CAPABILITY_DAMAGED, record.hash)]
    assert record.hash not in reopened.capability_log(space)  # left out, the rest stays usable
    reopened.close()


# ----- local writes -----


def writer_workspace(make_repo: MakeRepo, alice: Identity, bob: Identity, role: Role = Role.WRITE, paths: tuple[str, ...] = ()) -> Workspace:
    """Bob's workspace on a private space of Alice's with ``role`` over ``paths``; Alice made
    directories src and docs and the file docs/readme.md."""
    owner = make_repo(alice, name="alice")
    genesis = private_space(owner)
    space = genesis.space_id
    root_ws = Workspace(owner, space)
    root_ws.mkdir("src", now_ms=NOW_MS)
    root_ws.write("docs/readme.md", "hello", now_ms=NOW_MS, parents=True)
    repo = make_repo(bob, name="bob")
    repo.add_space(genesis)
    repo.add_capability_records(space, [grant(alice, space, bob, role, paths).encode()])
    for doc in owner.doc_ids(space):
        sync(owner, repo, space, doc)
    return Workspace(repo, space)


def test_a_scoped_writer_writes_in_scope_and_is_refused_outside_it(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    ws = writer_workspace(make_repo, alice, bob, paths=("src/*",))
    ws.write("src/a.py", "x = 1\n", now_ms=NOW_MS)
    ws.splice("src/a.py", 0, 0, "# hi\n", now_ms=NOW_MS)
    ws.write("src/lib/b.py", "", now_ms=NOW_MS, parents=True)
    ws.mv("src/a.py", "src/c.py", now_ms=NOW_MS)
    ws.rm("src/c.py", now_ms=NOW_MS)
    version = ws.version()
    refusals = [
        lambda: ws.write("docs/new.md", "no", now_ms=NOW_MS),
        lambda: ws.write("docs/readme.md", "overwritten", now_ms=NOW_MS),
        lambda: ws.splice("docs/readme.md", 0, 0, "no ", now_ms=NOW_MS),
        lambda: ws.mkdir("docs/sub", now_ms=NOW_MS),
        lambda: ws.mv("src/lib/b.py", "docs/b.py", now_ms=NOW_MS),  # into the scope's outside
        lambda: ws.mv("docs/readme.md", "src/readme.md", now_ms=NOW_MS),  # out of it
        lambda: ws.mv("src/lib", "lib", now_ms=NOW_MS),  # a directory and what it holds
        lambda: ws.rm("docs", now_ms=NOW_MS, recursive=True),
        lambda: ws.create_files({"src/ok.py": "", "docs/no.md": ""}, now_ms=NOW_MS),
    ]
    for refused in refusals:
        with pytest.raises(NotAuthorised, match="write is scoped to src/\\*"):
            refused()
    assert ws.version() == version  # nothing was written
    assert ws.read("docs/readme.md") == "hello"


def test_a_reader_may_not_write_and_a_revoked_writer_no_longer_may(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    ws = writer_workspace(make_repo, alice, bob, role=Role.READ)
    with pytest.raises(NotAuthorised, match="holds read, not write"):
        ws.write("src/a.py", "x", now_ms=NOW_MS)
    revoked = writer_workspace(make_repo, alice, bob)  # a second space: bob writes, then is revoked
    revoked.write("src/a.py", "x", now_ms=NOW_MS)
    log = revoked.repo.capability_log(revoked.space)
    revocation = Revocation.issue(alice, space=revoked.space, subject=bob.public_key, issued_ms=NOW_MS + 1, parents=log.heads)
    revoked.repo.add_capability_records(revoked.space, [revocation.encode()])
    with pytest.raises(NotAuthorised, match="revoked"):
        revoked.write("src/a.py", "y", now_ms=NOW_MS)


def test_open_spaces_let_any_key_write(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    owner = make_repo(alice, name="alice")
    genesis = owner.create_space("open", NOW_MS)
    repo = make_repo(bob, name="bob")
    repo.add_space(genesis)
    ws = Workspace(repo, genesis.space_id)
    ws.write("anything/at/all.md", "yes", now_ms=NOW_MS, parents=True)
    assert ws.read("anything/at/all.md") == "yes"


# ----- a revocation takes out the stored changes it refuses -----


def test_a_revocation_takes_out_stored_changes_the_revoker_had_not_seen(make_repo: MakeRepo, alice: Identity, bob: Identity, carol: Identity) -> None:
    owner = make_repo(alice, name="alice")
    genesis = private_space(owner)
    space = genesis.space_id
    bobs, carols = make_repo(bob, name="bob"), make_repo(carol, name="carol")
    records = [grant(alice, space, bob).encode(), grant(alice, space, carol).encode()]
    for repo in (owner, bobs, carols):
        if repo is not owner:
            repo.add_space(genesis)
        repo.add_capability_records(space, records)
    ws = Workspace(bobs, space)
    ws.write("notes.md", "one", now_ms=NOW_MS)
    doc = ws.node("notes.md").doc_id
    seen = [(doc, 1), (INDEX_DOC_ID, bobs.author_seq(space, INDEX_DOC_ID, bob.public_key))]
    ws.write("notes.md", "one two", now_ms=NOW_MS)
    ws.write("notes.md", "one two three", now_ms=NOW_MS)
    for target in (owner, carols):
        for each in bobs.doc_ids(space):
            sync(bobs, target, space, each)
    Workspace(carols, space).write("notes.md", "one two three four", now_ms=NOW_MS)  # built on bob's
    sync(carols, owner, space, doc)
    assert Workspace(owner, space).read("notes.md") == "one two three four"
    events: list[RepoEvent] = []
    owner.subscribe(events.append)
    log = owner.capability_log(space)
    revocation = Revocation.issue(alice, space=space, subject=bob.public_key, seen=seen, issued_ms=NOW_MS + 1, parents=log.heads)
    owner.issue_capability(space, revocation.encode())
    assert Workspace(owner, space).read("notes.md") == "one"  # bob's 2 and 3, and carol's on them
    revoked = [event for event in events if isinstance(event, ChangesRevoked)]
    assert [(event.doc, len(event.hashes)) for event in revoked] == [(doc, 3)]
    problems = owner.verify()
    assert [p for p in problems if p.kind != ProblemKind.REVOKED_CHANGE] == []  # bob's kept change: still covered
    listed = [problem for problem in problems if problem.kind == ProblemKind.REVOKED_CHANGE]
    assert {problem.subject for problem in listed} == set(revoked[0].hashes)
    assert all("revoked" in problem.detail for problem in listed)
    owner.add_capability_records(space, [revocation.encode()])  # again: nothing more to take
    assert Workspace(owner, space).read("notes.md") == "one"
