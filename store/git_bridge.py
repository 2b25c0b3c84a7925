"""The git bridge: a commit's tree into a space (import), a space's version into a commit (promote).

Code lives in git; a space is where it is edited live. ``import_commit`` makes a space's tree
match a commit's — files added, written (a text file by a minimal diff, so its history in the
space goes on) and removed — in one bulk write (``Workspace.apply_batch``). Text or binary is
decided by content (UTF-8 without a NUL byte is text), as git's own diff does; the executable
bit is kept (git's 100755). What a space cannot hold — symlinks, submodules, files over a
change's size limit — is left out and listed as ``skipped``; a promote carries those entries
over from its parent commit, so a round trip does not drop them. ``import_history`` replays
the last N commits of a branch in order, each its own bulk write signed by the importer, the
git author and commit named in the change message.

``promote`` writes the space's tree at a version as a commit onto a ref (``refs/distspace/NAME``
by default), with pygit2 only (no git process). It is deterministic: author and committer are
the space, the time is the version's, the message's trailers name the space, the version and a
digest of every doc's heads, and the parent is the newest commit imported or promoted at or
before that version (``GitLinks.parent_for``) — so promoting one version twice gives one commit
id, and promoting the changes since the last promote gives one commit of them all (a session's
squash). A version whose tree is its parent's promotes to the parent itself.

An import also runs a step at a time (``import_commit_steps``, ``import_history_steps``), for
the daemon to serve its other clients in between: files are taken from git, then their content
docs written, IMPORT_FILES_PER_STEP a step; the tree moves (and the link is recorded) at the
last step only, so a reader between steps sees the space as before the import, and a failure
or a crash mid-import leaves the tree as it was. What the steps before wrote stays: new content
docs no entry names (harmless) and files written over with the commit's content; importing the
commit again finds those already match (their blob ids) and finishes the rest.

``GitLinks`` is the map between versions and commits (``distspace git log``): a table in a small
SQLite file of its own beside the store (HOME/git.sqlite), written after the space's write
commits — a crash between leaves the space written and the link missing, and importing again
finds nothing to change and records it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import pygit2

from store.batch import BATCH_DOCS_PER_STEP, BatchOp, Progress, run_steps
from store.errors import GitError, InvalidInput, NotARepository, StorageError, UnknownRef
from store.paths import parent_of
from store.tree import DIR, TEXT, Tree, TreeNode
from store.workspace import MAX_WRITE_BYTES, Workspace

DEFAULT_REF = "HEAD"
BRANCH_PREFIX = "refs/distspace/"  # where ``promote --branch NAME`` writes unless NAME is a full ref
# Who promoted commits are by: the space, never a person (promote is deterministic).
AUTHOR_NAME = "Dist-Space"
AUTHOR_DOMAIN = "distspace.invalid"
SPACE_HEX_IN_EMAIL = 16
SHORT_COMMIT_CHARS = 10
MAX_HISTORY = 10_000  # commits one import replays at most
# Files one step of an import takes from git, and content docs one step writes (one durable
# group): as many as a step of a batch (store/batch.py says what that costs the daemon).
IMPORT_FILES_PER_STEP = BATCH_DOCS_PER_STEP
LINKS_FILE_MODE = 0o600

BLOB = pygit2.enums.FileMode.BLOB
EXECUTABLE = pygit2.enums.FileMode.BLOB_EXECUTABLE
TREE = pygit2.enums.FileMode.TREE
LinkKind = Literal["import", "promote"]
KnownBlobs = dict[bytes, tuple[tuple[bytes, ...], pygit2.Oid]]  # file doc -> (heads, blob of its content at them)
CommitNote = Callable[[str], None]  # told a line as each commit of an import starts


@dataclass(frozen=True, slots=True)
class GitLink:
    """One commit recorded against one local version of a space."""

    space: bytes
    version: int
    commit: str  # hex
    kind: LinkKind
    ref: str
    repo: str  # the repository's path
    time_ms: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    commit: str
    version: int
    added: int
    modified: int
    deleted: int
    skipped: tuple[str, ...]  # paths the space cannot hold, each with why: "link: a/b"
    changes: int


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Where an import in steps is (``import_history_steps``): commit ``number`` of ``commits``,
    in its ``phase`` ("commit": about to start it; "read": files taken from git; "write":
    content docs written), ``done`` of ``total`` files."""

    commit: str
    summary: str
    number: int
    commits: int
    phase: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class PromoteResult:
    commit: str
    version: int
    ref: str
    parent: str | None
    created: bool  # False: the version's tree is its parent's, the ref now names the parent


