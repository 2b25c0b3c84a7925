"""git: the git bridge (store/git_bridge.py) beside git itself, in the same run, on the same trees.

- ``import``: a real source tree — ``TREE_FILES`` source files of this installation's
  site-packages, in path order, each under one change's size — committed by ``git add -A &&
  git commit`` (the baseline, timed) and that commit imported into an empty space of a store on
  disk (``import_commit``: one bulk write, every file signed and durable). Target: <= 2x git.
- ``promote_edits``: then ``EDITS`` of its files edited, and the space promoted to a commit
  (only the edited files are read: the rest have the imported commit's blobs), beside ``git
  commit -a`` of the same edits in the work tree.
- ``import_generated`` (not in ``--quick``): a generated tree of ``GENERATED_FILES`` small files,
  the issue's 20,000, the same way.

Each import runs in a fresh process (benchmarks/measure.py), whose peak RSS is reported too, and
its CPU seconds (all threads) beside git's: on a machine other work loads, the wall-clock ratio
moves with the load, the CPU ratio much less.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.measure import log, run_python_workload
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from store.workspace import MAX_WRITE_BYTES

TREE_FILES, QUICK_TREE_FILES = 2_000, 300
GENERATED_FILES = 20_000
EDITS = 10
SOURCE_SUFFIXES = (".py", ".pyi", ".txt", ".md", ".json", ".toml", ".cfg", ".rst")
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
NOW_MS = 1_700_000_000_000


@benchmark("git", cheap=True)
def git_bridge(options: RunOptions) -> Iterator[Figure]:
    files = QUICK_TREE_FILES if options.quick else TREE_FILES
    with tempfile.TemporaryDirectory(prefix="ds-bench-git-") as directory:
        root = Path(directory)
        tree = root / "tree"
        count, size = _real_tree(tree, files)
        log(f"git: a tree of {count} files ({size / 1e6:.1f} MB) from site-packages")
        yield from _compare("import", tree, root / "store-real", options, edits=EDITS)
        if not options.quick:
            generated = root / "generated"
            _generated_tree(generated, GENERATED_FILES)
            log(f"git: a generated tree of {GENERATED_FILES} files")
            yield from _compare("import_generated", generated, root / "store-generated", options, edits=0)


def _compare(name: str, tree: Path, store: Path, options: RunOptions, *, edits: int) -> Iterator[Figure]:
    _git(tree, "init", "-q")
    git_cpu = children_cpu()
    git_s = _git(tree, "add", "-A") + _git(tree, "commit", "-q", "-m", "the tree")
    git_cpu = children_cpu() - git_cpu
    runs = []
    for run in range(1, options.repeat + 1):
        log(f"git {name} run {run}/{options.repeat}")
        runs.append(run_python_workload(import_workload, repo=str(tree), store=f"{store}-{run}", edits=edits))
    best = min(runs, key=lambda result: float(result["import_s"]))
    ratio = best["import_s"] / git_s
    log(
        f"git {name}: {best['files']} files imported in {best['import_s']:.2f} s, git add + commit {git_s:.2f} s ({ratio:.1f}x; target <= 2x);"
        f" CPU {best['import_cpu_s']:.2f} s vs {git_cpu:.2f} s ({best['import_cpu_s'] / git_cpu:.1f}x), load {os.getloadavg()[0]:.1f}"
    )
    yield Figure(f"{name}.seconds", round(best["import_s"], 3), "s", "git add + commit", round(git_s, 3))
    yield Figure(f"{name}.files", best["files"], "files")
    yield Figure(f"{name}.cpu", round(best["import_cpu_s"], 3), "s", "git add + commit", round(git_cpu, 3))
    yield Figure(f"{name}.per_file", round(best["import_s"] * 1000 / best["files"], 3), "ms", "git add + commit", round(git_s * 1000 / best["files"], 3))
    yield Figure(f"{name}.peak_rss", round(best["process_peak_rss_mb"], 1), "MB")
    if edits:
        paths = best["edited"]
        for path in paths:
            with (tree / path).open("a") as file:
                file.write("# edited\n")
        commit_s = _git(tree, "commit", "-q", "-a", "-m", "edits")
        log(f"git promote_edits: {edits} edits promoted in {best['promote_s'] * 1000:.0f} ms, git commit -a {commit_s * 1000:.0f} ms")
        yield Figure("promote_edits.seconds", round(best["promote_s"], 4), "s", "git commit -a", round(commit_s, 4))


def import_workload(repo: str, store: str, edits: int) -> dict[str, Any]:
    """Import ``repo``'s HEAD into an empty space of a store at ``store``; then append a line
    to ``edits`` of its files and promote. Timed apart; runs in a fresh process."""
    from protocol.identity import Identity
    from store import git_bridge
    from store.repo import Repo
    from store.workspace import Workspace

    repository = git_bridge.open_repository(repo)
    with Repo.open(Path(store), Identity(bytes([0xB1]) * 32)) as opened:
        ws = Workspace(opened, opened.create_space("bench", NOW_MS).space_id)
        links = git_bridge.GitLinks(None)
        commit = git_bridge.resolve(repository, "HEAD")
        started, cpu = time.perf_counter(), time.process_time()
        result = git_bridge.import_commit(ws, repository, commit, links, ref="HEAD", now_ms=NOW_MS)
        import_s, import_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        if result.skipped:
            raise BenchmarkError(f"the tree holds what a space cannot: {result.skipped[:3]}")
        edited = [node.path for node in ws.tree().walk() if node.kind == "file" and node.encoding == "text"][:edits]
        promote_s = 0.0
        if edited:
            for path in edited:
                text = ws.read(path)
                assert isinstance(text, str)
                ws.write(path, text + "# edited\n", now_ms=NOW_MS + 1)
            started = time.perf_counter()
            git_bridge.promote(ws, repository, links, version=None, branch="bench", now_ms=NOW_MS)
            promote_s = time.perf_counter() - started
        return {"files": result.added, "import_s": import_s, "import_cpu_s": import_cpu_s, "promote_s": promote_s, "edited": edited}


def _git(tree: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(["git", "-C", str(tree), *args], check=True, env={**os.environ, **GIT_ENV}, capture_output=True)
    return time.perf_counter() - started


def children_cpu() -> float:
    """CPU seconds, user and system, of this process's finished children (the git commands)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _real_tree(tree: Path, limit: int) -> tuple[int, int]:
    """Up to ``limit`` source files of site-packages (path order, none over one change's size),
    written under ``tree``: a real project's mix of sizes, text and a little non-UTF-8."""
    site = Path(sysconfig.get_paths()["purelib"])
    picked: list[Path] = []
    for path in sorted(site.rglob("*")):
        if len(picked) == limit:
            break
        if path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts and path.is_file() and not path.is_symlink():
            if path.stat().st_size <= MAX_WRITE_BYTES:
                picked.append(path)
    if len(picked) < limit:
        raise BenchmarkError(f"{site} has {len(picked)} source files, fewer than the {limit} asked for")
    total = 0
    for source in picked:
        data = source.read_bytes()
        target = tree / source.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        total += len(data)
    return len(picked), total


def _generated_tree(tree: Path, files: int) -> None:
    for number in range(files):
        target = tree / f"pkg{number % 20}" / f"mod{number % 13}" / f"f{number}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"file {number}\nline two\n")
