"""The git bridge (store/git_bridge.py): commits into a space and versions back into commits,
checked with the git CLI (fsck, ls-tree, show, diff) — objects are written by pygit2 only."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
from collections.abc import Collection, Iterator
from pathlib import Path

import pygit2
import pytest

from protocol.identity import Identity
from store import git_bridge
from store.errors import GitError, InvalidInput, NotARepository, UnknownRef
from store.git_bridge import GitLinks
from store.repo import Repo
from store.workspace import MAX_WRITE_BYTES, Workspace
from store.workspace_errors import UnknownVersion
from store_helpers import NOW_MS

PROJECT = Path(__file__).resolve().parents[2]  # /work/main: a git repository with real history
GENERATED_FILES = 20_000  # the size: ~12 s here (import ~7 s, promote ~4 s)
SIGNATURE = pygit2.Signature("Gen Erator", "gen@example.com", 1_700_000_000, 60)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def git_files(repo: Path, commit: str) -> dict[str, tuple[str, str]]:
    """Every file of a commit as the git CLI lists it: path -> (mode, blob id)."""
    files = {}
    for line in git(repo, "ls-tree", "-r", "-z", commit).split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            mode, _, oid = meta.split()
            files[path] = (mode, oid)
    return files


def blob_id(data: bytes) -> str:
    """git's id of a blob, computed here (not by pygit2, whose writes are under test)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id, not a security hash


def space_files(ws: Workspace, version: int | None = None, paths: Collection[str] | None = None) -> dict[str, tuple[str, str]]:
    """The space's files (``paths`` only, if given) as ``git_files`` lists a commit's."""
    files = {}
    for node in ws.tree(version).walk():
        if node.kind == "file" and (paths is None or node.path in paths):
            content = ws.read(node.path, version)
            files[node.path] = ("100755" if node.executable else "100644", blob_id(content.encode() if isinstance(content, str) else content))
    return files


def fsck(repo: Path) -> None:
    done = subprocess.run(["git", "-C", str(repo), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip() and "error" not in done.stderr, done


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    repo = Repo.open(tmp_path / "store.db", Identity(bytes([0xA1]) * 32))
    yield Workspace(repo, repo.create_space("code", NOW_MS).space_id)
    repo.close()


@pytest.fixture
def links(tmp_path: Path) -> Iterator[GitLinks]:
    opened = GitLinks(tmp_path / "git.sqlite")
    yield opened
    opened.close()


def clock() -> Iterator[int]:
    now = NOW_MS
    while True:
        now += 1_000
        yield now


def commit_files(repository: pygit2.Repository, files: dict[str, tuple[bytes, int]], message: str, parents: list[pygit2.Oid] | None = None) -> pygit2.Oid:
    """A commit of exactly ``files`` (path -> (content, mode)) onto refs/heads/main, by pygit2."""
    index = pygit2.Index()
    for path, (data, mode) in files.items():
        oid = repository.create_blob(data) if mode != pygit2.enums.FileMode.COMMIT else pygit2.Oid(hex="1" * 40)
        index.add(pygit2.IndexEntry(path, oid, pygit2.enums.FileMode(mode)))
    if parents is None:
        parents = [] if repository.head_is_unborn else [repository.head.target]
    oid = repository.create_commit("refs/heads/main", SIGNATURE, SIGNATURE, message, index.write_tree(repository), parents)
    return oid


@pytest.fixture
def small(tmp_path: Path) -> pygit2.Repository:
    """A work tree repository with a text file, a script, a binary, a symlink and a submodule."""
    repository = pygit2.init_repository(str(tmp_path / "small"), initial_head="main")
    commit_files(
        repository,
        {
            "README.md": (b"# small\n\nhello\n", pygit2.enums.FileMode.BLOB),
            "bin/run.sh": (b"#!/bin/sh\necho hi\n", pygit2.enums.FileMode.BLOB_EXECUTABLE),
            "assets/logo.png": (b"\x89PNG\r\n\x1a\n\x00\x00", pygit2.enums.FileMode.BLOB),
            "src/app/main.py": (b"print('hi')\r\n", pygit2.enums.FileMode.BLOB),
            "docs/latest": (b"../README.md", pygit2.enums.FileMode.LINK),
            "vendor/lib": (b"", pygit2.enums.FileMode.COMMIT),
        },
        "first\n\nthe body",
    )
    return repository


def workdir(repository: pygit2.Repository) -> Path:
    return Path(repository.workdir or repository.path)


# ----- import -----


def test_import_of_this_projects_history_matches_each_commit(tmp_path: Path, ws: Workspace, links: GitLinks) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(PROJECT), str(clone)], check=True)
    repository = git_bridge.open_repository(clone)
    seen: list[str] = []
    now = clock()
    results = git_bridge.import_history(ws, repository, "HEAD", links, history=3, now_ms=lambda: next(now), progress=seen.append)
    commits = git(clone, "rev-list", "--first-parent", "-3", "HEAD").split()[::-1]
    assert [result.commit for result in results] == commits and len(seen) == 3 and seen[0].startswith(f"commit 1/3 {commits[0][:10]}")
    assert space_files(ws) == git_files(clone, commits[-1])
    for older, newer in itertools.pairwise(results):  # each import's version is its commit: what changed at it, read then
        changed = git(clone, "diff", "--name-only", older.commit, newer.commit).split()
        for version, commit in ((older.version, older.commit), (newer.version, newer.commit)):
            expected = {path: file for path, file in git_files(clone, commit).items() if path in changed}
            assert space_files(ws, version, changed) == expected
    assert results[0].added == len(git_files(clone, commits[0])) and results[0].skipped == ()
    assert [(link.version, link.commit, link.kind) for link in links.links(ws.space)] == [(r.version, r.commit, "import") for r in results]
    author = git(clone, "log", "-1", "--format=%an <%ae>", commits[-1]).strip()
    from store.history import History

    newest = History(ws).log(None, since=results[-2].version, until=None, limit=100)
    assert newest and all(f"commit {commits[-1]}" in entry.message and author in entry.message for entry in newest)