@dataclass(frozen=True, slots=True)
class _Blob:
    oid: pygit2.Oid
    executable: bool


# ----- the map between versions and commits -----


class GitLinks:
    """Versions and the commits imported or promoted at them, per space (module docstring)."""

    def __init__(self, path: Path | None) -> None:
        try:
            if path is not None:
                path.touch(mode=LINKS_FILE_MODE, exist_ok=True)
            self._db = sqlite3.connect(":memory:" if path is None else path, isolation_level=None)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS git_links (space BLOB NOT NULL, version INTEGER NOT NULL, commit_id TEXT NOT NULL,"
                " kind TEXT NOT NULL, ref TEXT NOT NULL, repo TEXT NOT NULL, time_ms INTEGER NOT NULL,"
                " UNIQUE (space, version, commit_id, kind, ref, repo))"
            )
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"the map of git commits ({path}) cannot be opened: {error}") from error

    def add(self, link: GitLink) -> None:
        try:
            self._db.execute(
                "INSERT INTO git_links VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (link.space, link.version, link.commit, link.kind, link.ref, link.repo, link.time_ms),
            )
        except sqlite3.Error as error:
            raise StorageError(f"the map of git commits cannot be written: {error}") from error

    def links(self, space: bytes) -> list[GitLink]:
        """Every link of the space, oldest version first (then in the order recorded)."""
        rows = self._db.execute(
            "SELECT version, commit_id, kind, ref, repo, time_ms FROM git_links WHERE space = ? ORDER BY version, rowid", (space,)
        ).fetchall()
        return [GitLink(space, *row) for row in rows]

    def parent_for(self, space: bytes, version: int) -> GitLink | None:
        """The commit a promote at ``version`` builds on: the newest link before it, or an import
        at it (a promote at it is a result, not a parent: promoting again gives the same commit)."""
        found = [link for link in self.links(space) if link.version < version or (link.version == version and link.kind == "import")]
        return found[-1] if found else None

    def close(self) -> None:
        self._db.close()


# ----- reading git -----


def open_repository(path: str | os.PathLike[str]) -> pygit2.Repository:
    """The git repository at ``path`` (a work tree or a bare repository).

    Raises:
        NotARepository.
    """
    try:
        return pygit2.Repository(os.fspath(path))
    except (pygit2.GitError, KeyError, ValueError) as error:
        raise NotARepository(f"{os.fspath(path)!r} is not a git repository ({error})") from error


def resolve(repository: pygit2.Repository, ref: str) -> pygit2.Commit:
    """The commit ``ref`` names: a ref, a branch, a tag or a commit id (anything rev-parse takes).

    Raises:
        UnknownRef.
    """
    try:
        found = repository.revparse_single(ref)
        commit = found.peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as error:
        raise UnknownRef(f"no commit {ref!r} in {repository.path}: {error}") from error
    assert isinstance(commit, pygit2.Commit)
    return commit


def first_parents(commit: pygit2.Commit, count: int) -> list[pygit2.Commit]:
    """``commit`` and its first parents, ``count`` at most, oldest first."""
    if not 1 <= count <= MAX_HISTORY:
        raise InvalidInput(f"history: 1 to {MAX_HISTORY} commits, not {count}")
    chain = [commit]
    while len(chain) < count and chain[-1].parents:
        chain.append(chain[-1].parents[0])
    return chain[::-1]


