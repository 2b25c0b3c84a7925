"""python -m simulations list | run SCENARIO [--seed N] [--peers N] [--edits N] [--out DIR] [--log]

``run`` writes result.json and the plots to OUT/SCENARIO-seed-N/ and prints the headline
figures. A failing run prints what broke and the one command that reproduces it, and exits 1;
a bad scenario exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from simulations.errors import RunFailed, ScenarioError
from simulations.scenario import load_scenario, scenario_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations", description="Dist-Space network simulations")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the scenarios and what each shows")
    run = commands.add_parser("run", help="run one scenario with one seed")
    run.add_argument("scenario", help="a name from `list`, or a path to a scenario .toml")
    run.add_argument("--seed", type=int, help="default: the scenario's first seed")
    run.add_argument("--peers", type=int, help="default: the scenario's")
    run.add_argument("--edits", type=int, help="default: the scenario's")
    run.add_argument("--out", type=Path, default=Path("results"), help="default: results/")
    run.add_argument("--log", action="store_true", help="also write every Replicator event and action to events.log")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for name in scenario_names():
                print(f"{name:24} {load_scenario(name).description}")
            return 0
        return _run(args)
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from simulations import report  # matplotlib loads only for runs
    from simulations.simulator import run_seed

    scenario = load_scenario(args.scenario).scaled(peers=args.peers, edits=args.edits)
    seed = args.seed if args.seed is not None else scenario.seeds[0]
    try:
        result = run_seed(scenario, seed, record_events=args.log)
    except RunFailed as error:
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        for note in getattr(error, "__notes__", []):
            print(note, file=sys.stderr)
        return 1
    paths = report.write(result, args.out / f"{scenario.name}-seed-{seed}")
    s = result.summary
    virtual, delivery = s["virtual_ms"], s["delivery_ms"]
    print(f"{scenario.name}: seed {seed}, {s['peers']} peers, {s['edits_signed']} edits in {s['commits']} commits")
    print(f"  converged at {virtual['converged'] / 1000:.1f} s virtual, {virtual['convergence_after_last_edit'] / 1000:.1f} s after the last edit")
    if virtual["last_fault_ended"] is not None:
        print(f"  the last partition, offline period or crash ended at {virtual['last_fault_ended'] / 1000:.1f} s; everything signed by then reached everyone {virtual['backlog_delivered_after_last_fault'] / 1000:.1f} s later")
    print(f"  edit to 99% of peers: {delivery['to_99pct']} ms; within 300 ms: {delivery['share_of_edits_99pct_within_300ms']}")
    print(f"  ... of edits signed on a whole network: {delivery['to_99pct_whole_network']} ms; within 300 ms: {delivery['share_of_edits_99pct_within_300ms_whole_network']}")
    print(f"  {s['messages_sent']} messages, {s['bytes_sent']} bytes, {s['bytes_per_edit_per_peer']} bytes per edit per peer")
    if "space" in s:
        _print_membership(s["space"])
    print(f"  wall: {s['wall_s']} s, {s['events']} events")
    for path in paths:
        print(f"  wrote {path}")
    return 0


def _print_membership(space: dict[str, Any]) -> None:
    """A private space's figures: the log, each revocation, what was refused."""
    print(f"  private space: {space['records']} capability records, one log (digest {space['log_digest']}) on every honest peer")
    for revoked in space["revoked"]:
        print(
            f"  {revoked['peer']} revoked: {revoked['signed']} changes signed, {revoked['kept']} kept (at or below the cutoff), "
            f"{revoked['refused']} refused and materialised nowhere"
        )
    counts = space["replicators"]
    sessions = counts["refused_not_admitted"] + counts["not_admitted_not_opened"] + counts["closed_not_admitted"]
    print(
        f"  refused: {sessions} sessions of non-members ({space['strangers']} strangers, revoked writers), "
        f"{counts['changes_unauthorised']} unauthorised changes at ingest ({space['hostile_readers']} read-only members writing)"
    )


if __name__ == "__main__":
    sys.exit(main())