def test_import_keeps_modes_kinds_and_lists_what_a_space_cannot_hold(ws: Workspace, links: GitLinks, small: pygit2.Repository) -> None:
    result = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "HEAD"), links, ref="HEAD", now_ms=NOW_MS)
    assert sorted(result.skipped) == ["link: docs/latest", "submodule: vendor/lib"]
    tree = ws.tree()
    assert tree.get("bin/run.sh").executable and not tree.get("README.md").executable  # type: ignore[union-attr]
    assert ws.stat("assets/logo.png").encoding == "binary" and ws.read("src/app/main.py") == "print('hi')\r\n"
    assert (result.added, result.modified, result.deleted) == (4, 0, 0)


def test_import_into_an_existing_space_adds_modifies_deletes_and_retypes(ws: Workspace, links: GitLinks, small: pygit2.Repository) -> None:
    ws.write("local/only.txt", "made in the space", now_ms=NOW_MS, parents=True)
    ws.write("README.md", "# small\n\nold\n", now_ms=NOW_MS)
    first = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "HEAD"), links, ref="HEAD", now_ms=NOW_MS)
    assert not ws.exists("local") and ws.read("README.md") == "# small\n\nhello\n"
    assert (first.added, first.modified, first.deleted) == (3, 1, 1)
    readme = ws.stat("README.md").file_id
    commit_files(
        small,
        {
            "README.md": (b"# small\n\nhello again\n", pygit2.enums.FileMode.BLOB),
            "bin/run.sh": (b"#!/bin/sh\necho hi\n", pygit2.enums.FileMode.BLOB),  # no longer executable
            "assets/logo.png": (b"now text\n", pygit2.enums.FileMode.BLOB),  # binary -> text
            "src/app": (b"a file where a directory was\n", pygit2.enums.FileMode.BLOB),
        },
        "second",
    )
    second = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "main"), links, ref="main", now_ms=NOW_MS + 1)
    assert space_files(ws) == git_files(workdir(small), "main")
    assert ws.stat("README.md").file_id == readme  # rewritten in place: its history goes on
    assert ws.stat("assets/logo.png").encoding == "text"
    again = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "main"), links, ref="main", now_ms=NOW_MS + 2)
    assert again.changes == 0 and again.version == second.version  # nothing to change: the link is still recorded
    assert [link.version for link in links.links(ws.space)] == [first.version, second.version]  # once per version and commit


