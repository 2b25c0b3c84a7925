"""The workspace as one user sees it: files and folders, reads at any version, clear refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import native
from protocol.identity import Identity
from protocol.space import INDEX_DOC_ID
from store.errors import InvalidInput, UnknownSpace
from store.paths import MAX_NAME_BYTES
from store.repo import Repo
from store.tree import FILE_ID_HEX_CHARS
from store.workspace import MAX_WRITE_BYTES, Workspace
from store.workspace_errors import (
    AlreadyExists,
    ContentTooLarge,
    DirectoryNotEmpty,
    InvalidMove,
    IsADirectory,
    NotADirectory,
    NotFound,
    NotText,
    PathError,
    UnknownVersion,
)
from workspace_replicas import MakeRepo, Peer, listing, open_peers


@pytest.fixture
def alice(make_repo: MakeRepo) -> Peer:
    return open_peers("alice", make_repo=make_repo)[0]


def test_files_and_folders_round_trip(alice: Peer) -> None:
    ws = alice.ws
    ws.write("README.md", "# hello\n", now_ms=alice.now())
    ws.mkdir("src/app", now_ms=alice.now(), parents=True)
    ws.write("src/app/main.py", "print('hi')\n", now_ms=alice.now())
    ws.write("logo.png", b"\x89PNG\x00", now_ms=alice.now())
    assert listing(alice) == {
        "README.md": "# hello\n",
        "logo.png": b"\x89PNG\x00",
        "src": None,
        "src/app": None,
        "src/app/main.py": "print('hi')\n",
    }
    assert [stat.path for stat in ws.ls()] == ["README.md", "logo.png", "src"]
    text, binary, folder = ws.ls()
    assert (text.kind, text.encoding, text.size) == ("file", "text", 8)
    assert (binary.encoding, binary.size) == ("binary", 5)
    assert (folder.kind, folder.size, folder.heads) == ("dir", None, ())
    assert len(text.file_id) == FILE_ID_HEX_CHARS and text.heads
    assert ws.exists("src/app") and not ws.exists("src/other")


def test_a_file_keeps_its_id_through_renames(alice: Peer) -> None:
    ws = alice.ws
    ws.write("a.txt", "x", now_ms=alice.now())
    file_id = ws.stat("a.txt").file_id
    ws.mkdir("docs", now_ms=alice.now())
    ws.mv("a.txt", "docs/b.txt", now_ms=alice.now())
    ws.mv("docs", "notes", now_ms=alice.now())
    assert ws.stat("notes/b.txt").file_id == file_id
    assert ws.tree().path_of(file_id) == "notes/b.txt"
    assert ws.tree(version=2).path_of(file_id) == "a.txt"
    assert listing(alice) == {"notes": None, "notes/b.txt": "x"}


def test_a_write_is_a_small_splice_not_a_replacement(alice: Peer) -> None:
    ws = alice.ws
    body = "".join(f"line {n}\n" for n in range(2_000))
    ws.write("big.txt", body, now_ms=alice.now())
    ws.write("big.txt", body.replace("line 1000\n", "line one thousand\n"), now_ms=alice.now())
    document = alice.repo.document(ws.space, ws.stat("big.txt").doc_id)
    last = native.decode_change(document.get_changes()[-1])
    assert last.op_count < 20
    assert ws.read("big.txt").count("\n") == 2_000


def test_text_and_bytes_are_converted_only_where_it_is_lossless(alice: Peer) -> None:
    ws = alice.ws
    ws.write("notes.txt", "old", now_ms=alice.now())
    ws.write("notes.txt", "café".encode(), now_ms=alice.now())
    assert ws.read("notes.txt") == "café"
    with pytest.raises(NotText, match="not UTF-8"):
        ws.write("notes.txt", b"\xff\xfe", now_ms=alice.now())
    ws.write("blob.bin", b"\x00", now_ms=alice.now())
    ws.write("blob.bin", "é", now_ms=alice.now())
    assert ws.read("blob.bin") == "é".encode()


def test_splice_edits_a_text_in_place(alice: Peer) -> None:
    ws = alice.ws
    ws.write("greeting.txt", "hello world", now_ms=alice.now())
    ws.splice("greeting.txt", 6, 5, "there", now_ms=alice.now())
    ws.splice("greeting.txt", 0, 0, "😀 ", now_ms=alice.now())
    assert ws.read("greeting.txt") == "😀 hello there"
    assert ws.stat("greeting.txt").size == len("😀 hello there")


def test_a_splice_may_reach_the_end_of_a_text_in_code_points_but_not_past_it(alice: Peer) -> None:
    ws = alice.ws
    ws.write("emoji.txt", "a😀e\u0301", now_ms=alice.now())  # four code points
    ws.splice("emoji.txt", 4, 0, "!", now_ms=alice.now())
    ws.splice("emoji.txt", 1, 4, "", now_ms=alice.now())
    assert ws.read("emoji.txt") == "a"
    for position, delete in ((2, 0), (1, 1), (0, 2)):
        with pytest.raises(InvalidInput, match="1 characters"):
            ws.splice("emoji.txt", position, delete, "x", now_ms=alice.now())
    assert ws.read("emoji.txt") == "a"


def test_mkdir_with_parents_is_idempotent(alice: Peer) -> None:
    ws = alice.ws
    version = ws.mkdir("a/b/c", now_ms=alice.now(), parents=True)
    assert ws.mkdir("a/b", now_ms=alice.now(), parents=True) == version
    assert listing(alice) == {"a": None, "a/b": None, "a/b/c": None}


def test_rm_of_a_directory_takes_everything_in_it(alice: Peer) -> None:
    ws = alice.ws
    ws.write("build/out/app.js", "x", now_ms=alice.now(), parents=True)
    ws.write("keep.txt", "k", now_ms=alice.now())
    ws.rm("build", now_ms=alice.now(), recursive=True)
    assert listing(alice) == {"keep.txt": "k"}
    ws.rm("keep.txt", now_ms=alice.now())
    assert listing(alice) == {}
    ws.write("build", "a file where the folder was", now_ms=alice.now())
    assert listing(alice) == {"build": "a file where the folder was"}


def test_unchanged_content_makes_no_version(alice: Peer) -> None:
    ws = alice.ws
    ws.write("same.txt", "s", now_ms=alice.now())
    ws.write("same.bin", b"s", now_ms=alice.now())
    version = ws.version()
    assert ws.write("same.txt", "s", now_ms=alice.now()) == version
    assert ws.write("same.bin", b"s", now_ms=alice.now()) == version
    assert ws.mv("same.txt", "same.txt", now_ms=alice.now()) == version


def test_reads_at_any_version_show_the_space_as_it_was(alice: Peer) -> None:
    ws = alice.ws
    seen = {0: listing(alice)}
    for step in (
        lambda now: ws.write("a.txt", "one\n", now_ms=now),
        lambda now: ws.mkdir("dir", now_ms=now),
        lambda now: ws.splice("a.txt", 4, 0, "two\n", now_ms=now),
        lambda now: ws.mv("a.txt", "dir/a.txt", now_ms=now),
        lambda now: ws.write("b.bin", b"\x01", now_ms=now),
        lambda now: ws.rm("dir", now_ms=now, recursive=True),
        lambda now: ws.write("b.bin", b"\x02", now_ms=now),
    ):
        version = step(alice.now())
        seen[version] = listing(alice)
    for version, expected in seen.items():
        assert listing(alice, version) == expected
    assert ws.read("a.txt", version=2) == "one\n"
    assert ws.read("dir/a.txt", version=5) == "one\ntwo\n"
    assert ws.stat("dir/a.txt", version=7).path == "dir/a.txt"
    assert [stat.path for stat in ws.ls("dir", version=7)] == ["dir/a.txt"]


@pytest.mark.parametrize("version", [-1, 99, True, "1", 1.0])
def test_an_unknown_version_is_refused(alice: Peer, version: object) -> None:
    alice.ws.write("a", "a", now_ms=alice.now())
    with pytest.raises(UnknownVersion, match="versions 0 to 2"):
        alice.ws.read("a", version=version)  # type: ignore[arg-type]


def test_a_workspace_needs_a_known_space(alice: Peer) -> None:
    with pytest.raises(UnknownSpace):
        Workspace(alice.repo, bytes(32))


REFUSALS: list[tuple[str, Callable[[Workspace, int], object], type[Exception], str]] = [
    ("absolute path", lambda ws, now: ws.write("/etc/x", "x", now_ms=now), PathError, "relative"),
    ("dot-dot", lambda ws, now: ws.mkdir("src/../x", now_ms=now), PathError, "'..'"),
    ("long name", lambda ws, now: ws.write("x" * (MAX_NAME_BYTES + 1), "x", now_ms=now), PathError, "longer"),
    ("missing parent", lambda ws, now: ws.write("nope/x", "x", now_ms=now), NotFound, "parents=True"),
    ("file as parent", lambda ws, now: ws.write("file.txt/x", "x", now_ms=now, parents=True), NotADirectory, "is a file"),
    ("write a dir", lambda ws, now: ws.write("dir", "x", now_ms=now), IsADirectory, "directory"),
    ("read a dir", lambda ws, now: ws.read("dir"), IsADirectory, "directory"),
    ("ls a file", lambda ws, now: ws.ls("file.txt"), NotADirectory, "is a file"),
    ("read missing", lambda ws, now: ws.read("missing"), NotFound, "no file or directory"),
    ("mkdir existing", lambda ws, now: ws.mkdir("dir", now_ms=now), AlreadyExists, "already exists"),
    ("mkdir -p over a file", lambda ws, now: ws.mkdir("file.txt", now_ms=now, parents=True), AlreadyExists, "exists"),
    ("rm non-empty", lambda ws, now: ws.rm("dir", now_ms=now), DirectoryNotEmpty, "recursive=True"),
    ("rm missing", lambda ws, now: ws.rm("missing", now_ms=now), NotFound, "no file"),
    ("rm root", lambda ws, now: ws.rm("", now_ms=now, recursive=True), PathError, "root"),
    ("mv onto a file", lambda ws, now: ws.mv("file.txt", "dir/inner.txt", now_ms=now), AlreadyExists, "exists"),
    ("mv into itself", lambda ws, now: ws.mv("dir", "dir/sub", now_ms=now), InvalidMove, "into itself"),
    ("mv to nowhere", lambda ws, now: ws.mv("file.txt", "nope/x", now_ms=now), NotFound, "does not exist"),
    ("splice binary", lambda ws, now: ws.splice("data.bin", 0, 0, "x", now_ms=now), NotText, "binary"),
    ("splice past end", lambda ws, now: ws.splice("file.txt", 3, 2, "x", now_ms=now), InvalidInput, "4 characters"),
    ("splice negative", lambda ws, now: ws.splice("file.txt", -1, 0, "x", now_ms=now), InvalidInput, "cannot delete"),
    ("splice bytes", lambda ws, now: ws.splice("file.txt", 0, 0, b"x", now_ms=now), NotText, "inserts a str"),
    ("bad content", lambda ws, now: ws.write("new.txt", 42, now_ms=now), InvalidInput, "not int"),
    ("lone surrogate", lambda ws, now: ws.write("new.txt", "a\ud800", now_ms=now), InvalidInput, "not valid Unicode"),
    ("too large", lambda ws, now: ws.write("new.bin", bytes(MAX_WRITE_BYTES + 1), now_ms=now), ContentTooLarge, "limit"),
]


@pytest.mark.parametrize(("operation", "error", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_refused_operation_says_why_and_changes_nothing(
    alice: Peer, operation: Callable[[Workspace, int], object], error: type[Exception], message: str
) -> None:
    ws = alice.ws
    ws.write("dir/inner.txt", "i", now_ms=alice.now(), parents=True)
    ws.write("file.txt", "text", now_ms=alice.now())
    ws.write("data.bin", b"\x00", now_ms=alice.now())
    before, version = listing(alice), ws.version()
    with pytest.raises(error, match=message):
        operation(ws, alice.now())
    assert (listing(alice), ws.version()) == (before, version)


def test_what_was_written_is_there_after_reopening(tmp_path: Path) -> None:
    def on_disk(identity: Identity, name: str) -> Repo:
        return Repo.open(tmp_path / f"{name}.sqlite", identity)

    alice = open_peers("alice", make_repo=on_disk)[0]
    alice.ws.write("src/main.py", "print(1)\n", now_ms=alice.now(), parents=True)
    alice.ws.mv("src", "lib", now_ms=alice.now())
    before, version = listing(alice), alice.ws.version()
    alice.repo.close()
    alice.repo = on_disk(alice.repo.identity, "alice")
    alice.ws = Workspace(alice.repo, alice.ws.space)
    assert (listing(alice), alice.ws.version()) == (before, version)


def test_malformed_index_entries_from_a_peer_are_ignored_not_fatal(alice: Peer) -> None:
    ws = alice.ws
    ws.write("dir/ok.txt", "ok", now_ms=alice.now(), parents=True)
    file_id = ws.stat("dir/ok.txt").file_id
    dir_id = ws.stat("dir").file_id
    index = alice.repo.document(ws.space, INDEX_DOC_ID)
    index.put(native.ROOT, "not-an-id", "junk")
    index.put(native.ROOT, "ab" * 16, 7)  # an id whose entry is not a map
    bad_name = index.put_object(native.ROOT, "cd" * 16, "map")
    index.put(bad_name, "kind", "file")
    index.put(bad_name, "encoding", "text")
    loc = index.put_object(bad_name, "loc", "map")
    index.put(loc, "parent", "")
    index.put(loc, "name", "../escape")
    orphan = index.put_object(native.ROOT, "ef" * 16, "map")  # a dir whose parent is a file: shown at the root
    index.put(orphan, "kind", "dir")
    loc = index.put_object(orphan, "loc", "map")
    index.put(loc, "parent", file_id)
    index.put(loc, "name", "orphan")
    alice.repo.commit(ws.space, INDEX_DOC_ID, "a buggy peer", now_ms=alice.now())
    assert listing(alice) == {"dir": None, "dir/ok.txt": "ok", "orphan": None}
    assert ws.stat("orphan").file_id == "ef" * 16 and dir_id != "ef" * 16
