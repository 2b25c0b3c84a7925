"""New files' content docs in bulk (store/content_build.py, ``Repo.create_docs``): each doc is its
first change alone, built on threads, stored in order without loading the document — and the
same bytes, hashes and files as the one-thread build and as a document edited the usual way."""

from __future__ import annotations

import random
import string
import threading

import pytest

import native
from protocol.identity import Identity
from protocol.tips import SignedTip
from store import content_build
from store.errors import InvalidInput, StorageError
from store.repo import CREATE_DOCS_CHECKED_TOGETHER, Repo, StoreEvent, change_time
from store.sqlite_backend import MAX_SQL_PARAMETERS
from store.tree import BYTES_KEY, TEXT_KEY
from store.workspace import Workspace
from store_helpers import NOW_MS
from workspace_replicas import MakeRepo, listing, open_peers, sync

FILES = 60


def contents(seed: int = 7) -> dict[str, str | bytes]:
    rng = random.Random(seed)
    files: dict[str, str | bytes] = {}
    for i in range(FILES):
        if i % 10 == 9:
            files[f"bin/{i}.dat"] = rng.randbytes(rng.randrange(0, 400))
        else:
            files[f"src/m{i % 4}/f{i}.py"] = "".join(rng.choice(string.printable + "é€😀") for _ in range(rng.randrange(0, 3_000)))
    return files


def stored_changes(ws: Workspace) -> dict[str, list[bytes]]:
    """Each file's stored change bytes, by path (doc ids are random; the changes are not)."""
    tree = ws.tree()
    return {node.path: ws.repo.changes_since(ws.space, node.doc_id, []) for node in tree.walk() if node.kind == "file"}


