"""``distspace git``: a repository's commits into a space, a space's versions back into commits.

``git import REPO`` makes a space (the one ``--space`` names, made if no space has that name)
match the tree at ``--ref``; with ``--history N`` it replays the last N commits one call each,
saying which on stderr as it goes. ``git promote --branch NAME`` writes the space at ``--at``
(default: now) as a commit onto refs/distspace/NAME of REPO (default: the repository the space
came from). ``git log`` is the map between versions and commits. Each is an API call
(node/api_git.py), through the daemon when one runs, else on the store, as every command.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import render
from cli.commands import Args, Command, _home, _show
from cli.connect import open_node
from cli.errors import CliError

Json = dict[str, Any]
SHORT_COMMIT = 10
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]


def add_parsers(command: AddCommand, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``git`` and its subcommands; ``common`` adds the options every command takes."""
    parent = command("git", _need_subcommand, "git commits into the space and back: import, promote, log")
    sub = parent.add_subparsers(title="git commands", dest="git_command", metavar="SUBCOMMAND")

    def subcommand(name: str, run: Command, summary: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:] + ".")
        common(child)
        child.set_defaults(run=run, parser=child)
        return child

    imported = subcommand("import", import_repo, "make a space match a git commit's tree (--space: made if no space has that name)")
    imported.add_argument("repo", metavar="REPO", help="a git repository on this machine (a work tree or a bare one)")
    imported.add_argument("--ref", default="HEAD", metavar="REF", help="the branch, tag or commit to import (default HEAD)")
    imported.add_argument("--history", type=_count, default=1, metavar="N", help="replay the last N commits in order, each as its own signed changes")
    imported.add_argument("--public", action="store_true", help="a new space is open rather than private")

    promoted = subcommand("promote", promote, "write the space at a version as a git commit onto refs/distspace/NAME")
    promoted.add_argument("repo", nargs="?", metavar="REPO", help="the repository (default: the one the space was imported from)")
    promoted.add_argument("--at", type=int, metavar="VERSION", help="the version to promote (default: now)")
    promoted.add_argument("--branch", required=True, metavar="NAME", help="written to refs/distspace/NAME (a full ref such as refs/heads/review as given)")

    logged = subcommand("log", log, "which versions of the space were imported from or promoted to which commits")
    logged.add_argument("-n", "--limit", type=_count, default=100, metavar="N", help="at most N, newest first (default 100)")


def _need_subcommand(args: Args) -> int:
    parser: argparse.ArgumentParser = args.parser
    parser.error("say which: distspace git import | promote | log")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _absolute(repo: str) -> str:
    return str(Path(repo).expanduser().resolve())


# ----- import -----


def import_repo(args: Args) -> int:
    repo = _absolute(args.repo)
    commits = _commits(repo, args.ref, args.history) if args.history > 1 else [args.ref]
    started = time.monotonic()
    results: list[Json] = []
    with open_node(_home(args)) as node:
        for number, commit in enumerate(commits, 1):
            last = number == len(commits)
            if len(commits) > 1:
                render.hint(f"commit {number}/{len(commits)} {commit[:SHORT_COMMIT]}")
            ref = args.ref if last else commit  # the newest is recorded under the ref asked for
            with render.busy(f"importing {ref} from {repo}"):
                results.append(node.call("git.import", repo=repo, ref=ref, space=args.space or (results[0]["space"] if results else None), public=args.public))
    result = {**results[-1], "imports": [each for one in results for each in one["imports"]], "elapsed_ms": round((time.monotonic() - started) * 1000)}
    result["created"] = results[0]["created"]
    return _show(args, result, _print_imported)


def _commits(repo: str, ref: str, count: int) -> list[str]:
    """The last ``count`` commits on ``ref``'s first-parent line, oldest first (read here, so the
    command can say which one it is at)."""
    from store.errors import StoreError
    from store.git_bridge import first_parents, open_repository, resolve

    try:
        return [str(commit.id) for commit in first_parents(resolve(open_repository(repo), ref), count)]
    except StoreError as error:
        raise CliError(str(error)) from error


def _print_imported(result: Json) -> None:
    for each in result["imports"]:
        counts = f"+{each['added']} ~{each['modified']} -{each['deleted']}"
        render.say(f"{each['commit'][:SHORT_COMMIT]} -> version {each['version']} ({counts}, {each['changes']} changes)")
        for skipped in each["skipped"]:
            render.hint(f"  not in the space: {skipped} (a promote keeps it from the commit)")
    made = "made" if result["created"] else "updated"
    render.hint(f"{made} space {result['name']!r} ({result['space'][:12]}) in {result['elapsed_ms'] / 1000:.1f} s; edit it, then: distspace git promote --branch NAME")


# ----- promote and log -----


def promote(args: Args) -> int:
    repo = None if args.repo is None else _absolute(args.repo)
    with open_node(_home(args)) as node, render.busy(f"promoting to {args.branch}"):
        result = node.call("git.promote", space=args.space, version=args.at, branch=args.branch, repo=repo)
    return _show(args, result, _print_promoted)


def _print_promoted(result: Json) -> None:
    render.say(result["commit"])
    parent = "a first commit" if result["parent"] is None else f"on {result['parent'][:SHORT_COMMIT]}"
    what = "a new commit" if result["created"] else "nothing changed since its parent, which it names"
    render.hint(f"version {result['version']} -> {result['ref']} in {result['repo']}: {what}, {parent}")


def log(args: Args) -> int:
    with open_node(_home(args)) as node:
        result = node.call("git.log", space=args.space, limit=args.limit)
    return _show(args, result, _print_log)


def _print_log(result: Json) -> None:
    if not result["links"]:
        render.say("no commit imported or promoted yet: distspace git import REPO")
        return
    rows = [[link["version"], link["kind"], link["commit"][:SHORT_COMMIT], link["ref"], link["repo"], render.when(link["time_ms"])] for link in result["links"]]
    render.table(["version", "kind", "commit", "ref", "repo", "when"], rows)
