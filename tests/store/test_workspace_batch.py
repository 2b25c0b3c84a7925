"""Bulk writes (store/batch.py, ``Workspace.apply_batch``): many paths in one tree change and one
change per content doc, every check before the first write, and the same tree as the ops one by
one would make."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.capabilities import Role
from protocol.identity import Identity
from protocol.space import INDEX_DOC_ID
from store import workspace as workspace_module
from store.batch import BatchOp
from store.errors import InvalidInput, NotAuthorised, StoreError
from store.workspace_errors import AlreadyExists, BatchConflict, ContentTooLarge, DirectoryNotEmpty, IsADirectory, NotADirectory, NotFound, NotText, PathError
from store_helpers import NOW_MS
from test_capabilities_store import writer_workspace
from workspace_replicas import MakeRepo, Peer, listing, open_peers, sync


@pytest.fixture
def me(make_repo: MakeRepo) -> Peer:
    return open_peers("alice", make_repo=make_repo)[0]


def tree_changes(peer: Peer, since: int) -> int:
    return sum(1 for record in peer.repo.versions(peer.ws.space, since) if record.doc == INDEX_DOC_ID)


def test_one_batch_creates_writes_deletes_and_sets_modes(me: Peer) -> None:
    ws = me.ws
    ws.write("README.md", "# hello\nworld\n", now_ms=me.now())
    ws.write("old/gone.txt", "bye", now_ms=me.now(), parents=True)
    ws.write("logo.png", b"\x89PNG", now_ms=me.now())
    before = ws.version()
    ops = [
        BatchOp("write", "README.md", "# hello\nthere\n", executable=True),
        BatchOp("create", "src/app/main.py", "print('hi')\n", executable=True),
        BatchOp("write", "logo.png", b"\x89PNG2"),
        BatchOp("delete", "old", recursive=True),
        BatchOp("mkdir", "empty/dir"),
    ]
    with pytest.raises(NotFound):  # a mode of a path the batch deletes
        ws.apply_batch([*ops, BatchOp("mode", "old/gone.txt", executable=True)], now_ms=me.now())
    result = ws.apply_batch(ops, now_ms=me.now())
    assert listing(me) == {
        "README.md": "# hello\nthere\n",
        "empty": None,
        "empty/dir": None,
        "logo.png": b"\x89PNG2",
        "src": None,
        "src/app": None,
        "src/app/main.py": "print('hi')\n",
    }
    tree = ws.tree()
    assert [path for path in ("README.md", "src/app/main.py", "logo.png") if tree.get(path).executable] == ["README.md", "src/app/main.py"]  # type: ignore[union-attr]
    # one change per content doc written (3) and one of the tree: one version each
    assert result.version == ws.version() == before + 4 and result.changes == 4
    assert tree_changes(me, before) == 1
    assert set(result.heads) == {"README.md", "src/app/main.py", "logo.png"}
    for path, heads in result.heads.items():
        assert heads == ws.stat(path).heads
    assert ws.read("README.md", before) == "# hello\nworld\n"  # the old version reads as it was


def test_a_batch_may_delete_a_path_and_create_it_again_as_another_kind(me: Peer) -> None:
    ws = me.ws
    ws.write("data.bin", "was text", now_ms=me.now())
    ws.write("thing/inside.txt", "x", now_ms=me.now(), parents=True)
    ws.apply_batch(
        [
            BatchOp("delete", "data.bin"),
            BatchOp("create", "data.bin", b"\x00\xff binary now"),
            BatchOp("delete", "thing", recursive=True),
            BatchOp("write", "thing", "a file where a directory was"),
        ],
        now_ms=me.now(),
    )
    assert listing(me) == {"data.bin": b"\x00\xff binary now", "thing": "a file where a directory was"}
    assert ws.stat("data.bin").encoding == "binary"


def test_an_empty_or_idle_batch_writes_nothing(me: Peer) -> None:
    ws = me.ws
    ws.write("a.txt", "same", now_ms=me.now())
    version = ws.version()
    assert ws.apply_batch([], now_ms=me.now()).version == version
    result = ws.apply_batch([BatchOp("write", "a.txt", "same")], now_ms=me.now())
    assert result.version == version and result.changes == 0  # the same text: no change
    assert ws.apply_batch([BatchOp("mode", "a.txt", executable=False)], now_ms=me.now()).changes == 0


@pytest.mark.parametrize(
    ("ops", "error"),
    [
        ([BatchOp("create", "a.txt", "again")], AlreadyExists),
        ([BatchOp("delete", "nothing/here")], NotFound),
        ([BatchOp("delete", "dir")], DirectoryNotEmpty),
        ([BatchOp("mode", "missing.sh", executable=True)], NotFound),
        ([BatchOp("mode", "dir", executable=True)], IsADirectory),
        ([BatchOp("write", "dir", "x")], IsADirectory),
        ([BatchOp("write", "a.txt", b"\xff\xfe not utf-8")], NotText),
        ([BatchOp("create", "a.txt/below", "x")], NotADirectory),
        ([BatchOp("create", "f", "x"), BatchOp("create", "f/g", "y")], NotADirectory),
        ([BatchOp("write", "b.txt", "1"), BatchOp("write", "b.txt", "2")], InvalidInput),
        ([BatchOp("mkdir", "a.txt")], AlreadyExists),
        ([BatchOp("create", "../escape", "x")], PathError),
        ([BatchOp("create", "", "x")], PathError),
        ([BatchOp("create", "x.txt")], InvalidInput),  # no content
        ([BatchOp("mode", "a.txt")], InvalidInput),  # no bit
        ([BatchOp("shred", "a.txt")], InvalidInput),  # type: ignore[arg-type]
        (["a.txt"], InvalidInput),
        ([BatchOp("create", "big.bin", b"\x00" * (workspace_module.MAX_WRITE_BYTES + 1))], ContentTooLarge),
        # a good op before a bad one: still nothing
        ([BatchOp("create", "fine.txt", "ok"), BatchOp("delete", "dir/x.txt"), BatchOp("delete", "nope")], NotFound),
    ],
)
def test_a_refused_batch_changes_nothing(me: Peer, ops: list[BatchOp], error: type[StoreError]) -> None:
    ws = me.ws
    ws.write("a.txt", "text", now_ms=me.now())
    ws.write("dir/x.txt", "x", now_ms=me.now(), parents=True)
    version, files = ws.version(), listing(me)
    with pytest.raises(error):
        ws.apply_batch(ops, now_ms=me.now())
    assert ws.version() == version and listing(me) == files


def test_a_batch_not_a_list_is_refused(me: Peer) -> None:
    with pytest.raises(InvalidInput, match="a list of BatchOps"):
        me.ws.apply_batch("create a.txt", now_ms=me.now())  # type: ignore[arg-type]


def test_a_large_batch_splits_its_tree_change_and_transactions(me: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workspace_module, "BATCH_TREE_EDITS_PER_CHANGE", 7)
    monkeypatch.setattr(workspace_module, "BATCH_DOCS_PER_TRANSACTION", 5)
    ws = me.ws
    files = {f"d{i % 3}/f{i}.txt": f"file {i}\n" for i in range(20)}
    before = ws.version()
    result = ws.apply_batch([BatchOp("create", path, text) for path, text in files.items()], now_ms=me.now())
    assert {path: ws.read(path) for path in files} == files
    assert tree_changes(me, before) == 4  # 3 directories + 20 files = 23 entries, 7 per change
    assert result.changes == 24


def test_a_batch_joins_an_open_group(me: Peer) -> None:
    ws = me.ws
    with me.repo.group(durable=True):
        ws.apply_batch([BatchOp("create", "a.txt", "a"), BatchOp("create", "b/c.txt", "c")], now_ms=me.now())
        ws.write("d.txt", "d", now_ms=me.now())
    assert listing(me) == {"a.txt": "a", "b": None, "b/c.txt": "c", "d.txt": "d"}


def test_modes_reach_peers_and_concurrent_settings_converge(make_repo: MakeRepo) -> None:
    alice, bob = open_peers("alice", "bob", make_repo=make_repo)
    alice.ws.apply_batch([BatchOp("create", "run.sh", "#!/bin/sh\n", executable=True), BatchOp("create", "lib.sh", "")], now_ms=alice.now())
    sync(alice, bob)
    assert bob.ws.tree().get("run.sh").executable and not bob.ws.tree().get("lib.sh").executable  # type: ignore[union-attr]
    alice.ws.apply_batch([BatchOp("mode", "lib.sh", executable=True)], now_ms=alice.now())
    bob.ws.apply_batch([BatchOp("mode", "run.sh", executable=False)], now_ms=bob.now())
    sync(alice, bob)
    for peer in (alice, bob):
        tree = peer.ws.tree()
        assert (tree.get("run.sh").executable, tree.get("lib.sh").executable) == (False, True)  # type: ignore[union-attr]


def test_a_scoped_writer_is_refused_a_batch_that_reaches_outside(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    ws = writer_workspace(make_repo, alice, bob, paths=("src/*",))
    ws.apply_batch([BatchOp("create", "src/a.py", "x"), BatchOp("mkdir", "src/lib")], now_ms=NOW_MS)
    version = ws.version()
    refusals: list[list[BatchOp]] = [
        [BatchOp("create", "src/b.py", "ok"), BatchOp("create", "docs/no.md", "no")],
        [BatchOp("write", "docs/readme.md", "overwritten")],
        [BatchOp("mode", "docs/readme.md", executable=True)],
        [BatchOp("delete", "docs", recursive=True)],
        [BatchOp("mkdir", "top")],
    ]
    for ops in refusals:
        with pytest.raises(NotAuthorised, match="write is scoped to src/\\*"):
            ws.apply_batch(ops, now_ms=NOW_MS)
    assert ws.version() == version and ws.read("docs/readme.md") == "hello"
    reader = writer_workspace(make_repo, alice, bob, role=Role.READ)
    with pytest.raises(NotAuthorised):
        reader.apply_batch([BatchOp("create", "src/a.py", "x")], now_ms=NOW_MS)


# ----- a batch is the same as its ops one by one -----

NAMES = ("a", "b", "a/c", "a/d", "b/e")
op_strategy = st.one_of(
    st.builds(BatchOp, st.just("write"), st.sampled_from(NAMES), st.sampled_from(["x", "y\n", b"\x00z"]), st.sampled_from([None, True, False])),
    st.builds(BatchOp, st.just("create"), st.sampled_from(NAMES), st.just("new")),
    st.builds(BatchOp, st.just("delete"), st.sampled_from(NAMES), recursive=st.booleans()),
    st.builds(BatchOp, st.just("mkdir"), st.sampled_from(NAMES)),
    st.builds(BatchOp, st.just("mode"), st.sampled_from(NAMES), executable=st.booleans()),
)


def one_by_one(peer: Peer, ops: list[BatchOp]) -> None:
    """The batch's meaning spelled out with single writes: deletes first, then the rest."""
    ws = peer.ws
    for op in sorted(ops, key=lambda op: op.op != "delete"):
        if op.op == "delete":
            if ws.exists(op.path):
                ws.rm(op.path, now_ms=peer.now(), recursive=True)
        elif op.op == "mkdir":
            ws.mkdir(op.path, now_ms=peer.now(), parents=True)
        elif op.op == "mode":
            ws.apply_batch([op], now_ms=peer.now())
        else:
            assert op.content is not None
            ws.write(op.path, op.content, now_ms=peer.now(), parents=True)
            if op.executable is not None:
                ws.apply_batch([BatchOp("mode", op.path, executable=op.executable)], now_ms=peer.now())


