"""Every benchmark registered ``cheap=True`` runs in ``--quick`` mode, so none can rot unseen.

A run must yield well-formed figures: a name (unique in its benchmark), a unit, a finite number;
a baseline has a name and a finite value; a ratio is printed only beside a baseline measured in
the run, and a cited baseline names its source. The heavy benchmarks (soak, daemon meshes, the
npm and cargo baselines) declare themselves not cheap and are left to ``python -m benchmarks``.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.registry import BenchmarkError, Figure, RunOptions, cheap_benchmarks
from simulations.errors import TraceNotFound

QUICK = RunOptions(quick=True, repeat=1)
CHEAP = cheap_benchmarks()


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_the_cheap_benchmarks_are_declared_by_the_benchmarks_themselves():
    assert {"cli", "protocol", "simulations", "store", "workspace"} <= set(CHEAP)
    assert not {"soak", "node"} & set(CHEAP)


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_a_quick_run_yields_well_formed_figures(name: str):
    try:
        figures = list(CHEAP[name](QUICK))
    except TraceNotFound as missing:
        pytest.skip(str(missing))

    assert figures, f"{name} yielded no figure"
    names = [figure.name for figure in figures]
    assert len(names) == len(set(names)), f"{name} yields a figure name twice"
    for figure in figures:
        record = figure.as_record(name)
        assert figure.name and figure.unit, record
        assert _finite_number(figure.value), record
        if figure.baseline is None:
            assert not {"baseline_value", "ratio", "cited"} & set(record), record
        elif figure.cited is None:
            assert figure.baseline and _finite_number(figure.baseline_value), record
            assert "ratio" in record and "cited" not in record, record
        else:
            assert figure.baseline and _finite_number(figure.baseline_value), record
            assert record["cited"].strip() and "ratio" not in record, record


def test_a_cited_baseline_carries_its_source_and_no_ratio():
    measured = Figure("edit_p99", 20.0, "ms", "raw_round_trip", 2.0).as_record("node")
    cited = Figure("edit_p99_vs_anchor", 20.0, "ms", "automerge-repo", 100.0, cited="issue 5, 2026-11-22").as_record("node")

    assert measured["ratio"] == 10.0 and "cited" not in measured
    assert cited["cited"] == "issue 5, 2026-11-22" and "ratio" not in cited
    assert cited["baseline_value"] == 100.0


@pytest.mark.parametrize(
    "fields",
    [
        {"cited": "somewhere, 2026"},  # a source with no baseline
        {"baseline": "anchor", "baseline_value": 1.0, "cited": " "},  # a baseline cited from nowhere
        {"baseline": "anchor"},  # a baseline with no value
    ],
)
def test_a_figure_refuses_a_baseline_it_cannot_print(fields: dict[str, object]):
    with pytest.raises(BenchmarkError):
        Figure("latency", 1.0, "ms", **fields)  # type: ignore[arg-type]
