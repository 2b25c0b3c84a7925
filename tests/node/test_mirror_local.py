"""The folder mirror on one node (no daemon): a real store, a real temp folder, real inotify events.

Each test mirrors a space of a daemon-less ``NodeServices`` into a folder with ``run_mirror`` (or
drives a ``Mirror`` by hand where the order of two events is the point), edits the folder as a
user or a program would and the space as a remote peer or an API client would, and checks both.
Disk changes send no notification, so waiting for one is a bounded poll (``until``).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from node.home import NodeHome
from node.inotify import Inotify
from node.mirror import MIRROR_FILE_BYTES_MAX, MIRROR_WRITER_QUIET_MS, TEMP_PREFIX, Mirror, checkout, run_mirror
from node.services import NodeServices
from store.repo import Repo
from store.workspace import Workspace

WAIT_S = 20.0  # a mirror acts within ~100 ms; this bounds a loaded 2-core machine
POLL_S = 0.01


class Node:
    """A node's services on a real store, and the space it mirrors."""

    def __init__(self, root: Path) -> None:
        self.home = NodeHome(root / "home")
        self.home.ensure()
        identity = self.home.identity()
        self.repo = Repo.open(self.home.database, identity)
        self.services = NodeServices(self.home, self.home.config(), identity, self.repo)
        self.space = self.repo.create_space("mirrored", 0).space_id
        self.ws: Workspace = self.services.workspace(self.space)
        self.folder = root / "folder"

    def close(self) -> None:
        self.services.close()
        self.repo.close()

    def write(self, path: str, content: str | bytes) -> None:
        """A write to the space as an API client or a peer makes it."""
        self.ws.write(path, content, now_ms=1, parents=True)

    @asynccontextmanager
    async def mirrored(self) -> AsyncIterator[Mirror]:
        async with trio.open_nursery() as nursery:
            mirror: Mirror = await nursery.start(run_mirror, self.services, self.space, self.folder)
            yield mirror
            nursery.cancel_scope.cancel()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path)
    yield node
    node.close()


async def until(check: Callable[[], bool], what: str) -> None:
    with trio.move_on_after(WAIT_S) as waited:
        while not check():  # noqa: ASYNC110 — disk changes send no event to wait on
            await trio.sleep(POLL_S)  # noqa: sleep — a bounded poll: disk changes send no event to wait on
    assert not waited.cancelled_caught, f"not within {WAIT_S} s: {what}"


def reads(ws: Workspace, path: str, content: str | bytes) -> Callable[[], bool]:
    return lambda: ws.exists(path) and ws.read(path) == content


def holds(file: Path, content: bytes) -> Callable[[], bool]:
    return lambda: file.exists() and file.read_bytes() == content


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)]


async def settled(node: Node, mirror: Mirror, marker: str = "marker") -> None:
    """Wait until the mirror has acted on every disk event before this point: a file written
    now reaches the space only after the events queued ahead of it."""
    (node.folder / marker).write_text(marker)
    await until(reads(node.ws, marker, marker), f"{marker} reaches the space")
    await until(lambda: mirror.status()["pending"] == 0, "nothing pending")


# ----- checkout and start -----


async def test_checkout_writes_the_tree_and_a_mirror_then_starts_in_sync(node: Node) -> None:
    node.write("a.txt", "alpha\n")
    node.write("src/lib/b.py", "print('b')\n")
    node.write("img.bin", b"\x00\x01\x02")
    node.ws.mkdir("empty", now_ms=1)
    counts = checkout(node.services, node.space, node.folder)
    assert counts["WriteOut"] == 6  # three files, three directories (src, src/lib, empty)
    assert (node.folder / "a.txt").read_text() == "alpha\n"
    assert (node.folder / "src/lib/b.py").read_text() == "print('b')\n"
    assert (node.folder / "img.bin").read_bytes() == b"\x00\x01\x02"
    assert (node.folder / "empty").is_dir()
    heads = {path: node.ws.stat(path).heads for path in ["a.txt", "src/lib/b.py", "img.bin"]}
    entries = node.ws.entries()
    async with node.mirrored() as mirror:
        assert mirror.status()["files"] == 3
        await settled(node, mirror)
    assert {path: node.ws.stat(path).heads for path in heads} == heads, "the start wrote nothing back"
    assert set(node.ws.entries()) - set(entries) == {node.ws.stat("marker").file_id}
    assert not leftovers(node.folder)


