"""The workspace: a space's files and folders as a small file system over its Automerge docs.

``Workspace`` is what editors, agents, the local API and the CLI call: ls, stat, read, write,
splice, mkdir, rm, mv. Reads take an optional local version number and then show the space
exactly as it was at that version (time travel is a read like any other). Writes are
synchronous and durable: each returns the version it made once the store has committed it.

How a write becomes changes. The tree lives in the index doc (store/tree.py holds its layout
and the rules that make concurrent tree edits converge); each file's content lives in a doc of
its own, so a file syncs, loads and merges without the rest. Writing a file's new text is a
minimal splice diff against its current text (Automerge's ``update_text``), not a replacement,
so a peer's concurrent edits to other parts of the file survive the merge. Creating a file
commits its content doc first and its index entry second: a crash in between leaves an
unreferenced doc, never an entry without content. Every check (path, kind, existence) runs
before the first edit, and an edit that fails midway is rolled back, so a refused operation
changes nothing.

In a private space, every write is first checked against the capability log as the local
identity (``CapabilityLog.write_refusal``) by the paths its changes will touch — the ones
every peer checks them by (store/capabilities.py): a file's path, a created entry's and its new
parent directories', a removal's whole subtree, a move's old and new paths of everything moved.
A refusal raises ``NotAuthorised`` before anything is written. Open spaces skip the check.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import partial
from typing import Any

import native
from protocol.limits import MAX_FRAME_BYTES
from protocol.space import INDEX_DOC_ID, new_doc_id
from store.batch import BATCH_DOCS_PER_TRANSACTION, BATCH_TREE_EDITS_PER_CHANGE, BatchOp, BatchResult, Plan, Progress, plan_batch, run_steps
from store.capabilities import file_doc_paths
from store.content_build import new_docs
from store.errors import InvalidInput, NotAuthorised
from store.paths import ROOT, check_path, is_within, name_of, parent_of, split_path
from store.repo import Repo, change_time, wall_clock_ms
from store.tree import (
    BINARY,
    BYTES_KEY,
    DIR,
    FILE,
    TEXT,
    TEXT_KEY,
    Encoding,
    Entry,
    IndexEdit,
    IndexReader,
    Kind,
    Tree,
    TreeNode,
    doc_id_of,
    file_id_of,
    materialize,
    removal_covers,
    text_object,
)
from store.workspace_errors import (
    AlreadyExists,
    BatchConflict,
    ContentTooLarge,
    ContentUnavailable,
    DirectoryNotEmpty,
    InvalidEdit,
    InvalidMove,
    IsADirectory,
    NotADirectory,
    NotFound,
    NotText,
    UnknownBase,
    UnknownVersion,
)

# One write is one change, and a change must travel to peers inside one protocol frame
# (protocol.limits.MAX_FRAME_BYTES) with its batch around it: half a frame leaves that room.
MAX_WRITE_BYTES = MAX_FRAME_BYTES // 2
# Trees kept materialized: browsing history revisits a few versions at a time, and each tree
# costs memory in proportion to the number of files.
TREES_CACHED = 16
# A three-way write diffs lines, then the characters inside each changed run of lines; a run
# whose two sides multiply past this many character pairs is replaced whole instead, since a
# character diff costs up to their product (~1 s at 10^7 here).
CHAR_DIFF_PAIRS_MAX = 1_000_000

Content = str | bytes
SpaceHeads = dict[bytes, list[bytes]]  # doc -> its heads: a space at one moment
Span = tuple[int, int]  # characters [start, end) of a text
Patch = dict[str, Any]  # one of Automerge's, as Document.diff gives them


@dataclass(frozen=True, slots=True)
class Stat:
    """What ``stat`` and ``ls`` tell about one path."""

    path: str
    kind: Kind
    file_id: str  # stable across renames: the id of the file's content doc, in hex
    encoding: Encoding | None  # None for a directory
    size: int | None  # text: characters; binary: bytes; None for a directory or content not yet synced
    heads: tuple[bytes, ...]  # the content doc's heads (empty for a directory): a version tag for the file
    claimed_name: str | None  # set when shown under a conflict name: the name it claims (store/tree.py)
    executable: bool = False  # a file's mode bit (git's 100755)

    @property
    def doc_id(self) -> bytes:
        """The id of a file's content doc."""
        return doc_id_of(self.file_id)


@dataclass(frozen=True, slots=True)
class Edit:
    """Delete ``delete`` characters at ``position`` and insert ``insert`` there.

    Positions count code points of the text at the edit's base, and all edits of one list
    refer to that same text (LSP's ``TextEdit[]`` rule), so they must not overlap.
    """

    position: int
    delete: int = 0
    insert: str = ""


@dataclass(frozen=True, slots=True)
class EditResult:
    """What ``Workspace.edit`` made.

    ``change`` is the one change it committed (None if the edits changed nothing) and ``heads``
    the file doc's heads after it merged with everything else. ``made_at`` are the change's
    deps: the base, plus this node's newest change of the doc when the base lacked it (an
    author's changes form a chain, see ``Workspace.edit``); the text at ``[change]`` is the
    text at ``base`` with the edits applied exactly when ``made_at`` is the base.
    """

    change: bytes | None
    heads: tuple[bytes, ...]
    made_at: tuple[bytes, ...]


