"""Bulk writes: many creates, writes, removals, mkdirs and mode changes checked as one plan.

``Workspace.apply_batch`` takes a list of ``BatchOp`` and writes them with one change of the
tree (one per BATCH_TREE_EDITS_PER_CHANGE entries it touches, so each change still fits a
frame) plus one change per content doc it creates or writes: importing a repository of
thousands of files costs a few tree rebuilds and a few transactions, not one of each per file.

This module is the checking half, a pure function of the tree: ``plan`` reads the ops against
the tree now and either raises the error a single write would (nothing is written), or returns
what to do. The rules, so a batch means one thing whatever its order:

- every delete runs first, against the tree now (a removal of a non-empty directory needs
  ``recursive``); everything else then sees the tree without what was deleted, so a batch may
  delete a path and create it again (a file that changes from text to binary, a directory
  that becomes a file);
- apart from that, a path is named by one op at most (two writes of one path are refused, not
  ordered), directories above a created file are created as needed, and a ``mkdir`` of a
  directory that exists (or that the batch creates) does nothing;
- ``write`` creates a missing file and overwrites an existing one (text by a minimal diff, as
  ``Workspace.write``); ``create`` refuses an existing path; ``mode`` sets a file's executable
  bit, and ``create``/``write`` take one too (None: a new file is regular, an existing one
  keeps its bit).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from protocol.space import new_doc_id
from store.errors import InvalidInput
from store.paths import check_path, parent_of
from store.tree import DIR, TEXT, Tree, TreeNode, file_id_of
from store.workspace_errors import AlreadyExists, DirectoryNotEmpty, IsADirectory, NotADirectory, NotFound, NotText

# One change of the tree touches at most this many entries: a created file's entry is ~150
# bytes of change, so 4,000 of them make ~600 KB, well inside the half frame one change may
# take (workspace.MAX_WRITE_BYTES); 20,000 files in one change would be ~3 MB.
BATCH_TREE_EDITS_PER_CHANGE = 4_000
# Content docs written per transaction when the batch opens its own: one fsync per this many
# files, and a failure midway leaves at most the docs of committed transactions unreferenced
# (harmless: no entry names them), never a tree entry without content.
BATCH_DOCS_PER_TRANSACTION = 2_000
# Content docs one step writes when a batch runs in steps for the daemon (``Workspace.batch_steps``
# from node/api_git.py): how long the daemon's other clients wait at most. 500 files of 2 KB are
# ~0.4 s a step here (load 4 on 2 cores; the tree's last step ~0.45 s).
BATCH_DOCS_PER_STEP = 500

BatchKind = Literal["create", "write", "delete", "mkdir", "mode"]
BATCH_KINDS: tuple[BatchKind, ...] = ("create", "write", "delete", "mkdir", "mode")
Content = str | bytes
CheckContent = Callable[[object], None]


@dataclass(frozen=True, slots=True)
class BatchOp:
    """One operation of a batch (module docstring): ``content`` for create and write,
    ``executable`` for mode (and optionally create and write), ``recursive`` for delete."""

    op: BatchKind
    path: str
    content: Content | None = None
    executable: bool | None = None
    recursive: bool = False


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch made: the version after it, the heads of every file it created or wrote
    (path -> its content doc's heads), and how many changes it committed."""

    version: int
    heads: dict[str, tuple[bytes, ...]]
    changes: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a write run in steps is, yielded after each step: ``done`` of ``total`` files in
    its ``phase`` ("read": taken from git, "write": content docs written)."""

    phase: str
    done: int
    total: int


T = TypeVar("T")


def run_steps(steps: Generator[object, None, T]) -> T:
    """Run a write made of steps (``Workspace.batch_steps``: each ``next`` runs one and yields its
    Progress) all at once, for a caller with nothing to do in between; returns its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


@dataclass(slots=True)
class Plan:
    """What a checked batch does, in the order the workspace writes it."""

    removed: list[TreeNode] = field(default_factory=list)  # every node below a deleted path too
    new_dirs: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (file id, parent id); parents first
    creates: dict[str, tuple[Content, bool, str]] = field(default_factory=dict)  # path -> (content, executable, parent id)
    writes: dict[str, tuple[TreeNode, Content]] = field(default_factory=dict)
    modes: dict[str, tuple[TreeNode, bool]] = field(default_factory=dict)

    def touched(self) -> list[str]:
        """The paths the batch writes, as the tree shows them (authorisation adds stored paths)."""
        return [*(node.path for node in self.removed), *self.new_dirs, *self.creates, *self.writes, *self.modes]

    @property
    def empty(self) -> bool:
        return not (self.removed or self.new_dirs or self.creates or self.writes or self.modes)


