"""``distspace up`` in a process of its own, started and stopped one way: by the demo, the
benchmarks and the tests alike.

``up --json`` prints one JSON line on stdout once its API listens (its peer id, addresses and
API endpoints), and nothing after it; ``start_daemon`` returns once that line is read, so a
caller never races a daemon that is still importing libp2p. Its stderr (the log) goes to a file
the caller names, or nowhere. Only the standard library is imported: the CLI imports this.
"""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.errors import CliError

# This same installation, however it was started (no ``distspace`` script on PATH needed).
COMMAND = (sys.executable, "-m", "cli.main")
# A daemon's start is dominated by importing libp2p (~1 s on an idle laptop); ten times that
# and more, so a loaded machine still gets through.
READY_TIMEOUT_S = 30.0
# A daemon stops in well under a second after SIGTERM; one that does not is killed.
STOP_TIMEOUT_S = 10.0


class DaemonNotReady(CliError):
    """The daemon exited, or printed no ready line in time (it was killed); its log says why."""


@dataclass
class DaemonProcess:
    """A running ``distspace up`` and the ready line it printed."""

    process: subprocess.Popen[bytes]
    ready: dict[str, Any]
    _terminated: bool = field(default=False, init=False, repr=False)

    def terminate(self) -> None:
        """SIGTERM, once (a second one would cut its clean shutdown short); ``stop`` waits."""
        if not self._terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self._terminated = True

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL if it lingers past ``timeout_s``; its exit code. Safe to repeat."""
        self.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self._closed()

    def kill(self) -> int:
        """SIGKILL (no clean shutdown), for a caller that is failing anyway; its exit code."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        return self._closed()

    def _closed(self) -> int:
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def stop_all(daemons: Sequence[DaemonProcess], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop every daemon, all shutting down at once rather than one after another."""
    for daemon in daemons:
        daemon.terminate()
    for daemon in daemons:
        daemon.stop(timeout_s)


def start_daemon(
    home: Path,
    *args: str,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = COMMAND,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> DaemonProcess:
    """``COMMAND --home HOME up --json ARGS...``, returned once it is ready.

    Args:
        log: the file its stderr is appended to (None: discarded).
        env: its environment (None: this process's).
        command: the ``distspace`` command to run (the installed script, for a test of it).

    Raises:
        DaemonNotReady: it exited or said nothing within ``ready_timeout_s`` (killed first).
    """
    argv = [*command, "--home", str(home), "up", "--json", *args]
    with open(log, "ab") if log is not None else nullcontext(subprocess.DEVNULL) as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=env)
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        spoke = bool(selector.select(ready_timeout_s))
    line = process.stdout.readline() if spoke else b""
    if not line:
        code = DaemonProcess(process, {}).kill()
        said = f"exited ({code}) before it was ready" if spoke else f"printed nothing within {ready_timeout_s:.0f} s"
        raise DaemonNotReady(f"the daemon on {home} {said}")
    return DaemonProcess(process, json.loads(line))