class Workspace:
    """Files and folders of one space of a repo; reads now or at any local version."""

    def __init__(self, repo: Repo, space: bytes) -> None:
        repo.genesis(space)  # UnknownSpace now rather than at the first read
        self.repo = repo
        self.space = space
        self._reader = IndexReader()
        self._trees: OrderedDict[tuple[object, ...], Tree] = OrderedDict()

    # ----- versions -----

    def version(self) -> int:
        """The newest local version of the space."""
        return self.repo.version(self.space)

    def check_version(self, version: int | None) -> int:
        """``version``, or the newest one for None.

        Raises:
            UnknownVersion: not a version this node has reached.
        """
        latest = self.version()
        if version is None:
            return latest
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= latest:
            raise UnknownVersion(f"this node has versions 0 to {latest} of the space, not {version!r}")
        return version

    def heads_at(self, version: int | None = None) -> SpaceHeads:
        """Every doc's heads at a version (docs without changes by then are absent)."""
        return self.repo.heads_at(self.space, self.check_version(version))

    def document(self, doc_id: bytes) -> native.Document:
        return self.repo.document(self.space, doc_id)

    @contextmanager
    def editing(self, doc_id: bytes, message: str, now_ms: int) -> Iterator[native.Document]:
        """Edit a doc and commit the edits as one signed change; drop them if anything fails."""
        document = self.document(doc_id)
        try:
            yield document
        except BaseException:
            self.repo.rollback(self.space, doc_id)
            raise
        self.repo.commit(self.space, doc_id, message, now_ms=now_ms)

    @contextmanager
    def editing_index(self, message: str, now_ms: int) -> Iterator[IndexEdit]:
        """Edit the tree as one signed change. Then only the touched entries are re-read, where a
        remote change costs a diff of the whole index."""
        index = self.document(INDEX_DOC_ID)
        before = index.heads()
        edit = IndexEdit(index)
        with self.editing(INDEX_DOC_ID, message, now_ms):
            yield edit
        if len(index.get_changes(before)) == 1:  # no remote change came in with the commit
            self._reader.catch_up(index, before, index.heads(), edit.touched, edit.written)

    def check_authorised(self, paths: Iterable[str], now_ms: int) -> None:
        """Raise NotAuthorised unless the log lets this node's key write every one of ``paths``
        (an open space lets it write anything)."""
        log = self.repo.capability_log(self.space)
        if not log.private:
            return
        reason = log.write_refusal(self.repo.identity.public_key, sorted(set(paths)), now_ms)
        if reason is not None:
            raise NotAuthorised(reason)

    def _file_paths(self, node: TreeNode) -> list[str]:
        """The paths a change of a file's content is judged by: its stored path in the index
        (as peers read it), and the path it shows at (a conflict name may differ)."""
        stored = file_doc_paths(self.document(INDEX_DOC_ID), node.doc_id) or []
        return [*stored, node.path]

    def _check_file_write(self, node: TreeNode, now_ms: int) -> None:
        if self.repo.capability_log(self.space).private:
            self.check_authorised(self._file_paths(node), now_ms)

    def _subtree(self, node: TreeNode) -> list[str]:
        """The path of ``node`` and of everything below it."""
        return [node.path, *(below.path for below in self.tree().walk(node.path))] if node.kind == DIR else [node.path]

    # ----- reading -----

    def entries(self, version: int | None = None) -> dict[str, Entry]:
        """The index entries as stored at a version, before the tree rules apply."""
        moment = self._moment(version)
        return self._reader.entries(self.document(INDEX_DOC_ID), self._doc_heads(INDEX_DOC_ID, moment))

    def tree(self, version: int | None = None) -> Tree:
        """The visible tree at a version (the newest for None)."""
        return self._tree(self._moment(version))

    def node(self, path: str, version: int | None = None) -> TreeNode:
        """The tree node at ``path``.

        Raises:
            PathError: a malformed path. NotFound: nothing there at that version.
        """
        return self._node(path, self._moment(version))

    def exists(self, path: str, version: int | None = None) -> bool:
        split_path(path)
        return self.tree(version).get(path) is not None

    def stat(self, path: str, version: int | None = None) -> Stat:
        moment = self._moment(version)
        return self._stat(self._node(path, moment), moment)

    def ls(self, path: str = ROOT, version: int | None = None) -> list[Stat]:
        """The entries directly inside directory ``path``, sorted by name.

        Raises:
            NotADirectory: ``path`` is a file.
        """
        moment = self._moment(version)
        node = self._node(path, moment)
        if node.kind != DIR:
            raise NotADirectory(f"{path!r} is a file, not a directory")
        return [self._stat(child, moment) for child in self._tree(moment).children(path)]

    def read(self, path: str, version: int | None = None) -> Content:
        """The content of a file: ``str`` for a text file, ``bytes`` for a binary one.

        Raises:
            IsADirectory, NotFound, ContentUnavailable (the file's doc has not synced yet).
        """
        moment = self._moment(version)
        return self.content(self._file(path, moment), moment.heads)

    def read_with_heads(self, path: str, version: int | None = None) -> tuple[Content, tuple[bytes, ...]]:
        """A file's content and its doc's heads at that version, read together: the heads are
        the ``base`` that a splice at positions found in this content names."""
        moment = self._moment(version)
        node = self._file(path, moment)
        return self.content(node, moment.heads), tuple(sorted(self._doc_heads(node.doc_id, moment)))

    def content(self, node: TreeNode, heads: SpaceHeads | None) -> Content:
        """A file node's content, now (``heads`` None) or at every doc's ``heads``.

        A text file's text now comes from the text cache when it holds it at the doc's heads
        (``Repo.cached_text``): a bulk-created file reads without loading its doc.
        """
        if heads is None and node.encoding == TEXT and (text := self.repo.cached_text(self.space, node.doc_id)) is not None:
            return text
        doc_heads = None if heads is None else heads.get(node.doc_id, [])
        document = self.document(node.doc_id)
        if node.encoding == TEXT:
            return document.text(self._text_object(node, document, doc_heads), doc_heads)
        content = document.get(native.ROOT, BYTES_KEY, doc_heads)
        if not isinstance(content, bytes):
            raise ContentUnavailable(f"the content of {node.path!r} has not arrived from its peers yet")
        return content

    # ----- writing -----

    def write(
        self,
        path: str,
        content: Content,
        *,
        now_ms: int,
        message: str | None = None,
        parents: bool = False,
        base: Sequence[bytes] | None = None,
    ) -> int:
        """Create or overwrite a file; returns the version the write made (or the current one
        if the content was already there).

        A new file is text for ``str`` content and binary for ``bytes``. A text file takes
        UTF-8 ``bytes`` too; a binary file takes ``str`` as its UTF-8 bytes.

        With ``base`` (the file doc's heads when the writer read it), a text file gets a
        three-way write: the diff from the text at ``base`` to ``content``, applied at ``base``
        (``edit``), so what others wrote since survives a whole-file save. Without it the diff
        is against the text now, as a save that saw every change. A binary file's bytes are one
        value: ``base`` is checked, then they are replaced.

        Raises:
            NotFound: the parent directory is missing (pass ``parents=True`` to create it), or
                ``base`` was given for a file that does not exist.
            UnknownBase: ``base`` names heads this node does not hold for the file.
            NotADirectory, IsADirectory, NotText, ContentTooLarge... (see workspace_errors).
        """
        path = check_path(path)
        _check_content(content)
        node = self.tree().get(path)
        if node is None:
            if base is not None:
                raise NotFound(f"no file {path!r} to write at base (it was removed, or never synced here)")
            return self._create_file(path, content, now_ms, message, parents)
        if node.kind == DIR:
            raise IsADirectory(f"{path!r} is a directory")
        self._check_file_write(node, now_ms)
        message = message or f"write {path}"
        document = self.document(node.doc_id)
        if node.encoding == TEXT:
            text = _as_text(path, content)
            text_id = self._text_object(node, document, None)
            if base is None:
                with self.editing(node.doc_id, message, now_ms):
                    document.update_text(text_id, text)
            else:
                heads = self._base(path, document, text_id, base)
                self.edit(path, text_edits(document.text(text_id, heads), text), base=heads, now_ms=now_ms, message=message)
        else:
            if base is not None:
                self._base(path, document, None, base)
            data = content.encode() if isinstance(content, str) else content
            if self.content(node, None) != data:  # ContentUnavailable before writing over unseen content
                with self.editing(node.doc_id, message, now_ms):
                    document.put(native.ROOT, BYTES_KEY, data)
        return self.version()

    def edit(
        self,
        path: str,
        edits: Sequence[Edit],
        *,
        base: Sequence[bytes] | None,
        now_ms: int | None = None,
        message: str | None = None,
    ) -> EditResult:
        """Apply ``edits`` of the text at ``base`` to a text file, as one change made at ``base``.

        The document is isolated at ``base`` (Automerge shows it as it was there), the edits are
        spliced from the last to the first, and the change committed there has ``base`` as its
        deps; Automerge then merges it with what arrived since, so every edit lands where its
        author meant and deletes only characters the author saw. ``base=None`` means the heads
        now. The change is signed and stored like any other (``editing``).

        One exception to "deps = base": this node's changes must form one chain, so when it has
        a change of the doc the base lacks (another local client wrote since), the change is
        made at the base plus that change, and the edits' positions are carried there through
        the patches between the two (``rebase_splice``). ``EditResult.made_at`` says which.

        Raises:
            NotText: a binary file. UnknownBase: ``base`` names heads this node does not hold
            for this file. InvalidEdit: edits that overlap, or reach outside the text at base.
            ContentTooLarge, InvalidInput (not valid Unicode); nothing is applied.
        """
        node = self._file(path, self._moment(None))
        if node.encoding != TEXT:
            raise NotText(f"{path!r} is a binary file; write its bytes instead of editing it")
        now_ms = wall_clock_ms() if now_ms is None else now_ms
        self._check_file_write(node, now_ms)
        document = self.document(node.doc_id)
        text_id = self._text_object(node, document, None)
        now = sorted(document.heads())
        heads = now if base is None else self._base(path, document, text_id, base)
        ordered = self._check_edits(path, document, text_id, edits, None if heads == now else heads)
        if not any(edit.delete or edit.insert for edit in ordered):
            return EditResult(None, tuple(now), tuple(heads))
        made_at = _on_own_chain(document, heads)
        patches = [] if made_at == heads else [p for p in document.diff(heads, made_at) if p["obj"] == text_id]
        with self.editing(node.doc_id, message or f"edit {path}", now_ms):
            if made_at != now:
                document.isolate(made_at)
            _splice_through(document, text_id, patches, ordered)
        last = document.get_last_local_change()
        change = None if last is None else native.decode_change(last).hash
        return EditResult(change, tuple(self.repo.heads(self.space, node.doc_id)), tuple(made_at))

    def splice(
        self,
        path: str,
        position: int,
        delete: int,
        insert: str = "",
        *,
        now_ms: int,
        message: str | None = None,
        base: Sequence[bytes] | None = None,
    ) -> int:
        """Delete ``delete`` characters at ``position`` of a text file and insert ``insert`` there.

        With ``base`` (the file doc's heads the caller read, e.g. ``Stat.heads``), the range is
        one of the text at ``base`` and lands where the caller meant, whatever arrived since:
        only characters of that range that still exist are deleted (never text inserted since),
        and ``insert`` goes where the range began (see ``rebase_splice``).

        Raises:
            NotText: a binary file. InvalidInput: a range outside the text (at ``base``).
            UnknownBase: ``base`` names heads this node does not hold.
        """
        node = self._file(path, self._moment(None))
        if node.encoding != TEXT:
            raise NotText(f"{path!r} is a binary file; write its bytes instead of splicing")
        _check_content(insert)
        if not isinstance(insert, str):
            raise NotText(f"splice inserts a str, not {type(insert).__name__}")
        self._check_file_write(node, now_ms)
        document = self.document(node.doc_id)
        text_id = self._text_object(node, document, None)
        heads = None if base is None else self._base(path, document, text_id, base)
        if heads == sorted(document.heads()):
            heads = None  # a plain splice, with no diff to map through
        patches = None if heads is None else [patch for patch in document.diff(heads, document.heads()) if patch["obj"] == text_id]
        counts = _is_count(position) and _is_count(delete)
        if patches is None:
            fits = counts and _within(document, text_id, position + delete)
        else:  # not by a lookup at base: Automerge reads a text at old heads by a scan (3.5 ms at 20k characters)
            fits = counts and position + delete <= _length_before(document.length(text_id), patches)
        if not fits:
            length = document.length(text_id, heads)
            where = "" if heads is None else " at base"
            raise InvalidInput(f"cannot delete {delete!r} characters at {position!r} of {path!r} ({length} characters{where})")
        with self.editing(node.doc_id, message or f"splice {path}", now_ms):
            _splice_through(document, text_id, patches or [], [Edit(position, delete, insert)])
        return self.version()

    def mkdir(self, path: str, *, now_ms: int, message: str | None = None, parents: bool = False) -> int:
        """Create a directory; with ``parents``, also its missing ancestors, and no error if it exists.

        Raises:
            AlreadyExists, NotFound (a missing parent), NotADirectory (a file on the way).
        """
        path = check_path(path)
        node = self.tree().get(path)
        if node is not None:
            if parents and node.kind == DIR:
                return self.version()
            raise AlreadyExists(f"{path!r} already exists")
        parent_id, missing = self._parent_for(path, parents)
        self.check_authorised(_with_ancestors(path, len(missing)), now_ms)
        with self.editing_index(message or f"mkdir {path}", now_ms) as edit:
            _add_directories(edit, parent_id, [*missing, name_of(path)])
        return self.version()

    def rm(self, path: str, *, now_ms: int, message: str | None = None, recursive: bool = False) -> int:
        """Remove a file, or a directory (with ``recursive`` when it is not empty).

        Removal tombstones the entries; a peer's concurrent edit of a removed file brings it
        back (store/tree.py rule 4), and history keeps everything.

        Raises:
            NotFound, DirectoryNotEmpty.
        """
        node = self.node(check_path(path))
        tree = self.tree()
        below = list(tree.walk(node.path)) if node.kind == DIR else []
        if below and not recursive:
            raise DirectoryNotEmpty(f"{path!r} is not empty; pass recursive=True to remove it and everything in it")
        self.check_authorised([node.path, *(removed.path for removed in below)], now_ms)
        with self.editing_index(message or f"rm {path}", now_ms) as edit:
            for removed in (node, *below):
                for file_id in removed.file_ids:
                    seen = self.repo.heads(self.space, doc_id_of(file_id)) if removed.kind == FILE else []
                    edit.remove(file_id, seen)
        return self.version()

    def mv(self, source: str, target: str, *, now_ms: int, message: str | None = None) -> int:
        """Move or rename a file or directory; the target must not exist.

        Raises:
            NotFound, AlreadyExists, InvalidMove (a directory into itself), NotADirectory.
        """
        node = self.node(check_path(source))
        target = check_path(target)
        if target == node.path:
            return self.version()
        if node.kind == DIR and is_within(target, node.path):
            raise InvalidMove(f"cannot move directory {source!r} into itself ({target!r})")
        if self.tree().get(target) is not None:
            raise AlreadyExists(f"{target!r} already exists")
        parent_id = self._parent_for(target, parents=False)[0]
        if self.repo.capability_log(self.space).private:
            moved = self._subtree(node)
            self.check_authorised([*moved, *(target + path[len(node.path) :] for path in moved)], now_ms)
        with self.editing_index(message or f"mv {source} {target}", now_ms) as edit:
            for file_id in node.file_ids:
                edit.move(file_id, parent_id, name_of(target))
        return self.version()

    # ----- internals -----

    def _moment(self, version: int | None) -> _Moment:
        version = self.check_version(version)
        past = version != self.version()
        return _Moment(version, self.repo.heads_at(self.space, version) if past else None)

    def _doc_heads(self, doc_id: bytes, moment: _Moment) -> list[bytes]:
        if moment.heads is None:
            return self.repo.heads(self.space, doc_id)
        return moment.heads.get(doc_id, [])

    def _tree(self, moment: _Moment) -> Tree:
        """The tree at a moment, cached by what it is a function of: the index heads and the
        heads of removed files (rule 4), so edits of live files do not rebuild it."""
        index_heads = self._doc_heads(INDEX_DOC_ID, moment)
        entries = self._reader.entries(self.document(INDEX_DOC_ID), index_heads)
        removed = sorted(file_id for file_id, entry in entries.items() if entry.removed_seen is not None and entry.kind == FILE)
        removed_heads = tuple(tuple(sorted(self._doc_heads(doc_id_of(file_id), moment))) for file_id in removed)
        key = (tuple(sorted(index_heads)), tuple(removed), removed_heads)
        tree = self._trees.get(key)
        if tree is None:
            tree = self._trees[key] = materialize(entries, lambda file_id, seen: self._removal_holds(file_id, seen, moment))
            if len(self._trees) > TREES_CACHED:
                self._trees.popitem(last=False)
        self._trees.move_to_end(key)
        return tree

    def _node(self, path: str, moment: _Moment) -> TreeNode:
        split_path(path)
        node = self._tree(moment).get(path)
        if node is None:
            at = "" if moment.heads is None else f" at version {moment.version}"
            raise NotFound(f"no file or directory {path!r}{at}")
        return node

    def _file(self, path: str, moment: _Moment) -> TreeNode:
        node = self._node(check_path(path), moment)
        if node.kind == DIR:
            raise IsADirectory(f"{path!r} is a directory")
        return node

    def _create_file(self, path: str, content: Content, now_ms: int, message: str | None, parents: bool) -> int:
        parent_id, missing = self._parent_for(path, parents)
        self.check_authorised(_with_ancestors(path, len(missing)), now_ms)
        message = message or f"create {path}"
        doc_id, encoding = self._new_content(content, message, now_ms)
        with self.editing_index(message, now_ms) as edit:
            parent_id = _add_directories(edit, parent_id, missing)
            edit.add(file_id_of(doc_id), FILE, encoding, parent_id, name_of(path))
        return self.version()

    def _new_content(self, content: Content, message: str, now_ms: int) -> tuple[bytes, Encoding]:
        """Commit a new file's content doc (before its index entry: a crash between leaves an
        unreferenced doc, never an entry without content)."""
        return self._new_contents([content], message, now_ms)[0]

    def _new_contents(self, contents: Sequence[Content], message: str, now_ms: int) -> list[tuple[bytes, Encoding]]:
        """Commit new files' content docs, in order (as ``_new_content``): each is its first
        change alone, built and its tip signed on a few threads for a batch (store/content_build.py) and stored
        without building the document (``Repo.create_docs``), which cost twice the change and
        that a bulk write's thousands of new files are rarely read back soon; a read loads it.
        Returns each one's doc id and encoding."""
        made = [(new_doc_id(), TEXT if isinstance(content, str) else BINARY) for content in contents]
        keyed = [(doc_id, TEXT_KEY if encoding == TEXT else BYTES_KEY, content) for (doc_id, encoding), content in zip(made, contents, strict=True)]
        texts = {doc_id: content for doc_id, _, content in keyed if isinstance(content, str)}
        built = new_docs(self.repo.identity, self.space, keyed, message=message, time=change_time(now_ms))
        self.repo.create_docs(self.space, built, now_ms=now_ms, texts=texts)
        return made

    def create_files(self, files: Mapping[str, Content], *, now_ms: int, dirs: Iterable[str] = (), message: str | None = None) -> int:
        """Create many new files and directories (and the directories above them): a batch
        (``apply_batch``) of creates and mkdirs, for the folder mirror's scan. Returns the version.

        Raises:
            AlreadyExists: a path exists. NotADirectory: a file on the way. The content errors
                of ``write``. All checked before anything is written.
        """
        ops = [*(BatchOp("mkdir", path) for path in dirs), *(BatchOp("create", path, content) for path, content in files.items())]
        return self.apply_batch(ops, now_ms=now_ms, message=message or f"create {len(files)} files").version

    def apply_batch(self, ops: Sequence[BatchOp], *, now_ms: int, message: str | None = None) -> BatchResult:
        """Create, write, delete, mkdir and change the mode of many paths at once (store/batch.py
        says what a batch means): one change of the tree (per BATCH_TREE_EDITS_PER_CHANGE
        entries) plus one per content doc created or written, in few transactions — inside the
        caller's ``Repo.group`` if one is open, else one per BATCH_DOCS_PER_TRANSACTION content
        docs and one for the tree, so the tree moves all at once. Content docs are committed
        before the tree names them (a failure between leaves unreferenced docs, never an entry
        without content).

        Everything is checked before anything is written, authorisation included (the paths a
        peer checks each change by: ``check_authorised``), so a refused batch changes nothing.

        Raises:
            InvalidInput, PathError, NotFound, AlreadyExists, NotADirectory, IsADirectory,
            DirectoryNotEmpty, NotText, ContentTooLarge, ContentUnavailable (a file written
            over whose content has not synced), NotAuthorised.
        """
        return run_steps(self.batch_steps(ops, now_ms=now_ms, message=message))

    def batch_steps(
        self, ops: Sequence[BatchOp], *, now_ms: int, message: str | None = None, docs_per_step: int = BATCH_DOCS_PER_TRANSACTION
    ) -> Generator[Progress, None, BatchResult]:
        """``apply_batch`` a step at a time, so a caller (the daemon: node/api_git.py) can serve
        others in between: the first ``next`` checks everything, then each step commits one
        durable group of ``docs_per_step`` content docs and yields its Progress; the last moves
        the tree, in one transaction, and returns the BatchResult.

        The tree moves at the end only, so a reader between steps sees it as before the batch.
        If it moved meanwhile (another call, a peer), the batch is checked again against it and
        must create and write the same files (else BatchConflict; a single op's error as
        ``apply_batch``): the tree is then left as it was. Content written by the steps before
        a failure, or a crash, stays: new docs unreferenced (harmless), files written over with
        their new content (a later run of the same batch finds them done: a git re-import).
        """
        checked = plan_batch(self.tree(), ops, _check_content)
        for node, _ in checked.writes.values():
            document = self.document(node.doc_id)
            if node.encoding == TEXT:
                self._text_object(node, document, None)
            else:
                self.content(node, None)  # ContentUnavailable before writing over unseen content
        self._check_batch_authorised(checked, now_ms)
        if checked.empty:
            return BatchResult(self.version(), {}, 0)
        message = message or f"batch of {len(ops)} ops"
        before = self.version()
        tree_heads = self.repo.heads(self.space, INDEX_DOC_ID)
        docs: list[tuple[str, Content, TreeNode | None]] = [
            *((path, content, None) for path, (content, _, _) in checked.creates.items()),
            *((path, content, node) for path, (node, content) in checked.writes.items()),
        ]
        made: dict[str, tuple[bytes, Encoding]] = {}
        for start in range(0, len(docs), docs_per_step):
            with self._transaction():
                chunk = docs[start : start + docs_per_step]
                created = [(path, content) for path, content, written in chunk if written is None]  # creates come first
                made.update(zip((path for path, _ in created), self._new_contents([content for _, content in created], message, now_ms), strict=True))
                for _, content, written in chunk:
                    if written is not None:
                        self._overwrite(written, content, message, now_ms)
            yield Progress("write", start + len(chunk), len(docs))
        if self.repo.heads(self.space, INDEX_DOC_ID) != tree_heads:
            checked = self._check_again(checked, ops, now_ms)
        with self._transaction():
            for edits in _tree_edits(checked, made, partial(self.repo.heads, self.space)):
                with self.editing_index(message, now_ms) as edit:
                    for apply in edits:
                        apply(edit)
        heads = {path: tuple(self.repo.heads(self.space, made[path][0] if written is None else written.doc_id)) for path, _, written in docs}
        version = self.version()
        return BatchResult(version, heads, version - before)

    def _check_batch_authorised(self, checked: Plan, now_ms: int) -> None:
        if self.repo.capability_log(self.space).private:
            stored = [path for node, _ in (*checked.writes.values(), *checked.modes.values()) for path in self._file_paths(node)]
            self.check_authorised([*checked.touched(), *stored], now_ms)

    def _check_again(self, checked: Plan, ops: Sequence[BatchOp], now_ms: int) -> Plan:
        """A stepped batch's plan against the tree now, which moved while its contents were
        written (``batch_steps``): it must create and write the files whose docs are written."""
        again = plan_batch(self.tree(), ops, _check_content)
        moved = sorted((again.creates.keys() ^ checked.creates.keys()) | (again.writes.keys() ^ checked.writes.keys()))
        if moved or any(node.doc_id != checked.writes[path][0].doc_id for path, (node, _) in again.writes.items()):
            what = ", ".join(map(repr, moved[:3])) or "a file written over was replaced"
            raise BatchConflict(f"the tree changed while the batch was written ({what}): the tree is as it was; run the batch again")
        self._check_batch_authorised(again, now_ms)
        return again

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A durable group for a batch's writes, or the caller's if one is open."""
        if self.repo.grouping:
            yield
            return
        with self.repo.group(durable=True):
            yield

    def _overwrite(self, node: TreeNode, content: Content, message: str, now_ms: int) -> None:
        """A file's new content, as ``write`` without a base: a text file by a minimal diff,
        a binary one replaced if it differs (checked by the caller: content that fits)."""
        document = self.document(node.doc_id)
        if node.encoding == TEXT:
            text = _as_text(node.path, content)
            with self.editing(node.doc_id, message, now_ms):
                document.update_text(self._text_object(node, document, None), text)
            return
        data = content.encode() if isinstance(content, str) else content
        if self.content(node, None) != data:
            with self.editing(node.doc_id, message, now_ms):
                document.put(native.ROOT, BYTES_KEY, data)

    def _parent_for(self, path: str, parents: bool) -> tuple[str, list[str]]:
        """The file id of the deepest existing directory above ``path`` and the names of the
        directories missing between it and ``path``.

        Raises:
            NotFound: a directory is missing and ``parents`` is false. NotADirectory: a file on the way.
        """
        tree = self.tree()
        ancestor = parent_of(path)
        missing: list[str] = []
        while (node := tree.get(ancestor)) is None:
            if not parents:
                raise NotFound(f"directory {ancestor!r} does not exist; create it first or pass parents=True")
            missing.append(name_of(ancestor))
            ancestor = parent_of(ancestor)
        if node.kind != DIR:
            raise NotADirectory(f"{ancestor!r} is a file, so {path!r} cannot be created below it")
        return node.file_id, missing[::-1]

    def _text_object(self, node: TreeNode, document: native.Document, heads: list[bytes] | None) -> str:
        text = text_object(document, heads)
        if text is None:
            raise ContentUnavailable(f"the content of {node.path!r} has not arrived from its peers yet")
        return text

    def _base(self, path: str, document: native.Document, text_id: str | None, base: Sequence[bytes]) -> list[bytes]:
        """``base`` as sorted heads of ``document``, checked: held here, and with the file's
        text object (``text_id``; for a binary file None, only held) at them.

        Raises:
            UnknownBase: not a list of heads this doc holds, or heads before the text existed.
        """
        heads = sorted(base)
        if heads == sorted(document.heads()):
            return heads
        try:
            at_base = text_object(document, heads)
        except native.InvalidHash as error:  # not 32 bytes, or a change this node does not hold
            raise UnknownBase(f"base: {path!r} has no version at heads {_hex(heads)} on this node ({error})") from error
        if text_id is not None and at_base != text_id:
            raise UnknownBase(f"base: {path!r} has no text at heads {_hex(heads)}")
        return heads

    @staticmethod
    def _check_edits(
        path: str, document: native.Document, text_id: str, edits: Sequence[Edit], heads: list[bytes] | None
    ) -> list[Edit]:
        """The edits sorted by position (inserts before a delete at the same point, otherwise in
        the order given), each checked to fit the text at ``heads`` (now for None).

        Raises:
            InvalidEdit: not a list of Edits, one that is malformed or outside the text, or two
                that overlap. InvalidInput, ContentTooLarge: an insert no doc can hold.
        """
        if isinstance(edits, (str, bytes)) or not isinstance(edits, Sequence):
            raise InvalidEdit(f"edits: a list of edits, not {type(edits).__name__}")
        for index, edit in enumerate(edits):
            if not isinstance(edit, Edit) or not (_is_count(edit.position) and _is_count(edit.delete)) or not isinstance(edit.insert, str):
                raise InvalidEdit(f"edits[{index}]: an Edit of a position and a delete count (ints >= 0) and an insert (str), not {edit!r}")
            if not _is_unicode(edit.insert):
                raise InvalidEdit(f"edits[{index}]: the insert is not valid Unicode (a lone surrogate)")
        _check_content("".join(edit.insert for edit in edits))  # all of it goes in one change
        order = sorted(range(len(edits)), key=lambda i: (edits[i].position, edits[i].delete > 0))
        for before, after in itertools.pairwise(order):
            if edits[before].position + edits[before].delete > edits[after].position:
                raise InvalidEdit(f"edits: edits[{before}] and edits[{after}] overlap in the text at base (edits of one list must not)")
        ends = [edits[i].position + edits[i].delete for i in order]
        if ends and not (heads is None and _within(document, text_id, max(ends))):
            length = document.length(text_id, heads)
            for index in order:
                edit = edits[index]
                if edit.position + edit.delete > length:
                    where = "" if heads is None else " at base"
                    raise InvalidEdit(
                        f"edits[{index}]: cannot delete {edit.delete} characters at {edit.position} of {path!r} ({length} characters{where})"
                    )
        return [edits[i] for i in order]

    def _stat(self, node: TreeNode, moment: _Moment) -> Stat:
        if node.kind == DIR:
            return Stat(node.path, DIR, node.file_id, None, None, (), None)
        try:
            size: int | None = len(self.content(node, moment.heads))
        except ContentUnavailable:
            size = None
        heads = tuple(sorted(self._doc_heads(node.doc_id, moment)))
        return Stat(node.path, FILE, node.file_id, node.encoding, size, heads, node.claimed_name, node.executable)

    def _removal_holds(self, file_id: str, seen: tuple[bytes, ...], moment: _Moment) -> bool:
        doc_id = doc_id_of(file_id)
        return removal_covers(lambda: self.document(doc_id), seen, self._doc_heads(doc_id, moment))


@dataclass(frozen=True, slots=True)
class _Moment:
    """A version to read at: the newest reads the live documents, a past one every doc's heads."""

    version: int
    heads: SpaceHeads | None  # None for the newest version


