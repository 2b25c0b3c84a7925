"""node/inotify.py on real inotify: what a burst reports, and new directories watched as they come."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from node.inotify import Inotify

WAIT_S = 20.0  # a burst arrives within ~10 ms; this bounds a loaded machine
QUIET_MS, MAX_MS = 10, 500


async def next_burst(events: AsyncIterator[set[Path]]) -> set[Path]:
    with trio.fail_after(WAIT_S):
        return await anext(events)


async def test_a_write_a_rename_and_a_removal_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    with Inotify(tmp_path) as inotify:
        assert inotify.watch(tmp_path) == [tmp_path / "a.txt"]
        events = inotify.events(QUIET_MS, MAX_MS)
        (tmp_path / "a.txt").write_text("two")
        assert await next_burst(events) == {tmp_path / "a.txt"}
        os.replace(tmp_path / "a.txt", tmp_path / "b.txt")
        (tmp_path / "b.txt").unlink()
        assert await next_burst(events) == {tmp_path / "a.txt", tmp_path / "b.txt"}


async def test_a_directory_made_with_files_inside_is_watched_and_its_files_reported(tmp_path: Path) -> None:
    with Inotify(tmp_path) as inotify:
        inotify.watch(tmp_path)
        events = inotify.events(QUIET_MS, MAX_MS)
        (tmp_path / "new" / "deep").mkdir(parents=True)  # files made before the watch can be added
        (tmp_path / "new" / "deep" / "n.txt").write_text("n")
        burst = await next_burst(events)
        assert {tmp_path / "new", tmp_path / "new" / "deep" / "n.txt"} <= burst
        (tmp_path / "new" / "deep" / "n.txt").write_text("changed")  # the new directory has its watch
        assert tmp_path / "new" / "deep" / "n.txt" in await next_burst(events)


async def test_nothing_is_reported_while_the_folder_is_idle(tmp_path: Path) -> None:
    with Inotify(tmp_path) as inotify:
        inotify.watch(tmp_path)
        events = inotify.events(QUIET_MS, MAX_MS)
        with trio.move_on_after(0.2) as idle:
            await anext(events)
        assert idle.cancelled_caught
