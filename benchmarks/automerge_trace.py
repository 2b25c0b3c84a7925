"""automerge_trace: replay the automerge-paper editing trace through the binding and natively.

The same workloads run through `native.Document` (in a fresh Python process) and through the
`automerge` crate directly (benchmarks/native_replay), so each figure's ratio is the binding's
cost over the crate's: (a) `one_commit`, every splice then one commit; (b) `commit_per_patch`,
a commit after every splice. Only the edit loop is timed; the trace is parsed before it.
Each figure is the best of `--repeat` runs, binding and native alternating.
"""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter
from typing import Any

from benchmarks.measure import PhaseMemory, log, run_json_process, run_python_workload
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from benchmarks.rust_baseline import native_replay_binary
from native import ROOT, Document
from simulations.trace_files import load_sequential, trace_path

TRACE = "automerge-paper"
QUICK_PATCHES = 20_000
MODES = ("one_commit", "commit_per_patch")
TARGET_TIME_RATIO = 1.3
BASELINE = "native_rust"

# (figure name, result key, unit), the same keys in the binding's and the native result.
METRICS = (
    ("edit_time", "edit_s", "s"),
    ("edit_memory", "edit_memory_mb", "MB"),  # peak RSS growth while editing
    ("process_peak_rss", "process_peak_rss_mb", "MB"),  # the whole process, setup and load included
    ("save_size", "save_bytes", "bytes"),
    ("save_time", "save_s", "s"),
    ("load_time", "load_s", "s"),
)


class ReplayMismatch(BenchmarkError):
    pass


def replay_through_binding(trace: str, mode: str, limit: int | None) -> dict[str, Any]:
    """One workload, run in a fresh process by `run_python_workload`."""
    replay = load_sequential(trace, limit)
    doc = Document()
    text = doc.put_object(ROOT, "text", "text")
    doc.splice_text(text, 0, 0, replay.start)
    doc.commit()
    splice, commit, patches = doc.splice_text, doc.commit, replay.patches  # no attribute lookups in the loop

    memory = PhaseMemory()
    started = perf_counter()
    if mode == "commit_per_patch":
        for pos, delete, insert in patches:
            splice(text, pos, delete, insert)
            commit()
    else:
        for pos, delete, insert in patches:
            splice(text, pos, delete, insert)
    commit()
    edit_s = perf_counter() - started
    edit_memory_mb = memory.growth_mb()
    if doc.text(text) != replay.expected:
        raise ReplayMismatch(f"{trace} ({mode}): the replayed text differs from the expected text")

    started = perf_counter()
    saved = doc.save()
    save_s = perf_counter() - started
    started = perf_counter()
    loaded = Document.load(saved)
    load_s = perf_counter() - started
    if loaded.text(text) != replay.expected:
        raise ReplayMismatch(f"{trace} ({mode}): the loaded text differs from the expected text")
    return {
        "patches": len(patches),
        "edit_s": edit_s,
        "save_s": save_s,
        "load_s": load_s,
        "save_bytes": len(saved),
        "edit_memory_mb": edit_memory_mb,
    }


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's best (lowest) value over the runs: time noise on a shared machine only adds."""
    return {key: min(run[key] for run in runs) for key in runs[0]}


@benchmark("automerge_trace")
def automerge_trace(options: RunOptions) -> Iterator[Figure]:
    limit = QUICK_PATCHES if options.quick else None
    binary, trace_file = native_replay_binary(), trace_path("sequential", TRACE)
    limit_args = [str(limit)] if limit else []
    for mode in MODES:
        our_runs, native_runs = [], []
        for run in range(1, options.repeat + 1):  # alternate, so drift in machine load hits both alike
            log(f"automerge_trace {mode} run {run}/{options.repeat}: binding")
            our_runs.append(run_python_workload(replay_through_binding, trace=TRACE, mode=mode, limit=limit))
            log(f"automerge_trace {mode} run {run}/{options.repeat}: native ({binary.name})")
            native_runs.append(run_json_process([str(binary), str(trace_file), mode, *limit_args]))
        ours, native = best_of(our_runs), best_of(native_runs)
        if ours["patches"] != native["patches"]:
            raise ReplayMismatch(f"binding replayed {ours['patches']} patches, native {native['patches']}")
        time_ratio = ours["edit_s"] / native["edit_s"]
        verdict = "within" if time_ratio <= TARGET_TIME_RATIO else "ABOVE"
        log(f"automerge_trace {mode}: {ours['patches']} patches, edit time ratio {time_ratio:.2f} ({verdict} {TARGET_TIME_RATIO})")
        for name, key, unit in METRICS:
            yield Figure(f"{mode}.{name}", round(ours[key], 6), unit, BASELINE, round(native[key], 6))