def _with_ancestors(path: str, missing: int) -> list[str]:
    """``path`` and its ``missing`` nearest ancestors: what a create with new parents touches."""
    paths = [path]
    for _ in range(missing):
        paths.append(parent_of(paths[-1]))
    return paths


def _add_directories(edit: IndexEdit, parent_id: str, names: list[str]) -> str:
    """Add nested directories ``names`` below ``parent_id``; returns the deepest one's id."""
    for name in names:
        file_id = file_id_of(new_doc_id())
        edit.add(file_id, DIR, None, parent_id, name)
        parent_id = file_id
    return parent_id


def _tree_edits(plan: Plan, made: Mapping[str, tuple[bytes, Encoding]], heads: Callable[[bytes], list[bytes]]) -> list[list[Callable[[IndexEdit], None]]]:
    """A batch's edits of the tree, split into changes of BATCH_TREE_EDITS_PER_CHANGE entries:
    removals, then new directories (parents first), then new files, then mode changes."""
    steps: list[Callable[[IndexEdit], None]] = []
    for node in plan.removed:
        for file_id in node.file_ids:
            steps.append(partial(_remove, file_id=file_id, seen=heads(doc_id_of(file_id)) if node.kind == FILE else []))
    for path, (file_id, parent_id) in plan.new_dirs.items():
        steps.append(partial(_add, file_id=file_id, kind=DIR, encoding=None, parent_id=parent_id, name=name_of(path), executable=False))
    for path, (_, executable, parent_id) in plan.creates.items():
        doc_id, encoding = made[path]
        steps.append(partial(_add, file_id=file_id_of(doc_id), kind=FILE, encoding=encoding, parent_id=parent_id, name=name_of(path), executable=executable))
    for node, executable in plan.modes.values():
        steps.append(partial(_set_executable, file_id=node.file_id, executable=executable))
    return [steps[start : start + BATCH_TREE_EDITS_PER_CHANGE] for start in range(0, len(steps), BATCH_TREE_EDITS_PER_CHANGE)]


