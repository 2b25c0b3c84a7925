"""The file tree of a space: how the index doc holds it, and how concurrent tree edits converge.

Layout. The index doc (``INDEX_DOC_ID``) maps each file id (32 lowercase hex characters) to an
entry; a file's id is the id of the doc that holds its content, a directory's id names no doc::

    <file id>: {"kind": "file" | "dir",
                "encoding": "text" | "binary",            # files only, fixed at creation
                "loc": {"parent": <dir file id> | "", "name": <str>},   # "" is the root
                "deleted": <bytes>,                        # only once removed, see rule 4
                "exec": true}                              # files only, when executable (git's 100755)

A file doc holds its content under ``"text"`` (an Automerge text object, created once, by the
file's creator) or ``"content"`` (bytes). Entries are never created at a shared key (ids are
random) and never deleted, so no peer can overwrite another's entry and history keeps them all.

Why a parent pointer and a name, not a full path per entry: moving a directory is then one
write, so a concurrent move of a directory and a create inside it puts the new file in the
moved directory, and two concurrent moves of a directory cannot scatter its children. Why
``loc`` is one object, re-created by every move: a move replaces parent and name together,
and the object's id is the Lamport stamp (counter, actor) of the claim on that name, which the
rules below order by.

The visible tree is a pure function, ``materialize``, of the index doc (at some heads) and of
whether each removal still holds (which depends on the file docs' heads). Every peer holding
the same changes computes the same tree; conflicts are resolved when reading, never by writing
repairs, and a user settles one with an ordinary rename or rm. The rules:

1. create/create of one path: both files survive. The earliest claim on the name (smallest
   Lamport stamp of its ``loc``) keeps it, so a long-standing file is never renamed under its
   users by a newcomer; each other one is shown as ``name (conflict <author>).ext`` where
   <author> starts the claimant's key (then `` 2``, `` 3``... if even that is taken).
2. rename/rename of one entry: Automerge keeps the ``loc`` with the greatest op id, so one
   rename wins whole (parent and name together) on every peer; the other is in history.
3. rename/edit: content edits go to the file doc and renames to the index, so the edit lands
   in the renamed file.
4. delete/edit: rm records the file doc's heads it saw (concurrent rms: what they saw
   together). The removal holds only while the doc has no change beyond them; an edit
   concurrent with the rm (one the remover had not seen) brings the file back at its path.
   Nothing is lost either way: history holds both. delete/rename: the rename is not
   content, so the delete holds.
5. mkdir/mkdir of one path: one directory. The children of both are listed together; the
   earliest claim is the directory's canonical id (where new children go); a move or rm of the
   path moves or removes every directory merged there.
6. mkdir/create of one path: the directory keeps the name (moving it would change every path
   below it); the file is shown under a conflict name as in rule 1.
7. rm of a directory / create inside it: rm tombstones only the entries it saw, so the new
   entry survives, and its removed ancestors are shown again so that it keeps its path.
8. move/move cycles (a into b while b into a): in each cycle the latest move (greatest
   ``loc`` stamp) is ignored for placement and that directory is shown at the root.
9. Malformed entries (a buggy or hostile peer) are ignored; an entry whose parent is not a
   valid directory is shown at the root. Reading never raises on peer-written data.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import native
from protocol.space import DOC_ID_BYTES
from protocol.tips import CHANGE_HASH_BYTES
from store.paths import MAX_NAME_BYTES, ROOT, join, name_of, name_problem

Kind = Literal["file", "dir"]
Encoding = Literal["text", "binary"]
FILE: Kind = "file"
DIR: Kind = "dir"
TEXT: Encoding = "text"
BINARY: Encoding = "binary"
ENCODINGS: tuple[Encoding, ...] = (TEXT, BINARY)

ROOT_ID = ""  # the parent id of top-level entries; the root has no entry of its own
FILE_ID_HEX_CHARS = 2 * DOC_ID_BYTES
# Enough of a key to tell a handful of co-authors apart at a glance; history has the whole key.
CONFLICT_AUTHOR_HEX_CHARS = 8
TEXT_KEY = "text"  # a text file doc's root key for its Automerge text object
BYTES_KEY = "content"  # a binary file doc's root key for its bytes
EXEC_KEY = "exec"  # an index entry's key, true for an executable file (absent: a regular one)

_FILE_ID = re.compile(f"[0-9a-f]{{{FILE_ID_HEX_CHARS}}}")
_OP_ID = re.compile(r"([0-9]+)@([0-9a-f]+)")

Stamp = tuple[int, str]  # an Automerge op id as (counter, actor hex): Lamport order


def file_id_of(doc_id: bytes) -> str:
    return doc_id.hex()


def doc_id_of(file_id: str) -> bytes:
    return bytes.fromhex(file_id)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of the index doc as stored, before the rules decide where it shows."""

    file_id: str
    kind: Kind
    encoding: Encoding | None  # None for directories
    parent: str  # a directory's file id, or ROOT_ID
    name: str
    claim: Stamp  # the Lamport stamp of this name claim (the ``loc`` object's id)
    removed_seen: tuple[bytes, ...] | None  # the file doc heads the remover saw; None if not removed
    executable: bool = False  # a file's mode bit (git's 100755), so a repository's scripts stay runnable

    @property
    def claimant(self) -> str:
        """Hex key of the author who gave the entry its current name (created or moved it)."""
        return self.claim[1]