def _walk(repository: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> Iterator[tuple[str, pygit2.Object, int]]:
    """(path, object, mode) of every entry below ``tree`` that is not a tree."""
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.filemode == TREE:
            subtree = repository[entry.id]
            assert isinstance(subtree, pygit2.Tree)
            yield from _walk(repository, subtree, path + "/")
        else:
            yield path, entry, entry.filemode


def _is_text(data: bytes) -> bool:
    """Text is UTF-8 without a NUL byte (git's own test for binary looks for a NUL)."""
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _size(repository: pygit2.Repository, entry: pygit2.Object, mode: int) -> int:
    """A blob's size (its header only: the content is not read); 0 for a link or submodule,
    whose commit need not be in this repository."""
    if mode not in (BLOB, EXECUTABLE):
        return 0
    return int(repository.odb.read_header(entry.id)[1])


def _skip_reason(mode: int, size: int) -> str | None:
    if mode == pygit2.enums.FileMode.LINK:
        return "link"
    if mode == pygit2.enums.FileMode.COMMIT:
        return "submodule"
    if mode not in (BLOB, EXECUTABLE):
        return "mode"
    if size > MAX_WRITE_BYTES:
        return "too large"
    return None


# ----- import -----


def import_commit(ws: Workspace, repository: pygit2.Repository, commit: pygit2.Commit, links: GitLinks, *, ref: str, now_ms: int) -> ImportResult:
    """Make the space's tree match ``commit``'s in one bulk write and record the link.

    Raises:
        The errors of ``Workspace.apply_batch`` (a path the space refuses, NotAuthorised...):
        then nothing was written.
    """
    return run_steps(import_commit_steps(ws, repository, commit, links, ref=ref, now_ms=now_ms))


def import_commit_steps(
    ws: Workspace,
    repository: pygit2.Repository,
    commit: pygit2.Commit,
    links: GitLinks,
    *,
    ref: str,
    now_ms: int,
    files_per_step: int = IMPORT_FILES_PER_STEP,
) -> Generator[Progress, None, ImportResult]:
    """``import_commit`` a step at a time (``Workspace.batch_steps``): ``files_per_step`` files
    read from git a step, then content docs written as many a step; the tree moves, and the
    link is recorded, at the last. A failure or a crash between steps leaves the tree as it was
    (and content written over: module docstring); importing the commit again finishes it."""
    wanted: dict[str, tuple[pygit2.Object, bool]] = {}
    skipped: list[str] = []
    for path, entry, mode in _walk(repository, commit.tree):
        reason = _skip_reason(mode, _size(repository, entry, mode))
        if reason is not None:
            skipped.append(f"{reason}: {path}")
        else:
            wanted[path] = (repository[entry.id], mode == EXECUTABLE)
    wanted_dirs = {ancestor for path in wanted for ancestor in _ancestors(path)}
    latest = links.links(ws.space)
    known = _known_blobs(ws, repository, latest[-1] if latest else None)
    tree = ws.tree()
    ops: list[BatchOp] = []
    added = modified = 0
    for node in tree.walk():
        if node.kind == DIR:
            if node.path not in wanted_dirs:
                ops.append(BatchOp("delete", node.path, recursive=True))
            continue
        if node.path not in wanted:
            ops.append(BatchOp("delete", node.path))
    deleted = sum(1 for node in tree.walk() if node.kind != DIR and node.path not in wanted)
    for number, (path, (blob, executable)) in enumerate(wanted.items(), 1):
        if number % files_per_step == 0:
            yield Progress("read", number, len(wanted))
        assert isinstance(blob, pygit2.Blob)
        data = blob.data
        text = _is_text(data)
        existing = tree.get(path)
        if existing is not None and existing.kind == DIR:
            existing = None  # deleted above, as it is no directory in git
        if existing is not None and (existing.encoding == TEXT) != text:
            ops.append(BatchOp("delete", path))  # another kind of content now: a new file
            existing = None
        content: str | bytes = data.decode("utf-8") if text else data
        if existing is None:
            ops.append(BatchOp("create", path, content, executable=executable))
            added += 1
        elif _blob_id(ws, existing, known) != blob.id:
            ops.append(BatchOp("write", path, content, executable=executable))
            modified += 1
        elif existing.executable != executable:
            ops.append(BatchOp("mode", path, executable=executable))
            modified += 1
    ops = _outermost_deletes(ops)
    result = yield from ws.batch_steps(ops, now_ms=now_ms, message=_import_message(commit, repository, ref), docs_per_step=files_per_step)
    links.add(GitLink(ws.space, result.version, str(commit.id), "import", ref, _repo_path(repository), now_ms))
    return ImportResult(str(commit.id), result.version, added, modified, deleted, tuple(skipped), result.changes)


def import_history(
    ws: Workspace, repository: pygit2.Repository, ref: str, links: GitLinks, *, history: int = 1, now_ms: Callable[[], int], progress: CommitNote | None = None
) -> list[ImportResult]:
    """The last ``history`` commits on ``ref``'s first-parent line, oldest first, each imported
    as its own bulk write (``import_commit``): the space's history follows the branch's."""
    steps = import_history_steps(ws, repository, ref, links, history=history, now_ms=now_ms)
    while True:
        try:
            step = next(steps)
        except StopIteration as done:
            results: list[ImportResult] = done.value
            return results
        if progress is not None and step.phase == "commit":
            progress(f"commit {step.number}/{step.commits} {step.commit[:SHORT_COMMIT_CHARS]} {step.summary}")


def import_history_steps(
    ws: Workspace,
    repository: pygit2.Repository,
    ref: str,
    links: GitLinks,
    *,
    history: int = 1,
    now_ms: Callable[[], int],
    files_per_step: int = IMPORT_FILES_PER_STEP,
) -> Generator[ImportProgress, None, list[ImportResult]]:
    """``import_history`` a step at a time (``import_commit_steps`` for each commit): each
    commit imported is done, its link recorded, before the next starts."""
    commits = first_parents(resolve(repository, ref), history)
    results = []
    for number, commit in enumerate(commits, 1):
        where = partial(ImportProgress, str(commit.id), _summary(commit), number, len(commits))
        yield where("commit", 0, 0)
        steps = import_commit_steps(ws, repository, commit, links, ref=ref, now_ms=now_ms(), files_per_step=files_per_step)
        while True:
            try:
                step = next(steps)
            except StopIteration as done:
                results.append(done.value)
                break
            yield where(step.phase, step.done, step.total)
    return results


def _ancestors(path: str) -> Iterator[str]:
    while (path := parent_of(path)) != "":
        yield path


def _outermost_deletes(ops: list[BatchOp]) -> list[BatchOp]:
    """Drop deletes of paths inside a directory the batch deletes too (one op per path)."""
    deleted_dirs = {op.path for op in ops if op.op == "delete" and op.recursive}
    return [op for op in ops if not (op.op == "delete" and any(ancestor in deleted_dirs for ancestor in _ancestors(op.path)))]


def _blob_id(ws: Workspace, node: TreeNode, known: KnownBlobs) -> pygit2.Oid:
    """The git blob id of a file's content now: the one it had at the last link if its doc has
    not moved since (no load of the doc), else hashed from its content."""
    held = known.get(node.doc_id)
    if held is not None and held[0] == tuple(sorted(ws.repo.heads(ws.space, node.doc_id))):
        return held[1]
    content = ws.content(node, None)
    return pygit2.hash(content.encode() if isinstance(content, str) else content)


def _known_blobs(ws: Workspace, repository: pygit2.Repository, link: GitLink | None) -> KnownBlobs:
    """Per file doc of the space at ``link``'s version: its heads then, and the blob its content
    was in the link's commit (an import or promote wrote exactly the space's content). A file
    whose doc has the same heads now has that blob still: neither an import nor a promote needs
    to load it, so their cost follows what changed since, not the size of the space."""
    commit = None if link is None else repository.get(link.commit)
    if link is None or not isinstance(commit, pygit2.Commit) or link.version > ws.version():
        return {}
    blobs = {path: entry.id for path, entry, mode in _walk(repository, commit.tree) if mode in (BLOB, EXECUTABLE)}
    heads = ws.heads_at(link.version)
    known: KnownBlobs = {}
    for node in ws.tree(link.version).walk():
        if node.kind != DIR and node.path in blobs:
            known[node.doc_id] = (tuple(sorted(heads.get(node.doc_id, []))), blobs[node.path])
    return known


def _summary(commit: pygit2.Commit) -> str:
    return commit.message.split("\n", 1)[0].strip()


def _import_message(commit: pygit2.Commit, repository: pygit2.Repository, ref: str) -> str:
    """The change message of an import: the commit, its author and where it came from (the
    importer signs the change; the git author is named here)."""
    author = commit.author
    return (
        f"git import {str(commit.id)[:SHORT_COMMIT_CHARS]}: {_summary(commit)}\n\n"
        f"commit {commit.id}\nauthor {author.name} <{author.email}> {author.time} {author.offset:+05d}\n"
        f"from {_repo_path(repository)} ({ref})"
    )


def _repo_path(repository: pygit2.Repository) -> str:
    return os.path.normpath(repository.workdir or repository.path)


# ----- promote -----


def branch_ref(branch: str) -> str:
    """``refs/distspace/NAME`` for a name, the name itself for a full ref (refs/...)."""
    ref = branch if branch.startswith("refs/") else BRANCH_PREFIX + branch
    if not pygit2.reference_is_valid_name(ref):
        raise InvalidInput(f"{branch!r} is not a valid git ref name")
    return ref


def promote(
    ws: Workspace,
    repository: pygit2.Repository,
    links: GitLinks,
    *,
    version: int | None,
    branch: str,
    now_ms: int,
) -> PromoteResult:
    """Write the space at ``version`` as a commit onto ``branch`` (module docstring).

    Raises:
        UnknownVersion: not a version of this node. InvalidInput: a bad ref name.
        ContentUnavailable: a file whose content has not synced. GitError: the ref is checked
        out in the repository's work tree. Nothing is written to the repository or the map then.
    """
    version = ws.check_version(version)
    ref = branch_ref(branch)
    _check_not_checked_out(repository, ref)
    parent_link = links.parent_for(ws.space, version)
    parent: pygit2.Commit | None = None
    if parent_link is not None:
        found = repository.get(parent_link.commit)
        parent = found if isinstance(found, pygit2.Commit) else None
    tree_id = _write_tree(ws, repository, version, parent, _known_blobs(ws, repository, parent_link if parent is not None else None))
    if parent is not None and parent.tree_id == tree_id:
        commit_id, created = parent.id, False
    else:
        signature = _signature(ws, version)
        parents = [] if parent is None else [parent.id]
        commit_id = repository.create_commit(None, signature, signature, _promote_message(ws, version), tree_id, parents)
        created = True
    repository.references.create(ref, commit_id, force=True)
    links.add(GitLink(ws.space, version, str(commit_id), "promote", ref, _repo_path(repository), now_ms))
    return PromoteResult(str(commit_id), version, ref, None if parent is None else str(parent.id), created)


def _check_not_checked_out(repository: pygit2.Repository, ref: str) -> None:
    if not repository.is_bare and not repository.head_is_unborn and not repository.head_is_detached and repository.head.name == ref:
        raise GitError(f"{ref} is checked out in {repository.workdir}: promote onto another branch (its work tree would not follow)")


def _write_tree(ws: Workspace, repository: pygit2.Repository, version: int, parent: pygit2.Commit | None, known: KnownBlobs) -> pygit2.Oid:
    """The space's tree at ``version`` as git objects; what the space could not hold is carried
    over from ``parent`` (module docstring). Every content is read before any object is written;
    a file unchanged since the parent's version is not read at all (``_known_blobs``)."""
    heads = ws.heads_at(version)
    live = version == ws.version()  # read the live docs: a read at old heads scans
    tree = ws.tree(version)
    files: dict[str, tuple[bytes | pygit2.Oid, bool]] = {}
    for node in tree.walk():
        if node.kind != DIR:
            held = known.get(node.doc_id)
            if held is not None and held[0] == tuple(sorted(heads.get(node.doc_id, []))):
                files[node.path] = (held[1], node.executable)
                continue
            content = ws.content(node, None if live else heads)  # ContentUnavailable before anything is written
            files[node.path] = (content.encode() if isinstance(content, str) else content, node.executable)
    index = pygit2.Index()
    for path, (data, executable) in files.items():
        oid = data if isinstance(data, pygit2.Oid) else repository.create_blob(data)
        index.add(pygit2.IndexEntry(path, oid, EXECUTABLE if executable else BLOB))
    if parent is not None:
        for path, entry, mode in _walk(repository, parent.tree):
            if tree.get(path) is None and not _under_file(tree, path) and _skip_reason(mode, _size(repository, entry, mode)) is not None:
                index.add(pygit2.IndexEntry(path, entry.id, pygit2.enums.FileMode(mode)))
    return index.write_tree(repository)


def _under_file(tree: Tree, path: str) -> bool:
    return any((node := tree.get(ancestor)) is not None and node.kind != DIR for ancestor in _ancestors(path))


def _signature(ws: Workspace, version: int) -> pygit2.Signature:
    """The space as author and committer, at the version's time: the same for every promote of it."""
    records = ws.repo.versions(ws.space, version - 1, 1) if version else []
    time_ms = records[0].time_ms if records else ws.repo.genesis(ws.space).created_ms
    return pygit2.Signature(AUTHOR_NAME, f"{ws.space.hex()[:SPACE_HEX_IN_EMAIL]}@{AUTHOR_DOMAIN}", time_ms // 1000, 0)


def heads_digest(ws: Workspace, version: int) -> str:
    """sha256 over every doc's heads at ``version``, sorted: names the space's state in a line."""
    digest = hashlib.sha256()
    for doc, heads in sorted(ws.heads_at(version).items()):
        digest.update(doc)
        for head in sorted(heads):
            digest.update(head)
    return digest.hexdigest()


def _promote_message(ws: Workspace, version: int) -> str:
    name = ws.repo.genesis(ws.space).name
    docs = len(ws.heads_at(version))
    return (
        f"{name}: version {version}\n\n"
        f"The space {name!r} at its version {version} ({docs} docs), promoted by distspace git promote.\n\n"
        f"Distspace-Space: {ws.space.hex()}\n"
        f"Distspace-Version: {version}\n"
        f"Distspace-Heads: sha256:{heads_digest(ws, version)}\n"
    )


__all__ = [
    "BRANCH_PREFIX",
    "DEFAULT_REF",
    "IMPORT_FILES_PER_STEP",
    "GitLink",
    "GitLinks",
    "ImportProgress",
    "ImportResult",
    "PromoteResult",
    "branch_ref",
    "first_parents",
    "heads_digest",
    "import_commit",
    "import_commit_steps",
    "import_history",
    "import_history_steps",
    "open_repository",
    "promote",
    "resolve",
]
