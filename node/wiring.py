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

The options are the daemon's (``services.options``: the command line merged with
``config.toml``); ``config.metrics_port`` turns the metrics endpoint on.
"""

from __future__ import annotations

import trio

from node.events import JoinRequested, PeerDisconnected, Presence, PresenceEvent, SessionOpened
from node.host import LOOPBACK_LISTEN_ADDRS
from node.network import Network, NetworkOptions
from node.presence import PresenceRelay, PresenceUpdate
from node.services import NodeServices

__all__ = ["run_network"]


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

    network = Network(services.repo, options, home=services.home.path, on_event=bus.publish)
    presence_relay = PresenceRelay(network, on_remote_presence)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.serve)
        await nursery.start(presence_relay.run)
        unlisten = [
            bus.listen(JoinRequested, lambda asked: network.join(asked.request.space, asked.request.peers)),
            bus.listen(PresenceEvent, on_local_presence),
            bus.listen(SessionOpened, on_session_opened),
            bus.listen(PeerDisconnected, on_peer_disconnected),
        ]
        try:
            for request in services.joins():
                network.join(request.space, request.peers)
            task_status.started(network)
            await trio.sleep_forever()
        finally:
            for stop in unlisten:
                stop()
