"""History: who changed what and when, diffs and blame across peers, and reverting forward."""

from __future__ import annotations

import pytest

from store import history
from store.errors import InvalidInput
from store.workspace_errors import AlreadyExists, IsADirectory, NotFound, NotText, PathError, UnknownVersion
from workspace_replicas import MakeRepo, Peer, listing, open_peers, sync


@pytest.fixture
def team(make_repo: MakeRepo) -> list[Peer]:
    return open_peers("alice", "bob", "carol", make_repo=make_repo)


def test_the_log_tells_who_changed_what_and_when_newest_first(team: list[Peer]) -> None:
    alice, bob, _ = team
    alice.ws.write("src/app.py", "app\n", now_ms=alice.now(), parents=True, message="start the app")
    sync(alice, bob)
    bob_time = bob.now()
    bob.ws.write("src/app.py", "app v2\n", now_ms=bob_time, message="bob's fix")
    sync(alice, bob)
    alice.ws.mv("src/app.py", "src/main.py", now_ms=alice.now())
    log = alice.history.log()
    assert [entry.message for entry in log] == ["mv src/app.py src/main.py", "bob's fix", "start the app", "start the app"]
    moved, fix, created_entry, created_content = log
    assert (fix.author, fix.time_ms, fix.origin, fix.paths) == (bob.key, bob_time, "remote", ("src/app.py",))
    assert (moved.author, moved.origin, moved.paths) == (alice.key, "local", ("src/main.py",))
    assert created_entry.paths == ("src", "src/app.py")  # the index change made the folder and the file
    assert created_content.paths == ("src/main.py",)  # content comes before its entry: named as now
    assert [entry.version for entry in log] == sorted((entry.version for entry in log), reverse=True)


def test_the_log_of_a_path_follows_its_file_through_renames(team: list[Peer]) -> None:
    alice = team[0]
    ws = alice.ws
    ws.write("a.txt", "1", now_ms=alice.now(), message="create a")
    ws.write("other.txt", "x", now_ms=alice.now(), message="unrelated")
    ws.mkdir("dir", now_ms=alice.now())
    ws.mv("a.txt", "dir/b.txt", now_ms=alice.now(), message="rename a")
    ws.write("dir/b.txt", "2", now_ms=alice.now(), message="edit b")
    assert [e.message for e in alice.history.log("dir/b.txt")] == ["edit b", "rename a", "create a", "create a"]
    assert "mkdir dir" in [e.message for e in alice.history.log("dir")]
    assert [e.message for e in alice.history.log("dir/b.txt", limit=2)] == ["edit b", "rename a"]
    assert [e.message for e in alice.history.log(since=4, until=6)] == ["rename a", "mkdir dir"]
    with pytest.raises(NotFound):
        alice.history.log("a.txt")
    assert [e.message for e in alice.history.log("a.txt", until=2)] == ["create a", "create a"]


