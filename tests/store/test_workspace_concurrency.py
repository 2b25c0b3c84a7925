"""Concurrent tree and file edits on different peers converge to what a user would expect.

Each scenario: peers start from a shared state, edit concurrently (no sync in between), then
exchange changes through the real store path; every peer must show the same tree and content.
The rules are stated in store/tree.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol.space import INDEX_DOC_ID
from store.errors import StoreError
from store.tree import CONFLICT_AUTHOR_HEX_CHARS
from store.workspace import Workspace
from store.workspace_errors import ContentUnavailable
from store_helpers import sync as sync_doc
from workspace_replicas import MakeRepo, Peer, listing, open_peers, sync


@pytest.fixture
def alice_bob(make_repo: MakeRepo) -> list[Peer]:
    return open_peers("alice", "bob", make_repo=make_repo)


def converged(*peers: Peer) -> dict[str, str | bytes | None]:
    """Sync everyone; every peer shows the same tree, and so does a freshly opened workspace
    (which reads the whole index, where the others caught up change by change)."""
    sync(*peers)
    fresh = Peer("fresh", peers[0].repo, Workspace(peers[0].repo, peers[0].ws.space))
    listings = [listing(peer) for peer in (*peers, fresh)]
    assert all(other == listings[0] for other in listings[1:])
    return listings[0]


def short(peer: Peer) -> str:
    return peer.key.hex()[:CONFLICT_AUTHOR_HEX_CHARS]


def test_create_create_keeps_both_files_and_names_the_later_claim_as_a_conflict(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("notes.md", "alice's notes\n", now_ms=alice.now())
    bob.ws.write("notes.md", "bob's notes\n", now_ms=bob.now())
    tree = converged(alice, bob)
    assert sorted(tree.values()) == ["alice's notes\n", "bob's notes\n"]
    loser = next(peer for peer in (alice, bob) if tree["notes.md"] != f"{peer.name}'s notes\n")
    assert set(tree) == {"notes.md", f"notes (conflict {short(loser)}).md"}
    stat = alice.ws.stat(f"notes (conflict {short(loser)}).md")
    assert stat.claimed_name == "notes.md"


def test_three_way_create_gives_three_distinct_names() -> None:
    peers = open_peers("alice", "bob", "carol")
    for peer in peers:
        peer.ws.write("todo.txt", peer.name, now_ms=peer.now())
    tree = converged(*peers)
    assert sorted(tree.values()) == ["alice", "bob", "carol"]
    assert "todo.txt" in tree and len(tree) == 3


def test_a_conflict_is_settled_by_an_ordinary_rename(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("a.txt", "A", now_ms=alice.now())
    bob.ws.write("a.txt", "B", now_ms=bob.now())
    tree = converged(alice, bob)
    conflicted = next(path for path in tree if path != "a.txt")
    bob.ws.mv(conflicted, "b.txt", now_ms=bob.now())
    assert sorted(converged(alice, bob).items()) == sorted({"a.txt": tree["a.txt"], "b.txt": tree[conflicted]}.items())


def test_rename_rename_picks_one_winner_everywhere(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("draft.md", "text\n", now_ms=alice.now())
    sync(alice, bob)
    alice.ws.mv("draft.md", "by-alice.md", now_ms=alice.now())
    bob.ws.mkdir("docs", now_ms=bob.now())
    bob.ws.mv("draft.md", "docs/by-bob.md", now_ms=bob.now())
    tree = converged(alice, bob)
    files = {path: content for path, content in tree.items() if content is not None}
    assert list(files.values()) == ["text\n"]
    assert list(files) in (["by-alice.md"], ["docs/by-bob.md"])


def test_an_edit_concurrent_with_a_rename_lands_in_the_renamed_file(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("main.py", "print('hi')\n", now_ms=alice.now())
    sync(alice, bob)
    alice.ws.mv("main.py", "app.py", now_ms=alice.now())
    bob.ws.write("main.py", "print('hi')\nprint('bye')\n", now_ms=bob.now())
    assert converged(alice, bob) == {"app.py": "print('hi')\nprint('bye')\n"}


def test_an_edit_concurrent_with_a_delete_brings_the_file_back(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("plan.md", "step 1\n", now_ms=alice.now())
    sync(alice, bob)
    alice.ws.rm("plan.md", now_ms=alice.now())
    bob.ws.splice("plan.md", 7, 0, "step 2\n", now_ms=bob.now())
    assert converged(alice, bob) == {"plan.md": "step 1\nstep 2\n"}
    # a delete made after seeing the edit holds
    alice.ws.rm("plan.md", now_ms=alice.now())
    assert converged(alice, bob) == {}


def test_concurrent_removals_together_cover_what_each_saw(alice_bob: list[Peer]) -> None:
    # Automerge keeps the greater actor's value of a conflict: let that be the one who saw less
    editor, other = sorted(alice_bob, key=lambda peer: peer.key)
    editor.ws.write("scratch.txt", "1", now_ms=editor.now())
    sync(editor, other)
    editor.ws.write("scratch.txt", "2", now_ms=editor.now())
    editor.ws.rm("scratch.txt", now_ms=editor.now())
    other.ws.rm("scratch.txt", now_ms=other.now())  # never saw the edit, but the editor did
    assert converged(editor, other) == {}


def test_a_rename_concurrent_with_a_delete_does_not_undo_the_delete(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("old.txt", "x", now_ms=alice.now())
    sync(alice, bob)
    alice.ws.rm("old.txt", now_ms=alice.now())
    bob.ws.mv("old.txt", "new.txt", now_ms=bob.now())
    assert converged(alice, bob) == {}


def test_mkdir_mkdir_of_one_path_is_one_directory_holding_both_sides(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("src/a.py", "a", now_ms=alice.now(), parents=True)
    bob.ws.write("src/b.py", "b", now_ms=bob.now(), parents=True)
    assert converged(alice, bob) == {"src": None, "src/a.py": "a", "src/b.py": "b"}
    # new files go into the merged directory, and a move takes both halves along
    bob.ws.write("src/c.py", "c", now_ms=bob.now())
    alice.ws.mv("src", "lib", now_ms=alice.now())
    assert converged(alice, bob) == {"lib": None, "lib/a.py": "a", "lib/b.py": "b", "lib/c.py": "c"}


def test_mkdir_create_of_one_path_keeps_the_directory_and_renames_the_file(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("build/out.txt", "o", now_ms=alice.now(), parents=True)
    bob.ws.write("build", "a file called build", now_ms=bob.now())
    assert converged(alice, bob) == {
        "build": None,
        "build/out.txt": "o",
        f"build (conflict {short(bob)})": "a file called build",
    }


def test_a_file_created_in_a_concurrently_removed_directory_survives_there(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("tmp/old.log", "old", now_ms=alice.now(), parents=True)
    sync(alice, bob)
    alice.ws.rm("tmp", recursive=True, now_ms=alice.now())
    bob.ws.write("tmp/new.log", "new", now_ms=bob.now())
    assert converged(alice, bob) == {"tmp": None, "tmp/new.log": "new"}


def test_a_file_created_in_a_concurrently_moved_directory_moves_with_it(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.mkdir("lib", now_ms=alice.now())
    sync(alice, bob)
    alice.ws.mv("lib", "vendor", now_ms=alice.now())
    bob.ws.write("lib/x.py", "x", now_ms=bob.now())
    assert converged(alice, bob) == {"vendor": None, "vendor/x.py": "x"}


def test_crossed_directory_moves_do_not_make_a_cycle(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("a/in-a.txt", "1", now_ms=alice.now(), parents=True)
    alice.ws.write("b/in-b.txt", "2", now_ms=alice.now(), parents=True)
    sync(alice, bob)
    alice.ws.mv("a", "b/a", now_ms=alice.now())
    bob.ws.mv("b", "a/b", now_ms=bob.now())
    tree = converged(alice, bob)
    assert sorted(content for content in tree.values() if content is not None) == ["1", "2"]
    assert tree in (
        {"a": None, "a/in-a.txt": "1", "a/b": None, "a/b/in-b.txt": "2"},
        {"b": None, "b/in-b.txt": "2", "b/a": None, "b/a/in-a.txt": "1"},
    )


def test_concurrent_writes_to_different_lines_both_survive(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("poem.txt", "one\ntwo\nthree\n", now_ms=alice.now())
    sync(alice, bob)
    alice.ws.write("poem.txt", "ONE\ntwo\nthree\n", now_ms=alice.now())
    bob.ws.write("poem.txt", "one\ntwo\nthree\nfour\n", now_ms=bob.now())
    assert converged(alice, bob) == {"poem.txt": "ONE\ntwo\nthree\nfour\n"}


def test_the_index_arriving_before_a_files_content_shows_the_file_without_content() -> None:
    alice, bob = open_peers("alice", "bob")
    alice.ws.write("late.txt", "body", now_ms=alice.now())
    sync_doc(alice.repo, bob.repo, alice.ws.space, INDEX_DOC_ID)
    assert bob.ws.stat("late.txt").size is None
    with pytest.raises(ContentUnavailable, match="has not arrived"):
        bob.ws.read("late.txt")
    with pytest.raises(ContentUnavailable, match="has not arrived"):
        bob.ws.write("late.txt", "bob's", now_ms=bob.now())
    assert converged(alice, bob) == {"late.txt": "body"}


# ----- random concurrent operations -----

NAMES = ("a", "b", "c.txt")
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
Step = tuple[int, str, int, str, str]


@st.composite
def operations(draw: st.DrawFn) -> list[Step]:
    """(peer, operation, pick among the peer's existing paths, new path, text) steps."""
    operation = st.sampled_from(["write", "mkdir", "rm", "mv", "splice", "edit", "sync"])
    step = st.tuples(st.integers(0, 2), operation, st.integers(0, 99), paths, st.text("xyz\n", max_size=4))
    return draw(st.lists(step, max_size=16))


def apply_step(peers: list[Peer], step: Step) -> None:
    index, operation, pick, new_path, text = step
    peer = peers[index]
    existing = [node.path for node in peer.ws.tree().walk()] or [new_path]
    path, now = existing[pick % len(existing)], peer.now()
    match operation:
        case "sync":
            sync(peer, peers[(index + 1) % len(peers)])
        case "write":
            peer.ws.write(new_path, text, now_ms=now, parents=True)
        case "edit":
            peer.ws.write(path, text, now_ms=now)
        case "mkdir":
            peer.ws.mkdir(new_path, now_ms=now, parents=True)
        case "rm":
            peer.ws.rm(path, now_ms=now, recursive=True)
        case "mv":
            peer.ws.mv(path, new_path, now_ms=now)
        case "splice":
            peer.ws.splice(path, 0, min(1, peer.ws.stat(path).size or 0), text, now_ms=now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations())
# Found by hypothesis: two concurrent removals of one directory leave two values of a "deleted"
# key; Automerge's diff reports no patch for the losing one, so a tree read incrementally
# missed it and showed the directory's files to one peer only.
@example([(0, "rm", 0, "a", ""), (1, "splice", 3, "a", ""), (2, "rm", 0, "a", ""), (2, "sync", 0, "a", ""), (0, "write", 0, "a", ""), (1, "rm", 2, "a", "")])
def test_random_concurrent_operations_converge(steps: list[Step]) -> None:
    peers = open_peers("alice", "bob", "carol")
    alice = peers[0]
    for path in ("a/a", "a/b/c.txt", "b"):  # a shared start, so that steps find paths to work on
        alice.ws.write(path, "xyz\n", now_ms=alice.now(), parents=True)
    sync(*peers)
    for step in steps:
        try:
            apply_step(peers, step)
        except StoreError:
            pass  # a refused operation changes nothing; convergence is what is checked here
    tree = converged(*peers)
    for path in tree:  # every shown path is addressable
        assert peers[0].ws.stat(path).path == path
