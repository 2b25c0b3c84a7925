"""``distspace git import / promote / log``, run as the installed executable, with and without a
daemon (the same assertions hold either way), checked with the git CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import MODES, Cli, node

PROJECT = Path(__file__).resolve().parents[2]  # /work/main: a git repository with real history


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(params=MODES)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    with node(tmp_path / "home", request.param) as running:
        yield running


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    path = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(PROJECT), str(path)], check=True)
    return path


def test_import_with_history_edit_promote_and_log(cli: Cli, clone: Path) -> None:
    done = cli.run("git", "import", str(clone), "--history", "2", "--space", "code")
    assert done.returncode == 0, done.stderr.decode()
    assert b"commit 1/2" in done.stderr and b"commit 2/2" in done.stderr  # progress as it goes
    commits = git(clone, "rev-list", "--first-parent", "-2", "HEAD").split()[::-1]
    log = json.loads(cli.ok("git", "log", "--json", "--space", "code"))
    assert [(link["kind"], link["commit"]) for link in log["links"]] == [("import", commits[1]), ("import", commits[0])]
    assert cli.ok("cat", "README.md", "--space", "code").encode() == (clone / "README.md").read_bytes()
    cli.ok("write", "NOTES.md", "-", "--space", "code", input=b"from the space\n")
    promoted = json.loads(cli.ok("git", "promote", "--branch", "review", "--space", "code", "--json"))
    again = json.loads(cli.ok("git", "promote", "--branch", "review", "--space", "code", "--json", "--at", str(promoted["version"])))
    assert promoted["commit"] == again["commit"] and promoted["parent"] == commits[1] and promoted["repo"] == str(clone)
    assert git(clone, "diff", "--name-status", commits[1], "refs/distspace/review").split() == ["A", "NOTES.md"]
    rows = [line.split("\t") for line in cli.ok("git", "log", "--space", "code").splitlines()]  # not a terminal: tab-separated
    assert [(row[1], row[2]) for row in rows] == [("promote", promoted["commit"][:10]), ("import", commits[1][:10]), ("import", commits[0][:10])]
    fsck = subprocess.run(["git", "-C", str(clone), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    assert fsck.returncode == 0 and not fsck.stdout.strip(), fsck


def test_bad_input_is_one_line_and_changes_nothing(cli: Cli, clone: Path, tmp_path: Path) -> None:
    cli.ok("git", "import", str(clone), "--space", "code")
    version = json.loads(cli.ok("git", "log", "--json", "--space", "code"))["version"]
    assert "no commit 'nope'" in cli.fails("git", "import", str(clone), "--ref", "nope", "--space", "code")
    assert "not a git repository" in cli.fails("git", "import", str(tmp_path), "--space", "code")
    assert "not 999" in cli.fails("git", "promote", "--branch", "x", "--at", "999", "--space", "code")
    assert "never imported" in cli.fails("git", "promote", "--branch", "x")  # main: no link, no REPO
    assert "say which" in cli.fails("git", code=2)
    assert json.loads(cli.ok("git", "log", "--json", "--space", "code"))["version"] == version
    assert "refs/distspace/x" not in git(clone, "for-each-ref")