def shown(peer: Peer) -> dict[str, object]:
    tree = peer.ws.tree()
    return {path: (content, tree.get(path).executable) for path, content in listing(peer).items()}  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.lists(op_strategy, max_size=4), ops=st.lists(op_strategy, max_size=6))
def test_a_batch_does_what_its_ops_do_one_by_one_or_nothing(start: list[BatchOp], ops: list[BatchOp]) -> None:
    batched, single = open_peers("batched", "single")
    for peer in (batched, single):
        for op in start:  # the same starting tree on both, made op by op
            try:
                peer.ws.apply_batch([op], now_ms=peer.now())
            except StoreError:
                pass
    assert shown(batched) == shown(single)
    version, before = batched.ws.version(), shown(batched)
    try:
        batched.ws.apply_batch(ops, now_ms=batched.now())
    except StoreError:
        assert batched.ws.version() == version and shown(batched) == before
        return
    one_by_one(single, ops)  # it succeeded, so each create found its path free (once deletes ran): as a write does
    assert shown(batched) == shown(single)


def test_create_files_is_a_batch(me: Peer) -> None:
    """The mirror's bulk create keeps its contract on top of apply_batch."""
    ws = me.ws
    ws.mkdir("have", now_ms=me.now())
    ws.create_files({"have/x.txt": "x", "new/y.bin": b"\x01"}, dirs=["have", "empty"], now_ms=me.now())
    assert listing(me) == {"empty": None, "have": None, "have/x.txt": "x", "new": None, "new/y.bin": b"\x01"}
    with pytest.raises(AlreadyExists):
        ws.create_files({"have/x.txt": "again"}, now_ms=me.now())


