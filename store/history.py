"""History and time travel: who changed what and when, how a file came to be, and going back.

Nothing here is stored on its own: every answer is read from the signed Automerge changes and
the store's local version index (``Repo.versions``: each time this node's heads moved, in the
order it happened, which respects causality). Versions are local numbers, so a user can say
"back to version 50"; changes carry their author (the actor id is the author's key), the
author's clock and a message.

- ``log``: the changes of the space or of one path, newest first, with the paths they touched.
- ``replay``: the changes between two versions, oldest first, each with the Automerge patches
  it made, to watch how a bug came in step by step.
- ``diff``: per file between two versions: unified diff text and Automerge patches.
- ``blame``: the author of every line of a text file, from Automerge patches: the file's
  changes are walked in causal order and each inserted span is attributed to its author.
- ``revert`` and ``revert_file``: put the workspace or one file back as it was at a version by
  making NEW signed changes on top; history is never rewritten, so the revert is itself
  history and can be reverted.

Reading the past reads the live documents at older heads (Automerge keeps every op), so no
version needs to be materialized or stored to be read.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import native
from protocol.space import INDEX_DOC_ID
from store.errors import InvalidInput
from store.paths import ROOT, is_within, split_path
from store.records import Origin
from store.tree import (
    BYTES_KEY,
    DIR,
    TEXT,
    Entry,
    IndexEdit,
    IndexReader,
    Tree,
    TreeNode,
    doc_id_of,
    file_id_of,
    stored_path,
    text_object,
    touched_entries,
)
from store.workspace import Content, SpaceHeads, Workspace
from store.workspace_errors import AlreadyExists, ContentUnavailable, IsADirectory, NotText

# Entries ``log`` returns unless told otherwise: a screen or two; page on with ``until``.
DEFAULT_LOG_LIMIT = 100
# Versions ``log`` reads per step while walking back: bounds the work done before it can stop.
LOG_PAGE_VERSIONS = 256
_MS_PER_S = 1000  # Automerge stamps changes in seconds
Patch = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One change, as history tells it."""

    version: int  # the local version at which this node got the change
    change: bytes  # its hash
    doc: bytes
    author: bytes  # the author's public key (the change's actor id)
    time_ms: int  # the author's clock, to the second
    message: str | None
    # What it touched, as named just after it. A new file's first content change comes before
    # its entry (store/workspace.py), so it is named as at the end of the log instead.
    paths: tuple[str, ...]
    origin: Origin  # made here ("local") or received ("remote")


@dataclass(frozen=True, slots=True)
class RefusedEntry:
    """A change refused at ingest as unauthorised (store/refused.py): kept, never materialised."""

    change: bytes  # its hash
    doc: bytes
    author: bytes
    seq: int
    time_ms: int  # the author's clock, to the second (0 when its bytes were not kept)
    reason: str
    refused_ms: int  # when this node first refused it
    paths: tuple[str, ...] | None  # as the index reads now; None: unknown (a file the index does not name)


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """A change and what it did to its doc, as Automerge patches."""

    entry: LogEntry
    patches: list[Patch]


@dataclass(frozen=True, slots=True)
class FileDiff:
    """How one file differs between two versions."""

    file_id: str
    old_path: str | None  # None: the file was added
    new_path: str | None  # None: the file was removed
    unified: str  # a unified diff of the text ("Binary files ... differ" for binary files)
    patches: list[Patch]  # Automerge patches turning the old content doc into the new one

    @property
    def status(self) -> str:
        if self.old_path is None:
            return "added"
        if self.new_path is None:
            return "removed"
        return "moved" if self.old_path != self.new_path else "modified"


@dataclass(frozen=True, slots=True)
class BlameLine:
    """One line of a text file and who last wrote into it."""

    number: int  # from 1
    text: str  # without its line break
    author: bytes
    change: bytes  # the last change of the author's run of edits that wrote into the line
    time_ms: int