def _remove(edit: IndexEdit, *, file_id: str, seen: list[bytes]) -> None:
    edit.remove(file_id, seen)


def _add(edit: IndexEdit, *, file_id: str, kind: Kind, encoding: Encoding | None, parent_id: str, name: str, executable: bool) -> None:
    edit.add(file_id, kind, encoding, parent_id, name, executable=executable)


def _set_executable(edit: IndexEdit, *, file_id: str, executable: bool) -> None:
    edit.set_executable(file_id, executable)


def _as_text(path: str, content: Content) -> str:
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotText(f"{path!r} is a text file and these bytes are not UTF-8 ({error.reason})") from error


def _check_content(content: object) -> None:
    """Refuse content no doc can hold: other types, lone surrogates, more than one change carries."""
    if isinstance(content, str):
        try:
            size = len(content.encode())
        except UnicodeEncodeError as error:
            raise InvalidInput(f"text is not valid Unicode: {error.reason} at character {error.start}") from error
    elif isinstance(content, bytes):
        size = len(content)
    else:
        raise InvalidInput(f"content is str (text) or bytes (binary), not {type(content).__name__}")
    if size > MAX_WRITE_BYTES:
        raise ContentTooLarge(f"{size} bytes in one write; the limit is {MAX_WRITE_BYTES} (one change must fit one frame)")


