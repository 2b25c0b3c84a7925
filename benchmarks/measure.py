"""How benchmarks measure: every workload in a fresh process, memory from the kernel's counters.

tracemalloc sees Python's allocations only, not Automerge's Rust heap, so memory is RSS:
- `process_peak_rss_mb`: the whole workload process's peak, ru_maxrss of that one child (from
  os.wait4), so no workload inherits another's peak, as RUSAGE_CHILDREN would make it;
- `PhaseMemory`: the growth during the measured phase alone, VmHWM minus VmRSS after trimming
  the heap and resetting the kernel's high-water mark, so setup (parsing a trace) does not count.
Linux only (/proc/self/status, /proc/self/clear_refs, glibc's malloc_trim).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.registry import BenchmarkError


class WorkloadFailed(BenchmarkError):
    pass


class MemoryUnmeasurable(BenchmarkError):
    pass


def log(message: str) -> None:
    """Progress for people: stderr, so stdout stays one JSON figure per line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_json_process(command: list[str]) -> dict[str, Any]:
    """Run `command`, which prints a JSON object as its last stdout line; return that object
    with the process's peak RSS added as `process_peak_rss_mb`."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # stderr passes through
    assert process.stdout is not None
    with process.stdout:
        output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise WorkloadFailed(f"{' '.join(command)} exited with {process.returncode}")
    lines = output.strip().splitlines()
    if not lines:
        raise WorkloadFailed(f"{' '.join(command)} printed no result")
    return {**json.loads(lines[-1]), "process_peak_rss_mb": usage.ru_maxrss / 1024}  # ru_maxrss is in KiB


def run_python_workload(function: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """`function(**kwargs)` in a fresh interpreter (see benchmarks/worker.py); kwargs must be JSON."""
    module = function.__module__
    if module == "__main__":
        raise WorkloadFailed(f"{function.__qualname__} must live in an importable module")
    return run_json_process(
        [sys.executable, "-m", "benchmarks.worker", module, function.__qualname__, json.dumps(kwargs)]
    )


def _proc_status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # the kernel reports kB
    except OSError as e:
        raise MemoryUnmeasurable(f"cannot read /proc/self/status: {e}") from e
    raise MemoryUnmeasurable(f"no {field} in /proc/self/status")


class PhaseMemory:
    """Peak RSS growth of this process from construction on; build it right before the phase."""

    def __init__(self) -> None:
        # Freed setup memory that stays mapped would be reused unseen: hand it back first.
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except AttributeError as e:
            raise MemoryUnmeasurable("needs glibc's malloc_trim") from e
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        except OSError as e:
            raise MemoryUnmeasurable(f"cannot reset the peak RSS mark: {e}") from e
        self.baseline_mb = _proc_status_mb("VmRSS")

    def growth_mb(self) -> float:
        return _proc_status_mb("VmHWM") - self.baseline_mb
