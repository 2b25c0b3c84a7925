"""`python -m benchmarks [NAME...] [--list] [--quick] [--minutes N]`: run benchmarks, one JSON figure per stdout line.

Each line is {"bench", "name", "value", "unit"} plus, where a baseline was measured in the same
run, {"baseline", "baseline_value", "ratio"}, or, where the baseline is cited from elsewhere,
{"baseline", "baseline_value", "cited"} with its source and no ratio. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.measure import log
from benchmarks.registry import BenchmarkError, RunOptions, UnknownBenchmark, all_benchmarks, select
from simulations.errors import TraceError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmark names and exit")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="runs per workload, best reported (default: 1 with --quick, else 3)"
    )
    parser.add_argument("--minutes", type=float, metavar="N", help="how long the soak runs (default 30; 1 with --quick)")
    args = parser.parse_args(argv)

    if args.list:
        print("\n".join(all_benchmarks()))
        return 0
    try:
        selected = select(args.names)
    except UnknownBenchmark as e:
        parser.error(str(e))
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.minutes is not None and args.minutes <= 0:
        parser.error("--minutes must be positive")
    options = RunOptions(quick=args.quick, repeat=repeat, minutes=args.minutes)
    failed = []
    for name, run in selected.items():
        log(f"== {name}{' (quick)' if options.quick else ''}")
        try:
            for figure in run(options):
                print(json.dumps(figure.as_record(name)), flush=True)
        except (BenchmarkError, TraceError) as e:  # a trace it replays may be missing
            log(f"!! {name} failed: {e}")
            failed.append(name)
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