def test_the_log_pages_back_through_many_versions(team: list[Peer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "LOG_PAGE_VERSIONS", 3)
    alice = team[0]
    alice.ws.write("count.txt", "0", now_ms=alice.now())
    for number in range(1, 10):
        alice.ws.write("count.txt", str(number), now_ms=alice.now(), message=f"count {number}")
    alice.ws.write("noise.txt", "n", now_ms=alice.now())
    assert [e.message for e in alice.history.log("count.txt", limit=4)] == ["count 9", "count 8", "count 7", "count 6"]
    assert len(alice.history.log("count.txt")) == 11


def test_diff_between_versions_per_file(team: list[Peer]) -> None:
    alice = team[0]
    ws = alice.ws
    ws.write("keep.txt", "same\n", now_ms=alice.now())
    ws.write("edit.txt", "one\ntwo\n", now_ms=alice.now())
    ws.write("move.txt", "m\n", now_ms=alice.now())
    ws.write("gone.txt", "g\n", now_ms=alice.now())
    ws.write("blob.bin", b"\x00", now_ms=alice.now())
    old = ws.version()
    ws.write("edit.txt", "one\n2\n", now_ms=alice.now())
    ws.mv("move.txt", "moved.txt", now_ms=alice.now())
    ws.rm("gone.txt", now_ms=alice.now())
    ws.write("new.txt", "n\n", now_ms=alice.now())
    ws.write("blob.bin", b"\x01", now_ms=alice.now())
    diffs = {d.new_path or d.old_path: d for d in alice.history.diff(old)}
    assert {path: d.status for path, d in diffs.items()} == {
        "blob.bin": "modified",
        "edit.txt": "modified",
        "gone.txt": "removed",
        "moved.txt": "moved",
        "new.txt": "added",
    }
    assert diffs["edit.txt"].unified == "--- a/edit.txt\n+++ b/edit.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n"
    assert diffs["new.txt"].unified.startswith("--- /dev/null\n+++ b/new.txt\n")
    assert diffs["gone.txt"].unified.endswith("-g\n")
    assert diffs["moved.txt"].unified == "" and diffs["moved.txt"].patches == []
    assert diffs["blob.bin"].unified == "Binary files a/blob.bin and b/blob.bin differ\n"
    assert [p["action"] for p in diffs["edit.txt"].patches] == ["splice_text", "del_seq"]
    assert [d.new_path for d in alice.history.diff(old, path="edit.txt")] == ["edit.txt"]
    backwards = {d.old_path or d.new_path: d.status for d in alice.history.diff(ws.version(), old)}
    assert backwards["new.txt"] == "removed" and backwards["gone.txt"] == "added"


def test_blame_names_the_author_of_every_line(team: list[Peer]) -> None:
    alice, bob, carol = team
    alice.ws.write("poem.txt", "roses are red\nviolets are blue\n", now_ms=alice.now())
    sync(*team)
    bob.ws.write("poem.txt", "roses are red\nviolets are BLUE\n", now_ms=bob.now())
    carol.ws.splice("poem.txt", 0, 0, "a poem\n\n", now_ms=carol.now())
    sync(*team)
    blame = alice.history.blame("poem.txt")
    assert [(line.number, line.text, line.author) for line in blame] == [
        (1, "a poem", carol.key),
        (2, "", carol.key),
        (3, "roses are red", alice.key),
        (4, "violets are BLUE", bob.key),
    ]
    assert bob.history.blame("poem.txt") == blame
    at_start = alice.history.blame("poem.txt", version=2)
    assert [(line.text, line.author) for line in at_start] == [("roses are red", alice.key), ("violets are blue", alice.key)]
    assert blame[3].change in {entry.change for entry in alice.history.log("poem.txt")}


def test_blame_wants_a_text_file(team: list[Peer]) -> None:
    alice = team[0]
    alice.ws.write("data.bin", b"\x00", now_ms=alice.now())
    alice.ws.mkdir("dir", now_ms=alice.now())
    with pytest.raises(NotText):
        alice.history.blame("data.bin")
    with pytest.raises(IsADirectory):
        alice.history.blame("dir")
    alice.ws.write("empty.txt", "", now_ms=alice.now())
    assert alice.history.blame("empty.txt") == []


def test_replay_walks_the_changes_between_two_versions_in_order(team: list[Peer]) -> None:
    alice, bob, _ = team
    alice.ws.write("bug.py", "x = 1\n", now_ms=alice.now())
    start = alice.ws.version()
    sync(alice, bob)
    bob.ws.splice("bug.py", 4, 1, "0", now_ms=bob.now(), message="oops")
    alice.ws.write("other.py", "ok\n", now_ms=alice.now())
    sync(alice, bob)
    alice.ws.splice("bug.py", 0, 0, "# why is x zero?\n", now_ms=alice.now(), message="question")
    steps = alice.history.replay(start, path="bug.py")
    assert [(step.entry.message, step.entry.author) for step in steps] == [("oops", bob.key), ("question", alice.key)]
    oops = steps[0].patches
    assert [(p["action"], p["index"]) for p in oops] == [("splice_text", 4), ("del_seq", 5)]
    everything = alice.history.replay(start)
    # in the order this node got them: alice wrote other.py before bob's change reached her
    assert [step.entry.message for step in everything] == ["create other.py", "create other.py", "oops", "question"]
    assert [step.entry.version for step in everything] == sorted(step.entry.version for step in everything)


def test_revert_puts_the_workspace_back_with_new_changes(team: list[Peer]) -> None:
    alice, bob, _ = team
    ws = alice.ws
    ws.write("src/a.py", "a = 1\n", now_ms=alice.now(), parents=True)
    ws.write("logo.bin", b"\x01", now_ms=alice.now())
    good, good_listing = ws.version(), listing(alice)
    ws.write("src/a.py", "a = 2\n", now_ms=alice.now())
    ws.mv("src", "lib", now_ms=alice.now())
    ws.rm("logo.bin", now_ms=alice.now())
    ws.write("junk.txt", "junk", now_ms=alice.now())
    bad, bad_listing = ws.version(), listing(alice)
    reverted = alice.history.revert(good, now_ms=alice.now())
    assert reverted > bad
    assert listing(alice) == good_listing
    assert listing(alice, bad) == bad_listing  # history is not rewritten
    assert alice.history.log(limit=1)[0].message == f"revert to version {good}"
    sync(alice, bob)
    assert listing(bob) == good_listing
    alice.history.revert(bad, now_ms=alice.now())  # a revert is history too, and can be undone
    assert listing(alice) == bad_listing


def test_revert_file_brings_one_file_back(team: list[Peer]) -> None:
    alice = team[0]
    ws = alice.ws
    ws.write("notes.md", "first\n", now_ms=alice.now())
    ws.write("todo.md", "t\n", now_ms=alice.now())
    first = ws.version()
    ws.write("notes.md", "second\n", now_ms=alice.now())
    ws.write("todo.md", "t2\n", now_ms=alice.now())
    alice.history.revert_file("notes.md", first, now_ms=alice.now())
    assert listing(alice) == {"notes.md": "first\n", "todo.md": "t2\n"}
    ws.mkdir("archive", now_ms=alice.now())
    ws.mv("notes.md", "archive/notes.md", now_ms=alice.now())
    ws.rm("todo.md", now_ms=alice.now())
    alice.history.revert_file("todo.md", first, now_ms=alice.now())
    alice.history.revert_file("notes.md", first, now_ms=alice.now())
    assert listing(alice) == {"archive": None, "notes.md": "first\n", "todo.md": "t\n"}


def test_revert_file_refusals(team: list[Peer]) -> None:
    alice = team[0]
    ws = alice.ws
    ws.write("a.txt", "a", now_ms=alice.now())
    ws.mkdir("dir", now_ms=alice.now())
    version = ws.version()
    ws.rm("a.txt", now_ms=alice.now())
    ws.write("a.txt", "an unrelated new file", now_ms=alice.now())
    with pytest.raises(AlreadyExists, match="move it away"):
        alice.history.revert_file("a.txt", version, now_ms=alice.now())
    with pytest.raises(IsADirectory):
        alice.history.revert_file("dir", version, now_ms=alice.now())
    with pytest.raises(NotFound):
        alice.history.revert_file("never.txt", version, now_ms=alice.now())
    with pytest.raises(UnknownVersion):
        alice.history.revert(ws.version() + 1, now_ms=alice.now())
    assert ws.read("a.txt") == "an unrelated new file"


def test_history_questions_with_bad_arguments_are_refused(team: list[Peer]) -> None:
    alice = team[0]
    alice.ws.write("a.txt", "a", now_ms=alice.now())
    with pytest.raises(InvalidInput, match="count of entries"):
        alice.history.log(limit=-1)
    with pytest.raises(UnknownVersion):
        alice.history.log(until=3)
    with pytest.raises(PathError):
        alice.history.diff(0, path="/a.txt")
    with pytest.raises(UnknownVersion):
        alice.history.replay(-1)
