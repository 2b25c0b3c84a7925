"""workspace: how fast the past reads back through the workspace (store/workspace.py), and what
an edit at an old version costs.

Three workloads, each in a fresh process on an in-memory repo (so only reading is measured, not
the disk), every edit a signed change as a user's would be:

- `read_at_version`: one file built by the automerge-paper trace, one splice per change; the
  latency of reading it at a random past version, beside reading it now (the baseline).
- `tree_at_version`: a space of many files created one by one; the latency of listing every
  path at a random past version, beside listing it now (a cached tree, so the ratio shows
  what a cache miss costs).
- `edit_at_base`: a one-character edit of a 20k-character file at a base 1, 10 or 100 remote
  changes behind (``Workspace.edit`` isolates the doc there, commits, merges back), beside the
  same edit at the text now (``base=None``), on the same doc in the same run.

Figures are medians over seeded random versions, in milliseconds.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterator
from functools import partial
from time import perf_counter
from typing import Any

import native
from benchmarks.measure import log, run_python_workload
from benchmarks.registry import Figure, RunOptions, benchmark
from protocol.identity import Identity
from simulations.trace_files import load_sequential
from store.repo import Repo
from store.workspace import Edit, Workspace

TRACE = "automerge-paper"
SPLICES = 20_000  # signed changes to the one file: a long afternoon of typing
QUICK_SPLICES = 2_000
FILES = 2_000  # a large repository's worth of files
QUICK_FILES = 200
SAMPLES = 200  # random versions read per figure
SEED = 4
START_MS = 1_700_000_000_000
BASELINE = "now"  # the same read at the newest version
EDIT_FILE_CHARS = 20_000  # a long source file
EDIT_BEHIND = (1, 10, 100)  # remote changes between the editor's read and its edit
EDIT_SAMPLES = 30  # edits per figure (each behind-100 sample first needs 100 remote changes)
QUICK_EDIT_SAMPLES = 8
EDIT_BASELINE = "edit now"  # the same edit at the text now (base=None)


def _median_ms(read: Callable[[], object], samples: int) -> float:
    times = []
    for _ in range(samples):
        started = perf_counter()
        read()
        times.append(perf_counter() - started)
    return statistics.median(times) * 1000


def _workspace() -> Workspace:
    repo = Repo.open(None, Identity.generate())
    return Workspace(repo, repo.create_space("bench", START_MS).space_id)


def read_file_at_versions(splices: int) -> dict[str, Any]:
    """One workload, run in a fresh process by `run_python_workload`."""
    trace = load_sequential(TRACE, splices)
    ws = _workspace()
    first = ws.write("paper.txt", trace.start, now_ms=START_MS)
    for number, (position, delete, insert) in enumerate(trace.patches, start=1):
        ws.splice("paper.txt", position, delete, insert, now_ms=START_MS + number)
    latest = ws.version()
    versions = random.Random(SEED).choices(range(first, latest + 1), k=SAMPLES)
    pending = iter(versions)
    at_version = _median_ms(lambda: ws.read("paper.txt", version=next(pending)), SAMPLES)
    now = _median_ms(lambda: ws.read("paper.txt"), SAMPLES)
    return {"versions": latest, "at_version_ms": at_version, "now_ms": now}


def list_tree_at_versions(files: int) -> dict[str, Any]:
    """One workload, run in a fresh process by `run_python_workload`."""
    ws = _workspace()
    for number in range(files):
        ws.write(f"dir{number % 20}/file{number}.txt", f"{number}\n", now_ms=START_MS + number, parents=True)
    latest = ws.version()
    versions = random.Random(SEED).choices(range(latest + 1), k=SAMPLES)
    pending = iter(versions)
    at_version = _median_ms(lambda: list(ws.tree(next(pending)).walk()), SAMPLES)
    now = _median_ms(lambda: list(ws.tree().walk()), SAMPLES)
    return {"versions": latest, "at_version_ms": at_version, "now_ms": now}


def edit_at_base(chars: int, samples: int) -> dict[str, Any]:
    """One workload, run in a fresh process by `run_python_workload`: Bob types, Alice's editor
    edits at the heads it read before Bob's changes reached her."""
    bob = _workspace()
    space = bob.repo.genesis(bob.space)
    alice_repo = Repo.open(None, Identity.generate())
    alice_repo.add_space(space)
    alice = Workspace(alice_repo, bob.space)
    line = "    value = compute(value, 42)  # a line of code\n"
    bob.write("big.py", (line * (chars // len(line) + 1))[:chars], now_ms=START_MS)
    clock = iter(range(START_MS + 1, START_MS + 10**9))

    def deliver() -> None:  # what sync would hand Alice's store: Bob's changes she lacks, and his tips
        for doc in bob.repo.doc_ids(bob.space):
            changes = bob.repo.changes_since(bob.space, doc, alice.repo.heads(bob.space, doc))
            alice.repo.apply(bob.space, doc, [native.decode_change(raw) for raw in changes], bob.repo.tips(bob.space, doc))

    deliver()
    rng = random.Random(SEED)
    result: dict[str, Any] = {}
    for behind in EDIT_BEHIND:
        at_base, now = [], []
        for _ in range(samples):
            _, base = alice.read_with_heads("big.py")
            for _ in range(behind):
                bob.splice("big.py", rng.randrange(chars), 0, "b", now_ms=next(clock))
            deliver()
            edit = [Edit(rng.randrange(chars), 0, "a")]
            started = perf_counter()
            alice.edit("big.py", edit, base=base, now_ms=next(clock))
            at_base.append(perf_counter() - started)
            started = perf_counter()
            alice.edit("big.py", edit, base=None, now_ms=next(clock))
            now.append(perf_counter() - started)
        result[f"behind_{behind}_ms"] = statistics.median(at_base) * 1000
        result[f"behind_{behind}_now_ms"] = statistics.median(now) * 1000
    return result


def _value(key: str, result: dict[str, Any]) -> float:
    return float(result[key])


@benchmark("workspace", cheap=True)
def workspace(options: RunOptions) -> Iterator[Figure]:
    splices = QUICK_SPLICES if options.quick else SPLICES
    files = QUICK_FILES if options.quick else FILES
    for name, function, size in (
        ("read_at_version", read_file_at_versions, {"splices": splices}),
        ("tree_at_version", list_tree_at_versions, {"files": files}),
    ):
        runs = []
        for run in range(1, options.repeat + 1):
            log(f"workspace {name} run {run}/{options.repeat}: {size}")
            runs.append(run_python_workload(function, **size))
        best = min(runs, key=lambda result: result["at_version_ms"])
        log(f"workspace {name}: {best['versions']} versions")
        yield Figure(f"{name}.latency", round(best["at_version_ms"], 3), "ms", BASELINE, round(best["now_ms"], 3))
    samples = QUICK_EDIT_SAMPLES if options.quick else EDIT_SAMPLES
    log(f"workspace edit_at_base: {EDIT_FILE_CHARS} characters, {samples} edits per base")
    edits = [run_python_workload(edit_at_base, chars=EDIT_FILE_CHARS, samples=samples) for _ in range(options.repeat)]
    for behind in EDIT_BEHIND:
        best = min(edits, key=partial(_value, f"behind_{behind}_ms"))
        at_base, now = round(best[f"behind_{behind}_ms"], 3), round(best[f"behind_{behind}_now_ms"], 3)
        yield Figure(f"edit_at_base.behind_{behind}.latency", at_base, "ms", EDIT_BASELINE, now)
