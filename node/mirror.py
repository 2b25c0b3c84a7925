"""A space mirrored into a folder, both ways, so every editor and tool sees plain files.

``run_mirror(services, space, folder)`` is the daemon's task for one folder. It first makes the
folder and the space agree (``Mirror.scan``: leftover temp files removed, every path compared,
everything the disk has and the space lacks ingested in batches — one store transaction per
MIRROR_BATCH_PATHS paths, not one commit per file), reports the ``Mirror`` through
``task_status.started`` and then runs until cancelled:

- disk -> space: inotify, waited on by trio itself (node/inotify.py: no thread, no CPU while
  the folder is idle), hands over bursts of events, coalesced until MIRROR_DEBOUNCE_MS of quiet; each event only means "look at
  this path again" (and everything below it): at once for a recorded file still on disk (a
  save), after MIRROR_SETTLE_MS of quiet for any other path (new, gone, a directory: so a
  save-by-rename or a move is seen whole). A full scan with the stat cache every
  MIRROR_SCAN_INTERVAL_S catches what events miss (overflow, watch limits, recreated dirs). If
  inotify cannot watch the folder (its watch limit is reached), the mirror polls it (a scan
  every MIRROR_POLL_INTERVAL_MS), with one warning.
- space -> disk: every ``StoreEvent`` of the space (a remote change, an API write) marks the
  docs it moved; the task looks at their paths (at every path when the tree itself moved).

What happens at each path is node/mirror_plan.py's decision over three views of it: disk now,
the space now, and the path's ``Record`` (node/mirror_state.py: the heads and bytes that disk
copy was written from or read at). A disk change is committed as a three-way write at the
record's heads, so a text file edited on both sides merges, never a conflict copy; our own
writes do not come back, since a write-out leaves disk bytes, heads and record equal (sha256
and heads are compared, never timestamps alone).

Writing a file out: a temp file (TEMP_PREFIX) in the same directory, written and fsynced, given
the mode the old file had, then renamed over it and the directory fsynced — so a reader, or a
crash, sees the old file or the new one, never half of one. Just before the rename the disk
copy is checked against the record again: a save that arrived meanwhile is ingested first and
the merge written instead. A file someone else changed less than MIRROR_WRITER_QUIET_MS ago is
not replaced yet (looked at again until it is quiet): a program may still hold it open, and
its next writes would go to the old, unlinked file — lost. (A save in the microseconds between
the check and the rename, or a writer quiet for longer with the file open, is the window left.)

Crash safety: temp files left by a killed mirror are removed at start; a write-out is noted
(``MirrorRecords.intend``) before its rename, so after a crash between the rename and the
record the bytes on disk are known to be ours; a file changed while no mirror ran differs from
its record and is ingested at its record's heads.

Ignored, in both directions: ``.gitignore`` files (git's rules, nested ones too, via pathspec)
and ``.distspaceignore`` at the root (a file of the space, so shared by every peer), plus
ALWAYS_IGNORED (``.git/``, our temp files, editors' swap and backup files), the node's home if
it lies inside the folder, and files over MIRROR_FILE_BYTES_MAX (one log line each).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pathspec
import trio

from node.editor import carried, text_patches
from node.home import USER_UMASK
from node.inotify import Inotify
from node.logs import event
from node.mirror_plan import (
    DIR,
    FILE,
    Action,
    Adopt,
    Chained,
    Conflict,
    Create,
    DiskEntry,
    DiskMode,
    DiskMove,
    DiskRemove,
    Forget,
    Ingest,
    Move,
    Observation,
    Record,
    Remove,
    SetMode,
    SpaceEntry,
    WriteOut,
    executable,
    plan,
    reparent,
)
from node.mirror_state import MIRROR_DB_FILE, MirrorRecords
from node.services import NodeServices
from protocol.space import INDEX_DOC_ID
from store.batch import BatchOp
from store.errors import StoreError
from store.paths import is_within, name_problem, parent_of
from store.repo import StoreEvent, wall_clock_ms
from store.tree import TEXT, Tree, file_id_of
from store.workspace import MAX_WRITE_BYTES, Content, Workspace, text_edits
from store.workspace_errors import ContentUnavailable, NotFound, UnknownBase

__all__ = [
    "ALWAYS_IGNORED",
    "MIRROR_BATCH_BYTES",
    "MIRROR_BATCH_PATHS",
    "MIRROR_DEBOUNCE_MAX_MS",
    "MIRROR_DEBOUNCE_MS",
    "MIRROR_FILE_BYTES_MAX",
    "MIRROR_PROGRESS_LOG_S",
    "MIRROR_SCAN_INTERVAL_S",
    "MIRROR_SETTLE_MS",
    "MIRROR_SLICE_MS",
    "TEMP_PREFIX",
    "IgnoreRules",
    "Mirror",
    "checkout",
    "run_mirror",
]

log = logging.getLogger(__name__)

# The watcher's quiet window: a burst of events is handed over once MIRROR_DEBOUNCE_MS pass with
# no new one. An editor's in-place save or rename-over is a burst within a few ms. At 50 ms every
# save took ~100 ms to reach the peer's folder; 10 ms makes it ~25 ms. inotify waits on its
# descriptor (no CPU while idle); the polling fallback checks every step instead.
MIRROR_DEBOUNCE_MS = 10
# Paths an event names that are not a recorded file still on disk — a new name (an editor's or
# sed's temp file), a name gone (half of a rename, or vim moving the old file away before it
# writes the new one), a directory — are held until the held paths have had this much quiet,
# so a save-by-rename or a move is seen whole (a delete and a create of the same bytes: a mv).
MIRROR_SETTLE_MS = 50
# A steady stream of writes (a build, `git checkout` of a large branch) is still handed over this
# often (held paths too), so the space follows a long burst instead of waiting for it to end.
MIRROR_DEBOUNCE_MAX_MS = 500
# Events get lost (queue overflow, watch limits, a directory recreated before it is watched);
# a full scan compares stats only (no hashing unless a stat moved), ~0.1 s for 10k files here.
MIRROR_SCAN_INTERVAL_S = 60.0
# One file is one write, and one write must fit one change in one frame (store.workspace).
MIRROR_FILE_BYTES_MAX = MAX_WRITE_BYTES
# Paths per store transaction: a 10k-file folder ingests in a few transactions instead of 10k
# fsyncs, and each batch of creates rebuilds the tree once (~0.1 ms per file already in it: at
# 512 a batch, 10k files rebuilt it 20 times, ~1 s of a ~6 s first scan here)...
MIRROR_BATCH_PATHS = 4_096
# ...holding at most this much of new files' content in memory at once (read, then built into
# their first changes, before the batch is stored).
MIRROR_BATCH_BYTES = 32 * 1024 * 1024
# A scan still going after this long logs its progress (event mirror.scan_progress) this often,
# and its end (mirror.scan_done): a first scan of a large folder takes seconds.
MIRROR_PROGRESS_LOG_S = 2.0
# A pass over many paths (a first scan, a rescan, a checkout of a big branch) hands the daemon's
# trio loop back at least this often — between files, between a batch's durable steps — so its
# API clients and peers are served while it runs (a first scan of 10k files takes seconds).
MIRROR_SLICE_MS = 50
# Files and content per durable step of a scan's bulk create (``Workspace.batch_steps``), so one
# step holds the loop ~0.1-0.2 s: a step of 500 site-packages files (~13 KB each) took 1-2 s
# here (load 4), 40 of them ~0.2 s; small files cost ~0.5 ms each.
MIRROR_STEP_FILES = 200
MIRROR_STEP_BYTES = 512 * 1024
# A file whose stat moves while we read it is being written: look again after this long...
MIRROR_UNSTABLE_RETRY_MS = 50
# ...and a write-out that keeps finding fresh saves on disk gives up after this many rounds
# (the next event tries again): a user saving in a loop must not starve the task.
MIRROR_WRITE_TRIES = 5
# A file changed by someone else this recently may still be open in the program writing it (a
# build step, a logger, a slow save): a rename over it would send that program's next writes to
# the unlinked old file. A write-out waits until the file has been quiet this long.
MIRROR_WRITER_QUIET_MS = 1_000

TEMP_PREFIX = ".distspace-tmp-"
DISTSPACE_IGNORE_FILE = ".distspaceignore"
GIT_IGNORE_FILE = ".gitignore"
IGNORE_FILES = (DISTSPACE_IGNORE_FILE, GIT_IGNORE_FILE)
# Never mirrored: git's own store, our temp files, editors' swap/backup/lock files (vim's 4913
# is its probe of whether a directory is writable).
ALWAYS_IGNORED = (".git/", f"{TEMP_PREFIX}*", "*.swp", "*.swx", "*.swo", "*~", "4913", ".#*", "#*#")
# Polling (when inotify cannot watch): a scan with the stat cache this often, ~10 ms of CPU per
# 1k files each round (so ~1% per 1k files): a fallback, announced by its warning.
MIRROR_POLL_INTERVAL_MS = 1_000
# Ignore verdicts remembered per rules file: a few MB at most; a folder's paths fit many times.
IGNORE_VERDICTS_MAX = 100_000

T = TypeVar("T")
# A pass run a slice at a time: each yield is a point where the daemon's loop may run others
# (never inside a store group), or a ``_Blocking`` call whose value is sent back; ``_at_once``
# runs a pass here, ``_cooperatively`` in slices with its blocking calls on a worker thread.
Steps = Generator[object, Any, T]


@dataclass(frozen=True, slots=True)
class _Blocking:
    """Disk I/O a pass asks to have run where it cannot stall the loop (reads, fsyncs): it
    touches the folder only, never the store (SQLite's connection stays on the trio thread)."""

    call: Callable[[], Any]


class IgnoreRules:
    """Which paths the mirror leaves alone: git's rules from every ``.gitignore`` (deeper files
    win), then ``.distspaceignore`` at the root, then ALWAYS_IGNORED."""

    def __init__(self, folder: Path, extra: Iterable[str] = ()) -> None:
        self._folder = folder
        self._always = _Rules(pathspec.GitIgnoreSpec.from_lines([*ALWAYS_IGNORED, *extra]))
        self._specs: dict[str, _Rules] = {}
        self._order: list[tuple[str, str, _Rules]] | None = None  # (where, its directory, rules), shallowest first
        self._by_text: dict[str, _Rules] = {}  # compiled rules by file text, kept across reloads with their verdicts
        self.load_root()

    def load_root(self) -> None:
        """Start again from the root's ignore files (the nested ones load as a walk finds them).
        Rules whose text is unchanged keep their verdicts, so a periodic scan matches no path again."""
        in_use = {rules.text for rules in self._specs.values()}
        self._by_text = {text: rules for text, rules in self._by_text.items() if text in in_use}
        self._specs, self._order = {}, None
        self.load(DISTSPACE_IGNORE_FILE)
        self.load(GIT_IGNORE_FILE)

    def load(self, path: str) -> None:
        """Read (or drop, if gone) the ignore file at ``path``."""
        try:
            self.load_text(path, (self._folder / path).read_text(errors="replace"))
        except OSError:
            if self._specs.pop(path, None) is not None:
                self._order = None

    def load_text(self, path: str, text: str) -> None:
        """Take the rules of the ignore file at ``path`` from ``text`` (one the space has, not yet on disk)."""
        rules = self._by_text.get(text)
        if rules is None:
            rules = self._by_text[text] = _Rules(pathspec.GitIgnoreSpec.from_lines(text.splitlines()), text)
        if self._specs.get(path) is not rules:
            self._specs[path], self._order = rules, None

    def ignored(self, path: str, is_dir: bool) -> bool:
        probe = path + "/" if is_dir else path
        if self._always.include(probe):
            return True
        if self._order is None:
            ordered = sorted(self._specs.items(), key=lambda item: (item[0] != DISTSPACE_IGNORE_FILE, item[0].count("/")))
            self._order = [(where, parent_of(where), rules) for where, rules in ordered]
        verdict: bool | None = None
        for _, base, rules in self._order:
            if base and not is_within(path, base):
                continue
            result = rules.include(probe[len(base) + 1 :] if base else probe)
            if result is not None:
                verdict = result
        return bool(verdict)


class _Rules:
    """One ignore file's compiled rules and the verdicts they gave (a verdict depends only on
    the rules and the relative path, so it holds until the file's text changes)."""

    def __init__(self, spec: pathspec.GitIgnoreSpec, text: str = "") -> None:
        self.spec, self.text = spec, text
        self._verdicts: dict[str, bool | None] = {}

    def include(self, relative: str) -> bool | None:
        try:
            return self._verdicts[relative]
        except KeyError:
            pass
        if len(self._verdicts) >= IGNORE_VERDICTS_MAX:
            self._verdicts.clear()  # temp names come and go: bound the memory
        verdict = self._verdicts[relative] = self.spec.check_file(relative).include
        return verdict


@dataclass(slots=True)
class _Stats:
    written: int = 0
    ingested: int = 0
    removed: int = 0
    moved: int = 0
    last_sync_ms: int | None = None
    last_error: str | None = None
    actions: dict[str, int] = field(default_factory=dict)


class Mirror:
    """One space mirrored into one folder: the scan, the decisions' I/O, the status."""

    def __init__(self, services: NodeServices, space: bytes, folder: Path) -> None:
        self.services = services
        self.space = space
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.workspace: Workspace = services.workspace(space)
        self.records = MirrorRecords(services.home.path / MIRROR_DB_FILE, space, self.folder)
        home = services.home.path.resolve()
        extra = [f"/{home.relative_to(self.folder).as_posix()}/"] if home.is_relative_to(self.folder) and home != self.folder else []
        self.ignore = IgnoreRules(self.folder, extra)
        self.watcher = "none"  # "inotify" | "polling" once run_mirror watches
        self.pending: set[str] = set()  # paths to look at again (disk events, unstable files)
        self._held: set[str] = set()  # event paths waiting for MIRROR_SETTLE_MS of quiet
        self._held_first = self._held_last = 0.0  # trio times of the first and last held event
        self.ignored: set[str] = set()  # paths left alone as ignored, since the last scan
        self.stats = _Stats()
        self._too_large_logged: set[str] = set()
        self._written: dict[str, tuple[int, int, int]] = {}  # path -> (inode, size, mtime_ns) of our last write-out
        self._space_docs: set[bytes] = set()
        self._space_tree_moved = False
        self._tree_at: tuple[int, Tree] | None = None
        self.scanning: _Progress | None = None  # the scan running now, for ``status``
        self.scan_wanted = False  # a full scan asked for (events lost, polling): the serving task runs it
        self.wake = trio.Event()
        self._unlisten = services.bus.listen(StoreEvent, self._on_store_event)

    def close(self) -> None:
        self._unlisten()
        self.records.close()

    # ----- what run_mirror and the API see -----

    def status(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "space": self.space.hex(),
            "files": sum(1 for r in self.records.records.values() if r.kind == FILE),
            "pending": len(self.pending) + len(self._held) + len(self._space_docs) + int(self._space_tree_moved),
            "last_sync_ms": self.stats.last_sync_ms,
            "last_error": self.stats.last_error,
            "watcher": self.watcher,
            "ignored": len(self.ignored),
            "written": self.stats.written,
            "ingested": self.stats.ingested,
            "scan": None if self.scanning is None else self.scanning.json(),
        }

    def request_scan(self) -> None:
        """Have the serving task scan the whole folder soon (one scan at a time, never two)."""
        self.scan_wanted = True
        self.wake.set()

    @property
    def space_moved(self) -> bool:
        """Whether the space changed since its changes were last written out."""
        return bool(self._space_docs) or self._space_tree_moved

    def note_events(self, paths: Iterable[str], now: float) -> None:
        """Queue the paths disk events named at trio time ``now``: a recorded file still on disk
        (a save) at once, any other held until the held paths are quiet (MIRROR_SETTLE_MS)."""
        for path in paths:
            record = self.records.get(path)
            if record is not None and record.kind == FILE and _is_file(self.folder / path):
                self.pending.add(path)
            else:
                if not self._held:
                    self._held_first = now
                self._held.add(path)
                self._held_last = now

    def held_due(self) -> float:
        """The trio time the held paths are to be looked at (infinity if none is held)."""
        if not self._held:
            return float("inf")
        return min(self._held_last + MIRROR_SETTLE_MS / 1000, self._held_first + MIRROR_DEBOUNCE_MAX_MS / 1000)

    def release_held(self, now: float) -> None:
        """Queue the held paths if they are due at trio time ``now``."""
        if now >= self.held_due():
            self.pending |= self._held
            self._held = set()

    def _on_store_event(self, event: StoreEvent) -> None:
        if event.space != self.space:
            return
        if event.doc == INDEX_DOC_ID:
            self._space_tree_moved = True
        else:
            self._space_docs.add(event.doc)
        self.wake.set()

    # ----- whole-folder passes -----

    def scan(self, *, clean: bool = False, trust_stat: bool = True, fsync_each: bool = True) -> dict[str, int]:
        """Make folder and space agree at every path, at once (a checkout; ``scan_cooperatively``
        is the daemon's). ``clean``: remove leftover temp files first. Returns counts of what was done."""
        return _at_once(self._scan_here(clean=clean, trust_stat=trust_stat, fsync_each=fsync_each))

    async def scan_cooperatively(self, *, clean: bool = False, trust_stat: bool = True) -> dict[str, int]:
        """``scan`` with the daemon's loop served meanwhile: the folder walked and hashed on a
        worker thread (disk reads block), the store's part on the trio thread (SQLite's
        connection lives there) in slices of MIRROR_SLICE_MS; ``status`` shows its progress."""
        progress = self._scan_begin()
        walk = partial(self._walk, ROOT_PATH, clean=clean, trust_stat=trust_stat, progress=progress)
        try:
            disk = await trio.to_thread.run_sync(walk)
        except BaseException:
            self.scanning = None
            raise
        return await _cooperatively(self._scan_steps(progress, disk, fsync_each=True))

    def _scan_here(self, *, clean: bool, trust_stat: bool, fsync_each: bool) -> Steps[dict[str, int]]:
        """A scan whose walk runs here (on the caller's thread)."""
        progress = self._scan_begin()
        disk = self._walk(ROOT_PATH, clean=clean, trust_stat=trust_stat, progress=progress)
        return (yield from self._scan_steps(progress, disk, fsync_each=fsync_each))

    def _scan_begin(self) -> _Progress:
        """Before a scan's walk: the root's ignore rules, and the space's where disk lacks them."""
        self.scan_wanted = False
        self.scanning = progress = _Progress(self.folder, time.monotonic())
        self.ignore.load_root()
        self.ignored = set()
        for node in self._tree().walk():  # the space's rules hold before its ignore files reach the disk
            if node.kind == FILE and node.path.rsplit("/", 1)[-1] in IGNORE_FILES and not (self.folder / node.path).exists():
                with contextlib.suppress(ContentUnavailable):
                    self.ignore.load_text(node.path, str(self.workspace.read(node.path)))
        return progress

    def _scan_steps(self, progress: _Progress, disk: dict[str, DiskEntry | None], *, fsync_each: bool) -> Steps[dict[str, int]]:
        """A scan after its walk found ``disk``: every path compared and settled."""
        try:
            paths = set(disk) | set(self.records.records) | {node.path for node in self._tree().walk()}
            self._space_docs.clear()  # every path is looked at now; a change from here on marks its docs again
            self._space_tree_moved = False
            yield from self._settle(paths, disk, fsync_each=fsync_each, progress=progress)
            counts = dict(self.stats.actions)
            counts["elapsed_ms"] = int((time.monotonic() - progress.started) * 1000)
            progress.finish(len(paths))
            return counts
        finally:
            self.scanning = None

    def sync_space_changes(self) -> None:
        """Write out what the space changed since last time (its StoreEvents), at once."""
        _at_once(self.space_change_steps())

    def space_change_steps(self) -> Steps[None]:
        """``sync_space_changes`` a slice at a time (``_cooperatively``)."""
        docs, moved = self._space_docs, self._space_tree_moved
        self._space_docs, self._space_tree_moved = set(), False
        if moved:
            tree = self._tree()
            paths = set(self.records.records) | {node.path for node in tree.walk()}
        else:
            tree = self._tree()
            paths = {p for p in (tree.path_of(file_id_of(doc)) for doc in docs) if p is not None}
        # A recorded path gone from disk is a delete or half of a rename the disk side has not
        # seen yet: it decides, with the rest of that burst (written out from here, a renamed
        # file would come back as a copy at its old path).
        gone = {p for p in paths if p in self.records.records and not os.path.lexists(self.folder / p)}
        if gone:
            self.note_events(gone, trio.current_time())
            paths -= gone
        if paths:
            yield from self._settle(paths, {}, fsync_each=True)

    def sync_disk_changes(self) -> None:
        """Look again at the paths disk events named (and everything below them), at once."""
        _at_once(self.disk_change_steps())

    def disk_change_steps(self) -> Steps[None]:
        """``sync_disk_changes`` a slice at a time (``_cooperatively``)."""
        touched, self.pending = self.pending, set()
        if any(p.rsplit("/", 1)[-1] in IGNORE_FILES for p in touched):
            yield from self._scan_here(clean=False, trust_stat=True, fsync_each=True)  # the rules changed: every path may be in or out now
            return
        disk: dict[str, DiskEntry | None] = {}
        paths: set[str] = set()
        tree = self._tree()
        for path in _outermost(touched):
            found = self._walk(path, clean=False, trust_stat=False)
            disk.update(found)
            paths |= set(found) | {path} | set(self.records.below(path))
            if tree.get(path) is not None:
                paths |= {node.path for node in tree.walk(path)}
            yield None
        yield from self._settle(paths, disk, fsync_each=True)

    # ----- observing -----

    def _walk(self, top: str, *, clean: bool, trust_stat: bool, progress: _Progress | None = None) -> dict[str, DiskEntry | None]:
        """Every path at or below ``top`` on disk that the mirror looks after (None: unstable now,
        queued again), loading nested ``.gitignore`` files on the way down. A scan runs it on a
        worker thread: it touches only the folder, the ignore rules and the in-memory records."""
        found: dict[str, DiskEntry | None] = {}
        if top:
            if self._skip(top):
                return found
            entry = self._disk_entry(top, trust_stat=trust_stat)
            if entry is None:
                return found
            found[top] = entry
            if entry.kind != DIR:
                return found
        stack = [top]
        while stack:
            directory = stack.pop()
            if (self.folder / directory / GIT_IGNORE_FILE).is_file() if directory else False:
                self.ignore.load(f"{directory}/{GIT_IGNORE_FILE}")
            try:
                with os.scandir(self.folder / directory if directory else self.folder) as listing:
                    children = sorted(listing, key=lambda child: child.name)
            except OSError:
                continue
            for child in children:  # a DirEntry's lstat is one syscall, shared by _skip and _disk_entry
                path = f"{directory}/{child.name}" if directory else child.name
                if clean and child.name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(child.path)
                    continue
                try:
                    info = child.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile: its record decides
                if self._skip(path, info):
                    continue
                entry = self._disk_entry(path, trust_stat=trust_stat, info=info)
                if entry is None:
                    continue
                found[path] = entry
                if progress is not None:
                    progress.advance()
                if entry.kind == DIR:
                    stack.append(path)
        return found

    def _skip(self, path: str, info: os.stat_result | None = None) -> bool:
        """Whether the mirror leaves ``path`` (its lstat ``info``, if at hand) alone: ignored,
        unmirrorable, or too large."""
        if info is None:
            try:
                info = (self.folder / path).lstat()
            except OSError:
                return False  # gone: not ignored, its record decides
        if stat.S_ISLNK(info.st_mode) or not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            return True  # symlinks, sockets, fifos: the space holds files and directories only
        bad_name = path not in self.records.records and name_problem(path.rsplit("/", 1)[-1]) is not None  # a recorded one passed
        if bad_name or self.ignore.ignored(path, stat.S_ISDIR(info.st_mode)):
            self.ignored.add(path)
            return True
        if stat.S_ISREG(info.st_mode) and info.st_size > MIRROR_FILE_BYTES_MAX:
            if path not in self._too_large_logged:
                self._too_large_logged.add(path)
                log.warning("mirror: %s is %d bytes, over the %d-byte limit of one file: not mirrored", path, info.st_size, MIRROR_FILE_BYTES_MAX)
            return True
        return False

    def _disk_entry(self, path: str, *, trust_stat: bool, info: os.stat_result | None = None) -> DiskEntry | None:
        """What is at ``path`` (its lstat ``info``, if at hand) on disk; None when it is being
        written (it is queued again)."""
        try:
            before = (self.folder / path).lstat() if info is None else info
        except OSError:
            return None
        mode = stat.S_IMODE(before.st_mode)
        if stat.S_ISDIR(before.st_mode):
            return DiskEntry(DIR, b"", 0, 0, before.st_ino, mode)
        record = self.records.get(path)
        entry = DiskEntry(FILE, b"", before.st_size, before.st_mtime_ns, before.st_ino, mode)
        if trust_stat and record is not None and record.same_stat(entry):
            return DiskEntry(FILE, record.sha256, before.st_size, before.st_mtime_ns, before.st_ino, mode)
        read = _read_stable(self.folder / path)
        if read is None:
            self.pending.add(path)
            return None
        return DiskEntry(FILE, hashlib.sha256(read[0]).digest(), before.st_size, before.st_mtime_ns, before.st_ino, mode)

    def _space_entry(self, tree: Tree, path: str) -> SpaceEntry | None:
        node = tree.get(path)
        if node is None:
            return None
        if node.kind == DIR:
            return SpaceEntry(DIR, node.file_id, ())
        return SpaceEntry(FILE, node.file_id, tuple(sorted(self.services.repo.heads(self.space, node.doc_id))), node.executable)

    def _observe(self, paths: set[str], disk: dict[str, DiskEntry | None]) -> Steps[list[Observation]]:
        observations = []
        for path in sorted(paths):
            yield None
            tree = self._tree()  # the space may move between two paths' looks (others ran)
            if path in disk:
                on_disk = disk[path]
            else:
                known = self.records.get(path)
                if self._skip(path) or self.ignore.ignored(path, known is not None and known.kind == DIR):
                    continue
                on_disk = self._disk_entry(path, trust_stat=True)
                if on_disk is None and path in self.pending:
                    continue  # being written: next round
            record = self._intended(path, on_disk)
            space = self._space_entry(tree, path)
            if space is not None and self.ignore.ignored(path, space.kind == DIR):
                continue
            moved_to = None
            if record is not None and space is None:
                elsewhere = tree.path_of(record.file_id)
                moved_to = elsewhere if elsewhere is not None and elsewhere != path else None
            observations.append(Observation(path, on_disk, record, space, moved_to))
        return observations

    def _intended(self, path: str, disk: DiskEntry | None) -> Record | None:
        """The record of ``path``, or what a write-out cut short by a crash made it."""
        record = self.records.get(path)
        intent = self.records.intents.get(path)
        if intent is None or disk is None or disk.kind != FILE or disk.sha256 != intent[1]:
            return record
        file_id = record.file_id if record is not None else ""
        node = self._tree().get(path)
        if node is not None:
            file_id = node.file_id
        return Record(path, FILE, file_id, intent[0], intent[1], disk.size, disk.mtime_ns, disk.inode, disk.mode)

    # ----- acting -----

    def _settle(self, paths: set[str], disk: dict[str, DiskEntry | None], *, fsync_each: bool, progress: _Progress | None = None) -> Steps[None]:
        """Observe, plan and perform, a batch (MIRROR_BATCH_PATHS paths, MIRROR_BATCH_BYTES of
        new content) at a time: its creates as one stepped bulk write, the rest of the space's
        side in a store transaction per slice, then the disk's side."""
        observations = yield from self._observe(paths, disk)
        actions = plan(observations)
        if progress is not None:
            progress.planned(len(actions))
        sizes = {seen.path: seen.disk.size for seen in observations if seen.disk is not None}
        space_side = [a for a in actions if isinstance(a, (Move, Create, Ingest, SetMode, Adopt, Remove, Forget))]
        disk_side = [a for a in actions if isinstance(a, (DiskMove, WriteOut, DiskMode, DiskRemove, Conflict))]
        follow: list[str] = []
        for batch in _batches(space_side, sizes):
            created = yield from self._create_many(batch, progress)
            yield from self._space_actions([a for a in batch if a not in created], follow, progress)
            if progress is not None:
                progress.log()
        for batch in _batches(disk_side, {}):
            puts: dict[str, Record] = {}
            drops: set[str] = set()
            for later in batch:
                with self._guarded(later):
                    yield from self._disk_action(later, puts, drops, fsync_each)
                if progress is not None:
                    progress.advance()
                yield None
            if not fsync_each:
                os.sync()  # one flush for the whole batch instead of one per file
            self.records.save(puts.values(), drops - set(puts))
            if progress is not None:
                progress.log()
        for path in follow:
            with self._guarded(WriteOut(path)):
                yield from self._write_out_now(path)
            yield None
        if actions:
            self.stats.last_sync_ms = wall_clock_ms()
            for done in actions:
                name = type(done).__name__
                self.stats.actions[name] = self.stats.actions.get(name, 0) + 1

    def _space_actions(self, actions: Sequence[Action], follow: list[str], progress: _Progress | None) -> Steps[None]:
        """The space's side of a batch, one store transaction (and one save of the records) per
        MIRROR_SLICE_MS of work: never a yield inside a group (groups do not nest, and the sync
        driver opens its own)."""
        start = 0
        while start < len(actions):
            puts: dict[str, Record] = {}
            drops: set[str] = set()
            until, end = time.monotonic() + MIRROR_SLICE_MS / 1000, start
            with self.services.repo.group(durable=True):
                while end < len(actions) and (end == start or time.monotonic() < until):
                    with self._guarded(actions[end]):
                        self._space_action(actions[end], puts, drops, follow)
                    end += 1
            self.records.save(puts.values(), drops - set(puts))
            if progress is not None:
                progress.advance(end - start)
            start = end
            yield None

    @contextlib.contextmanager
    def _guarded(self, action: Action) -> Iterator[None]:
        """Around one action: a failure is logged and kept for ``status``, and the path is
        looked at again on the next event or scan, so one bad file never stops the mirror."""
        try:
            yield None
        except (OSError, StoreError) as error:
            self.stats.last_error = f"{type(action).__name__} {_path_of(action)}: {error}"
            log.warning("mirror: %s", self.stats.last_error)

    def _space_action(self, action: Action, puts: dict[str, Record], drops: set[str], follow: list[str]) -> None:
        ws, now = self.workspace, wall_clock_ms()
        if isinstance(action, Move):
            if parent_of(action.target) and self._tree().get(parent_of(action.target)) is None:
                ws.mkdir(parent_of(action.target), now_ms=now, parents=True, message="mirror: mkdir")
            ws.mv(action.source, action.target, now_ms=now, message=f"mirror: mv {action.source} {action.target}")
            self.stats.moved += 1
            for path in [action.source, *self.records.below(action.source)]:
                record = puts.pop(path, None) or self.records.get(path)
                drops.add(path)
                if record is not None:
                    moved = reparent(path, action.source, action.target)
                    puts[moved] = replace(record, path=moved)
            self._refresh(action.target, puts)
        elif isinstance(action, Create) and action.kind == DIR:
            ws.mkdir(action.path, now_ms=now, parents=True, message=f"mirror: mkdir {action.path}")
            self._refresh(action.path, puts)
        elif isinstance(action, (Create, Ingest)):
            base = action.base if isinstance(action, Ingest) else None
            if self._ingest(action.path, base, puts):
                follow.append(action.path)
        elif isinstance(action, SetMode):
            self._set_executable(action.path, action.executable)
            known = puts.get(action.path) or self.records.get(action.path)
            if known is not None:  # the bit is the index's: the file's heads and bytes stay the record's
                puts[action.path] = replace(known, mode=stat.S_IMODE((self.folder / action.path).lstat().st_mode))
        elif isinstance(action, Adopt):
            self._refresh(action.path, puts)
        elif isinstance(action, Remove):
            with contextlib.suppress(NotFound):
                ws.rm(action.path, now_ms=now, recursive=action.kind == DIR, message=f"mirror: rm {action.path}")
            self.stats.removed += 1
            drops.add(action.path)
            drops.update(self.records.below(action.path))
        elif isinstance(action, Forget):
            drops.add(action.path)

    def _disk_action(self, action: Action, puts: dict[str, Record], drops: set[str], fsync_each: bool) -> Steps[None]:
        if isinstance(action, WriteOut):
            record = yield from self._write_out(action.path, fsync_each)
            if record is not None:
                puts[action.path] = record
        elif isinstance(action, DiskMode):
            full, known = self.folder / action.path, self.records.get(action.path)
            if known is None or not _is_file(full):
                return
            mode = _with_executable(stat.S_IMODE(full.lstat().st_mode), action.executable)
            os.chmod(full, mode)  # a chmod keeps the stat cache's size, mtime and inode: no re-read
            puts[action.path] = replace(known, mode=mode)
        elif isinstance(action, DiskRemove):
            full = self.folder / action.path
            record = self.records.get(action.path)
            if action.kind == DIR:
                with contextlib.suppress(FileNotFoundError):
                    try:
                        full.rmdir()
                    except OSError as error:
                        if error.errno != errno.ENOTEMPTY:
                            raise
                        return  # something the space never had is inside: its own Create keeps it
            else:
                entry = self._disk_entry(action.path, trust_stat=False)
                if entry is not None and record is not None and entry.sha256 != record.sha256:
                    return  # saved since we looked: the next look re-creates it in the space
                with contextlib.suppress(FileNotFoundError):
                    full.unlink()
            drops.add(action.path)
        elif isinstance(action, DiskMove):
            source, target = self.folder / action.source, self.folder / action.target
            record = self.records.get(action.source)
            if record is None:
                return
            if target.exists():
                self.pending.update((action.source, action.target))  # taken meanwhile: look at both again
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)
            _fsync_dir(target.parent)
            drops.add(action.source)
            for path in [action.source, *self.records.below(action.source)]:
                known = self.records.get(path)
                if known is not None:
                    moved = reparent(path, action.source, action.target)
                    puts[moved] = replace(known, path=moved)
                    drops.add(path)
            self.pending.add(action.target)  # the next look compares it with its record: an edit since is ingested
        elif isinstance(action, Conflict):
            self.stats.last_error = f"{action.path}: {action.reason}; left alone"
            log.warning("mirror: %s", self.stats.last_error)

    def _create_many(self, batch: Sequence[Action], progress: _Progress | None) -> Steps[set[Action]]:
        """Create the batch's new files and directories as one bulk write, a durable step at a
        time (``Workspace.batch_steps``), their records saved; returns the Creates done (any
        other goes one by one, as do all of them if the bulk write fails)."""
        tree = self._tree()
        creates = [a for a in batch if isinstance(a, Create) and tree.get(a.path) is None]
        files: dict[str, Content] = {}
        stats: dict[str, os.stat_result] = {}
        wanted = [a.path for a in creates if a.kind == FILE]
        reads: list[tuple[bytes, os.stat_result] | None] = yield _Blocking(partial(_read_all, self.folder, wanted))
        for path, read in zip(wanted, reads, strict=True):
            if read is None:
                continue  # being written, or gone: one by one (it is queued again)
            text = _as_text(read[0])
            files[path], stats[path] = (read[0] if text is None else text), read[1]
        dirs = [a.path for a in creates if a.kind == DIR]
        if len(files) + len(dirs) < 2:
            return set()
        ops = [
            *(BatchOp("mkdir", path) for path in dirs),
            *(BatchOp("create", path, content, executable=executable(stats[path].st_mode)) for path, content in files.items()),
        ]
        message = f"mirror: create {len(files) + len(dirs)} paths"
        before = progress.done if progress is not None else 0
        per_step = max(1, min(MIRROR_STEP_FILES, MIRROR_STEP_BYTES * len(files) // max(1, sum(stats[path].st_size for path in files))))
        with self._guarded(creates[0]):
            steps = self.workspace.batch_steps(ops, now_ms=wall_clock_ms(), message=message, docs_per_step=per_step)
            while True:
                try:
                    step = next(steps)
                except StopIteration as finished:
                    result = finished.value
                    break
                if progress is not None:
                    progress.done = before + step.done  # its content docs written; the tree moves at the end
                yield None
            self.stats.ingested += len(files)
            tree = self._tree()
            puts: dict[str, Record] = {}
            for path, content in files.items():
                node = tree.get(path)
                if node is not None and path in result.heads:
                    data = content.encode() if isinstance(content, str) else content
                    puts[path] = _record(path, node.file_id, tuple(sorted(result.heads[path])), data, stats[path])
            for path in dirs:
                self._refresh(path, puts)
            self.records.save(puts.values(), [])
            done: set[Action] = {a for a in creates if a.kind == DIR or a.path in files}
            if progress is not None:
                progress.done = before + len(done)
            return done
        return set()

    def _set_executable(self, path: str, value: bool) -> None:
        """Set a file's executable bit in the space (a batch's mode op: one change of the tree)."""
        self.workspace.apply_batch([BatchOp("mode", path, executable=value)], now_ms=wall_clock_ms(), message=f"mirror: chmod {'+x' if value else '-x'} {path}")

    def _tree(self) -> Tree:
        """The space's tree now, kept until the space's version moves: ``Workspace.tree`` looks
        at every entry to find its cache key, which a batch of thousands of paths must not pay
        per path."""
        version = self.workspace.version()
        if self._tree_at is None or self._tree_at[0] != version:
            self._tree_at = (version, self.workspace.tree())
        return self._tree_at[1]

    def _read(self, path: str) -> tuple[Content, tuple[bytes, ...]]:
        """A file's content and its doc's heads now (``Workspace.read_with_heads`` over our tree).

        Raises:
            NotFound: no file there. ContentUnavailable: its doc has not synced yet.
        """
        node = self._tree().get(path)
        if node is None or node.kind != FILE:
            raise NotFound(f"no file {path!r}")
        return self.workspace.content(node, None), tuple(sorted(self.services.repo.heads(self.space, node.doc_id)))

    def _refresh(self, path: str, puts: dict[str, Record]) -> None:
        """Record ``path`` as disk and space hold it now (they agree: an Adopt, a mkdir, a move)."""
        node = self._tree().get(path)
        entry = self._disk_entry(path, trust_stat=False)
        if node is None or entry is None:
            return
        heads: tuple[bytes, ...] = ()
        if node.kind == FILE:
            content, heads = self._read(path)
            if _sha(content) != entry.sha256:
                self.pending.add(path)  # they do not agree after all: look again
                return
        puts[path] = Record(path, entry.kind, node.file_id, heads, entry.sha256, entry.size, entry.mtime_ns, entry.inode, entry.mode)

    def _ingest(self, path: str, base: tuple[bytes, ...] | None, puts: dict[str, Record]) -> bool:
        """Commit the disk copy of ``path`` to the space, three-way at ``base`` for text.

        Returns whether the space now holds more than the disk copy (a merge to write out).
        """
        full = self.folder / path
        read = _read_stable(full)
        if read is None:
            self.pending.add(path)
            return False
        data, info = read
        ws, now = self.workspace, wall_clock_ms()
        node = self._tree().get(path)
        text = _as_text(data)
        heads: tuple[bytes, ...] | None = None
        chained: Chained | None = None
        if node is not None and node.kind == FILE and node.encoding == TEXT and text is None:
            ws.rm(path, now_ms=now, message=f"mirror: {path} is binary now")  # an encoding is fixed at creation
            node = None
        if node is None:
            ws.write(path, data if text is None else text, now_ms=now, parents=True, message=f"mirror: create {path}")
            if executable(info.st_mode):
                self._set_executable(path, True)
        elif node.encoding == TEXT and text is not None and base is not None:
            start = _chained_at(base, puts.get(path) or self.records.get(path))
            at = start.heads if start is not None else base
            try:
                old = str(ws.content(node, {node.doc_id: list(at)}))
                edits = text_edits(old, text) if start is None else carried(text_patches(start.text, old), text_edits(start.text, text))
                result = ws.edit(path, edits, base=at, now_ms=now, message=f"mirror: write {path}")
                heads, chained = base, start
                if result.change is not None:
                    heads, chained = (result.change,), None
                    if start is not None or sorted(result.made_at) != sorted(at):
                        chained = Chained((result.change,), text)
                        heads = (_disk_copy_name(result.change, text),)
            except (UnknownBase, StoreError, ValueError):
                ws.write(path, text, now_ms=now, message=f"mirror: write {path}")
        else:
            ws.write(path, data if text is None else text, now_ms=now, message=f"mirror: write {path}")
        self.stats.ingested += 1
        node = self._tree().get(path)
        if node is None:
            return False
        content, heads_now = self._read(path)
        sha = hashlib.sha256(data).digest()
        merged = _sha(content) != sha
        kept = merged and heads is not None
        puts[path] = Record(
            path,
            FILE,
            node.file_id,
            heads if kept and heads is not None else heads_now,
            sha,
            info.st_size,
            info.st_mtime_ns,
            info.st_ino,
            stat.S_IMODE(info.st_mode),
            chained if kept else None,
        )
        return merged

    def _write_out_now(self, path: str) -> Steps[None]:
        """Write one path out and record it at once (a merge after an ingest)."""
        record = yield from self._write_out(path, fsync_each=True)
        if record is not None:
            self.records.save([record], [])

    def _write_out(self, path: str, fsync_each: bool) -> Steps[Record | None]:
        """Write the space's ``path`` to disk atomically, after ingesting any save made since
        the record; returns the new record (None: nothing to write now)."""
        full = self.folder / path
        for _ in range(MIRROR_WRITE_TRIES):
            node = self._tree().get(path)
            if node is None:
                return None
            if node.kind == DIR:
                full.mkdir(parents=True, exist_ok=True)
                info = full.lstat()
                return Record(path, DIR, node.file_id, (), b"", 0, 0, info.st_ino, stat.S_IMODE(info.st_mode))
            try:
                content, heads = self._read(path)
            except ContentUnavailable:
                return None  # its doc has not synced yet; its StoreEvent brings us back
            data = content.encode() if isinstance(content, str) else content
            record = self._intended(path, self._disk_entry(path, trust_stat=False))
            read = (yield _Blocking(partial(_read_stable, full))) if full.exists() else None
            if full.exists() and read is None:
                self.pending.add(path)
                return None
            if read is not None and full.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a directory is where the space has a file", str(full))
            if read is not None and (record is None or hashlib.sha256(read[0]).digest() != record.sha256):
                if read[0] == data:
                    return _record(path, node.file_id, heads, data, read[1])
                puts: dict[str, Record] = {}
                with self.services.repo.group(durable=True):
                    self._ingest(path, record.heads if record is not None and record.file_id == node.file_id else None, puts)
                self.records.save(puts.values(), [])
                continue  # a save arrived meanwhile: merged; write the merge
            if read is not None and read[0] == data:
                return _record(path, node.file_id, heads, data, read[1])
            if read is not None and record is not None and record.heads != heads and self._maybe_being_written(path, read[1]):
                self.pending.add(path)  # the record's older heads bring the next look back here
                return None
            mode = stat.S_IMODE(read[1].st_mode) if read is not None else (record.mode if record is not None and record.mode else _default_mode())
            mode = _with_executable(mode, node.executable)  # the space's bit; the user's other bits kept
            self.records.intend(path, heads, hashlib.sha256(data).digest())
            replace_it = partial(_replace_atomically, full, data, mode, expected=read[1] if read is not None else None, fsync_each=fsync_each)
            written = yield _Blocking(replace_it)
            if written is None:
                continue  # the file moved under us between the check and the rename: again
            self.stats.written += 1
            self._written[path] = (written.st_ino, written.st_size, written.st_mtime_ns)
            return _record(path, node.file_id, heads, data, written)
        self.pending.add(path)
        return None

    def _maybe_being_written(self, path: str, info: os.stat_result) -> bool:
        """Whether another program may still hold ``path`` open for writing: changed, not by our
        last write-out, within MIRROR_WRITER_QUIET_MS. A checkout (no watcher, no later look)
        never waits."""
        if self.watcher == "none" or self._written.get(path) == (info.st_ino, info.st_size, info.st_mtime_ns):
            return False
        return 0 <= time.time_ns() - info.st_mtime_ns < MIRROR_WRITER_QUIET_MS * 1_000_000


ROOT_PATH = ""


def _chained_at(base: tuple[bytes, ...], record: Record | None) -> Chained | None:
    """What an ingest at ``base`` starts from when ``base`` names a chained disk copy."""
    if record is None or record.chained is None or record.heads != base:
        return None
    return record.chained


def _disk_copy_name(change: bytes, text: str) -> bytes:
    """Heads of a chained disk copy's own: a hash of its change and text, which no doc has."""
    return hashlib.sha256(b"distspace mirror disk copy\0" + change + text.encode()).digest()


def _record(path: str, file_id: str, heads: tuple[bytes, ...], data: bytes, info: os.stat_result) -> Record:
    return Record(path, FILE, file_id, heads, hashlib.sha256(data).digest(), info.st_size, info.st_mtime_ns, info.st_ino, stat.S_IMODE(info.st_mode))


def _replace_atomically(full: Path, data: bytes, mode: int, *, expected: os.stat_result | None, fsync_each: bool) -> os.stat_result | None:
    """Write ``data`` to a temp file beside ``full`` and rename it over ``full`` — unless ``full``
    is no longer what ``expected`` says (a save just landed), then None and nothing replaced."""
    full.parent.mkdir(parents=True, exist_ok=True)
    temp = full.parent / f"{TEMP_PREFIX}{secrets.token_hex(6)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if fsync_each:
                os.fsync(handle.fileno())
        if not _still(full, expected):
            temp.unlink()
            return None
        os.replace(temp, full)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    if fsync_each:
        _fsync_dir(full.parent)
    return full.lstat()


def _read_all(folder: Path, paths: Sequence[str]) -> list[tuple[bytes, os.stat_result] | None]:
    return [_read_stable(folder / path) for path in paths]


def _still(full: Path, expected: os.stat_result | None) -> bool:
    try:
        now = full.lstat()
    except FileNotFoundError:
        return expected is None
    return expected is not None and (now.st_ino, now.st_size, now.st_mtime_ns) == (expected.st_ino, expected.st_size, expected.st_mtime_ns)


def _is_file(full: Path) -> bool:
    try:
        return stat.S_ISREG(full.lstat().st_mode)
    except OSError:
        return False


def _read_stable(full: Path) -> tuple[bytes, os.stat_result] | None:
    """The bytes of a file and its stat, or None if it changed while being read (or is gone)."""
    try:
        before = full.lstat()
        if stat.S_ISDIR(before.st_mode):
            return None
        data = full.read_bytes()
        after = full.lstat()
    except OSError:
        return None
    if (before.st_ino, before.st_size, before.st_mtime_ns) != (after.st_ino, after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        return None
    return data, after


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _with_executable(mode: int, value: bool) -> int:
    """``mode`` with its x bits following ``value``: set where it can be read (as git checks a
    file out, under the umask's reading bits), cleared everywhere; the other bits as they were."""
    return mode | ((mode & 0o444) >> 2) if value else mode & ~0o111


def _default_mode() -> int:
    return 0o666 & ~USER_UMASK


def _as_text(data: bytes) -> str | None:
    """The text of a file that is text: valid UTF-8 without NUL bytes (git's test, roughly)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _sha(content: Content) -> bytes:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).digest()


def _path_of(action: Action) -> str:
    return action.source if isinstance(action, (Move, DiskMove)) else action.path


def _outermost(paths: Iterable[str]) -> list[str]:
    """The paths not below another one of them."""
    chosen: list[str] = []
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        if not any(is_within(path, other) for other in chosen):
            chosen.append(path)
    return chosen


# ----- the task -----


def _batches(actions: Sequence[Action], sizes: Mapping[str, int]) -> Iterator[Sequence[Action]]:
    """``actions`` in order, cut into batches of at most MIRROR_BATCH_PATHS actions and (by the
    disk ``sizes`` of what they create or ingest) about MIRROR_BATCH_BYTES."""
    start, held = 0, 0
    for end, action in enumerate(actions):
        if end > start and (end - start >= MIRROR_BATCH_PATHS or held >= MIRROR_BATCH_BYTES):
            yield actions[start:end]
            start, held = end, 0
        if isinstance(action, (Create, Ingest)):
            held += sizes.get(action.path, 0)
    if start < len(actions):
        yield actions[start:]


class _Progress:
    """A scan's progress: in ``status`` while it runs ("walk": paths found on disk so far, then
    "sync": actions done of those planned), logged every MIRROR_PROGRESS_LOG_S once it has run
    that long."""

    def __init__(self, folder: Path, started: float) -> None:
        self.folder, self.started = folder, started
        self.next_log = started + MIRROR_PROGRESS_LOG_S
        self.phase = "walk"
        self.done = 0
        self.total: int | None = None

    def advance(self, count: int = 1) -> None:
        self.done += count  # the walk's thread too: an int's update is atomic under the GIL

    def planned(self, total: int) -> None:
        self.phase, self.done, self.total = "sync", 0, total

    def log(self) -> None:
        now = time.monotonic()
        if now >= self.next_log:
            self.next_log = now + MIRROR_PROGRESS_LOG_S
            event(log, "mirror.scan_progress", folder=self.folder, done=self.done, total=self.total, elapsed_ms=int((now - self.started) * 1000))

    def finish(self, paths: int) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed >= MIRROR_PROGRESS_LOG_S:
            event(log, "mirror.scan_done", folder=self.folder, paths=paths, actions=self.done, elapsed_ms=int(elapsed * 1000))

    def json(self) -> dict[str, Any]:
        return {"phase": self.phase, "done": self.done, "total": self.total}


def _resume(steps: Steps[T], sent: Any) -> tuple[bool, Any]:
    """Run a pass to its next yield: (True, its value) once it has ended, else (False, what it yielded)."""
    try:
        return False, steps.send(sent)
    except StopIteration as done:
        return True, done.value


def _at_once(steps: Steps[T]) -> T:
    """Run a pass here and now (a checkout, the tests), its blocking calls too."""
    ended, got = _resume(steps, None)
    while not ended:
        ended, got = _resume(steps, got.call() if isinstance(got, _Blocking) else None)
    return got  # type: ignore[no-any-return]


async def _cooperatively(steps: Steps[T]) -> T:
    """Run a pass on the trio thread, handing the loop back every MIRROR_SLICE_MS and running
    its blocking calls on a worker thread meanwhile."""
    try:
        deadline = time.monotonic() + MIRROR_SLICE_MS / 1000
        ended, got = _resume(steps, None)
        while not ended:
            sent = None
            if isinstance(got, _Blocking):
                sent = await trio.to_thread.run_sync(got.call)
                deadline = time.monotonic() + MIRROR_SLICE_MS / 1000
            elif time.monotonic() >= deadline:
                await trio.lowlevel.checkpoint()
                deadline = time.monotonic() + MIRROR_SLICE_MS / 1000
            ended, got = _resume(steps, sent)
        return got  # type: ignore[no-any-return]
    finally:
        steps.close()  # cancelled at a checkpoint: the pass's own cleanup runs (no group is open there)


async def run_mirror(
    services: NodeServices,
    space: bytes,
    folder: Path,
    *,
    made: Callable[[Mirror], None] | None = None,
    task_status: trio.TaskStatus[Mirror] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Mirror ``space`` into ``folder`` until cancelled; see the module docstring.

    The watcher starts first and the scan second, so nothing saved during the scan is missed;
    the ``Mirror`` is reported once the scan is done: the folder and the space agree then.
    ``made`` is handed it before, so its ``status`` can show the first scan's progress.
    """
    mirror = Mirror(services, space, folder)
    if made is not None:
        made(mirror)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_watch, mirror)
            await mirror.scan_cooperatively(clean=True, trust_stat=True)  # the stat cache: what changed while we were down has a new stat
            task_status.started(mirror)
            await _serve(mirror)
    finally:
        mirror.close()


async def _serve(mirror: Mirror) -> None:
    """Act on disk events, space events and the scan timer, one batch at a time."""
    next_scan = trio.current_time() + MIRROR_SCAN_INTERVAL_S
    while True:
        with trio.move_on_at(min(next_scan, mirror.held_due())):
            await mirror.wake.wait()
        mirror.wake = trio.Event()
        mirror.release_held(trio.current_time())
        if mirror.scan_wanted or trio.current_time() >= next_scan:
            await mirror.scan_cooperatively(trust_stat=True)
            next_scan = trio.current_time() + MIRROR_SCAN_INTERVAL_S
        if mirror.pending:
            await _cooperatively(mirror.disk_change_steps())
        if mirror.space_moved:
            await _cooperatively(mirror.space_change_steps())
        if mirror.pending:  # unstable files: look again shortly
            await trio.sleep(MIRROR_UNSTABLE_RETRY_MS / 1000)
            mirror.wake.set()
        await trio.lowlevel.checkpoint()


async def _watch(mirror: Mirror, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Feed disk events into ``mirror.pending``: inotify on trio (node/inotify.py), or polling if
    inotify cannot watch (one warning). Started once the folder is watched."""
    started = False

    def ready() -> None:
        nonlocal started
        if not started:
            started = True
            task_status.started()

    if not os.environ.get("WATCHFILES_FORCE_POLLING"):
        try:
            with Inotify(mirror.folder) as inotify:
                inotify.watch(mirror.folder)
                mirror.watcher = "inotify"
                ready()
                async for burst in inotify.events(MIRROR_DEBOUNCE_MS, MIRROR_DEBOUNCE_MAX_MS):
                    if mirror.folder in burst:  # the kernel's queue overflowed: events were lost
                        mirror.request_scan()
                    _deliver(mirror, (str(path) for path in burst))
        except OSError as error:
            log.warning("mirror: cannot watch %s with inotify (%s); polling it instead", mirror.folder, error)
            if started:
                mirror.request_scan()  # whatever happened before polling began
    # Polling is a scan with the stat cache (size, mtime_ns, inode: a save within the second
    # of the last one is seen too, which a poller comparing mtime seconds misses).
    mirror.watcher = "polling"
    ready()
    while True:
        await trio.sleep(MIRROR_POLL_INTERVAL_MS / 1000)
        mirror.request_scan()


def _deliver(mirror: Mirror, raw_paths: Iterable[str]) -> None:
    """Hand the paths of a burst of disk events to the mirror (on the trio thread)."""
    paths = set()
    for raw in raw_paths:
        try:
            relative = Path(raw).relative_to(mirror.folder).as_posix()
        except ValueError:
            continue
        if relative != "." and not Path(relative).name.startswith(TEMP_PREFIX):
            paths.add(relative)
    if paths:
        mirror.note_events(paths, trio.current_time())
        mirror.wake.set()


# ----- the first checkout -----


def checkout(services: NodeServices, space: bytes, folder: Path) -> dict[str, int]:
    """Write the space's tree into ``folder`` (made if missing; files already there are
    compared, not overwritten blindly) and record every path, so a mirror started later begins
    in sync. One flush for each batch, not an fsync per file. Returns counts of what was done."""
    mirror = Mirror(services, space, folder)
    try:
        return mirror.scan(clean=True, trust_stat=False, fsync_each=False)
    finally:
        mirror.close()