def test_an_import_stopped_between_steps_leaves_the_tree_and_a_second_import_finishes_it(ws: Workspace, links: GitLinks, small: pygit2.Repository) -> None:
    """As a crash mid-import: the tree is as before, no link; what the steps wrote over stays
    written, and importing the commit again finds it done and makes the rest."""
    first = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "HEAD"), links, ref="HEAD", now_ms=NOW_MS)
    files = {f"new/{i}.txt": (f"{i}\n".encode(), pygit2.enums.FileMode.BLOB) for i in range(5)}
    files["README.md"] = (b"# small\n\nhello, rewritten\n", pygit2.enums.FileMode.BLOB)
    files["bin/run.sh"] = (b"#!/bin/sh\necho hi\n", pygit2.enums.FileMode.BLOB)  # loses its bit: a tree edit
    commit_files(small, files, "second")
    entries = ws.entries()
    steps = git_bridge.import_commit_steps(ws, small, git_bridge.resolve(small, "main"), links, ref="main", now_ms=NOW_MS + 1, files_per_step=2)
    phases = [(step.phase, step.done, step.total) for step in itertools.islice(steps, 6)]
    assert phases == [("read", 2, 7), ("read", 4, 7), ("read", 6, 7), ("write", 2, 6), ("write", 4, 6), ("write", 6, 6)]
    steps.close()  # stopped before its last step
    assert ws.entries() == entries and [link.version for link in links.links(ws.space)] == [first.version]
    assert ws.read("README.md") == "# small\n\nhello, rewritten\n"  # written over by a step: stays
    again = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "main"), links, ref="main", now_ms=NOW_MS + 2)
    assert (again.added, again.modified, again.deleted) == (5, 1, 2)  # README.md is found done; run.sh's bit is the one left
    assert space_files(ws) == git_files(workdir(small), "main")
    assert [link.version for link in links.links(ws.space)] == [first.version, again.version]


def test_a_generated_repository_of_20000_files_imports_and_promotes_to_the_same_tree(tmp_path: Path, ws: Workspace, links: GitLinks) -> None:
    repository = pygit2.init_repository(str(tmp_path / "generated.git"), bare=True, initial_head="main")
    files = {f"pkg{i % 20}/mod{i % 13}/f{i}.txt": (f"file {i}\nline two\n".encode(), pygit2.enums.FileMode.BLOB) for i in range(GENERATED_FILES)}
    files["pkg0/blob.bin"] = (bytes(range(256)), pygit2.enums.FileMode.BLOB_EXECUTABLE)
    oid = commit_files(repository, files, "generated")
    result = git_bridge.import_commit(ws, repository, git_bridge.resolve(repository, "main"), links, ref="main", now_ms=NOW_MS)
    assert result.added == len(files) and len(list(ws.tree().walk())) == len(files) + 20 + 20 * 13
    ws.write("pkg1/mod1/f1.txt", "file 1\nline two, edited\n", now_ms=NOW_MS + 1)
    promoted = git_bridge.promote(ws, repository, links, version=None, branch="gen", now_ms=NOW_MS)
    assert promoted.parent == str(oid) and promoted.created
    diff = git(tmp_path / "generated.git", "diff", "--name-only", str(oid), promoted.commit).split()
    assert diff == ["pkg1/mod1/f1.txt"]
    fsck(tmp_path / "generated.git")


def test_a_file_too_large_for_one_change_is_skipped_and_carried_over(ws: Workspace, links: GitLinks, small: pygit2.Repository) -> None:
    head = git_bridge.resolve(small, "HEAD")
    files = {path: (small[entry.id].data, entry.filemode) for path, entry, _ in git_bridge._walk(small, head.tree) if entry.filemode != pygit2.enums.FileMode.COMMIT}
    files["big.bin"] = (b"\x00" * (MAX_WRITE_BYTES + 1), pygit2.enums.FileMode.BLOB)
    commit_files(small, files, "big")
    result = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "main"), links, ref="main", now_ms=NOW_MS)
    assert "too large: big.bin" in result.skipped and not ws.exists("big.bin")
    ws.write("README.md", "# small\n\nedited\n", now_ms=NOW_MS + 1)
    promoted = git_bridge.promote(ws, small, links, version=None, branch="s", now_ms=NOW_MS)
    assert git(workdir(small), "diff", "--name-only", result.commit, promoted.commit).split() == ["README.md"]  # link, big file kept
    fsck(workdir(small))


# ----- promote -----