async def test_an_existing_folder_is_ingested_at_start_in_one_pass(node: Node) -> None:
    node.folder.mkdir()
    for i in range(40):
        (node.folder / f"d{i % 4}").mkdir(exist_ok=True)
        (node.folder / f"d{i % 4}" / f"f{i}.txt").write_text(f"file {i}\n")
    async with node.mirrored() as mirror:
        assert mirror.status()["files"] == 40
        assert node.ws.read("d3/f39.txt") == "file 39\n"


async def test_leftover_temp_files_are_removed_at_start(node: Node) -> None:
    node.write("a.txt", "alpha\n")
    checkout(node.services, node.space, node.folder)
    (node.folder / f"{TEMP_PREFIX}0123abcd").write_text("half a write")
    (node.folder / "sub").mkdir()
    (node.folder / "sub" / f"{TEMP_PREFIX}4567").write_text("half")
    async with node.mirrored():
        assert not leftovers(node.folder)
    assert not node.ws.exists(f"{TEMP_PREFIX}0123abcd")


async def test_an_edit_made_while_no_mirror_ran_merges_with_the_space_edit_made_meanwhile(node: Node) -> None:
    node.write("a.txt", "one\ntwo\nthree\n")
    checkout(node.services, node.space, node.folder)
    (node.folder / "a.txt").write_text("ONE\ntwo\nthree\n")  # the user, while the daemon is down
    node.write("a.txt", "one\ntwo\nTHREE\n")  # a peer's edit that arrived meanwhile
    async with node.mirrored():
        await until(holds(node.folder / "a.txt", b"ONE\ntwo\nTHREE\n"), "the merge on disk")
    assert node.ws.read("a.txt") == "ONE\ntwo\nTHREE\n"


# ----- disk -> space -----


async def test_saves_reach_the_space_as_edits_of_the_same_file(node: Node) -> None:
    node.write("a.txt", "alpha\n")
    checkout(node.services, node.space, node.folder)
    file_id = node.ws.stat("a.txt").file_id
    async with node.mirrored():
        (node.folder / "a.txt").write_text("alpha\nbeta\n")  # a plain write
        await until(reads(node.ws, "a.txt", "alpha\nbeta\n"), "the plain write")
        temp = node.folder / ".a.txt.tmp~"  # an editor's save: a temp file renamed over
        temp.write_text("alpha\nbeta\ngamma\n")
        os.replace(temp, node.folder / "a.txt")
        await until(reads(node.ws, "a.txt", "alpha\nbeta\ngamma\n"), "the save by rename")
        (node.folder / "new" / "deep").mkdir(parents=True)
        (node.folder / "new" / "deep" / "n.txt").write_text("new\n")
        await until(reads(node.ws, "new/deep/n.txt", "new\n"), "a new file in new directories")
    assert node.ws.stat("a.txt").file_id == file_id, "saves edit the file, never replace it"