def _on_own_chain(document: native.Document, heads: list[bytes]) -> list[bytes]:
    """``heads``, plus this node's newest change of the doc if they do not include it.

    Automerge keeps each actor's changes in one chain (its clocks count an actor's operations
    as a prefix); a change at heads that miss the actor's newest one would be authored under a
    derived actor id, which is no key of this space. Heads that the newest change descends
    from are left out: they are its ancestors, not heads.
    """
    own = document.get_last_local_change()
    if own is None:
        return heads
    own_hash = native.decode_change(own).hash
    if own_hash in heads or own not in document.get_changes(heads):
        return heads
    after_own = set(document.get_changes([own_hash]))
    return sorted([own_hash, *(head for head in heads if document.get_change_by_hash(head) in after_own)])


def text_edits(old: str, new: str) -> list[Edit]:
    """Edits that turn ``old`` into ``new``: a diff of lines, then of the characters inside
    each changed run of lines, so an edit is as small as a person would make it and a large
    file is not diffed character by character."""
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    starts = [0]
    for line in old_lines:
        starts.append(starts[-1] + len(line))
    edits: list[Edit] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if tag != "equal":
            edits.extend(_char_edits(old[starts[i1] : starts[i2]], "".join(new_lines[j1:j2]), starts[i1]))
    return edits