def plan_batch(tree: Tree, ops: Sequence[BatchOp], check_content: CheckContent) -> Plan:
    """Check ``ops`` against ``tree`` (module docstring) and say what they do.

    ``check_content`` refuses content no doc can hold (the workspace's own check).

    Raises:
        InvalidInput: not a list of BatchOps, a malformed op, a path named twice. The errors
            of the single operations: PathError, NotFound, AlreadyExists, NotADirectory,
            IsADirectory, DirectoryNotEmpty, NotText, ContentTooLarge.
    """
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise InvalidInput(f"a batch is a list of BatchOps, not {type(ops).__name__}")
    checked: list[BatchOp] = []
    for index, op in enumerate(ops):
        if not isinstance(op, BatchOp) or op.op not in BATCH_KINDS:
            raise InvalidInput(f"ops[{index}]: a BatchOp whose op is one of {', '.join(BATCH_KINDS)}, not {op!r}")
        path = check_path(op.path)
        if op.op in ("create", "write"):
            if op.content is None:
                raise InvalidInput(f"ops[{index}]: {op.op} {path!r} needs content")
            check_content(op.content)
        if (op.op == "mode" and not isinstance(op.executable, bool)) or not isinstance(op.executable, (bool, type(None))):
            raise InvalidInput(f"ops[{index}]: executable is true or false{'' if op.op == 'mode' else ' or None'}, not {op.executable!r}")
        checked.append(op if path == op.path else BatchOp(op.op, path, op.content, op.executable, op.recursive))
    result = Plan()
    removed: dict[str, TreeNode] = {}
    for op in checked:
        if op.op == "delete":
            _delete(tree, op, removed)
    result.removed = list(removed.values())

    def present(path: str) -> TreeNode | None:
        return None if path in removed else tree.get(path)

    def directory(path: str) -> str:
        """The file id of the directory at ``path``, created (with its parents) if missing."""
        node = present(path)
        if node is not None:
            if node.kind != DIR:
                raise NotADirectory(f"{path!r} is a file, so nothing can be created below it")
            return node.file_id
        if path in result.creates:
            raise NotADirectory(f"{path!r} is created as a file, so nothing can be created below it")
        if path not in result.new_dirs:
            parent = directory(parent_of(path))  # parents first: the tree change adds them in this order
            result.new_dirs[path] = (file_id_of(new_doc_id()), parent)
        return result.new_dirs[path][0]

    named: set[str] = set()
    for op in checked:
        if op.op == "delete":
            continue
        if op.path in named:
            raise InvalidInput(f"{op.path!r} is named by two ops of the batch (only a delete and then a create may share a path)")
        named.add(op.path)
        node = present(op.path)
        if op.op == "mkdir":
            if node is not None and node.kind != DIR:
                raise AlreadyExists(f"{op.path!r} already exists as a file")
            if op.path in result.creates:
                raise AlreadyExists(f"{op.path!r} is created as a file by the batch")
            directory(op.path)
        elif op.op == "mode":
            if node is None:
                raise NotFound(f"no file {op.path!r} to change the mode of")
            if node.kind == DIR:
                raise IsADirectory(f"{op.path!r} is a directory; only a file has an executable bit")
            if node.executable != op.executable:
                result.modes[op.path] = (node, bool(op.executable))
        elif node is None or op.op == "create":
            if node is not None or op.path in result.new_dirs:
                raise AlreadyExists(f"{op.path!r} already exists")
            assert op.content is not None
            result.creates[op.path] = (op.content, bool(op.executable), directory(parent_of(op.path)))
        else:
            if node.kind == DIR:
                raise IsADirectory(f"{op.path!r} is a directory")
            assert op.content is not None
            if node.encoding == TEXT and isinstance(op.content, bytes):
                _utf8(op.path, op.content)
            result.writes[op.path] = (node, op.content)
            if op.executable is not None and op.executable != node.executable:
                result.modes[op.path] = (node, op.executable)
    return result


def _delete(tree: Tree, op: BatchOp, removed: dict[str, TreeNode]) -> None:
    if op.path in removed:
        return  # inside a directory another delete of the batch removes
    node = tree.get(op.path)
    if node is None:
        raise NotFound(f"no file or directory {op.path!r} to delete")
    below = list(tree.walk(node.path)) if node.kind == DIR else []
    if below and not op.recursive:
        raise DirectoryNotEmpty(f"{op.path!r} is not empty; pass recursive=True to remove it and everything in it")
    for gone in (node, *below):
        removed[gone.path] = gone


def _utf8(path: str, content: bytes) -> None:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotText(f"{path!r} is a text file and these bytes are not UTF-8 ({error.reason}); delete it and create it again as binary") from error


__all__ = ["BATCH_DOCS_PER_STEP", "BATCH_DOCS_PER_TRANSACTION", "BATCH_KINDS", "BATCH_TREE_EDITS_PER_CHANGE", "BatchOp", "BatchResult", "Plan", "Progress", "plan_batch", "run_steps"]
