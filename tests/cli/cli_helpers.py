"""Helpers for the CLI tests: the installed ``distspace`` run as a subprocess on one node home,
with or without a daemon on it.

(Named uniquely so test files import it by name; the daemon process helpers are the API
tests', imported as ``tests.node.api_helpers``.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.node.api_helpers import DISTSPACE, STEP_TIMEOUT_S, Daemon, running_daemon

MODES = ("direct", "daemon")


@dataclass
class Cli:
    """``distspace`` on one home; ``daemon`` is set when one runs there."""

    home: Path
    daemon: Daemon | None = None

    def run(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [DISTSPACE, "--home", str(self.home), *args], input=input or b"", capture_output=True, timeout=STEP_TIMEOUT_S, env=env
        )

    def ok(self, *args: str, input: bytes | None = None) -> str:
        """Run a command that must succeed; its stdout as text."""
        result = self.run(*args, input=input)
        assert result.returncode == 0, f"distspace {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
        assert b"Traceback" not in result.stderr
        return result.stdout.decode()

    def fails(self, *args: str, code: int = 1) -> str:
        """Run a command that must fail with ``code`` and no traceback; its stderr as text."""
        result = self.run(*args)
        assert result.returncode == code, f"distspace {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
        assert b"Traceback" not in result.stderr
        return result.stderr.decode()


@contextmanager
def node(home: Path, mode: str) -> Iterator[Cli]:
    """A home holding one space, "main"; in "daemon" mode with a daemon running on it."""
    cli = Cli(home)
    cli.ok("init", "main")
    if mode == "direct":
        yield cli
        return
    with running_daemon(home) as daemon:
        cli.daemon = daemon
        yield cli