def _stamp(object_id: str) -> Stamp | None:
    match = _OP_ID.fullmatch(object_id)
    return (int(match[1]), match[2]) if match else None


def _removed_seen(values: Sequence[object]) -> tuple[bytes, ...] | Literal[False] | None:
    """The heads the removals recorded, or None when not removed, or False when malformed.

    Concurrent removals each leave a value (Automerge keeps them all as a conflict): what they
    saw together counts, so a remover who saw a later edit is not outvoted by one who did not.
    """
    if not values:
        return None
    seen: set[bytes] = set()
    for value in values:
        if not isinstance(value, bytes) or len(value) % CHANGE_HASH_BYTES:
            return False
        seen.update(value[i : i + CHANGE_HASH_BYTES] for i in range(0, len(value), CHANGE_HASH_BYTES))
    return tuple(sorted(seen))


def read_entry(index: native.Document, file_id: str, heads: list[bytes] | None = None) -> Entry | None:
    """The entry stored under ``file_id``, or None if absent or malformed (peer data: never raises)."""
    if not _FILE_ID.fullmatch(file_id):
        return None
    entry = index.get(native.ROOT, file_id, heads)
    if not isinstance(entry, native.ObjectRef) or entry.kind != "map":
        return None
    loc = index.get(entry.id, "loc", heads)
    kind = index.get(entry.id, "kind", heads)
    encoding = index.get(entry.id, "encoding", heads) if kind == FILE else None
    if not isinstance(loc, native.ObjectRef) or loc.kind != "map" or kind not in (FILE, DIR):
        return None
    if kind == FILE and encoding not in ENCODINGS:
        return None
    parent = index.get(loc.id, "parent", heads)
    name = index.get(loc.id, "name", heads)
    claim = _stamp(loc.id)
    removed_seen = _removed_seen(index.get_all(entry.id, "deleted", heads))
    parent_ok = parent == ROOT_ID or (isinstance(parent, str) and _FILE_ID.fullmatch(parent))
    if claim is None or not parent_ok or name_problem(name) is not None or removed_seen is False:
        return None
    executable = kind == FILE and index.get(entry.id, EXEC_KEY, heads) is True
    return Entry(file_id, kind, encoding, parent, name, claim, removed_seen, executable)  # type: ignore[arg-type]


