"""The ``distspace`` command: a thin front over ``node`` and ``store``.

Exit codes: 0 ok, 1 user error (one line on stderr), 2 usage. Every command takes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cli import demo


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1, no traceback."""


def _emit(args: argparse.Namespace, result: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(result) if args.json else render(result))


def _cmd_demo(args: argparse.Namespace) -> int:
    _emit(args, demo.run(), demo.render)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distspace",
        description="Dist-Space: a live, shared, offline-first code workspace with no server.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_cmd = commands.add_parser(
        "demo", parents=[common], help="two replicas edit concurrently, sync and converge"
    )
    demo_cmd.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as error:
        print(f"distspace: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
