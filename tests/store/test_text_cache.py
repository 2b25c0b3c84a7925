"""The text cache (store/repo.py ``cached_text``): a bulk-created text file reads without loading
its doc, and never stale — any change to the doc (a local write, a remote apply, a revocation)
moves its heads away from the cached row's, and the read loads the doc instead."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from protocol.capabilities import Grant, Revocation, Role
from protocol.identity import Identity
from store import repo as repo_module
from store.errors import StorageError
from store.records import TextRow, WriteBatch
from store.repo import Repo
from store.workspace import Workspace
from store_helpers import NOW_MS, TEXT_KEY, sync
from workspace_replicas import MakeRepo

FILES = {"src/a.py": "print('a')\n", "src/b.py": "é ünïcödé 🐍\r\nline two\n", "README.md": "# readme\n", "empty.txt": ""}


def reopened(repo: Repo) -> Repo:
    """A repo over the same store with nothing cached: as the node after a restart."""
    return Repo(repo.backend, repo.identity)


def loaded_text(repo: Repo, space: bytes, path: str) -> str:
    """The file's text read from its loaded doc (a fresh repo, the doc loaded first)."""
    fresh = reopened(repo)
    ws = Workspace(fresh, space)
    fresh.document(space, ws.node(path).doc_id)
    text = ws.read(path)
    assert isinstance(text, str)
    return text


def docs_loaded(repo: Repo) -> int:
    return repo.cache_stats()[0]


def test_a_reopened_store_reads_bulk_created_files_without_loading_them(tmp_path: Path, alice: Identity) -> None:
    with Repo.open(tmp_path / "node.db", alice) as repo:
        space = repo.create_space("s", NOW_MS).space_id
        Workspace(repo, space).create_files({**FILES, "photo.bin": b"\x89PNG"}, now_ms=NOW_MS)
    with Repo.open(tmp_path / "node.db", alice) as repo:
        ws = Workspace(repo, space)
        ws.tree()
        assert docs_loaded(repo) == 1  # the index
        assert {path: ws.read(path) for path in FILES} == FILES
        assert docs_loaded(repo) == 1  # no content doc loaded
        assert ws.read("photo.bin") == b"\x89PNG"  # binary: not cached, loaded
        assert docs_loaded(repo) == 2
        assert repo.verify() == []


def test_a_local_write_moves_the_heads_so_the_read_loads(make_repo: MakeRepo, alice: Identity) -> None:
    repo = make_repo(alice)
    space = repo.create_space("s", NOW_MS).space_id
    Workspace(repo, space).create_files(FILES, now_ms=NOW_MS)
    Workspace(repo, space).write("src/a.py", "print('edited')\n", now_ms=NOW_MS)
    again = reopened(repo)
    ws = Workspace(again, space)
    doc = ws.node("src/a.py").doc_id
    cached = again.backend.text(space, doc)
    assert cached is not None and cached.text == FILES["src/a.py"].encode()  # the row is out of date
    assert again.cached_text(space, doc) is None
    assert ws.read("src/a.py") == "print('edited')\n"
    assert ws.read("README.md") == FILES["README.md"]


def test_a_doc_being_edited_reads_from_the_doc_not_the_cache(make_repo: MakeRepo, alice: Identity) -> None:
    repo = make_repo(alice)
    space = repo.create_space("s", NOW_MS).space_id
    Workspace(repo, space).create_files(FILES, now_ms=NOW_MS)
    again = reopened(repo)
    ws = Workspace(again, space)
    node = ws.node("README.md")
    document = again.document(space, node.doc_id)
    found = document.get(native.ROOT, TEXT_KEY)
    assert isinstance(found, native.ObjectRef)
    text_id = found.id
    document.splice_text(text_id, 0, 0, "uncommitted ")
    assert again.cached_text(space, node.doc_id) is None
    assert ws.read("README.md") == document.text(text_id) == "uncommitted # readme\n"