class History:
    """History of one workspace: log, replay, diff, blame, revert."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # ----- reading history -----

    def log(
        self, path: str | None = None, *, since: int = 0, until: int | None = None, limit: int = DEFAULT_LOG_LIMIT
    ) -> list[LogEntry]:
        """Changes of the space, or of what is at ``path`` at version ``until``, newest first.

        Only changes this node got after version ``since`` and up to ``until`` (the newest for
        None) count, at most ``limit`` of them. For a directory, changes to anything in it.
        """
        until = self.ws.check_version(until)
        since = self.ws.check_version(since)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInput(f"a log limit is a count of entries, not {limit!r}")
        file_ids = self._file_ids(path, until)
        found: list[LogEntry] = []
        high = until
        while high > since and len(found) < limit:
            low = max(since, high - LOG_PAGE_VERSIONS)
            page = [entry for entry, _ in self._walk(low, high, file_ids, with_patches=False)]
            found.extend(reversed(page))
            high = low
        return found[:limit]

    def refused(self, path: str | None = None, *, limit: int = DEFAULT_LOG_LIMIT) -> list[RefusedEntry]:
        """The changes of the space refused at ingest as unauthorised, newest first, at most
        ``limit``; with ``path``, those touching it or below it (a change of unknown paths
        only without one)."""
        if path is not None:
            split_path(path)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInput(f"a log limit is a count of entries, not {limit!r}")
        repo = self.ws.repo
        found: list[RefusedEntry] = []
        for row in reversed(repo.refused_changes(self.ws.space)):
            if len(found) >= limit:
                break
            paths = repo.refused_paths(row)
            if path is not None and not any(is_within(p, path) for p in paths or ()):
                continue
            entry = RefusedEntry(
                row.hash, row.doc, row.author, row.seq, row.time_s * _MS_PER_S, row.reason, row.refused_ms,
                None if paths is None else tuple(paths),
            )
            found.append(entry)
        return found

    def replay(self, old: int, new: int | None = None, path: str | None = None) -> list[ReplayStep]:
        """The changes after version ``old`` up to ``new``, oldest first, each with its patches;
        for a ``path`` (as named at ``new``), only the changes to it."""
        new = self.ws.check_version(new)
        old = self.ws.check_version(old)
        file_ids = self._file_ids(path, new)
        return [ReplayStep(entry, patches) for entry, patches in self._walk(old, new, file_ids, with_patches=True)]

    def diff(self, old: int, new: int | None = None, path: str | None = None) -> list[FileDiff]:
        """Every file that differs between two versions (in name or content), sorted by path;
        with ``path``, only files at or below it in either version.

        Content not yet synced at a version counts as empty.
        """
        if path is not None:
            split_path(path)
        old_tree, new_tree = self.ws.tree(old), self.ws.tree(new)
        old_heads, new_heads = self.ws.heads_at(old), self.ws.heads_at(new)
        old_files, new_files = _files(old_tree, path), _files(new_tree, path)
        diffs = []
        for file_id in old_files.keys() | new_files.keys():
            before, after = old_files.get(file_id), new_files.get(file_id)
            doc_id = doc_id_of(file_id)
            old_doc_heads, new_doc_heads = old_heads.get(doc_id, []), new_heads.get(doc_id, [])
            if before and after and before.path == after.path and sorted(old_doc_heads) == sorted(new_doc_heads):
                continue
            old_content = self._content_or_empty(before, old_heads)
            new_content = self._content_or_empty(after, new_heads)
            old_path, new_path = before.path if before else None, after.path if after else None
            unified = _unified(old_path, new_path, old_content, new_content)
            patches = self.ws.document(doc_id).diff(old_doc_heads, new_doc_heads)
            diffs.append(FileDiff(file_id, old_path, new_path, unified, patches))
        return sorted(diffs, key=lambda diff: diff.new_path or diff.old_path or "")

    def blame(self, path: str, version: int | None = None) -> list[BlameLine]:
        """The author of every line of a text file at a version (the newest for None).

        Each character is attributed to the author whose change inserted it, by replaying the
        file's changes in causal order through Automerge diffs; a line belongs to the newest
        run of edits that inserted any of its characters (its line break counts only when the
        line is empty). Consecutive changes by one author are diffed as one run, which keeps
        the cost to one diff per run of edits rather than per keystroke.

        Raises:
            NotText: a binary file. IsADirectory, NotFound, ContentUnavailable.
        """
        node = self.ws.node(path, version)
        if node.kind == DIR:
            raise IsADirectory(f"{path!r} is a directory")
        if node.encoding != TEXT:
            raise NotText(f"{path!r} is a binary file; blame reads text")
        document = self.ws.document(node.doc_id)
        target = self.ws.heads_at(version).get(node.doc_id, [])
        text_id = text_object(document, target)
        if text_id is None:
            raise ContentUnavailable(f"the content of {path!r} has not arrived from its peers yet")
        runs = _runs_of_authors(document, target)
        writer: list[int] = []  # per character: the index of the run that inserted it
        heads: list[bytes] = []
        for number, run in enumerate(runs):
            after = heads
            for change in run:
                after = _advance(after, change)
            for patch in document.diff(heads, after):
                if patch["obj"] == text_id:
                    _apply_to_writers(writer, patch, number)
            heads = after
        return _blame_lines(document.text(text_id, target), writer, runs)

    # ----- going back -----

    def revert(self, version: int, *, now_ms: int, message: str | None = None) -> int:
        """Make the workspace what it was at ``version`` with new changes; returns the version made.

        Files are put back in place and content, files added since are removed, files
        removed since come back. Every step is an ordinary change, so nothing is lost.
        """
        version = self.ws.check_version(version)
        message = message or f"revert to version {version}"
        past_tree, current_tree = self.ws.tree(version), self.ws.tree()
        past_heads = self.ws.heads_at(version)
        for node in past_tree.walk():
            if node.kind != DIR:
                self._restore_content(node, past_heads, message, now_ms)
        past_ids = _shown_ids(past_tree)
        added_since = _shown_ids(current_tree) - past_ids
        self._restore_entries(past_ids, version, added_since, message, now_ms)
        return self.ws.version()

    def revert_file(self, path: str, version: int, *, now_ms: int, message: str | None = None) -> int:
        """Put the file that was at ``path`` at ``version`` back there, with that content;
        returns the version made. A removed file comes back; a moved one moves back.

        Raises:
            AlreadyExists: another file now holds ``path``; move it away first.
            IsADirectory: revert a directory with ``revert``. NotFound: nothing at ``path`` then.
        """
        version = self.ws.check_version(version)
        node = self.ws.node(path, version)
        if node.kind == DIR:
            raise IsADirectory(f"{path!r} was a directory at version {version}; revert the workspace instead")
        occupant = self.ws.tree().get(node.path)
        if occupant is not None and occupant.file_id != node.file_id:
            raise AlreadyExists(f"{node.path!r} now holds another file; move it away first")
        message = message or f"revert {node.path} to version {version}"
        self._restore_content(node, self.ws.heads_at(version), message, now_ms)
        self._restore_entries({node.file_id}, version, set(), message, now_ms)
        return self.ws.version()

    # ----- internals -----

    def _walk(
        self, since: int, until: int, file_ids: set[str] | None, *, with_patches: bool
    ) -> Iterator[tuple[LogEntry, list[Patch]]]:
        """Every change after version ``since`` up to ``until``, oldest first, that touched one of
        ``file_ids`` (any, for None), with its patches (index changes always; file changes if
        ``with_patches``)."""
        heads = self.ws.heads_at(since)
        index = self.ws.document(INDEX_DOC_ID)
        reader = IndexReader()
        final_entries = self.ws.entries(until)
        for record in self.ws.repo.versions(self.ws.space, since, until - since):
            document = self.ws.document(record.doc)
            for change_hash in record.hashes:
                raw = document.get_change_by_hash(change_hash)
                assert raw is not None, "the store holds every change its versions name"
                change = native.decode_change(raw)
                before = heads.get(record.doc, [])
                heads[record.doc] = after = _advance(before, change)
                if record.doc == INDEX_DOC_ID:
                    patches = index.diff(before, after)
                    touched = touched_entries(patches)
                else:
                    patches = document.diff(before, after) if with_patches else []
                    touched = {file_id_of(record.doc)}
                if file_ids is not None and not touched & file_ids:
                    continue
                entries = reader.entries(index, heads.get(INDEX_DOC_ID, []))
                named = (stored_path(entries if file_id in entries else final_entries, file_id) for file_id in touched)
                paths = tuple(sorted(path for path in named if path))
                time_ms = change.time * _MS_PER_S
                entry = LogEntry(record.number, change.hash, record.doc, change.actor, time_ms, change.message, paths, record.origin)
                yield entry, patches

    def _file_ids(self, path: str | None, version: int) -> set[str] | None:
        """The entries at or below ``path`` at ``version``; None (everything) for the root."""
        if path is None or path == ROOT:
            return None
        node = self.ws.node(path, version)
        tree = self.ws.tree(version)
        return {file_id for shown in (node, *tree.walk(node.path)) for file_id in shown.file_ids}

    def _content_or_empty(self, node: TreeNode | None, heads: SpaceHeads) -> Content:
        empty: Content = "" if node is None or node.encoding == TEXT else b""
        if node is None:
            return empty
        try:
            return self.ws.content(node, heads)
        except ContentUnavailable:
            return empty

    def _restore_content(self, node: TreeNode, past_heads: SpaceHeads, message: str, now_ms: int) -> None:
        """Give a file its content of the past, as a minimal edit of the present content."""
        try:
            past = self.ws.content(node, past_heads)
        except ContentUnavailable:
            return  # this node had not received the content by then: there is nothing to restore
        document = self.ws.document(node.doc_id)
        with self.ws.editing(node.doc_id, message, now_ms):
            if isinstance(past, str):
                text_id = text_object(document)
                assert text_id is not None  # the content existed at the past version, so it does now
                document.update_text(text_id, past)
            elif document.get(native.ROOT, BYTES_KEY) != past:
                document.put(native.ROOT, BYTES_KEY, past)

    def _restore_entries(
        self, file_ids: set[str], version: int, remove: set[str], message: str, now_ms: int
    ) -> None:
        """Put entries back where they were at ``version`` (restoring removed ones) and remove
        the ``remove`` ones, in one index change. A ``loc`` is rewritten only if it differs, so
        the unchanged entries keep their claims (store/tree.py rule 1)."""
        past, current = self.ws.entries(version), self.ws.entries()
        with self.ws.editing_index(message, now_ms) as edit:
            for file_id in sorted(file_ids):
                _restore_entry(edit, past[file_id], current.get(file_id))
            for file_id in sorted(remove):
                seen = self.ws.repo.heads(self.ws.space, doc_id_of(file_id)) if current[file_id].kind != DIR else []
                edit.remove(file_id, seen)


def _restore_entry(edit: IndexEdit, then: Entry, now: Entry | None) -> None:
    if now is None:  # the entry was lost from the index (a malformed write by a peer): write it anew
        edit.add(then.file_id, then.kind, then.encoding, then.parent, then.name)
        return
    if now.removed_seen is not None:
        edit.restore(then.file_id)
    if (now.parent, now.name) != (then.parent, then.name):
        edit.move(then.file_id, then.parent, then.name)


def _advance(heads: list[bytes], change: native.DecodedChange) -> list[bytes]:
    """The heads after adding ``change`` to a doc at ``heads`` (its deps are known to be there)."""
    return sorted({*heads, change.hash} - set(change.deps))


def _shown_ids(tree: Tree) -> set[str]:
    return {file_id for node in tree.walk() for file_id in node.file_ids}


def _files(tree: Tree, path: str | None) -> dict[str, TreeNode]:
    within = ROOT if path is None else path
    return {node.file_id: node for node in tree.walk() if node.kind != DIR and is_within(node.path, within)}


def _unified(old_path: str | None, new_path: str | None, old: Content, new: Content) -> str:
    old_name = f"a/{old_path}" if old_path is not None else "/dev/null"
    new_name = f"b/{new_path}" if new_path is not None else "/dev/null"
    if isinstance(old, bytes) or isinstance(new, bytes):
        return f"Binary files {old_name} and {new_name} differ\n" if old != new else ""
    # Lines end at \n only: splitlines() would also break at \r, \x1c or \u2028 inside a line.
    lines = difflib.unified_diff(_lines(old), _lines(new), old_name, new_name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _runs_of_authors(document: native.Document, target: list[bytes]) -> list[list[native.DecodedChange]]:
    """The changes that lead to ``target``, in causal order, cut into runs of one author."""
    after_target = {native.decode_change(raw).hash for raw in document.get_changes(target)}
    changes = (native.decode_change(raw) for raw in document.get_changes([]))
    leading = [change for change in changes if change.hash not in after_target]
    return [list(run) for _, run in itertools.groupby(leading, key=lambda change: change.actor)]


def _apply_to_writers(writer: list[int], patch: Patch, run: int) -> None:
    if patch["action"] == "splice_text":
        writer[patch["index"] : patch["index"]] = [run] * len(patch["value"])
    elif patch["action"] == "del_seq":
        del writer[patch["index"] : patch["index"] + patch["length"]]


def _blame_lines(text: str, writer: list[int], runs: list[list[native.DecodedChange]]) -> list[BlameLine]:
    lines = []
    start = 0
    for number, body in enumerate(text.split("\n"), start=1):
        if start == len(text):
            break  # nothing follows the last line break
        span = writer[start : start + (len(body) or 1)]  # an empty line is its line break
        start += len(body) + 1
        last = runs[max(span)][-1]
        lines.append(BlameLine(number, body, last.actor, last.hash, last.time * _MS_PER_S))
    return lines


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
