"""The executable bit mirrored both ways on two real daemons with folders (node/mirror.py): a
chmod on disk sets the file's bit in the space (an inotify IN_ATTRIB event), a chmod in the
space (fs.batch's mode op, or a peer's) sets the x bits in the folders, each folder's other
mode bits kept, and a new executable file arrives executable."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mirror_helpers import Side, mirrored_pair, wait_file, wait_for
from node.mirror_plan import FILE, Record
from node.mirror_state import MirrorRecords

SCRIPT = b"#!/bin/sh\necho hello\n"


def mode(side: Side, path: str) -> int | None:
    try:
        return stat.S_IMODE((side.folder / path).stat().st_mode)
    except FileNotFoundError:
        return None


def executable_in_space(side: Side, path: str) -> bool | None:
    shown = side.stat(path)
    return None if shown is None else bool(shown["executable"])


def user_umask() -> int:
    """This process's umask, which the daemons it starts inherit."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def with_x(mode: int) -> int:
    """The mode a chmod in the space gives a file: x bits where it can be read."""
    return mode | ((mode & 0o444) >> 2)


def modes(alice: Side, bob: Side, path: str) -> tuple[object, ...]:
    return (mode(alice, path), mode(bob, path), executable_in_space(alice, path), executable_in_space(bob, path))


def test_the_executable_bit_follows_chmod_both_ways_and_keeps_each_folders_other_bits(tmp_path: Path) -> None:
    with mirrored_pair(tmp_path) as (alice, bob):
        (alice.folder / "run.sh").write_bytes(SCRIPT)
        os.chmod(alice.folder / "run.sh", 0o644)
        wait_file(bob, "run.sh", SCRIPT)
        written = mode(bob, "run.sh")  # what Bob's daemon makes a new file: under the umask it was started with, not its own 077
        assert written == 0o666 & ~user_umask()
        wait_for(lambda: modes(alice, bob, "run.sh"), lambda seen: seen == (0o644, written, False, False), "a plain file on both")

        os.chmod(alice.folder / "run.sh", 0o755)  # chmod +x: an attribute event, no byte changed
        wait_for(lambda: modes(alice, bob, "run.sh"), lambda seen: seen == (0o755, with_x(written), True, True), "chmod +x in Alice's folder reaches Bob's")

        os.chmod(bob.folder / "run.sh", 0o600)  # chmod -x (and go-r, Bob's own business) in Bob's folder
        wait_for(lambda: modes(alice, bob, "run.sh"), lambda seen: seen == (0o644, 0o600, False, False), "chmod -x in Bob's folder reaches Alice's, her r bits kept")

        alice.call("fs.batch", ops=[{"op": "mode", "path": "run.sh", "executable": True}])  # a chmod in the space
        wait_for(lambda: modes(alice, bob, "run.sh"), lambda seen: seen == (0o755, 0o700, True, True), "the space's bit written to both folders, x only where r")

        edited = SCRIPT + b"echo again\n"
        (alice.folder / "run.sh").write_bytes(edited)  # a save keeps the mode; the write-out at Bob's does too
        wait_file(bob, "run.sh", edited)
        assert modes(alice, bob, "run.sh") == (0o755, 0o700, True, True)

        tool = b"\x7fELF\x00 a binary\n"
        (alice.folder / "bin").mkdir()
        (alice.folder / "bin" / "tool").write_bytes(tool)
        os.chmod(alice.folder / "bin" / "tool", 0o755)
        wait_file(bob, "bin/tool", tool)
        wait_for(lambda: modes(alice, bob, "bin/tool"), lambda seen: seen == (0o755, with_x(written), True, True), "a new executable file arrives executable")
        assert bob.call("fs.stat", path="run.sh")["heads"] == alice.call("fs.stat", path="run.sh")["heads"], "a chmod is no edit of the file"


def test_records_from_before_the_bit_start_with_their_x_bits_cleared(tmp_path: Path) -> None:
    """A record of before compared its disk mode with a space that had no bit: kept, every
    executable file would lose its x bits to the space's "not executable"; cleared, it sets the
    bit in the space instead (node/mirror_state.py)."""
    database, space, folder = tmp_path / "mirror.sqlite", b"s" * 32, tmp_path / "folder"
    records = MirrorRecords(database, space, folder)
    records.save([Record("run.sh", FILE, "f1", (), b"h" * 32, 3, 100, 7, 0o755)], [])
    records.close()
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA user_version = 0")  # as a file of before this version
    with _records(database, space, folder) as reopened:
        record = reopened.get("run.sh")
        assert record is not None and record.mode == 0o644
    with _records(database, space, folder) as again:  # once only: a record made since keeps its bits
        again.save([Record("tool", FILE, "f2", (), b"t" * 32, 3, 100, 8, 0o755)], [])
    with _records(database, space, folder) as last:
        tool = last.get("tool")
        assert tool is not None and tool.mode == 0o755


@contextmanager
def _records(database: Path, space: bytes, folder: Path) -> Iterator[MirrorRecords]:
    records = MirrorRecords(database, space, folder)
    try:
        yield records
    finally:
        records.close()
