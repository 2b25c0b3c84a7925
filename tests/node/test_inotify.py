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


async def test_a_file_truncated_and_still_open_is_handed_over_only_once_closed(tmp_path: Path) -> None:
    """`> file` then a write: read in between, the file would be empty — the burst waits for the close."""
    (tmp_path / "a.txt").write_text("whole\n")
    send, receive = trio.open_memory_channel[set[Path]](8)
    with Inotify(tmp_path) as inotify:
        inotify.watch(tmp_path)

        async def forward() -> None:
            async for burst in inotify.events(QUIET_MS, MAX_MS):
                await send.send(burst)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward)
            with open(tmp_path / "a.txt", "w") as writing:  # noqa: ASYNC230 — held open across awaits on purpose; truncated: IN_MODIFY, no close yet
                writing.flush()
                with trio.move_on_after(10 * QUIET_MS / 1000) as early:
                    await receive.receive()
                assert early.cancelled_caught, "handed over while the writer still had the file open"
                writing.write("whole again\n")
            with trio.fail_after(WAIT_S):
                assert await receive.receive() == {tmp_path / "a.txt"}
            nursery.cancel_scope.cancel()