async def test_saves_reach_the_space_when_the_folder_is_polled(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where inotify cannot watch (its watch limit reached), the mirror polls: a scan each interval."""
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    node.write("a.txt", "alpha\n")
    checkout(node.services, node.space, node.folder)
    async with node.mirrored() as mirror:
        assert mirror.status()["watcher"] == "polling"
        (node.folder / "a.txt").write_text("alpha\nbeta\n")
        await until(reads(node.ws, "a.txt", "alpha\nbeta\n"), "the polled save")


async def test_watch_exhaustion_falls_back_to_polling_with_one_warning(node: Node, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """inotify's watch limit reached (ENOSPC from inotify_add_watch; the real limit is a
    machine-wide sysctl, not a test's to lower): one warning, then polling that sees saves."""

    def exhausted(self: Inotify, top: Path) -> list[Path]:
        raise OSError(errno.ENOSPC, "inotify_add_watch: No space left on device", str(top))

    monkeypatch.setattr(Inotify, "watch", exhausted)
    node.write("a.txt", "alpha\n")
    checkout(node.services, node.space, node.folder)
    with caplog.at_level(logging.WARNING, logger="node.mirror"):
        async with node.mirrored() as mirror:
            assert mirror.status()["watcher"] == "polling"
            (node.folder / "a.txt").write_text("alpha\nbeta\n")
            await until(reads(node.ws, "a.txt", "alpha\nbeta\n"), "the polled save")
            (node.folder / "b.txt").write_text("new\n")
            await until(reads(node.ws, "b.txt", "new\n"), "a new file, polled")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "polling it instead" in warnings[0], warnings


async def test_events_lost_to_a_queue_overflow_bring_a_full_scan(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's event queue overflowed (reported as the root): the save no event names is
    found by the full scan the mirror's serving task runs then."""
    node.write("a.txt", "alpha\n")
    checkout(node.services, node.space, node.folder)
    real_read = Inotify._read

    def overflowing(self: Inotify) -> set[Path]:
        return {self._root} if real_read(self) else set()  # every event lost, only the overflow told

    async with node.mirrored() as mirror:
        monkeypatch.setattr(Inotify, "_read", overflowing)
        (node.folder / "a.txt").write_text("alpha\nbeta\n")
        await until(reads(node.ws, "a.txt", "alpha\nbeta\n"), "the save found by the rescan")
        assert not mirror.scan_wanted and mirror.status()["scan"] is None


async def test_deletes_and_renames_become_rm_and_mv(node: Node) -> None:
    node.write("a.txt", "alpha\n")
    node.write("gone.txt", "bye\n")
    node.write("dir/x.txt", "x\n")
    checkout(node.services, node.space, node.folder)
    a_id, x_id = node.ws.stat("a.txt").file_id, node.ws.stat("dir/x.txt").file_id
    async with node.mirrored():
        (node.folder / "gone.txt").unlink()
        await until(lambda: not node.ws.exists("gone.txt"), "the delete")
        os.rename(node.folder / "a.txt", node.folder / "b.txt")
        await until(lambda: node.ws.exists("b.txt") and not node.ws.exists("a.txt"), "the rename")
        os.rename(node.folder / "dir", node.folder / "moved")
        await until(lambda: node.ws.exists("moved/x.txt") and not node.ws.exists("dir"), "the directory move")
    assert node.ws.stat("b.txt").file_id == a_id
    assert node.ws.stat("moved/x.txt").file_id == x_id


async def test_binary_files_round_trip(node: Node) -> None:
    checkout(node.services, node.space, node.folder)
    async with node.mirrored():
        (node.folder / "blob.bin").write_bytes(b"\x00\xffbinary")
        await until(reads(node.ws, "blob.bin", b"\x00\xffbinary"), "the binary file")
        node.write("blob.bin", b"\x00\xfenew")
        await until(holds(node.folder / "blob.bin", b"\x00\xfenew"), "the binary written out")


async def test_ignore_rules_hold_both_ways(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    node.write(".gitignore", "*.log\nbuild/\n!keep.log\n")
    node.write(".distspaceignore", "secret.txt\n")
    node.write("remote.log", "from a peer\n")  # ignored here: never written out
    checkout(node.services, node.space, node.folder)
    assert not (node.folder / "remote.log").exists()
    caplog.set_level(logging.WARNING, logger="node.mirror")
    async with node.mirrored() as mirror:
        for path in ["x.log", "keep.log", "build/out.o", "secret.txt", ".git/HEAD", "notes.txt~", ".notes.txt.swp", "sub/y.log"]:
            (node.folder / path).parent.mkdir(parents=True, exist_ok=True)
            (node.folder / path).write_text(path)
        (node.folder / "huge.bin").write_bytes(b"\x01" * (MIRROR_FILE_BYTES_MAX + 1))
        await settled(node, mirror)
        assert node.ws.read("keep.log") == "keep.log", "a negated pattern is mirrored"
        for path in ["x.log", "build", "secret.txt", ".git", "notes.txt~", ".notes.txt.swp", "sub/y.log", "huge.bin"]:
            assert not node.ws.exists(path), path
    assert sum("huge.bin" in r.getMessage() for r in caplog.records) == 1, "one line names the file too large"


# ----- space -> disk -----


async def test_space_writes_reach_disk_atomically_keeping_the_mode(node: Node) -> None:
    node.write("run.sh", "echo one\n")
    checkout(node.services, node.space, node.folder)
    script = node.folder / "run.sh"
    script.chmod(0o755)
    inode = script.stat().st_ino
    async with node.mirrored():
        node.write("run.sh", "echo two\n")
        await until(holds(script, b"echo two\n"), "the write out")
        assert script.stat().st_ino != inode, "replaced by a rename, never written in place"
        assert stat.S_IMODE(script.stat().st_mode) == 0o755
        node.write("new/dir/f.txt", "f\n")
        await until(holds(node.folder / "new/dir/f.txt", b"f\n"), "a new file in new directories")
    assert not leftovers(node.folder)


async def test_own_writes_do_not_come_back(node: Node) -> None:
    node.write("a.txt", "alpha\n")
    checkout(node.services, node.space, node.folder)
    async with node.mirrored() as mirror:
        node.write("a.txt", "alpha\nfrom the space\n")
        await until(holds(node.folder / "a.txt", b"alpha\nfrom the space\n"), "the write out")
        heads = node.ws.stat("a.txt").heads
        await settled(node, mirror)  # the events of our own rename were looked at before this
        assert node.ws.stat("a.txt").heads == heads, "our write came back as an edit"
        assert mirror.status()["ingested"] == 1  # the marker only


async def test_remote_delete_and_rename_reach_disk(node: Node) -> None:
    node.write("a.txt", "alpha\n")
    node.write("b.txt", "beta\n")
    checkout(node.services, node.space, node.folder)
    inode = (node.folder / "a.txt").stat().st_ino
    async with node.mirrored():
        node.ws.rm("b.txt", now_ms=2)
        await until(lambda: not (node.folder / "b.txt").exists(), "the remote delete")
        node.ws.mv("a.txt", "c.txt", now_ms=2)
        await until(lambda: (node.folder / "c.txt").exists() and not (node.folder / "a.txt").exists(), "the remote rename")
    assert (node.folder / "c.txt").stat().st_ino == inode, "renamed on disk, not rewritten"


# ----- both at once -----


async def test_a_save_arriving_while_a_remote_write_goes_out_is_merged(node: Node) -> None:
    """The user saves line 1 after the mirror last looked, a remote edit of line 3 arrives: the
    write-out finds the disk copy changed, ingests it at its record first, writes the merge."""
    node.write("a.txt", "one\ntwo\nthree\n")
    checkout(node.services, node.space, node.folder)
    mirror = Mirror(node.services, node.space, node.folder)
    try:
        mirror.scan()
        (node.folder / "a.txt").write_text("ONE\ntwo\nthree\n")  # no event handled yet
        node.write("a.txt", "one\ntwo\nTHREE\n")
        mirror.sync_space_changes()
        assert (node.folder / "a.txt").read_text() == "ONE\ntwo\nTHREE\n"
        assert node.ws.read("a.txt") == "ONE\ntwo\nTHREE\n"
    finally:
        mirror.close()


async def test_a_save_ingested_after_a_same_node_api_edit_keeps_that_edit_through_the_next_save(node: Node) -> None:
    """An API client of this node writes line 3 while the user saves line 1: the ingest is made
    after the API's change (a node's changes form one chain), so the space holds more than the
    disk, and the merge waits while the user's editor may still be writing. The user's next save,
    from a buffer that never saw line 3, must add its edit and leave line 3 alone."""
    node.write("a.txt", "one\ntwo\nthree\n")
    checkout(node.services, node.space, node.folder)
    mirror = Mirror(node.services, node.space, node.folder)
    try:
        mirror.watcher = "inotify"  # as when running: a file changed just now may be mid-write
        mirror.scan()
        (node.folder / "a.txt").write_text("ONE\ntwo\nthree\n")  # saved, no event handled yet
        node.write("a.txt", "one\ntwo\nTHREE\n")  # the API client, on this node
        mirror.sync_space_changes()
        assert node.ws.read("a.txt") == "ONE\ntwo\nTHREE\n"
        assert (node.folder / "a.txt").read_text() == "ONE\ntwo\nthree\n", "the merge waits: the editor may be writing"
        (node.folder / "a.txt").write_text("ONE\nTWO\nthree\n")  # the next save, from the same buffer
        mirror.sync_disk_changes()
        assert node.ws.read("a.txt") == "ONE\nTWO\nTHREE\n", "line 3 from the API survives the save"
        quiet_ns = time.time_ns() - 10 * MIRROR_WRITER_QUIET_MS * 1_000_000
        os.utime(node.folder / "a.txt", ns=(quiet_ns, quiet_ns))  # the editor is done writing
        mirror.sync_disk_changes()
        assert (node.folder / "a.txt").read_text() == "ONE\nTWO\nTHREE\n", "the merge is written out once the file is quiet"
        mirror.sync_disk_changes()
        assert node.ws.read("a.txt") == "ONE\nTWO\nTHREE\n", "our write-out does not come back as an edit"
    finally:
        mirror.close()


async def test_concurrent_edits_of_one_file_merge_on_disk_and_in_the_space(node: Node) -> None:
    lines = [f"line {i}\n" for i in range(10)]
    node.write("a.txt", "".join(lines))
    checkout(node.services, node.space, node.folder)
    async with node.mirrored():
        mine, theirs = list(lines), list(lines)
        mine[1], theirs[8] = "mine\n", "theirs\n"
        (node.folder / "a.txt").write_text("".join(mine))
        node.write("a.txt", "".join(theirs))
        merged = list(lines)
        merged[1], merged[8] = "mine\n", "theirs\n"
        await until(holds(node.folder / "a.txt", "".join(merged).encode()), "the merge on disk")
    assert node.ws.read("a.txt") == "".join(merged)