def created(identity: Identity, files: dict[str, str | bytes], threads: int, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setattr(content_build, "CONTENT_BUILD_THREADS", threads)
    monkeypatch.setattr(content_build, "THREADED_BUILD_MIN_CHARS", 0)  # every batch of two or more on threads
    repo = Repo.open(None, identity)
    ws = Workspace(repo, repo.create_space("bulk", NOW_MS).space_id)
    ws.create_files(files, now_ms=NOW_MS)
    return ws


def tip(identity: Identity, space: bytes, doc: bytes, change: native.DecodedChange) -> SignedTip:
    return SignedTip.sign(identity, space, doc, change.hash)


def test_the_threaded_build_is_the_sequential_build_byte_for_byte(alice: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    files = contents()
    threaded, sequential = (created(alice, files, threads, monkeypatch) for threads in (3, 1))
    assert {path: threaded.read(path) for path in files} == {path: sequential.read(path) for path in files} == files
    assert stored_changes(threaded) == stored_changes(sequential)
    space = threaded.space
    keyed = [(bytes([i]) * 16, TEXT_KEY if isinstance(c, str) else BYTES_KEY, c) for i, c in enumerate(files.values())]
    built = list(content_build.new_docs(alice, space, keyed, message="m", time=change_time(NOW_MS)))
    monkeypatch.setattr(content_build, "CONTENT_BUILD_THREADS", 1)
    alone = list(content_build.new_docs(alice, space, keyed, message="m", time=change_time(NOW_MS)))
    assert [(doc, change.raw, tip) for doc, change, tip in built] == [(doc, change.raw, tip) for doc, change, tip in alone]
    for doc, change, tip in built:
        tip.verify()
        assert (tip.doc, tip.change_hash) == (doc, change.hash)


def test_a_created_doc_is_what_an_edited_document_commits(alice: Identity) -> None:
    repo = Repo.open(None, alice)
    ws = Workspace(repo, repo.create_space("bulk", NOW_MS).space_id)
    ws.create_files({"a.txt": "héllo\n", "b.bin": b"\x00\x01"}, now_ms=NOW_MS, message="create")
    for path, content, key in (("a.txt", "héllo\n", TEXT_KEY), ("b.bin", b"\x00\x01", BYTES_KEY)):
        document = native.Document(alice.public_key)
        if isinstance(content, str):
            document.splice_text(document.put_object(native.ROOT, key, "text"), 0, 0, content)
        else:
            document.put(native.ROOT, key, content)
        document.commit("create", change_time(NOW_MS))
        assert stored_changes(ws)[path] == document.get_changes()
        assert ws.read(path) == content


def test_created_docs_are_announced_in_order_signed_and_not_loaded(alice: Identity) -> None:
    repo = Repo.open(None, alice)
    space = repo.create_space("bulk", NOW_MS).space_id
    events: list[StoreEvent] = []
    repo.subscribe(lambda event: events.append(event) if isinstance(event, StoreEvent) else None)
    docs = [bytes([i]) * 16 for i in range(1, 4)]
    changes = [native.first_change(alice.public_key, TEXT_KEY, f"file {i}", "m", change_time(NOW_MS)) for i in range(3)]
    cached = repo.cache_stats()[0]
    hashes = repo.create_docs(space, [(doc, change, tip(alice, space, doc, change)) for doc, change in zip(docs, changes, strict=True)], now_ms=NOW_MS)
    assert hashes == [change.hash for change in changes]
    assert [(event.doc, event.hashes, event.origin) for event in events] == [(doc, (h,), "local") for doc, h in zip(docs, hashes, strict=True)]
    assert all(event.tip is not None and event.tip.change_hash == h for event, h in zip(events, hashes, strict=True))
    assert repo.cache_stats()[0] == cached, "nothing is loaded until read"
    assert [repo.heads(space, doc) for doc in docs] == [[h] for h in hashes]
    assert repo.version(space) == 3


def test_create_docs_refuses_what_is_not_a_new_doc_from_a_first_change(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    repo = make_repo(alice)
    space = repo.create_space("bulk", NOW_MS).space_id
    doc, other = b"\x01" * 16, b"\x02" * 16
    first = native.first_change(alice.public_key, TEXT_KEY, "x")
    repo.create_docs(space, [(doc, first, tip(alice, space, doc, first))], now_ms=NOW_MS)
    version = repo.version(space)
    with pytest.raises(InvalidInput, match="already exists"):
        repo.create_docs(space, [(other, first, tip(alice, space, other, first)), (doc, first, tip(alice, space, doc, first))], now_ms=NOW_MS)
    bobs = native.first_change(bob.public_key, TEXT_KEY, "x")
    with pytest.raises(InvalidInput, match="first change"):
        repo.create_docs(space, [(other, bobs, tip(bob, space, other, bobs))], now_ms=NOW_MS)
    for wrong in (tip(alice, space, doc, first), tip(bob, space, other, first), tip(alice, space, other, bobs)):
        with pytest.raises(InvalidInput, match="tip"):
            repo.create_docs(space, [(other, first, wrong)], now_ms=NOW_MS)
    assert repo.version(space) == version and repo.heads(space, other) == [], "all or nothing"
    with pytest.raises(InvalidInput, match="durable"), repo.group():
        repo.create_docs(space, [(other, first, tip(alice, space, other, first))], now_ms=NOW_MS)


def test_docs_are_checked_and_keyed_together_and_one_only_the_store_holds_is_refused(make_repo: MakeRepo, alice: Identity) -> None:
    """More docs than one lookup (CREATE_DOCS_CHECKED_TOGETHER) or one SQL statement takes store
    and read back through a repo that never saw them; there, a doc known to the store alone, or
    named twice in one call, is refused and nothing of that call is stored."""
    repo = make_repo(alice)
    space = repo.create_space("bulk", NOW_MS).space_id
    count = max(CREATE_DOCS_CHECKED_TOGETHER * 3, MAX_SQL_PARAMETERS) + 7
    docs = [number.to_bytes(16, "big") for number in range(1, count + 1)]
    changes = [native.first_change(alice.public_key, TEXT_KEY, f"file {number}") for number in range(count)]
    hashes = repo.create_docs(space, [(doc, change, tip(alice, space, doc, change)) for doc, change in zip(docs, changes, strict=True)], now_ms=NOW_MS)
    reader = Repo(repo.backend, alice)
    assert [reader.heads(space, doc) for doc in docs] == [[change_hash] for change_hash in hashes]
    fresh = Repo(repo.backend, alice)  # no cache of what was created: only the store knows
    version = fresh.version(space)
    new = [(number + count).to_bytes(16, "big") for number in range(1, CREATE_DOCS_CHECKED_TOGETHER + 2)]
    first = native.first_change(alice.public_key, TEXT_KEY, "x")
    for again in (docs[-1], new[0]):  # stored before; named earlier in the same call
        with pytest.raises(InvalidInput, match="already exists"):
            fresh.create_docs(space, [(doc, first, tip(alice, space, doc, first)) for doc in [*new, again]], now_ms=NOW_MS)
        assert fresh.version(space) == version and all(fresh.heads(space, doc) == [] for doc in new), "all or nothing"


def test_bulk_created_files_reach_a_peer(make_repo: MakeRepo) -> None:
    alice, bob = open_peers("alice", "bob", make_repo=make_repo)
    files = contents(3)
    alice.ws.create_files(files, now_ms=alice.now())
    sync(alice, bob)
    assert listing(bob) == listing(alice)


def test_a_failed_store_leaves_no_doc(alice: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo.open(None, alice)
    ws = Workspace(repo, repo.create_space("bulk", NOW_MS).space_id)
    calls = 0
    persist = repo._persist

    def failing(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise StorageError("disk full")
        return persist(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "_persist", failing)
    with pytest.raises(StorageError):
        ws.create_files({f"f{i}.txt": "x" for i in range(5)}, now_ms=NOW_MS)
    assert repo.version(ws.space) == 0 and ws.tree().get("f0.txt") is None


def test_build_tasks_keep_the_order_and_hold_about_a_task_of_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(content_build, "BUILD_TASK_CHARS", 10)
    items = [(bytes([i]) * 16, TEXT_KEY, "x" * size) for i, size in enumerate([3, 4, 5, 20, 0, 1, 9, 2])]
    tasks = [list(task) for task in content_build._tasks(items)]
    assert [item for task in tasks for item in task] == items
    assert [[len(content) for _, _, content in task] for task in tasks] == [[3, 4, 5], [20], [0, 1, 9], [2]]
    assert list(content_build._tasks([])) == []


def test_large_contents_are_built_one_at_a_time(alice: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(content_build, "CONTENT_BUILD_THREADS", 3)
    monkeypatch.setattr(content_build, "THREADED_BUILD_MIN_CHARS", 0)
    monkeypatch.setattr(content_build, "BUILD_TASK_CHARS", 1)  # one doc per task: every build may run at once
    monkeypatch.setattr(content_build, "LARGE_BUILD_CHARS", 1_000)
    real, guard = native.first_change, threading.Lock()
    active, most = [0], [0]

    def counting(actor: bytes, key: str, content: str | bytes, message: str | None = None, time: int | None = None) -> native.DecodedChange:
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return real(actor, key, content, message, time)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(content_build.native, "first_change", counting)
    items = [(bytes([i]) * 16, TEXT_KEY, "y" * 200_000) for i in range(8)]
    built = list(content_build.new_docs(alice, b"\x05" * 32, items, message="m", time=1))
    assert most[0] == 1 and [doc for doc, _, _ in built] == [doc for doc, _, _ in items]
