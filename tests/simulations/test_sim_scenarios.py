"""Every scenario file at its CI size, with its CI seeds: the healed network converges and every
invariant holds — ``run_seed`` raises otherwise, with the one command that reproduces the run.

Each scenario also shows that the trouble it names really happened, so a scenario can never
pass by quietly testing nothing; and in none of them is an honest peer banned.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulations.scenario import load_scenario, scenario_names
from simulations.simulator import Result, run_seed
from trace_data import scenario_param


def partition_cut_the_network(result: Result) -> None:
    assert len(result.partitions_ms) == 1
    assert result.summary["network"]["frames_unreachable"] > 0


def peers_joined_left_and_crashed(result: Result) -> None:
    faults = load_scenario("churn").faults
    counted = result.summary["faults"]
    assert (counted["joins"], counted["leaves"], counted["crashes"]) == (faults.churn.joins, faults.churn.leaves, faults.crashes.count)


def frames_were_lost_duplicated_and_reordered(result: Result) -> None:
    network = result.summary["network"]
    assert min(network["frames_lost"], network["frames_duplicated"], network["frames_reordered"]) > 0


def peers_went_offline_and_came_back(result: Result) -> None:
    assert result.summary["faults"]["offline"] == 3
    assert result.summary["network"]["frames_unreachable"] > 0


def hostile_peers_attacked_and_were_banned(result: Result) -> None:
    faults = result.summary["faults"]
    assert sum(count for name, count in faults.items() if name.startswith("attacks.")) > 0
    assert faults["bans_of_hostile"] > 0


def everything_went_wrong_at_once(result: Result) -> None:
    faults, network = result.summary["faults"], result.summary["network"]
    assert len(result.partitions_ms) == 2 and faults["offline"] == 2
    assert min(faults["crashes"], faults["joins"], faults["leaves"], faults["bans_of_hostile"]) > 0
    assert min(network["frames_lost"], network["frames_duplicated"], network["frames_reordered"]) > 0


def the_trace_was_typed(result: Result) -> None:
    assert result.summary["edits_signed"] == load_scenario(result.summary["scenario"]).ci.edits + 1  # and its genesis


def the_revoked_writer_edited_on_and_members_refused_it_and_the_hostile(result: Result) -> None:
    """The root revoked a writer that typed before it went offline (kept) and after (refused);
    it and the stranger were refused sessions, the reader's own writes were refused at ingest,
    peers crashed, joined and left; the checkers found none of the refused work anywhere."""
    space, faults = result.summary["space"], result.summary["faults"]
    (revoked,) = space["revoked"]
    assert faults["revocations"] == 1 and revoked["kept"] > 0 and revoked["refused"] > 0
    assert space["strangers"] >= 1 and space["hostile_readers"] == 1
    replicators = space["replicators"]
    assert replicators["refused_not_admitted"] > 0 and replicators["not_admitted_not_opened"] > 0
    assert replicators["changes_unauthorised"] > 0 and faults["attacks.unauthorised-write"] > 0
    assert min(faults["crashes"], faults["joins"], faults["leaves"]) > 0
    assert "revoked_changes_acknowledged_by_honest" not in faults
    assert "bans_of_hostile_reader" not in faults  # a refused write is no fault: our log may lag


def every_edit_reached_everyone(result: Result) -> None:
    assert len(result.delivery_ms) == result.summary["edits_signed"]


def peers_stalled_and_the_trees_held(result: Result) -> None:
    """Stalled peers, and yet every edit by push: a few wants at most (tests/protocol/test_push_churn.py)."""
    assert result.summary["faults"]["cpu_stalls"] > 0
    assert len(result.delivery_ms) == result.summary["edits_signed"]
    assert result.summary["replicators"]["wants_sent"] <= result.summary["edits_signed"] // 25


TROUBLE: dict[str, Callable[[Result], None]] = {
    "partition-heal": partition_cut_the_network,
    "bench-200": partition_cut_the_network,
    "churn": peers_joined_left_and_crashed,
    "lossy-mesh": frames_were_lost_duplicated_and_reordered,
    "offline-then-reconnect": peers_went_offline_and_came_back,
    "hostile-minority": hostile_peers_attacked_and_were_banned,
    "concurrent-trace": the_trace_was_typed,
    "relay-star": the_trace_was_typed,
    "fanout-200": every_edit_reached_everyone,
    "cpu-saturation": peers_stalled_and_the_trees_held,
    "storm": everything_went_wrong_at_once,
    "revocation-race": the_revoked_writer_edited_on_and_members_refused_it_and_the_hostile,
}
CASES = [(name, seed) for name in scenario_names() for seed in load_scenario(name).ci.seeds]
PARAMS = [scenario_param(name, seed) for name, seed in CASES]


def test_every_scenario_says_what_trouble_it_shows():
    assert set(TROUBLE) == set(scenario_names())


@pytest.mark.parametrize(("name", "seed"), PARAMS, ids=[f"{name}-seed-{seed}" for name, seed in CASES])
def test_scenario_converges_with_every_invariant_held(name: str, seed: int) -> None:
    result = run_seed(load_scenario(name).small(), seed)
    assert result.summary["edits_signed"] > 0
    assert "bans_of_honest" not in result.summary["faults"]
    TROUBLE[name](result)
