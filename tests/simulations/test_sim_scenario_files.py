"""Scenarios are data files read strictly, and the command line runs them.

A typo must never silently run another experiment: unknown options and mistyped values are
refused with the option's name. A failing run prints the one command that reproduces it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.__main__ import main
from simulations.errors import ScenarioError, UnknownScenario
from simulations.scenario import FaultModel, load_scenario, scenario_names

MINIMAL = 'description = "two peers"\npeers = 2\n'


def scenario_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL + text)
    return str(path)


def test_every_shipped_scenario_loads_and_names_the_issues_seven():
    assert {"partition-heal", "churn", "lossy-mesh", "relay-star", "fanout-200", "offline-then-reconnect", "hostile-minority"} <= set(scenario_names())
    for name in scenario_names():
        assert load_scenario(name).description


def test_an_unknown_option_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ScenarioError, match="unknown option los_rate"):
        load_scenario(scenario_file(tmp_path, "[faults.link]\nlos_rate = 0.1\n"))


def test_a_mistyped_value_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ScenarioError, match=r"workload\.edits: expected int"):
        load_scenario(scenario_file(tmp_path, '[workload]\nedits = "many"\n'))


def test_an_impossible_value_is_refused(tmp_path: Path):
    with pytest.raises(ScenarioError, match="loss_rate"):
        load_scenario(scenario_file(tmp_path, "[faults.link]\nloss_rate = 1.5\n"))


def test_an_unknown_scenario_lists_the_known_ones():
    with pytest.raises(UnknownScenario, match="partition-heal"):
        load_scenario("partition-hell")


def test_private_space_options_are_refused_in_an_open_space(tmp_path: Path):
    with pytest.raises(ScenarioError, match="unauthorised-write needs a private space"):
        load_scenario(scenario_file(tmp_path, '[faults.hostile]\nshare = 0.2\nattacks = ["unauthorised-write"]\n'))
    with pytest.raises(ScenarioError, match="need a private space"):
        load_scenario(scenario_file(tmp_path, "[[space.revocations]]\noffline_at_ms = 1\nat_ms = 2\nback_at_ms = 3\n"))


def test_a_revocation_must_come_while_its_writer_is_away(tmp_path: Path):
    with pytest.raises(ScenarioError, match="offline_at_ms < at_ms < back_at_ms"):
        load_scenario(scenario_file(tmp_path, "[space]\nprivate = true\n[[space.revocations]]\noffline_at_ms = 5\nat_ms = 2\nback_at_ms = 9\n"))


def test_the_fault_model_loads_on_its_own_from_any_toml(tmp_path: Path):
    path = tmp_path / "weather.toml"
    path.write_text("[faults.link]\nloss_rate = 0.05\n[[faults.partitions]]\nat_ms = 1000\nduration_ms = 500\n[faults.hostile]\nshare = 0.1\n")
    faults = FaultModel.load(path)
    assert (faults.link.loss_rate, faults.partitions[0].duration_ms, faults.hostile.share) == (0.05, 500, 0.1)


def test_sync_config_overrides_reach_the_replicators(tmp_path: Path):
    assert load_scenario(scenario_file(tmp_path, "[sync]\ngraft_delay_ms = 900\n")).sync.graft_delay_ms == 900


def test_list_names_every_scenario(capsys: pytest.CaptureFixture[str]):
    assert main(["list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == scenario_names()


def test_run_writes_the_results_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["run", "hostile-minority", "--seed", "2", "--peers", "6", "--edits", "20", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in (tmp_path / "hostile-minority-seed-2").iterdir())
    assert written == ["bandwidth.png", "convergence.png", "delivery.png", "result.json"]
    assert "converged at" in capsys.readouterr().out


def test_a_failing_run_prints_the_command_that_reproduces_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    stuck = scenario_file(tmp_path, "duration_ms = 1000\nsettle_ms_max = 500\n[workload]\nedits = 10\ntyping_span_ms = 20000\n")
    assert main(["run", stuck, "--seed", "4", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "NotConverged" in err
    assert f"reproduce: python -m simulations run {stuck} --seed 4 --peers 2 --edits 10" in err


def test_a_bad_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["run", scenario_file(tmp_path, "surprise = 1\n")]) == 2
    assert "unknown option surprise" in capsys.readouterr().err
