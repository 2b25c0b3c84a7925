"""A seed names one run, byte for byte: every event fed to every Replicator and every action it
returned (frames by length and CRC) come out the same on a rerun — in this process, and in a
fresh interpreter with another hash seed, so nothing leans on set or dict iteration order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.scenario import load_scenario
from simulations.simulator import run_seed
from trace_data import scenario_param

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", [scenario_param(name) for name in ("churn", "hostile-minority", "lossy-mesh", "concurrent-trace", "revocation-race")])
def test_the_same_seed_replays_the_same_events(name: str) -> None:
    scenario = load_scenario(name).small()
    first = run_seed(scenario, 7, record_events=True)
    second = run_seed(scenario, 7, record_events=True)
    assert first.events is not None and len(first.events) > 1000
    assert first.events == second.events
    assert first.samples == second.samples


def test_another_seed_is_another_run() -> None:
    scenario = load_scenario("lossy-mesh").small()
    assert run_seed(scenario, 1, record_events=True).events != run_seed(scenario, 2, record_events=True).events


def test_a_fresh_interpreter_with_another_hash_seed_replays_it_too(tmp_path: Path) -> None:
    scenario = load_scenario("churn").small()
    expected = run_seed(scenario, 3, record_events=True).summary["event_log_sha256"]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "simulations", "run", "churn", "--seed", "3", "--peers", str(scenario.peers)]
    command += ["--edits", str(scenario.workload.edits), "--log", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True, capture_output=True)
    assert json.loads((out / "churn-seed-3" / "result.json").read_text())["event_log_sha256"] == expected
