"""The ``distspace`` command as a program: help, usage errors, exit codes, where it finds its home
and space."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cli_helpers import DISTSPACE, Cli

COMMANDS = (
    "init create join invite members revoke clone up id status peers spaces ls cat write rm mv mkdir log diff blame revert token snapshot git publish verify doctor demo".split()
)


def distspace(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DISTSPACE, *args], capture_output=True, text=True, timeout=20, env=env, stdin=subprocess.DEVNULL)


def test_help_lists_every_command_with_a_summary() -> None:
    result = distspace("--help")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.split("commands:")[1].split("options:")[0].splitlines() if line.startswith("    ")}
    assert listed == set(COMMANDS)
    assert "examples:" in result.stdout and "with or without a running daemon" in result.stdout


@pytest.mark.parametrize("command", ["cat", "write", "diff", "revert", "up", "join"])
def test_each_command_explains_itself(command: str) -> None:
    result = distspace(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: distspace {command}")
    assert "--json" in result.stdout and "--home" in result.stdout


@pytest.mark.parametrize(
    "args",
    [[], ["frobnicate"], ["cat"], ["diff", "one"], ["diff", "1", "x", "2", "y"], ["diff", "1", "x", "y"], ["revert", "a.txt"], ["log", "-n", "many"]],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    result = distspace("--home", str(tmp_path / "home"), *args)
    assert result.returncode == 2, result.stderr
    assert "usage: distspace" in result.stderr and "Traceback" not in result.stderr


def test_the_home_and_space_come_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "DISTSPACE_HOME": str(tmp_path / "home"), "DISTSPACE_SPACE": "second"}
    for name in ("first", "second"):
        assert distspace("init", name, env=env).returncode == 0
    assert distspace("write", "in-second.txt", env=env).returncode == 0
    listing = json.loads(distspace("ls", "--json", env=env).stdout)
    assert [e["path"] for e in listing["entries"]] == ["in-second.txt"]
    assert Cli(tmp_path / "home").ok("ls", "--space", "first") == ""


def test_a_fresh_home_says_what_to_do(tmp_path: Path) -> None:
    assert "create one (distspace init NAME) or join one" in Cli(tmp_path / "home").fails("ls")