class IndexReader:
    """Reads every entry of an index doc at given heads, re-reading only what changed since the
    last read (Automerge's diff between the two heads names the touched entries): reading one
    entry costs several lookups, so a tree of thousands of files is never re-read whole after
    one create, move or rm."""

    def __init__(self) -> None:
        self._heads: list[bytes] | None = None
        self._entries: dict[str, Entry] = {}
        self._unreadable: set[str] = set()  # read at some heads, not a well-formed entry there

    def entries(self, index: native.Document, heads: list[bytes]) -> dict[str, Entry]:
        """Every well-formed entry at ``heads``. The dict returned is never changed afterwards."""
        heads = sorted(heads)
        if heads != self._heads:
            touched = None
            if self._heads is not None:
                try:
                    touched = touched_entries(index.diff(self._heads, heads)) | self._conflict_prone()
                except native.InvalidHash:
                    # The doc no longer holds where we read last (a revocation took changes
                    # out, store/capabilities.py): read it afresh.
                    self._entries, self._unreadable = {}, set()
            if touched is None:
                touched = set(index.keys(native.ROOT, heads))
            self._reread(index, heads, touched)
            if heads == index.heads():
                # The next read of the live tree starts here: with the cursor here too, its diff
                # comes from Automerge's patch log, not from a scan of the whole index. (A read
                # of the past, as history walks make, would only move the cursor for nothing.)
                index.update_diff_cursor()
        return self._entries

    def catch_up(
        self, index: native.Document, before: list[bytes], after: list[bytes], touched: set[str], written: Mapping[str, Entry] | None = None
    ) -> None:
        """Move from ``before`` to ``after`` heads, between which only the ``touched`` entries
        changed (one local IndexEdit), without a diff; a reader that is elsewhere stays put.
        ``written``: entries of them as the edit wrote them (``IndexEdit.written``), taken as
        they are instead of read back (7 lookups each: ~0.9 s of a 10k-file folder's first scan)."""
        if self._heads is not None and self._heads == sorted(before):
            self._reread(index, sorted(after), touched, written or {})

    def _conflict_prone(self) -> set[str]:
        """Entries a change can alter without a patch: Automerge's diff reports the winning value
        of a key, but ``deleted`` is read with all its values (rule 4), so a removal concurrent
        with another adds a losing value and no patch. Such an entry was removed already (or
        held a malformed value), so these are re-read on every move that is not a local edit."""
        return {file_id for file_id, entry in self._entries.items() if entry.removed_seen is not None} | self._unreadable

    def _reread(self, index: native.Document, heads: list[bytes], touched: set[str], written: Mapping[str, Entry] | None = None) -> None:
        entries = dict(self._entries)
        for file_id in touched:
            entry = written.get(file_id) if written else None
            if entry is None:
                entry = read_entry(index, file_id, heads)
            if entry is None:
                entries.pop(file_id, None)
                self._unreadable.add(file_id)
            else:
                entries[file_id] = entry
                self._unreadable.discard(file_id)
        self._heads, self._entries = heads, entries


def touched_entries(patches: list[dict[str, Any]]) -> set[str]:
    """The file ids (root keys) that index doc patches touch."""
    return {patch["path"][0] if patch["path"] else patch["key"] for patch in patches}


def stored_path(entries: Mapping[str, Entry], file_id: str) -> str:
    """The path an entry claims through its stored parents and names, before the rules apply
    (no conflict names, removals ignored): how history names an entry at any moment."""
    names: list[str] = []
    visited: set[str] = set()
    while file_id in entries and file_id not in visited:  # a cycle (rule 8) ends the walk
        visited.add(file_id)
        names.append(entries[file_id].name)
        file_id = entries[file_id].parent
    return "/".join(reversed(names))


def text_object(file_doc: native.Document, heads: list[bytes] | None = None) -> str | None:
    """The id of a text file doc's text object, or None if it has not arrived (or is malformed)."""
    text = file_doc.get(native.ROOT, TEXT_KEY, heads)
    return text.id if isinstance(text, native.ObjectRef) and text.kind == "text" else None


# ----- editing the index doc (the caller commits) -----


class IndexEdit:
    """Edits of the index doc for one change. It remembers the entries it touched, so that a
    reader can catch up by re-reading only those rather than diffing the whole doc."""

    def __init__(self, index: native.Document) -> None:
        self.index = index
        self.touched: set[str] = set()
        # Entries this edit added and did not touch again, exactly as ``read_entry`` reads them
        # back from the committed change (one that would not read back well-formed is left out).
        self.written: dict[str, Entry] = {}

    def add(self, file_id: str, kind: Kind, encoding: Encoding | None, parent: str, name: str, *, executable: bool = False) -> None:
        entry = self.index.put_object(native.ROOT, file_id, "map")
        self.index.put(entry, "kind", kind)
        if kind == FILE:
            self.index.put(entry, "encoding", encoding)
            if executable:
                self.index.put(entry, EXEC_KEY, True)
        claim = _stamp(self._put_loc(file_id, entry, parent, name))
        parent_ok = parent == ROOT_ID or bool(_FILE_ID.fullmatch(parent))
        well_formed = kind in (FILE, DIR) and (kind == DIR or encoding in ENCODINGS) and name_problem(name) is None
        if claim is not None and parent_ok and well_formed and _FILE_ID.fullmatch(file_id):
            self.written[file_id] = Entry(file_id, kind, encoding if kind == FILE else None, parent, name, claim, None, kind == FILE and executable)

    def set_executable(self, file_id: str, executable: bool) -> None:
        """Set or clear a file's executable bit (concurrent settings: the last writer's wins)."""
        entry = self._entry(file_id)
        if executable:
            self.index.put(entry, EXEC_KEY, True)
        else:
            self.index.delete(entry, EXEC_KEY)
        self._touch(file_id)

    def move(self, file_id: str, parent: str, name: str) -> None:
        self._put_loc(file_id, self._entry(file_id), parent, name)

    def remove(self, file_id: str, seen_heads: list[bytes]) -> None:
        """Tombstone an entry; ``seen_heads`` are its file doc's heads (empty for a directory)."""
        self.index.put(self._entry(file_id), "deleted", b"".join(sorted(seen_heads)))
        self._touch(file_id)

    def restore(self, file_id: str) -> None:
        self.index.delete(self._entry(file_id), "deleted")
        self._touch(file_id)

    def _put_loc(self, file_id: str, entry: str, parent: str, name: str) -> str:
        loc = self.index.put_object(entry, "loc", "map")
        self.index.put(loc, "parent", parent)
        self.index.put(loc, "name", name)
        self._touch(file_id)
        return loc

    def _touch(self, file_id: str) -> None:
        self.touched.add(file_id)
        self.written.pop(file_id, None)  # read back: what it holds now is not what add wrote

    def _entry(self, file_id: str) -> str:
        entry = self.index.get(native.ROOT, file_id)
        assert isinstance(entry, native.ObjectRef), f"no entry {file_id} (callers pass ids read from the index)"
        return entry.id


