"""Linux inotify on trio: a folder's file events with no thread and no CPU while nothing happens.

watchfiles' watcher thread wakes every debounce step to look for events, its stop flag and
signals (under the GIL): with a 10 ms step that cost an idle mirror ~12 ms of CPU a second.
Here trio waits on the inotify descriptor itself, so an idle folder costs nothing and the first
event of a burst is seen at once; the burst is handed over after ``quiet_ms`` with no new event
and no written file left open: a save that truncates then writes (``write_bytes``, ``>``) was
once read in between, empty, when its writer paused longer than ``quiet_ms`` between the two.

A watch covers one directory, so every directory below the root gets one, and one made later is
watched when its creation is read — anything created inside it before that is reported by a walk
of it. A queue overflow is reported as the root (the caller rescans everything). The watch limit
(``fs.inotify.max_user_watches``) shows as ``OSError(ENOSPC)`` from ``watch``/``events``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import trio

__all__ = ["Inotify"]

_IN_MODIFY: Final = 0x002
_IN_ATTRIB: Final = 0x004
_IN_CLOSE_WRITE: Final = 0x008
_IN_MOVED_FROM: Final = 0x040
_IN_MOVED_TO: Final = 0x080
_IN_CREATE: Final = 0x100
_IN_DELETE: Final = 0x200
_IN_DELETE_SELF: Final = 0x400
_IN_MOVE_SELF: Final = 0x800
_IN_Q_OVERFLOW: Final = 0x4000
_IN_IGNORED: Final = 0x8000
_IN_ONLYDIR: Final = 0x01000000
_IN_ISDIR: Final = 0x40000000
_IN_NONBLOCK: Final = os.O_NONBLOCK
_IN_CLOEXEC: Final = os.O_CLOEXEC
_MASK: Final = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR
)
_EVENT: Final = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
# One read takes what the kernel has queued, up to this: ~4k events of short names.
_READ_BYTES: Final = 64 * 1024


class Inotify:
    """The inotify watches of one folder tree; ``events`` yields each burst's changed paths."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise _os_error("inotify_init1", root)
        self._fd: int = fd
        self._dirs: dict[int, Path] = {}
        # Files written since their last close: a writer may be between its truncate and its
        # write, so the burst waits for the close (a read then would see an empty file).
        self._writing: set[Path] = set()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watch(self, top: Path) -> list[Path]:
        """Watch ``top`` and every directory below it; returns every path found there (their
        events may have come before the watch did)."""
        found: list[Path] = []
        for directory, subdirs, files in os.walk(top):
            here = Path(directory)
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(here), _MASK)
            if wd < 0:
                error = _os_error("inotify_add_watch", here)
                if error.errno in (errno.ENOENT, errno.ENOTDIR):
                    subdirs.clear()  # gone meanwhile: its removal is an event of its parent
                    continue
                raise error
            self._dirs[wd] = here
            found += [here / name for name in (*subdirs, *files)]
        return found

    async def events(self, quiet_ms: int, max_ms: int) -> AsyncIterator[set[Path]]:
        """Each burst of changed paths: handed over after ``quiet_ms`` with no new event and no
        file still open for writing after a write, or ``max_ms`` after it began (a steady stream,
        or a writer that keeps its file open)."""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            burst: set[Path] = set()
            with trio.move_on_after(max_ms / 1000):
                while True:
                    burst |= self._read()
                    with trio.move_on_after(quiet_ms / 1000) as waited:
                        await trio.lowlevel.wait_readable(self._fd)
                    if waited.cancelled_caught and not self._writing:
                        break
            burst |= self._read()
            self._writing.clear()  # handed over: a writer still at it brings the path back
            if burst:
                yield burst

    def _read(self) -> set[Path]:
        try:
            data = os.read(self._fd, _READ_BYTES)
        except BlockingIOError:
            return set()
        paths: set[Path] = set()
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & _IN_Q_OVERFLOW:
                paths.add(self._root)
                continue
            directory = self._dirs.get(wd)
            if mask & _IN_IGNORED:
                self._dirs.pop(wd, None)
                continue
            if directory is None:
                continue
            path = directory / os.fsdecode(name) if name else directory
            paths.add(path)
            if mask & _IN_MODIFY:
                self._writing.add(path)  # written to and not yet closed: `> file` truncated it, say
            elif mask & (_IN_CLOSE_WRITE | _IN_DELETE | _IN_MOVED_FROM):
                self._writing.discard(path)
            if mask & _IN_ISDIR and mask & (_IN_CREATE | _IN_MOVED_TO):
                paths.update(self.watch(path))
        return paths


def _os_error(call: str, path: Path) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}", str(path))
