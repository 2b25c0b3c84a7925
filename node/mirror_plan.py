"""What the folder mirror does about each path: a pure decision over three views of it.

For every path the mirror looks at it knows three things: what is on disk now (``DiskEntry``),
what the space holds now (``SpaceEntry``) and the ``Record`` of what it last wrote to disk or
read from it — the doc heads that disk copy was written from or read at, and the bytes' sha256
and stat. The record is what makes "who changed it" a question with an answer, with no clock:

- disk bytes differ from the record's: the user changed the file since we wrote/read it;
- the space's heads differ from the record's: the space moved on since (a remote or API edit).

So a disk change is committed as a three-way write at the record's heads (Automerge merges it
with whatever the space got meanwhile, never a conflict copy for text), a space change is written
out, and our own writes never come back: after a write-out the record holds exactly those bytes
and heads. ``plan`` maps a batch of ``Observation``s to ``Action``s; it never touches a disk or
a store, so every row of the table below is a unit test (tests/node/test_mirror_plan.py).

Per path (file or directory; ``rec`` = the record, "same" = disk bytes equal the record's,
"moved on" = space heads differ from the record's)::

    disk    rec   space        -> action
    none    none  none         -> nothing
    none    none  entry        -> WriteOut (new in the space)
    none    rec   none         -> Forget (gone on both sides)
    none    rec   entry        -> Remove (the user deleted it), or WriteOut if the space moved
                                  on: an edit the deleter never saw brings the file back, as the
                                  tree's delete/edit rule does (store/tree.py rule 4)
    entry   none  none         -> Create (new on disk)
    entry   none  entry        -> Adopt if they hold the same bytes (a first checkout or lost
                                  records), else Ingest with no base (disk wins; the space's
                                  version stays in history)
    entry   rec   none         -> DiskRemove if same (removed in the space), else Create (an
                                  edit the remover never saw brings it back)
    entry   rec   entry        -> same and not moved on: nothing; not same: Ingest at the
                                  record's heads (the I/O side then writes the merge out if the
                                  space moved on too); same and moved on: WriteOut
    kinds differ (a file where the other side has a directory) -> Conflict, logged, left alone

The executable bit of a file (its owner's x bit on disk, ``executable`` in the space) is
compared the same way, beside the bytes: the disk's differs from the record's (``chmod +x``)
-> SetMode in the space; else the space's does (a remote chmod) -> DiskMode, which changes the
x bits on disk only, the user's other mode bits kept (a write-out sets them so too). A new file
on disk is created with its bit.

Renames are found across the batch, before the table, so history and concurrent edits follow
the file. A local rename: a path gone from disk whose file the space still holds there
(edited since or not) pairs with a path that would be created (new on disk, nowhere else) — a directory by its inode;
a file by its bytes (the same sha256, the same inode first), or by its inode only while size and
mtime_ns are still the record's. The inode alone is no proof: ext4 hands a freed inode to the
next file created, so ``rm a; echo new > b`` is a delete and a create, not a rename. The pair is
one ``Move``, and the record moves with it, bytes and heads unchanged; the moved path then
compares as usual, so an edit in the same burst is an Ingest at the record's heads after the
move and an edit the space got meanwhile is written out at the new path, never brought back as
a copy at the old one (a directory's move carries the records below it likewise). A remote rename is the other
way round: the record's file shows at another path in the space and nothing is at that path on
disk -> ``DiskMove``, the record carried along; the new path is looked at again after the
rename on disk, where an edit made meanwhile is ingested at the record's heads (it follows the
file, never a split copy). Nothing else is decided at either end of a move in its batch: the
disk there is about to change.

The disk's bytes win until the space has ingested them: no action writes over, or removes, a
disk copy that differs from its record (the I/O side checks again just before it does), and a
write-out to a path with no record takes the disk's differing bytes into the space first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from store.paths import is_within

EntryKind = Literal["file", "dir"]
FILE: EntryKind = "file"
DIR: EntryKind = "dir"

__all__ = [
    "DIR",
    "FILE",
    "Action",
    "Adopt",
    "Chained",
    "Conflict",
    "Create",
    "DiskEntry",
    "DiskMode",
    "DiskMove",
    "DiskRemove",
    "EntryKind",
    "Forget",
    "Ingest",
    "Move",
    "Observation",
    "Record",
    "Remove",
    "SetMode",
    "SpaceEntry",
    "WriteOut",
    "executable",
    "plan",
    "reparent",
]


@dataclass(frozen=True, slots=True)
class DiskEntry:
    """A path on disk now. ``sha256`` is empty for a directory."""

    kind: EntryKind
    sha256: bytes
    size: int
    mtime_ns: int
    inode: int
    mode: int


@dataclass(frozen=True, slots=True)
class Chained:
    """A disk copy that is no version of its doc: its exact text, and the heads [C] of the change
    that ingested it (the doc's text there is that text plus what the change was chained after)."""

    heads: tuple[bytes, ...]
    text: str


@dataclass(frozen=True, slots=True)
class SpaceEntry:
    """A path in the space now: its file id (stable across renames) and its doc's heads."""

    kind: EntryKind
    file_id: str
    heads: tuple[bytes, ...]
    executable: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    """What the mirror last wrote to ``path`` on disk or read from it, and at which heads."""

    path: str
    kind: EntryKind
    file_id: str
    heads: tuple[bytes, ...]
    sha256: bytes
    size: int
    mtime_ns: int
    inode: int
    mode: int
    # Set when the disk copy is no version of the doc: a save ingested after this node's own newer
    # change (a node's changes form one chain) left the doc at [C] holding that change's text too.
    # ``heads`` are then a name of the disk copy's own (no doc has them, so the space compares as
    # moved on and the merge is written out), and this is what an ingest at them starts from.
    chained: Chained | None = None

    def same_stat(self, disk: DiskEntry) -> bool:
        """Whether the stat cache says the disk copy is untouched since the record (no hashing)."""
        return (disk.kind, disk.size, disk.mtime_ns, disk.inode) == (self.kind, self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True, slots=True)
class Observation:
    """The three views of one path. ``moved_to``: where the record's file shows in the space
    now, when that is another path (a remote rename)."""

    path: str
    disk: DiskEntry | None
    record: Record | None
    space: SpaceEntry | None
    moved_to: str | None = None


@dataclass(frozen=True, slots=True)
class Adopt:
    """Disk and space agree: record them together."""

    path: str


@dataclass(frozen=True, slots=True)
class Forget:
    """Gone on both sides: drop the record."""

    path: str


@dataclass(frozen=True, slots=True)
class Create:
    """New on disk: create the file (or directory) in the space."""

    path: str
    kind: EntryKind


@dataclass(frozen=True, slots=True)
class Ingest:
    """The disk copy changed: write it to the space at ``base`` (None: over the space's text now)."""

    path: str
    base: tuple[bytes, ...] | None


@dataclass(frozen=True, slots=True)
class SetMode:
    """The file was made executable on disk, or not: set its bit in the space."""

    path: str
    executable: bool


@dataclass(frozen=True, slots=True)
class DiskMode:
    """The file was made executable in the space, or not: set its x bits on disk."""

    path: str
    executable: bool


@dataclass(frozen=True, slots=True)
class Remove:
    """Deleted on disk: remove it from the space."""

    path: str
    kind: EntryKind


@dataclass(frozen=True, slots=True)
class Move:
    """Renamed on disk: move it in the space (and its record, and the records below it)."""

    source: str
    target: str


@dataclass(frozen=True, slots=True)
class WriteOut:
    """The space holds what disk lacks: write it out (a directory: create it)."""

    path: str


@dataclass(frozen=True, slots=True)
class DiskRemove:
    """Removed in the space and untouched on disk: remove it from disk."""

    path: str
    kind: EntryKind


@dataclass(frozen=True, slots=True)
class DiskMove:
    """Renamed in the space and untouched on disk: rename it on disk."""

    source: str
    target: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """The two sides disagree on what the path is (file vs directory): left alone, logged."""

    path: str
    reason: str


Action = Adopt | Forget | Create | Ingest | SetMode | Remove | Move | WriteOut | DiskMode | DiskRemove | DiskMove | Conflict


def plan(observations: Iterable[Observation]) -> list[Action]:
    """The actions for a batch, in the order to perform them: space moves first (shallowest
    first, so a directory moves before anything inside it is looked at), then creations
    (parents first), ingests, space removals (deepest first), then the disk side likewise."""
    views = {o.path: o for o in observations}
    actions: list[Action] = []
    for source, target in _local_moves(views):
        actions.append(Move(source, target))
        _carry(views, source, target)
    for source, target in _remote_moves(views):
        actions.append(DiskMove(source, target))
        for path in [p for p in views if is_within(p, source) or is_within(p, target)]:
            del views[path]  # the rename on disk moves the records; the next look compares them
    for view in sorted(views.values(), key=lambda o: o.path):
        actions.extend(_decide(view, views))
    return sorted(actions, key=_order)


def reparent(path: str, source: str, target: str) -> str:
    """Where ``path`` is once ``source`` (it or one of its ancestors) moved to ``target``."""
    return target + path[len(source) :]


def _decide(view: Observation, views: Mapping[str, Observation]) -> list[Action]:
    disk, record, space, path = view.disk, view.record, view.space, view.path
    if disk is None and record is None:
        return [] if space is None else [WriteOut(path)]
    if disk is None:
        assert record is not None
        if space is None:
            return [Forget(path)]
        if space.kind != record.kind:
            return [WriteOut(path)]  # the space holds something else there now
        if space.kind == FILE and space.heads != record.heads:
            return [WriteOut(path)]  # an edit the deleter never saw brings it back
        return [Remove(path, record.kind)]
    if record is None:
        if space is None:
            return [Create(path, disk.kind)]
        if space.kind != disk.kind:
            return [Conflict(path, f"a {disk.kind} on disk, a {space.kind} in the space")]
        return [Adopt(path)] if disk.kind == DIR else [Ingest(path, None)]  # Adopt when bytes agree: the I/O side compares
    same = disk.kind == record.kind and disk.sha256 == record.sha256  # the I/O side fills sha256 from the stat cache
    if space is None:
        return [DiskRemove(path, disk.kind)] if same else [Create(path, disk.kind)]
    if space.kind != disk.kind:
        return [Conflict(path, f"a {disk.kind} on disk, a {space.kind} in the space")]
    if disk.kind == DIR:
        return [] if space.kind == record.kind else [Adopt(path)]
    modes = _modes(path, disk, record, space)
    if not same:
        return [Ingest(path, record.heads if record.kind == FILE and record.file_id == space.file_id else None), *modes]
    if space.heads == record.heads and space.file_id == record.file_id:
        return modes
    return [*(m for m in modes if isinstance(m, SetMode)), WriteOut(path)]  # a write-out sets the space's bit on disk


def executable(mode: int) -> bool:
    """Whether a disk mode is executable: its owner's x bit (git's rule)."""
    return bool(mode & 0o100)


def _modes(path: str, disk: DiskEntry, record: Record, space: SpaceEntry) -> list[Action]:
    """The executable bit's action for a file on both sides (module docstring): the disk's
    change wins over the space's, as its bytes do until ingested."""
    on_disk, recorded = executable(disk.mode), executable(record.mode)
    if on_disk != recorded:
        return [] if on_disk == space.executable else [SetMode(path, on_disk)]
    return [] if space.executable == recorded else [DiskMode(path, space.executable)]


def _free_on_disk(views: Mapping[str, Observation], path: str) -> bool:
    view = views.get(path)
    return view is None or (view.disk is None and view.record is None)


def _remote_moves(views: Mapping[str, Observation]) -> list[tuple[str, str]]:
    """Pairs (source, target) of a path on disk whose record's file the space now holds at
    ``target``, free on disk: outermost first (a directory's move takes what is below it)."""
    moves: list[tuple[str, str]] = []
    for view in sorted(views.values(), key=lambda o: (o.path.count("/"), o.path)):
        disk, record, target = view.disk, view.record, view.moved_to
        if disk is None or record is None or view.space is not None or target is None or disk.kind != record.kind:
            continue
        if any(is_within(view.path, s) or is_within(view.path, t) or is_within(target, t) for s, t in moves):
            continue
        if _free_on_disk(views, target):
            moves.append((view.path, target))
    return moves


def _local_moves(views: Mapping[str, Observation]) -> list[tuple[str, str]]:
    """Pairs (source, target) of a removal and a creation that are one rename (``_partner``);
    a directory's pair covers everything below it."""
    gone = {o.path: o.record for o in views.values() if o.disk is None and o.record is not None and _same_file(o)}
    new = {o.path: o.disk for o in views.values() if o.disk is not None and o.record is None and o.space is None}
    moves: list[tuple[str, str]] = []
    for path in sorted(gone, key=lambda p: (p.count("/"), p)):
        record = gone[path]
        if record is None or any(is_within(path, source) for source, _ in moves):
            continue
        target = _partner(record, new)
        if target is None:
            continue
        moves.append((path, target))
        for created in [p for p in new if is_within(p, target)]:
            del new[created]
    return moves


def _partner(record: Record, new: Mapping[str, DiskEntry | None]) -> str | None:
    """The created path that is ``record`` renamed (see the module docstring): a directory by
    its inode; a file by its inode while its bytes or its size and mtime are the record's, else
    by its bytes."""
    by_inode = sorted(p for p, d in new.items() if d is not None and d.kind == record.kind and d.inode == record.inode)
    if record.kind != FILE:
        return by_inode[0] if by_inode else None
    for path in by_inode:
        entry = new[path]
        if entry is not None and (entry.sha256 == record.sha256 or (entry.size, entry.mtime_ns) == (record.size, record.mtime_ns)):
            return path
    by_bytes = sorted(p for p, d in new.items() if d is not None and d.kind == FILE and d.sha256 == record.sha256)
    return by_bytes[0] if by_bytes else None


def _same_file(view: Observation) -> bool:
    """Whether the space still holds the record's file (or directory) at the path, edited since
    or not: a rename on disk moves it, and an edit the space has is written out where it went."""
    record, space = view.record, view.space
    return record is not None and space is not None and space.kind == record.kind and space.file_id == record.file_id


def _carry(views: dict[str, Observation], source: str, target: str) -> None:
    """After a move, each record at or below ``source`` belongs to the matching path below
    ``target``; the old paths are done (the move took them)."""
    for path in [p for p in views if is_within(p, source)]:
        old = views.pop(path)
        if old.record is None:
            continue
        moved = reparent(path, source, target)
        at = views.get(moved)
        space = old.space
        disk = at.disk if at is not None else None
        views[moved] = Observation(moved, disk, replace(old.record, path=moved), space)


_PHASES: dict[type, int] = {
    Move: 0,
    Create: 1,
    Ingest: 2,
    SetMode: 3,
    Adopt: 4,
    Remove: 5,
    Forget: 6,
    DiskMove: 7,
    WriteOut: 8,
    DiskMode: 9,
    DiskRemove: 10,
    Conflict: 11,
}


def _order(action: Action) -> tuple[int, int, str]:
    path = action.source if isinstance(action, (Move, DiskMove)) else action.path
    depth = path.count("/")
    if isinstance(action, (Remove, DiskRemove)):
        depth = -depth  # children before their directory
    return (_PHASES[type(action)], depth, path)
