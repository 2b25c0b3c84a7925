"""workspace: how fast the past reads back through the workspace (store/workspace.py).

Two workloads, each in a fresh process on an in-memory repo (so only reading is measured, not
the disk), every edit a signed change as a user's would be:

- `read_at_version`: one file built by the automerge-paper trace, one splice per change; the
  latency of reading it at a random past version, beside reading it now (the baseline).
- `tree_at_version`: a space of many files created one by one; the latency of listing every
  path at a random past version, beside listing it now (a cached tree, so the ratio shows
  what a cache miss costs).

Figures are medians over seeded random versions, in milliseconds.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any

from benchmarks.measure import log, run_python_workload
from benchmarks.registry import Figure, RunOptions, benchmark
from protocol.identity import Identity
from simulations.trace_files import load_sequential
from store.repo import Repo
from store.workspace import Workspace

TRACE = "automerge-paper"
SPLICES = 20_000  # signed changes to the one file: a long afternoon of typing
QUICK_SPLICES = 2_000
FILES = 2_000  # a large repository's worth of files
QUICK_FILES = 200
SAMPLES = 200  # random versions read per figure
SEED = 4
START_MS = 1_700_000_000_000
BASELINE = "now"  # the same read at the newest version


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