# ----- in steps (Workspace.batch_steps: the daemon serves others between them) -----


def test_a_batch_in_steps_moves_the_tree_at_its_last_step_only(me: Peer) -> None:
    ws = me.ws
    ws.write("keep.txt", "old\n", now_ms=me.now())
    ops = [*(BatchOp("create", f"many/{i}.txt", f"{i}\n") for i in range(7)), BatchOp("write", "keep.txt", "new\n")]
    steps = ws.batch_steps(ops, now_ms=me.now(), docs_per_step=3)
    progress = []
    ws.write("elsewhere.txt", "a write between steps, not in the batch\n", now_ms=me.now())  # before the first step: checked against it
    for each in steps:
        progress.append((each.phase, each.done, each.total))
        assert ws.tree().get("many") is None  # readers between steps see the tree as before
        ws.write("elsewhere.txt", f"again {each.done}\n", now_ms=me.now())  # a file outside the batch moves nothing of it
    assert progress == [("write", 3, 8), ("write", 6, 8), ("write", 8, 8)]
    assert {path: text for path, text in listing(me).items() if path.startswith("many/")} == {f"many/{i}.txt": f"{i}\n" for i in range(7)}
    assert ws.read("keep.txt") == "new\n"


def test_a_batch_in_steps_whose_tree_moved_under_it_is_checked_again(me: Peer) -> None:
    ws = me.ws
    ops = [BatchOp("create", "a.txt", "a"), BatchOp("create", "b.txt", "b"), BatchOp("mkdir", "d")]
    steps = ws.batch_steps(ops, now_ms=me.now(), docs_per_step=1)
    next(steps)
    ws.mkdir("other", now_ms=me.now())  # the tree moves, not where the batch writes: it goes on
    ws.mkdir("d", now_ms=me.now())  # ... nor here: a mkdir of a directory that exists does nothing
    assert [each.done for each in steps] == [2]
    assert listing(me) == {"a.txt": "a", "b.txt": "b", "d": None, "other": None}
    conflicting = ws.batch_steps([BatchOp("create", "c.txt", "c"), BatchOp("write", "e.txt", "e")], now_ms=me.now(), docs_per_step=1)
    next(conflicting)
    ws.write("e.txt", "made meanwhile", now_ms=me.now())  # the batch would now write e.txt over, not create it
    before = ws.entries()
    with pytest.raises(BatchConflict, match=r"e\.txt"):
        list(conflicting)
    assert ws.entries() == before and ws.read("e.txt") == "made meanwhile"
    refused = ws.batch_steps([BatchOp("create", "f.txt", "f"), BatchOp("create", "g.txt", "g")], now_ms=me.now(), docs_per_step=1)
    next(refused)
    ws.write("g.txt", "first", now_ms=me.now())
    with pytest.raises(AlreadyExists):  # a single op's own error when it fails now
        list(refused)
    assert ws.tree().get("f.txt") is None
