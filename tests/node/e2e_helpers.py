"""Real daemons for the end-to-end sync tests: ``distspace up`` processes and API clients.

Each daemon is the installed command in a process of its own (``api_helpers.running_daemon``,
which starts it with cli/daemon_process.py as the demo and the benchmarks do: read up to its
ready line, killed in ``finally``). A ``Client`` is one API connection that
subscribes to the space's tree, so waiting for a change is waiting for its notification, then
re-checking the state through the API — never a fixed sleep.

Every daemon also serves its metrics on a free loopback port, and leaving ``daemon`` (without
an error in the block) checks that it contained no failure of its own code — its
``*internal_failures`` and ``handle_failures`` counters are 0 while it runs — and that its log
holds no ``level=error`` line. A daemon the test already stopped or killed is only checked by
its log.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from api_helpers import STEP_TIMEOUT_S, ApiConnection, Daemon, connect, distspace, running_daemon
from node.rpc import RpcError

# Convergence of several daemons after a burst of edits: a few round trips each, plus a
# restarted daemon's import of libp2p (~1 s) and redial backoff.
CONVERGE_TIMEOUT_S = 40.0
# The counters of failures our own code contained (node/network.py, node/sync_driver.py).
FAILURE_METRIC = re.compile(r"^(distspace_\w*(?:internal_failures|handle_failures)_total) (\S+)$", re.MULTILINE)
METRICS_STARTED = re.compile(r"event=metrics\.started port=(\d+)")
ERROR_LINE = re.compile(r"^.*\blevel=error\b.*$", re.MULTILINE)


@dataclass(frozen=True)
class SharedSpace:
    space_id: str
    genesis: str  # base64, as ``distspace init`` prints it


def create_space(home: Path, name: str = "team") -> SharedSpace:
    """An open space (every peer may join by its id): the tests that use it are about sync, not
    membership; test_api_private.py makes private ones and invites."""
    result = json.loads(distspace(home, "--json", "init", name, "--public").stdout)
    return SharedSpace(result["space_id"], result["genesis"])


def join(home: Path, space: SharedSpace) -> None:
    """Join offline, from the genesis record (no daemon runs)."""
    distspace(home, "join", space.space_id, "--genesis", space.genesis)


@contextmanager
def daemon(home: Path, *args: str) -> Iterator[Daemon]:
    """``distspace up`` without mDNS (tests choose their peers), on loopback TCP by default;
    checked for contained failures and error lines on the way out (see the module docstring)."""
    _serve_metrics(home)
    with running_daemon(home, *args) as running:
        yield running
        if running.process.poll() is None:
            assert_no_internal_failures(running)
    assert_no_error_lines(running)


def _serve_metrics(home: Path) -> None:
    """``metrics_port = 0`` in the home's config.toml (first: a top-level key)."""
    config = home / "config.toml"
    text = config.read_text() if config.exists() else ""
    if not re.search(r"^metrics_port\s*=", text, re.MULTILINE):
        config.write_text("metrics_port = 0\n" + text)


def metrics_text(running: Daemon) -> str:
    """The daemon's metrics endpoint (its port from its log), as it answers now."""
    ports = METRICS_STARTED.findall(running.log.read_text(errors="replace"))
    assert ports, f"the daemon logged no metrics port: {running.log}"
    with urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/metrics", timeout=STEP_TIMEOUT_S) as reply:
        return str(reply.read().decode())


def failure_counts(running: Daemon) -> dict[str, float]:
    """The daemon's failure counters, from its metrics endpoint."""
    return {name: float(value) for name, value in FAILURE_METRIC.findall(metrics_text(running))}


def metric(running: Daemon, name: str) -> float:
    """One of the daemon's counters (``distspace_`` left off), 0 while it has none."""
    found = re.search(rf"^distspace_{name} (\S+)$", metrics_text(running), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def members(home: Path) -> dict[str, dict[str, Any]]:
    """A private space's grants in force by peer id (not the invitations' keys), as
    ``distspace members`` lists them (through the daemon if one runs, else the store)."""
    listed = json.loads(distspace(home, "members", "--json").stdout)
    return {m["peer_id"]: m for m in listed["members"] if not m["invitation"]}


def assert_no_internal_failures(running: Daemon) -> None:
    failures = {name: value for name, value in failure_counts(running).items() if value}
    assert not failures, f"the daemon contained failures of its own: {failures}; see {running.log}"


def assert_no_error_lines(running: Daemon) -> None:
    errors = ERROR_LINE.findall(running.log.read_text(errors="replace"))
    assert not errors, f"{len(errors)} error lines in {running.log}, the first: {errors[0][:2000]}"


def addr(daemon: Daemon, transport: str = "/tcp/") -> str:
    return next(a for a in daemon.ready["addrs"] if transport in a)


class Client:
    """One API connection to a daemon, subscribed to the space's tree and to its peers."""

    def __init__(self, connection: ApiConnection, daemon: Daemon) -> None:
        self.api = connection
        self.daemon = daemon

    async def read(self, path: str) -> str | None:
        try:
            return (await self.api.call("fs.read", path=path))["text"]
        except RpcError:
            return None

    async def write(self, path: str, text: str) -> None:
        await self.api.call("fs.write", path=path, text=text, parents=False)

    async def splice(self, path: str, position: int, insert: str) -> None:
        await self.api.call("fs.splice", path=path, position=position, delete=0, insert=insert)

    async def files(self) -> dict[str, str | None]:
        """Every file at the root and its text."""
        entries = (await self.api.call("fs.ls", path=""))["entries"]
        return {e["path"]: await self.read(e["path"]) for e in entries if e["kind"] == "file"}

    async def peers(self) -> list[str]:
        return [p["peer_id"] for p in (await self.api.call("node.peers"))["peers"]]

    async def verify(self) -> dict[str, Any]:
        return await self.api.call("node.verify")

    async def until(self, check: Callable[[], Awaitable[bool]], timeout_s: float = CONVERGE_TIMEOUT_S) -> None:
        """Re-check after every notification (tree or peers changed) until ``check`` holds."""
        with trio.fail_after(timeout_s):
            while not await check():
                await self.api.notification()


@asynccontextmanager
async def client(daemon: Daemon) -> AsyncIterator[Client]:
    async with connect(daemon, "unix") as connection:
        await connection.call("subscribe.tree")
        await connection.call("subscribe.peers")
        yield Client(connection, daemon)


async def wait_converged(clients: list[Client], markers: list[str], path: str) -> str:
    """Wait until every client's ``path`` holds every marker, then check they are identical."""
    for each in clients:

        async def has_all(each: Client = each) -> bool:
            text = await each.read(path)
            return text is not None and all(marker in text for marker in markers)

        await each.until(has_all)
    texts = [await each.read(path) for each in clients]
    assert all(text == texts[0] for text in texts), texts
    return texts[0] or ""


__all__ = [
    "STEP_TIMEOUT_S",
    "Client",
    "SharedSpace",
    "addr",
    "assert_no_error_lines",
    "assert_no_internal_failures",
    "client",
    "create_space",
    "daemon",
    "failure_counts",
    "join",
    "members",
    "metric",
    "metrics_text",
    "wait_converged",
]
