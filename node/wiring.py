"""How a daemon's network part is wired to the rest of the node: the one description of it.

``run_network(services)`` is what ``node.daemon.run_daemon`` starts (``network=run_network``)
once the local API listens. It runs a ``Network`` (node/network.py) and a ``PresenceRelay``
(node/presence.py) for the daemon's ``NodeServices`` (node/services.py), reports the running
``Network`` through ``task_status.started`` (``services.network`` from then on: its ``addrs()``
are the listen addresses) and runs until cancelled. Between them, every path is one of these:

- local writes: the sync driver hears the repo's ``StoreEvent`` of each local commit itself
  (``Repo.subscribe``) and pushes it to peers;
- remote changes: the driver stores them through ``repo.apply``, whose ``StoreEvent`` reaches
  API subscribers through the bus;
- new spaces: every genesis stored — created through the API, joined with its genesis, or
  fetched from a peer — is one ``SpaceStored`` from the repo, which the ``Network`` hears itself
  and starts serving;
- joins: ``JoinRequested`` on the bus (and ``services.joins()`` left from before, at start)
  make the network fetch the space's genesis from the peers named;
- the network's reports (node/events.py's ``NetworkEvent``) go on the bus; the peer table
  (``services.peers``, what ``node.peers`` and ``subscribe.peers`` show) follows the peer and
  session ones;
- presence: a local ``PresenceEvent`` goes to the peers syncing its space, and to a peer at
  once when a session with it opens; a peer's comes back into ``services.presence`` under its
  peer id, and goes when it disconnects.
- peer records (who each member says it is, node/peer_records.py): ours of every space is
  issued at start (and as a space is stored, by ``NodeServices``); a ``PeerRecordRelay``
  (node/peer_record_relay.py) sends a peer our book of a space when a session of it opens, and
  what is new to us to the space's other peers; records waiting for their key's grant are
  taken when the capability log grows (``CapabilitiesAdded``).

The options are the daemon's (``services.options``: the command line merged with
``config.toml``); ``config.metrics_port`` turns the metrics endpoint on.

Folder mirrors (node/mirror.py) are the daemon's other part: ``run_mirrors(services)``, which
``run_daemon`` starts (``mirrors=run_mirrors``) after the network part, reports a ``Mirrors``
(``services.mirrors``) that runs one ``run_mirror`` per mirrored folder in a nursery of its own.
At most one folder per space and one space per folder, neither the node home nor inside it
(``node.config.check_folder``). The daemon awaits the folder it was started with
(``up --folder``, ``folder`` in config.toml): its first checkout is done before the ready line,
and a failure there stops the daemon with the reason. ``mirror.start`` (``distspace clone``)
adds one while the daemon runs; its progress and a failure, then or later, are in
``Mirrors.status()`` (``mirror.status``), and the daemon keeps serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import trio

from node.config import FolderRefused, check_folder
from node.errors import LocalNodeError, NodeError
from node.events import JoinRequested, PeerDisconnected, Presence, PresenceEvent, SessionOpened
from node.host import LOOPBACK_LISTEN_ADDRS
from node.logs import event
from node.mirror import Mirror, run_mirror
from node.network import Network, NetworkOptions
from node.peer_record_relay import PeerRecordRelay
from node.presence import PresenceRelay, PresenceUpdate
from node.services import NodeServices
from store.errors import StoreError
from store.repo import CapabilitiesAdded

__all__ = ["MirrorFailed", "Mirrors", "run_mirrors", "run_network"]

log = logging.getLogger("distspace.wiring")

# What a mirror's task may fail with and leave the daemon running: the disk, the store, the
# folder's own refusals. Anything else is a bug and stops the daemon, as elsewhere.
MIRROR_FAILURES = (OSError, NodeError, StoreError)


async def run_network(services: NodeServices, *, task_status: trio.TaskStatus[Network] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the daemon's network part until cancelled; see the module docstring."""
    daemon = services.options
    if daemon is None:
        raise ValueError("run_network needs a daemon's services (options set)")
    options = NetworkOptions(
        listen=daemon.listen or LOOPBACK_LISTEN_ADDRS,
        peers=daemon.peers,
        relay=daemon.relay,
        mdns=daemon.mdns,
        metrics_port=services.config.metrics_port,
        reserve_on=services.config.relays,
        reachability=services.config.reachability,
        hole_punch=services.config.hole_punch,
    )
    own_peer_id = services.identity.peer_id
    bus = services.bus

    def share(presence: Presence, *, removed: bool) -> None:
        update = PresenceUpdate(presence.space, presence.client, presence.path, presence.cursor, presence.selection, presence.name, removed)
        presence_relay.publish(update)

    def on_local_presence(change: PresenceEvent) -> None:
        if change.local:
            share(change.presence, removed=change.removed)

    def on_session_opened(opened: SessionOpened) -> None:
        for presence in services.presence.entries(opened.space):
            if presence.peer_id == own_peer_id:
                share(presence, removed=False)  # the new peer sees our cursors at once

    def on_peer_disconnected(gone: PeerDisconnected) -> None:
        for genesis in services.repo.spaces():
            for presence in services.presence.entries(genesis.space_id):
                if presence.peer_id == gone.peer_id:
                    services.presence.remove(presence.key, local=False)

    def on_remote_presence(peer_id: str, update: PresenceUpdate) -> None:
        if update.removed:
            services.presence.remove((update.space, peer_id, update.client), local=False)
            return
        presence = Presence(
            update.space, peer_id, update.client, update.path, update.cursor, update.selection, update.name, services.clock()
        )
        services.presence.update(presence, local=False)

    def on_capabilities_added(added: CapabilitiesAdded) -> None:
        kept = services.peer_records.retry(added.space, services.repo)
        if kept:
            record_relay.publish(added.space, kept)

    network = Network(services.repo, options, home=services.home.path, on_event=bus.publish)
    presence_relay = PresenceRelay(network, on_remote_presence)
    record_relay = PeerRecordRelay(network, services.repo, services.peer_records)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.serve)
        await nursery.start(presence_relay.run)
        await nursery.start(record_relay.run)
        if services.config.ipfs_api:  # snapshots into IPFS (node/ipfs.py), aioipfs on the host's asyncio thread
            from node.ipfs import run_ipfs

            await nursery.start(run_ipfs, services, network.host)
        unlisten = [
            bus.listen(JoinRequested, lambda asked: network.join(asked.request.space, asked.request.peers)),
            bus.listen(PresenceEvent, on_local_presence),
            bus.listen(SessionOpened, on_session_opened),
            bus.listen(SessionOpened, lambda opened: record_relay.session_opened(opened.peer_id, opened.space)),
            bus.listen(PeerDisconnected, on_peer_disconnected),
            bus.listen(CapabilitiesAdded, on_capabilities_added),
        ]
        try:
            for genesis in services.repo.spaces():
                services.publish_own_record(genesis.space_id)
            for request in services.joins():
                network.join(request.space, request.peers)
            task_status.started(network)
            await trio.sleep_forever()
        finally:
            for stop in unlisten:
                stop()