def test_a_remote_change_moves_the_heads_so_the_read_loads(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    alices, bobs = make_repo(alice, name="alice"), make_repo(bob, name="bob")
    genesis = alices.create_space("s", NOW_MS)
    bobs.add_space(genesis)
    space = genesis.space_id
    Workspace(alices, space).create_files(FILES, now_ms=NOW_MS)
    for doc in alices.doc_ids(space):
        sync(alices, bobs, space, doc)
    assert Workspace(bobs, space).read("src/b.py") == FILES["src/b.py"]
    Workspace(bobs, space).write("src/b.py", "bob's\n", now_ms=NOW_MS)
    after = reopened(alices)  # nothing loaded when the change arrives
    for doc in bobs.doc_ids(space):
        sync(bobs, after, space, doc)
    assert Workspace(after, space).read("src/b.py") == "bob's\n"
    assert Workspace(reopened(after), space).read("src/b.py") == "bob's\n" == loaded_text(after, space, "src/b.py")


def test_a_revocation_back_to_the_cached_heads_reads_the_text_at_them(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    """Heads name every change below them: when a revocation takes bob's change out, the doc is
    back at the cached heads, and the cached text is its text there."""
    alices, bobs = make_repo(alice, name="alice"), make_repo(bob, name="bob")
    genesis = alices.create_space("private", NOW_MS, private=True)
    space = genesis.space_id
    bobs.add_space(genesis)
    records = [Grant.issue(alice, space=space, subject=bob.public_key, role=Role.WRITE, paths=(), issued_ms=NOW_MS).encode()]
    for repo in (alices, bobs):
        repo.add_capability_records(space, records)
    Workspace(alices, space).create_files({"notes.md": "one"}, now_ms=NOW_MS)
    for doc in alices.doc_ids(space):
        sync(alices, bobs, space, doc)
    Workspace(bobs, space).write("notes.md", "one two", now_ms=NOW_MS)
    after = reopened(alices)
    for doc in bobs.doc_ids(space):
        sync(bobs, after, space, doc)
    assert Workspace(reopened(after), space).read("notes.md") == "one two"
    log = after.capability_log(space)
    revocation = Revocation.issue(alice, space=space, subject=bob.public_key, seen=[], issued_ms=NOW_MS + 1, parents=log.heads)
    after.issue_capability(space, revocation.encode())
    ws = Workspace(reopened(after), space)
    doc = ws.node("notes.md").doc_id
    assert ws.repo.cached_text(space, doc) == "one"  # back at the heads it was cached at
    assert ws.read("notes.md") == "one" == loaded_text(after, space, "notes.md")


def test_a_text_over_the_budget_is_not_cached(make_repo: MakeRepo, alice: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repo_module, "TEXT_CACHE_MAX_BYTES", 10)
    repo = make_repo(alice)
    space = repo.create_space("s", NOW_MS).space_id
    ws = Workspace(repo, space)
    ws.create_files({"small.txt": "0123456789", "big.txt": "0123456789A", "wide.txt": "ééééé!"}, now_ms=NOW_MS)
    held = {path: repo.backend.text(space, ws.node(path).doc_id) for path in ("small.txt", "big.txt", "wide.txt")}
    assert {path: row.text if row else None for path, row in held.items()} == {"small.txt": b"0123456789", "big.txt": None, "wide.txt": None}
    assert Workspace(reopened(repo), space).read("big.txt") == "0123456789A"


def test_a_failed_group_stores_no_text_rows(make_repo: MakeRepo, alice: Identity) -> None:
    repo = make_repo(alice)
    space = repo.create_space("s", NOW_MS).space_id
    ws = Workspace(repo, space)
    with pytest.raises(RuntimeError), repo.group(durable=True):
        ws.create_files({"gone.txt": "never stored"}, now_ms=NOW_MS)
        made = [doc for doc in repo.backend.docs(space)]
        assert any(repo.backend.text(space, row.doc) is not None for row in made)  # inside: the group's own
        raise RuntimeError("the group fails")
    assert all(repo.backend.text(space, row.doc) is None for row in made)
    assert repo.backend.docs(space) == []


def test_a_store_from_before_the_text_cache_opens_and_caches_new_files(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "old.db"
    with Repo.open(path, alice) as repo:
        space = repo.create_space("s", NOW_MS).space_id
        Workspace(repo, space).create_files(FILES, now_ms=NOW_MS)
    connection = sqlite3.connect(path)  # as the store was before migration 4 -> 5
    connection.executescript("DROP TABLE texts; PRAGMA user_version = 4;")
    connection.close()
    with Repo.open(path, alice) as repo:
        ws = Workspace(repo, space)
        assert {name: ws.read(name) for name in FILES} == FILES  # loaded: no rows
        ws.create_files({"new.txt": "new"}, now_ms=NOW_MS)
        assert repo.verify() == []
    with Repo.open(path, alice) as repo:
        ws = Workspace(repo, space)
        assert ws.read("new.txt") == "new"
        assert docs_loaded(repo) == 1  # the index only: new.txt came from the cache


def test_a_text_row_of_an_unknown_space_is_refused(make_repo: MakeRepo, alice: Identity) -> None:
    repo = make_repo(alice)
    with pytest.raises(StorageError):
        repo.backend.write(WriteBatch(texts=[TextRow(b"\x01" * 32, b"\x02" * 16, (), b"x")]))


_TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["local", "remote"]), st.integers(0, 2), _TEXTS),
        st.tuples(st.just("reopen"), st.just(0), st.just("")),
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(initial=st.lists(_TEXTS, min_size=3, max_size=3), ops=_OPS)
def test_reads_always_equal_the_loaded_docs_text(initial: list[str], ops: list[tuple[str, int, str]]) -> None:
    """Bulk-created files, then local writes, remote writes applied and restarts in any order:
    after each step every file reads as its loaded doc does, and as last written."""
    alice, bob = (Identity(hashlib.sha256(name.encode()).digest()) for name in ("alice", "bob"))
    alices, bobs = Repo.open(None, alice), Repo.open(None, bob)
    genesis = alices.create_space("s", NOW_MS)
    bobs.add_space(genesis)
    space = genesis.space_id
    paths = [f"f{index}.txt" for index in range(3)]
    expected = dict(zip(paths, initial, strict=True))
    Workspace(alices, space).create_files(expected, now_ms=NOW_MS)

    def send(source: Repo, target: Repo) -> None:
        for doc in source.doc_ids(space):
            sync(source, target, space, doc)

    for kind, index, text in ops:
        path = paths[index]
        if kind == "local":
            Workspace(alices, space).write(path, text, now_ms=NOW_MS)
            expected[path] = text
        elif kind == "remote":
            send(alices, bobs)
            Workspace(bobs, space).write(path, text, now_ms=NOW_MS)
            send(bobs, alices)
            expected[path] = text
        else:
            alices = reopened(alices)
        ws = Workspace(alices, space)
        assert {path: ws.read(path) for path in paths} == expected
        assert {path: loaded_text(alices, space, path) for path in paths} == expected