def removal_covers(file_doc: Callable[[], native.Document], seen: tuple[bytes, ...], heads: list[bytes]) -> bool:
    """Whether a removal that saw ``seen`` covers the file doc at ``heads`` (rule 4).

    It holds when every head is ``seen`` or an ancestor of it. Hashes of ``seen`` this node has
    not received are ignored, so while unsure the file stays visible rather than hiding an edit.
    ``file_doc`` loads the doc, only needed when the heads moved on since the removal.
    """
    if set(heads) <= set(seen):
        return True
    document = file_doc()
    known_seen = [head for head in seen if document.get_change_by_hash(head) is not None]
    unseen = {native.decode_change(change).hash for change in document.get_changes(known_seen)}
    return not unseen.intersection(heads)


# ----- the visible tree -----


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One path of the visible tree."""

    path: str
    kind: Kind
    file_id: str  # the entry shown here (for merged directories, the canonical one)
    encoding: Encoding | None
    file_ids: tuple[str, ...]  # every entry shown here: several for merged directories (rule 5)
    claimed_name: str | None = None  # the name it claims, when shown under a conflict name
    executable: bool = False

    @property
    def doc_id(self) -> bytes:
        return doc_id_of(self.file_id)


ROOT_NODE = TreeNode(ROOT, DIR, ROOT_ID, None, (ROOT_ID,))


class Tree:
    """The visible tree at one version: every path, and each directory's children by name."""

    def __init__(self, nodes: dict[str, TreeNode], children: dict[str, list[str]]) -> None:
        self._nodes = nodes
        self._children = children
        self._path_of = {file_id: node.path for node in nodes.values() for file_id in node.file_ids}

    def get(self, path: str) -> TreeNode | None:
        return self._nodes.get(path)

    def children(self, path: str) -> list[TreeNode]:
        """The nodes directly inside directory ``path``, sorted by name."""
        return [self._nodes[join(path, name)] for name in self._children.get(path, ())]

    def walk(self, path: str = ROOT) -> Iterator[TreeNode]:
        """Every node strictly below ``path``, parents before children, siblings by name."""
        stack = list(reversed(self.children(path)))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(self.children(node.path)))

    def path_of(self, file_id: str) -> str | None:
        """Where an entry shows now, or None if it is removed (or was never there)."""
        return self._path_of.get(file_id)