async def run_mirrors(services: NodeServices, *, task_status: trio.TaskStatus[Mirrors] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the daemon's folder mirrors until cancelled: the folder of ``services.options``
    (``up --folder``, else config.toml's ``folder``) first, reported once its first checkout is
    done; then those ``mirror.start`` adds.

    Raises:
        FolderRefused, MirrorFailed: the daemon's own folder cannot be mirrored.
        UnknownSpace: its space is not on this node.
    """
    daemon = services.options
    if daemon is None:
        raise ValueError("run_mirrors needs a daemon's services (options set)")
    async with trio.open_nursery() as nursery:
        mirrors = Mirrors(services, nursery)
        if daemon.folder is not None:
            await mirrors.start(services.space_id(daemon.folder_space), daemon.folder)
        task_status.started(mirrors)
        await trio.sleep_forever()


class MirrorFailed(LocalNodeError):
    """A mirror could not do its first checkout (the message says why)."""


MirrorState = Literal["starting", "running", "failed"]


@dataclass(slots=True)
class _Entry:
    space: bytes
    folder: Path
    state: MirrorState = "starting"
    mirror: Mirror | None = None
    scanning: Mirror | None = None  # the mirror during its first scan, for its progress
    error: str | None = None


class Mirrors:
    """The daemon's folder mirrors, each a ``run_mirror`` task in the daemon's nursery."""

    def __init__(self, services: NodeServices, nursery: trio.Nursery) -> None:
        self._services = services
        self._nursery = nursery
        self._entries: dict[bytes, _Entry] = {}

    async def start(self, space: bytes, folder: Path) -> Mirror:
        """Mirror ``space`` into ``folder``; returns once its first checkout is done.

        Raises:
            FolderRefused: see ``check``. MirrorFailed: the first checkout failed.
        """
        entry = self._add(space, folder)
        mirror: Mirror | None = await self._nursery.start(self._run, entry)
        if mirror is None:
            self._entries.pop(space, None)
            raise MirrorFailed(f"cannot mirror into {entry.folder}: {entry.error}")
        return mirror

    def start_soon(self, space: bytes, folder: Path) -> Path:
        """Mirror ``space`` into ``folder`` from now on; ``status()`` tells how it goes. Returns
        the folder as mirrored (absolute).

        Raises:
            FolderRefused: see ``check``.
        """
        entry = self._add(space, folder)
        self._nursery.start_soon(self._run, entry)
        return entry.folder

    def check(self, space: bytes, folder: Path) -> Path:
        """``folder`` made absolute, if ``space`` may be mirrored into it.

        Raises:
            FolderRefused: the folder breaks a rule of ``check_folder``, the space is mirrored
                into another folder already, or the folder (or one around or inside it) holds
                another space's mirror.
        """
        absolute = check_folder(folder, self._services.home.path)
        live = [entry for entry in self._entries.values() if entry.state != "failed"]  # a failed one may be started again
        for other in live:
            if other.space == space:
                raise FolderRefused(f"the space is mirrored into {other.folder} already (one folder per space)")
            if absolute.is_relative_to(other.folder) or other.folder.is_relative_to(absolute):
                raise FolderRefused(f"{absolute} overlaps {other.folder}, the mirror of space {other.space.hex()}")
        return absolute

    def status(self) -> list[dict[str, Any]]:
        """Each mirror as ``mirror.status`` shows it (node/api_schema.json's MirrorStatus)."""
        return [_status_json(entry) for entry in self._entries.values()]

    def _add(self, space: bytes, folder: Path) -> _Entry:
        entry = _Entry(space, self.check(space, folder))
        self._entries[space] = entry
        return entry

    async def _run(self, entry: _Entry, *, task_status: trio.TaskStatus[Mirror | None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run one mirror until cancelled; a failure is recorded in its entry, not raised, and
        one before its first checkout is done starts it with None."""
        event(log, "mirror.starting", space=entry.space.hex(), folder=entry.folder)
        try:
            async with trio.open_nursery() as nursery:
                made = partial(setattr, entry, "scanning")
                entry.mirror = await nursery.start(partial(run_mirror, self._services, entry.space, entry.folder, made=made))
                entry.state = "running"
                event(log, "mirror.running", space=entry.space.hex(), folder=entry.folder)
                task_status.started(entry.mirror)
        except* MIRROR_FAILURES as failures:
            entry.state, entry.error = "failed", "; ".join(str(error) for error in failures.exceptions)
            event(log, "mirror.failed", logging.ERROR, space=entry.space.hex(), folder=entry.folder, error=entry.error)
        if entry.mirror is None:
            task_status.started(None)


def _status_json(entry: _Entry) -> dict[str, Any]:
    base: dict[str, Any] = {"space": entry.space.hex(), "folder": str(entry.folder), "state": entry.state, "error": entry.error}
    if entry.mirror is None:
        scan = entry.scanning.status()["scan"] if entry.scanning is not None and entry.state == "starting" else None
        return {**base, "files": None, "pending": None, "watcher": None, "last_error": None, "last_sync_ms": None, "scan": scan}
    shown = entry.mirror.status()
    return {
        **base,
        "files": shown["files"],
        "pending": shown["pending"],
        "watcher": shown["watcher"] if shown.get("watcher") in {"inotify", "polling"} else None,  # None: not watching yet
        "last_error": shown["last_error"],
        "last_sync_ms": shown["last_sync_ms"],
        "scan": shown["scan"],
    }
