"""The editing traces live beside the project (``../shared/data``), not in it: on a checkout
without them the tests that type a trace skip, saying where they looked."""

from __future__ import annotations

import pytest

from simulations.scenario import load_scenario
from simulations.trace_files import TRACES_ENV, traces_dir

needs_traces = pytest.mark.skipif(
    not traces_dir().is_dir(), reason=f"no editing traces at {traces_dir()} (set {TRACES_ENV} to the folder)"
)


def scenario_param(name: str, *values: object) -> object:
    """A parameter for scenario ``name`` that skips without the traces if its workload types one."""
    marks = [needs_traces] if load_scenario(name).workload.kind == "trace" else []
    return pytest.param(name, *values, marks=marks)