def test_promote_is_deterministic_and_chains_on_the_last_link(ws: Workspace, links: GitLinks, small: pygit2.Repository) -> None:
    imported = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "HEAD"), links, ref="HEAD", now_ms=NOW_MS)
    unchanged = git_bridge.promote(ws, small, links, version=None, branch="work", now_ms=NOW_MS)
    assert unchanged.commit == imported.commit and not unchanged.created  # nothing since the import
    ws.write("README.md", "# small\n\nhello\nmore\n", now_ms=NOW_MS + 1_000)
    ws.write("notes.txt", "new\n", now_ms=NOW_MS + 2_000)
    at = ws.version()
    first = git_bridge.promote(ws, small, links, version=at, branch="work", now_ms=NOW_MS)
    ws.rm("notes.txt", now_ms=NOW_MS + 3_000)
    twice = git_bridge.promote(ws, small, links, version=at, branch="work", now_ms=NOW_MS + 5)
    assert twice.commit == first.commit and first.parent == imported.commit == twice.parent
    repo_dir = workdir(small)
    assert git(repo_dir, "rev-parse", "refs/distspace/work").strip() == first.commit
    assert git(repo_dir, "diff", "--name-status", imported.commit, first.commit).split() == ["M", "README.md", "A", "notes.txt"]
    assert "+more" in git(repo_dir, "show", first.commit, "--", "README.md")
    body = git(repo_dir, "log", "-1", "--format=%an|%ae|%at|%(trailers:only,unfold)", first.commit)
    record = ws.repo.versions(ws.space, at - 1, 1)[0]
    assert body.startswith(f"Dist-Space|{ws.space.hex()[:16]}@distspace.invalid|{record.time_ms // 1000}|")
    assert f"Distspace-Space: {ws.space.hex()}" in body and f"Distspace-Version: {at}" in body
    assert f"Distspace-Heads: sha256:{git_bridge.heads_digest(ws, at)}" in body
    session = git_bridge.promote(ws, small, links, version=None, branch="work", now_ms=NOW_MS)  # the changes since: one commit
    assert session.parent == first.commit and git(repo_dir, "diff", "--name-status", first.commit, session.commit).split() == ["D", "notes.txt"]
    assert git(repo_dir, "show", "-s", "--format=%H", "HEAD").strip() == imported.commit  # the checked-out branch never moved
    assert [link.kind for link in links.links(ws.space)] == ["import", "promote", "promote", "promote"]  # the second promote at one version: one row
    fsck(repo_dir)


def test_the_map_survives_a_restart(tmp_path: Path, ws: Workspace, small: pygit2.Repository) -> None:
    first = GitLinks(tmp_path / "links.sqlite")
    imported = git_bridge.import_commit(ws, small, git_bridge.resolve(small, "HEAD"), first, ref="HEAD", now_ms=NOW_MS)
    first.close()
    again = GitLinks(tmp_path / "links.sqlite")
    assert [(link.version, link.commit, link.ref) for link in again.links(ws.space)] == [(imported.version, imported.commit, "HEAD")]
    assert (tmp_path / "links.sqlite").stat().st_mode & 0o077 == 0
    again.close()


# ----- bad input -----


def test_bad_input_is_a_typed_error_and_changes_nothing(tmp_path: Path, ws: Workspace, links: GitLinks, small: pygit2.Repository) -> None:
    git_bridge.import_commit(ws, small, git_bridge.resolve(small, "HEAD"), links, ref="HEAD", now_ms=NOW_MS)
    version, kept, refs = ws.version(), links.links(ws.space), sorted(small.references)
    with pytest.raises(NotARepository):
        git_bridge.open_repository(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARepository):
        git_bridge.open_repository(tmp_path / "plain")
    for ref in ("no-such-branch", "0" * 40, "HEAD~5", "main:README.md^{commit}"):
        with pytest.raises(UnknownRef):
            git_bridge.import_history(ws, small, ref, links, now_ms=lambda: NOW_MS)
    with pytest.raises(UnknownVersion):
        git_bridge.promote(ws, small, links, version=version + 1, branch="x", now_ms=NOW_MS)
    with pytest.raises(InvalidInput, match="ref name"):
        git_bridge.promote(ws, small, links, version=None, branch="bad..name", now_ms=NOW_MS)
    with pytest.raises(GitError, match="checked out"):
        git_bridge.promote(ws, small, links, version=None, branch="refs/heads/main", now_ms=NOW_MS)
    with pytest.raises(InvalidInput, match="history"):
        git_bridge.import_history(ws, small, "HEAD", links, history=0, now_ms=lambda: NOW_MS)
    assert ws.version() == version and links.links(ws.space) == kept and sorted(small.references) == refs