def conflict_name(name: str, claimant: str, attempt: int) -> str:
    """``stem (conflict abcd1234).ext``, the extension kept so editors still know the file;
    ``attempt`` > 1 adds a counter. The stem is shortened so the name stays a valid name."""
    dot = name.rfind(".")
    stem, extension = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    counter = f" {attempt}" if attempt > 1 else ""
    suffix = f" (conflict {claimant[:CONFLICT_AUTHOR_HEX_CHARS]}{counter}){extension}"
    while stem and len((stem + suffix).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + suffix


def materialize(entries: Mapping[str, Entry], removal_holds: Callable[[str, tuple[bytes, ...]], bool]) -> Tree:
    """Apply the module's rules to the stored entries: the tree every peer shows.

    Args:
        removal_holds: given a removed file's id and the heads its remover saw, whether the
            removal still holds (rule 4).
    """
    parent = {file_id: _valid_parent(entry, entries) for file_id, entry in entries.items()}
    _break_cycles(parent, entries)
    shown: set[str] = set()
    for file_id, entry in entries.items():
        if entry.removed_seen is not None and (entry.kind == DIR or removal_holds(file_id, entry.removed_seen)):
            continue
        ancestor = file_id  # a surviving entry shows, and so do its ancestors (rule 7)
        while ancestor != ROOT_ID and ancestor not in shown:
            shown.add(ancestor)
            ancestor = parent[ancestor]
    children_ids: dict[str, list[str]] = defaultdict(list)
    for file_id in shown:
        children_ids[parent[file_id]].append(file_id)

    nodes = {ROOT: ROOT_NODE}
    children: dict[str, list[str]] = {}
    pending = [ROOT_NODE]
    while pending:
        directory = pending.pop()
        members = [entries[child] for dir_id in directory.file_ids for child in children_ids.get(dir_id, ())]
        placed = _place(directory.path, members)
        for node in placed:
            nodes[node.path] = node
            if node.kind == DIR:
                pending.append(node)
        children[directory.path] = sorted(name_of(node.path) for node in placed)
    return Tree(nodes, children)


def _valid_parent(entry: Entry, entries: Mapping[str, Entry]) -> str:
    parent = entries.get(entry.parent)
    return entry.parent if parent is not None and parent.kind == DIR else ROOT_ID


def _place(path: str, members: list[Entry]) -> list[TreeNode]:
    """Name the entries of one directory: directories merge, files that lose a name get a
    conflict name (rules 1, 5, 6)."""
    by_name: dict[str, list[Entry]] = defaultdict(list)
    for entry in sorted(members, key=lambda entry: entry.claim):
        by_name[entry.name].append(entry)
    placed: list[TreeNode] = []
    losers: list[Entry] = []
    for name, claims in by_name.items():
        dirs = [entry for entry in claims if entry.kind == DIR]
        files = [entry for entry in claims if entry.kind == FILE]
        if dirs:
            placed.append(TreeNode(join(path, name), DIR, dirs[0].file_id, None, tuple(d.file_id for d in dirs)))
            losers.extend(files)
        else:
            placed.append(_file_node(join(path, name), files[0]))
            losers.extend(files[1:])
    taken = set(by_name)
    # Each loser takes the first free attempt. Names only get taken, so for the next loser with
    # the same name and author prefix (conflict_name depends on nothing else) every attempt up
    # to the last one taken is still taken: start after it. Linear, where counting from 1 each
    # time cost 8.4 s for 4,000 same-name files (issue 12).
    next_attempt: dict[tuple[str, str], int] = {}
    for entry in sorted(losers, key=lambda entry: entry.claim):
        key = (entry.name, entry.claimant[:CONFLICT_AUTHOR_HEX_CHARS])
        attempt = next_attempt.get(key, 1)
        while (name := conflict_name(entry.name, entry.claimant, attempt)) in taken:
            attempt += 1
        next_attempt[key] = attempt + 1
        taken.add(name)
        placed.append(_file_node(join(path, name), entry, claimed_name=entry.name))
    return placed


def _file_node(path: str, entry: Entry, claimed_name: str | None = None) -> TreeNode:
    return TreeNode(path, FILE, entry.file_id, entry.encoding, (entry.file_id,), claimed_name, entry.executable)


def _break_cycles(parent: dict[str, str], entries: Mapping[str, Entry]) -> None:
    """Rule 8. Each entry has one parent, so cycles are disjoint and breaking one never makes
    or breaks another: the result does not depend on the order cycles are found in. Only
    directories are parents, so only they can be on a cycle."""
    done: set[str] = set()
    for start in parent:
        if entries[start].kind != DIR:
            continue
        walk: list[str] = []
        on_walk: set[str] = set()
        node = start
        while node != ROOT_ID and node not in done and node not in on_walk:
            walk.append(node)
            on_walk.add(node)
            node = parent[node]
        if node in on_walk:
            cycle = walk[walk.index(node) :]
            latest = max(cycle, key=lambda file_id: entries[file_id].claim)
            parent[latest] = ROOT_ID
        done.update(walk)
