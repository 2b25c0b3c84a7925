"""Daemons in namespaces: ``distspace up`` run with ``ip netns exec`` in a host of a topology.

A ``Node`` is one host's home and, while it runs, its daemon (started with cli/daemon_process.py
as every other test's, through ``Host.command``: the namespace is only a prefix of the argv).
It listens on its host's address on a fixed port, so its address stays the same across
restarts and every other node can be told it before it first starts. The API is the Unix
socket in its home; its metrics port (loopback in its namespace) is read from inside.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from api_helpers import DISTSPACE, Daemon, distspace
from benchmarks.netns_topology import Host
from cli.daemon_process import DaemonNotReady, start_daemon
from e2e_helpers import CONVERGE_TIMEOUT_S, ERROR_LINE, FAILURE_METRIC, METRICS_STARTED, SharedSpace
from node.home import NodeHome
from store.repo import Repo

PORT = 4001  # every host has an address of its own: one port for all
# Daemons start in parallel on a loaded two-core machine; one that says nothing in this long is broken.
READY_TIMEOUT_S = 60.0
POLL_S = 0.2  # the pace of a bounded poll of other processes' state
METRICS_FETCH = "import sys, urllib.request; print(urllib.request.urlopen(f'http://127.0.0.1:{sys.argv[1]}/metrics', timeout=10).read().decode())"


def peer_id(home: Path) -> str:
    return str(json.loads(distspace(home, "id", "--json").stdout)["peer_id"])


@dataclass
class Node:
    """One host's home and its daemon (None while stopped)."""

    host: Host
    home: Path
    peer_id: str = ""
    daemon: Daemon | None = None
    starts: int = field(default=0)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def listen(self) -> str:
        return f"/ip4/{self.host.address}/tcp/{PORT}"

    @property
    def dial(self) -> str:
        return f"{self.listen}/p2p/{self.peer_id}"

    @property
    def log(self) -> Path:
        return self.home.parent / f"{self.home.name}-daemon.log"

    def start(self, *args: str, listen: bool = True) -> Daemon:
        """``distspace up --listen <host>:PORT ARGS`` in the host's namespace, once ready;
        without ``listen``, where the home's config says (init's default: every interface)."""
        if self.daemon is not None:
            raise AssertionError(f"{self.name}'s daemon runs already")
        _serve_metrics(self.home)
        try:
            started = start_daemon(
                self.home, *(("--listen", self.listen) if listen else ()), *args, log=self.log, command=self.host.command(DISTSPACE), ready_timeout_s=READY_TIMEOUT_S
            )
        except DaemonNotReady as error:
            raise AssertionError(f"{error}: {self.log.read_text(errors='replace')[-4000:]}") from None
        self.starts += 1
        self.daemon = Daemon(NodeHome(self.home), started.process, started.ready, self.log)
        return self.daemon

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash or a pulled plug."""
        if self.daemon is not None:
            self.daemon.process.kill()
            self.daemon.process.wait()
            self.daemon = None

    def stop(self) -> None:
        """SIGTERM and wait (killed if it lingers)."""
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def failures(self) -> dict[str, float]:
        """The daemon's counters of failures its own code contained, non-zero ones only."""
        assert self.daemon is not None
        ports = METRICS_STARTED.findall(self.log.read_text(errors="replace"))
        assert ports, f"{self.name}'s daemon logged no metrics port: {self.log}"
        text = self.host.run(sys.executable, "-c", METRICS_FETCH, ports[-1]).stdout
        return {name: float(value) for name, value in FAILURE_METRIC.findall(text) if float(value)}


def _serve_metrics(home: Path) -> None:
    config = home / "config.toml"
    text = config.read_text() if config.exists() else ""
    if "metrics_port" not in text:
        config.write_text("metrics_port = 0\n" + text)


def join_all(nodes: list[Node], space: SharedSpace) -> None:
    """Every node but the first (which made ``space``) joins it offline; all learn their ids."""
    for node in nodes[1:]:
        distspace(node.home, "join", space.space_id, "--genesis", space.genesis)
    for node in nodes:
        node.peer_id = peer_id(node.home)


@contextmanager
def running(nodes: list[Node]) -> Iterator[list[Node]]:
    """Never leaves a daemon running; on the way out (without an error) checks each running
    daemon contained no failure of its own, and every log of the block for error lines."""
    try:
        yield nodes
        for node in nodes:
            if node.daemon is not None:
                assert not node.failures(), f"{node.name}'s daemon contained failures: {node.failures()}; see {node.log}"
    finally:
        for node in nodes:
            node.kill()
    for node in nodes:
        errors = ERROR_LINE.findall(node.log.read_text(errors="replace")) if node.starts else []
        assert not errors, f"{len(errors)} error lines in {node.log}, the first: {errors[0][:2000]}"


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = CONVERGE_TIMEOUT_S) -> None:
    """Until ``check`` holds, polled within ``timeout_s``: for states across several daemons,
    which no one notification announces."""
    with trio.fail_after(timeout_s):
        for _ in itertools.count():
            if await check():
                return
            await trio.sleep(POLL_S)  # noqa: sleep — a bounded poll of other processes' state


def stored_heads(home: Path) -> dict[bytes, list[bytes]]:
    """Every doc's heads in the node's store, read with no daemon running."""
    node = NodeHome(home)
    repo = Repo.open(node.database, node.identity())
    try:
        (genesis,) = repo.spaces()
        return {doc: sorted(repo.heads(genesis.space_id, doc)) for doc in repo.doc_ids(genesis.space_id)}
    finally:
        repo.close()
