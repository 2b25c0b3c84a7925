"""The benchmark registry: a module in this package registers a benchmark with `@benchmark(name)`.

A benchmark is a function of `RunOptions` that yields `Figure`s; `python -m benchmarks` imports
every module of the package (so a new module needs no other wiring), runs the selected
benchmarks and prints each figure as one JSON line. One registered `cheap=True` runs in a few
seconds in `--quick` mode and needs no more than the tests do (no daemon mesh, npm, cargo
build or long soak), so the test suite runs it (tests/benchmarks/test_benchmarks_quick.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


class BenchmarkError(Exception):
    """A benchmark could not run or produced a wrong result."""


class UnknownBenchmark(BenchmarkError):
    pass


class DuplicateBenchmark(BenchmarkError):
    pass


@dataclass(frozen=True)
class RunOptions:
    quick: bool = False  # smaller inputs, for a smoke run
    repeat: int = 1  # runs per workload; benchmarks report the best, since noise only adds time
    minutes: float | None = None  # how long a timed benchmark (soak) runs; None: its own default


@dataclass(frozen=True)
class Figure:
    """One measured value, optionally beside a baseline.

    A baseline is either measured in the same run, on the same machine (then the record carries
    the ratio, which means the same anywhere), or ``cited``: a number from elsewhere, with its
    source (a URL or document, and its date) and no ratio, since it was not measured here.
    """

    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    cited: str | None = None  # the source of a baseline not measured in this run

    def __post_init__(self) -> None:
        if (self.baseline is None) != (self.baseline_value is None):
            raise BenchmarkError(f"{self.name}: a baseline needs both its name and its value")
        if self.cited is not None and (self.baseline is None or not self.cited.strip()):
            raise BenchmarkError(f"{self.name}: a cited source belongs to a baseline, and must name it")

    def as_record(self, bench: str) -> dict[str, Any]:
        record: dict[str, Any] = {"bench": bench, "name": self.name, "value": self.value, "unit": self.unit}
        if self.baseline is not None and self.baseline_value is not None:
            record["baseline"] = self.baseline
            record["baseline_value"] = self.baseline_value
            if self.cited is not None:
                record["cited"] = self.cited
            else:
                record["ratio"] = round(self.value / self.baseline_value, 3) if self.baseline_value else None
        return record


Benchmark = Callable[[RunOptions], Iterator[Figure]]
_BENCHMARKS: dict[str, Benchmark] = {}
_CHEAP: set[str] = set()


def benchmark(name: str, *, cheap: bool = False) -> Callable[[Benchmark], Benchmark]:
    """Register the decorated function under `name`; `cheap`: the test suite may run it quick."""

    def register(function: Benchmark) -> Benchmark:
        if name in _BENCHMARKS and _BENCHMARKS[name] is not function:
            raise DuplicateBenchmark(f"two benchmarks are named {name!r}")
        _BENCHMARKS[name] = function
        if cheap:
            _CHEAP.add(name)
        return function

    return register


def all_benchmarks() -> dict[str, Benchmark]:
    """Every registered benchmark by name, after importing every module of this package.

    Subpackages are not imported: they hold what benchmarks and tests share (``mallory``), which
    registers nothing and would only slow ``--list`` down."""
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "__main__" and not module.ispkg:
            importlib.import_module(f"{__package__}.{module.name}")
    return dict(sorted(_BENCHMARKS.items()))


def cheap_benchmarks() -> dict[str, Benchmark]:
    """The benchmarks registered `cheap=True`, by name."""
    return {name: run for name, run in all_benchmarks().items() if name in _CHEAP}


def select(names: list[str]) -> dict[str, Benchmark]:
    """The named benchmarks (all of them for no names), in the order given."""
    available = all_benchmarks()
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UnknownBenchmark(f"no benchmark named {', '.join(unknown)}; known: {', '.join(available)}")
    return {n: available[n] for n in names} if names else available
