"""The daemon: one process per node home that holds the store, serves the local API, runs the network.

``run_daemon`` is the whole lifecycle:

1. Take the home lock (which makes the home 0700 if it was wider; node/home.py). The lock is
   the one mutex over the store: the daemon holds it for its life, and a ``distspace`` command
   that finds no daemon holds it while it works on the store directly (cli/connect.py). So a second daemon fails at once (``HomeLocked``), and a daemon
   started while a command works waits for the command, up to LOCK_WAIT_S.
2. Open the repo and build the ``NodeServices`` the API and the network share.
3. Serve the local API (node/api.py), then start the network part, if one is plugged in.
4. Write ``daemon.json`` (pid, API endpoints, listen addresses) and print the ready line:
   ``{"event": "ready", "peer_id": ..., "addrs": [...], "api": {...}}`` as the first stdout line
   with ``json_ready``, a sentence otherwise.
5. Run until SIGTERM or SIGINT, then cancel every task, remove ``daemon.json`` and the socket,
   close the repo and release the lock, in that order.

Plugging in the network. ``run_daemon(network=...)`` takes one ``NetworkRunner``
(``node.wiring.run_network``, whose docstring is the contract between the two), started with
``nursery.start(network, services)`` once the API listens and cancelled at shutdown; what it
reports through ``task_status.started`` is ``services.network``. Without one (``network``
None) the daemon serves the store alone. The folder mirrors are plugged in the same way, after
the network (``mirrors=node.wiring.run_mirrors``, reported as ``services.mirrors``); the
folder the daemon was started with is mirrored before the ready line, which lists it
(``"mirrors": [{"space", "folder"}]``, as daemon.json does).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import IO, Any, Protocol

import trio

from node import logs
from node.api import serve_api
from node.config import check_folder
from node.errors import HomeLocked, NodeError
from node.home import NodeHome, make_files_private, write_atomically
from node.logs import event
from node.services import DaemonOptions, NodeServices, RunningMirrors, RunningNetwork
from store.errors import StoreError
from store.repo import Repo

# A distspace command holds the lock for one call (milliseconds to a few seconds for a verify of
# a large store); a daemon started meanwhile waits this long for it before giving up.
LOCK_WAIT_S = 10.0
LOCK_POLL_S = 0.05
# Idle-time snapshots (Repo.maintain): often enough that a doc never replays more than a few
# thousand changes on open, rarely enough to cost nothing when there is nothing due.
MAINTAIN_INTERVAL_S = 60.0
PRESENCE_SWEEP_S = 5.0

log = logging.getLogger("distspace.daemon")


class NetworkRunner(Protocol):
    """The network part (node/wiring.py): listens, reports itself with ``task_status.started``,
    runs until cancelled."""

    async def __call__(self, services: NodeServices, *, task_status: trio.TaskStatus[RunningNetwork] = ...) -> None: ...


class MirrorsRunner(Protocol):
    """The folder mirrors (node/wiring.py): the configured folder checked out, then reports
    itself with ``task_status.started``; runs until cancelled."""

    async def __call__(self, services: NodeServices, *, task_status: trio.TaskStatus[RunningMirrors] = ...) -> None: ...


async def run_daemon(
    home: NodeHome,
    *,
    listen: Sequence[str] = (),
    peers: Sequence[str] = (),
    relay: bool | None = None,
    mdns: bool | None = None,
    json_ready: bool = False,
    folder: Path | None = None,
    folder_space: str | None = None,
    network: NetworkRunner | None = None,
    mirrors: MirrorsRunner | None = None,
    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the node on ``home`` until SIGTERM or SIGINT (or cancellation).

    Options left out come from ``config.toml``: ``listen`` and ``peers`` (added to the config's
    bootstrap peers), ``relay``, ``mdns``, and ``folder`` with ``folder_space`` (a ``folder``
    given here mirrors ``folder_space``, else the default space), which ``mirrors`` runs.

    Raises:
        HomeLocked: a daemon already runs on the home, or a command kept it locked too long.
        ConfigError, IdentityError, ApiStartError, StoreError: the home cannot be served.
    """
    with ExitStack() as stack:
        stack.enter_context(await _take_lock(home))
        stack.callback(home.daemon_file.unlink, missing_ok=True)
        config = home.config()
        if folder is None:
            folder, folder_space = config.folder_path(), config.folder_space
        if folder is not None:
            folder = check_folder(folder, home.path)  # refused before anything starts
        identity = home.identity()
        options = DaemonOptions(
            listen=tuple(listen) or config.listen,
            peers=tuple(dict.fromkeys([*config.bootstrap, *peers])),
            relay=config.relay if relay is None else relay,
            mdns=config.mdns if mdns is None else mdns,
            folder=folder,
            folder_space=folder_space,
        )
        repo = stack.enter_context(Repo.open(home.database, identity, snapshot_every=config.snapshot_every))
        services = NodeServices(home, config, identity, repo, options=options)
        stack.callback(services.close)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                ready = await _start(nursery, services, network, mirrors)
                print(json.dumps(ready) if json_ready else _ready_sentence(ready), flush=True)
                task_status.started(ready)
                async for signum in signals:
                    event(log, "daemon.stopping", signal=signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    event(log, "daemon.stopped")


async def _start(nursery: trio.Nursery, services: NodeServices, network: NetworkRunner | None, mirrors: MirrorsRunner | None) -> dict[str, Any]:
    """Start the API, the network part, the mirrors and the housekeeping; returns the ready record."""
    home = services.home
    endpoints = await nursery.start(partial(serve_api, services, port=services.config.api_port, socket_path=home.api_socket))
    if network is not None:
        services.network = await nursery.start(network, services)
    else:
        event(log, "daemon.no_network", logging.WARNING, note="peer networking is not plugged in yet; serving the store alone")
    if mirrors is not None:
        services.mirrors = await nursery.start(mirrors, services)
    nursery.start_soon(_maintain, services)
    nursery.start_soon(_expire_presence, services)
    running = services.mirrors.status() if services.mirrors is not None else []
    info = {
        "peer_id": services.identity.peer_id,
        "addrs": services.addrs(),
        "api": endpoints.to_json(),
        "mirrors": [{"space": mirror["space"], "folder": mirror["folder"]} for mirror in running],
    }
    write_atomically(home.daemon_file, json.dumps({"pid": os.getpid(), "started_ms": services.started_ms, **info}, indent=1))
    event(log, "daemon.ready", pid=os.getpid(), peer_id=services.identity.peer_id, home=home.path)
    return {"event": "ready", **info}


async def _take_lock(home: NodeHome) -> IO[str]:
    """The home lock; waits while a distspace command holds it, fails at once for a daemon."""
    deadline = trio.current_time() + LOCK_WAIT_S
    waiting = False
    while True:
        try:
            return home.lock()
        except HomeLocked:
            pid = _running_daemon_pid(home)
            if pid is not None:
                raise HomeLocked(f"a daemon already runs on {home.path} (pid {pid})") from None
            if trio.current_time() >= deadline:
                raise HomeLocked(f"{home.path} stayed locked by another distspace command for {LOCK_WAIT_S:.0f} s") from None
            if not waiting:
                waiting = True
                event(log, "daemon.waiting_for_lock", home=home.path, limit_s=LOCK_WAIT_S)
            await trio.sleep(LOCK_POLL_S)


def _running_daemon_pid(home: NodeHome) -> int | None:
    """The pid in ``daemon.json`` if that process is alive (the file of a crashed daemon is stale)."""
    try:
        pid = json.loads(home.daemon_file.read_text())["pid"]
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if isinstance(pid, int) else None


async def _maintain(services: NodeServices) -> None:
    while True:
        await trio.sleep(MAINTAIN_INTERVAL_S)
        try:
            saved = services.repo.maintain(services.clock())
        except StoreError as error:
            event(log, "daemon.maintain_failed", logging.ERROR, error=error)
            continue
        if saved:
            event(log, "daemon.snapshots", docs=saved)


async def _expire_presence(services: NodeServices) -> None:
    while True:
        await trio.sleep(PRESENCE_SWEEP_S)
        services.presence.expire(services.clock(), services.identity.peer_id)


def _ready_sentence(ready: dict[str, Any]) -> str:
    api = ready["api"]
    mirrored = "".join(f", mirroring {mirror['folder']}" for mirror in ready["mirrors"])
    return f"distspace daemon ready: peer {ready['peer_id']}, API {api['websocket']} and {api['unix']}{mirrored} (Ctrl-C stops it)"


def main(home: NodeHome, **options: Any) -> None:
    """``distspace up``: run the daemon in the foreground, logs on stderr.

    Raises:
        NodeError, StoreError: as ``run_daemon``, unwrapped from trio's exception groups.
    """
    make_files_private()
    logs.configure(sys.stderr)
    # Everything imported so far (libp2p, aiortc, cryptography...) lives as long as the process:
    # moved out of the collector's reach, it is not walked again by every full collection,
    # which otherwise pauses the whole node (sync, API) for tens of milliseconds at a time.
    gc.freeze()
    try:
        trio.run(partial(run_daemon, home, **options))
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], NodeError | StoreError):
            raise leaves[0] from group
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [leaf for error in group.exceptions for leaf in (_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])]