def _char_edits(old: str, new: str, offset: int) -> list[Edit]:
    """Character edits from ``old`` to ``new`` (a run of lines at ``offset``); one replacing
    edit when the run is too large to diff by character (CHAR_DIFF_PAIRS_MAX)."""
    if len(old) * len(new) > CHAR_DIFF_PAIRS_MAX:
        return [Edit(offset, len(old), new)]
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    return [Edit(offset + i1, i2 - i1, new[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _within(document: native.Document, text_id: str, end: int) -> bool:
    """Whether a text holds at least ``end`` characters: its character ``end - 1`` exists.

    Every splice asks, so not by ``length``, which counts the whole text (~160 us at 20k
    characters) where one lookup costs ~3 us.
    """
    return end == 0 or document.get(text_id, end - 1) is not None


def _splice_through(document: native.Document, text_id: str, patches: list[Patch], edits: list[Edit]) -> None:
    """Splice sorted, non-overlapping ``edits`` of a text at some heads into the text the
    document shows, which ``patches`` of it lead to (none: the same text)."""
    for edit in reversed(edits):  # from the end, so the edits before stay in place
        at, spans = rebase_splice(patches, edit.position, edit.delete)
        for start, end in reversed(spans):
            document.splice_text(text_id, start, end - start)
        if edit.insert:
            document.splice_text(text_id, at, 0, edit.insert)


def rebase_splice(patches: list[Patch], position: int, delete: int) -> tuple[int, list[Span]]:
    """Map a splice of the text at some base to the text now, through the patches from base to now.

    ``patches`` are Automerge's (``Document.diff(base, now)``) of the text object, each in the
    text the ones before it made. The deleted range becomes the spans of its characters that
    still exist, in order: text inserted inside it since is left out of them, so it survives.
    The insertion point follows the character that was at ``position`` at base: text inserted
    concurrently at that very point stays before ours (the gap's own text first, ours last,
    right before that character), deterministic whatever the delivery order; if that character
    is gone, the point is where it was.

    Returns:
        The position to insert at now and the spans ``(start, end)`` to delete now, sorted,
        all at or after that position.
    """
    at = position
    spans = [(position, position + delete)] if delete else []
    for patch in patches:
        if patch["action"] == "splice_text":
            index, size = patch["index"], len(patch["value"])
            at += size if index <= at else 0
            spans = [piece for span in spans for piece in _inserted(span, index, size)]
        elif patch["action"] == "del_seq":
            index, size = patch["index"], patch["length"]
            at = _deleted(at, index, size)
            spans = [(start, end) for start, end in ((_deleted(s, index, size), _deleted(e, index, size)) for s, e in spans) if start < end]
    return at, spans


def _length_before(length: int, patches: list[Patch]) -> int:
    """The length of a text before ``patches`` of it, from its length after them."""
    for patch in patches:
        if patch["action"] == "splice_text":
            length -= len(patch["value"])
        elif patch["action"] == "del_seq":
            length += patch["length"]
    return length


def _inserted(span: Span, index: int, size: int) -> list[Span]:
    """A span after ``size`` characters were inserted at ``index``: moved, or split around them."""
    start, end = span
    if index <= start:
        return [(start + size, end + size)]
    if index >= end:
        return [span]
    return [(start, index), (index + size, end + size)]


def _deleted(point: int, index: int, size: int) -> int:
    """A position between characters after ``size`` characters were deleted at ``index``."""
    return point if point <= index else max(index, point - size)


def _hex(heads: list[bytes]) -> str:
    return "[" + ", ".join(head.hex() if isinstance(head, bytes) else repr(head) for head in heads) + "]"


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
