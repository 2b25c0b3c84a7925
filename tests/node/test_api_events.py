"""What the API and the network share, in-process: the node services, the subscriptions' fan-out
of peer and presence events, space resolution, joins, and the methods that need a daemon.

Real components on a real SQLite store in a temporary home; the only stand-in is a ``Sink`` that
keeps what it is sent, where a connection would queue it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.api_methods import Call, dispatch
from node.api_schema import schema
from node.events import PeerConnected, PeerDisconnected, PeerPenalty, Presence, SessionOpened
from node.home import NodeHome
from node.rpc import DAEMON_REQUIRED, RpcError
from node.services import PRESENCE_TTL_MS, DaemonOptions, NodeServices
from node.subscriptions import Subscriptions
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.identity import Identity
from store.errors import InvalidInput, UnknownSpace
from store.repo import Repo

BOB = "12D3KooWBobBobBobBobBobBobBobBobBobBobBobBobBobBobBob"


class Inbox:
    """A connection's stand-in: keeps every notification, checked against the schema."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []

    def notify(self, method: str, params: dict[str, Any]) -> None:
        schema().check_notification(method, params)
        self.received.append((method, params))


class Clock:
    def __init__(self) -> None:
        self.now_ms = NOW_MS

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(tmp_path: Path, clock: Clock) -> Iterator[NodeServices]:
    home = NodeHome(tmp_path / "home")
    identity = Identity(bytes([0xA1]) * 32)
    home.ensure()
    with Repo.open(home.database, identity) as repo:
        options = DaemonOptions(listen=(), peers=(), relay=False, mdns=False)
        node = NodeServices(home, home.config(), identity, repo, options=options, clock=clock)
        yield node
        node.close()


@pytest.fixture
def space(services: NodeServices) -> str:
    return services.repo.create_space("main", NOW_MS).space_id.hex()


def test_network_reports_on_the_bus_keep_the_peer_table_and_reach_peer_subscribers(services: NodeServices, space: str) -> None:
    """The reports are published by hand here, as a network part publishes them; the daemon
    tests (test_e2e_daemons.py) see them come from a real network."""
    subscriptions, inbox = Subscriptions(services), Inbox()
    assert subscriptions.peers(inbox)["peers"] == []

    services.bus.publish(PeerConnected(BOB, ("/ip4/127.0.0.1/tcp/4001",)))
    services.bus.publish(SessionOpened(BOB, bytes.fromhex(space), outbound=True))
    assert [(p.peer_id, p.addrs, p.spaces, p.connected_ms) for p in services.peers.list()] == [
        (BOB, ("/ip4/127.0.0.1/tcp/4001",), (bytes.fromhex(space),), NOW_MS)
    ]
    services.bus.publish(PeerPenalty(BOB, "garbage", "not CBOR", 10.0, banned=False))  # not a peer table change
    services.bus.publish(PeerDisconnected(BOB))

    assert [(m, p["event"], p["peer"]["spaces"]) for m, p in inbox.received] == [
        ("peers.changed", "connected", []),
        ("peers.changed", "updated", [space]),
        ("peers.changed", "disconnected", [space]),
    ]
    assert inbox.received[0][1]["peer"]["addrs"] == ["/ip4/127.0.0.1/tcp/4001"]
    assert services.peers.list() == []


def test_presence_reaches_its_space_and_expires(services: NodeServices, space: str, clock: Clock) -> None:
    subscriptions, watcher, editor = Subscriptions(services), Inbox(), Inbox()
    subscriptions.presence(watcher, bytes.fromhex(space))
    here = Presence(bytes.fromhex(space), services.identity.peer_id, "vim", "a.py", 4, None, None, clock())
    subscriptions.set_presence(editor, here)
    remote = Presence(bytes.fromhex(space), BOB, "emacs", "b.py", 9, (1, 9), "Bob", clock())
    services.presence.update(remote, local=False)
    assert [(p["presence"]["client"], p["removed"]) for _, p in watcher.received] == [("vim", False), ("emacs", False)]

    clock.now_ms += PRESENCE_TTL_MS + 1
    assert services.presence.expire(clock(), services.identity.peer_id) == 2
    assert services.presence.entries(bytes.fromhex(space)) == []
    assert [p["removed"] for _, p in watcher.received[2:]] == [True, True]
    subscriptions.drop(editor)  # already expired: nothing more to say
    assert len(watcher.received) == 4


def test_a_closed_connection_takes_its_subscriptions_and_presence_along(services: NodeServices, space: str) -> None:
    subscriptions, watcher, editor = Subscriptions(services), Inbox(), Inbox()
    subscriptions.presence(watcher, bytes.fromhex(space))
    subscriptions.tree(editor, services.workspace(bytes.fromhex(space)))
    subscriptions.set_presence(editor, Presence(bytes.fromhex(space), services.identity.peer_id, "vim", None, None, None, None, NOW_MS))
    assert len(subscriptions) == 2
    subscriptions.drop(editor)
    assert len(subscriptions) == 1
    assert watcher.received[-1][1]["removed"] is True


def test_methods_that_need_a_daemon_say_so(services: NodeServices, space: str) -> None:
    for method, params in [
        ("subscribe.file", {"path": "a"}),
        ("subscribe.tree", {}),
        ("subscribe.peers", {}),
        ("subscribe.presence", {}),
        ("unsubscribe", {"subscription": 1}),
        ("presence.set", {}),
        ("presence.clear", {}),
        ("presence.list", {}),
    ]:
        with pytest.raises(RpcError) as caught:
            dispatch(Call(services), method, params)
        assert caught.value.code == DAEMON_REQUIRED, method


def test_a_space_is_named_by_name_id_or_prefix(services: NodeServices) -> None:
    with pytest.raises(UnknownSpace, match="holds no space yet"):
        services.space_id(None)
    first = services.repo.create_space("alpha", NOW_MS).space_id
    assert services.space_id(None) == first
    second = services.repo.create_space("beta", NOW_MS).space_id
    with pytest.raises(InvalidInput, match="holds 2 spaces"):
        services.space_id(None)
    assert services.space_id("beta") == second
    assert services.space_id(first.hex()[:8].upper()) == first
    with pytest.raises(UnknownSpace, match="no space 'gamma'"):
        services.space_id("gamma")
    with pytest.raises(UnknownSpace):
        services.space_id(first.hex()[:7])  # too short to be taken as a prefix


def test_the_first_space_created_is_the_default_from_then_on(services: NodeServices) -> None:
    services.home.config_file.write_text('name = "alice"\n')
    first = dispatch(Call(services), "space.create", {"name": "alpha"})["space_id"]
    dispatch(Call(services), "space.create", {"name": "beta"})
    assert services.space_id(None).hex() == first
    reread = services.home.config()  # kept in config.toml for the next command, beside the rest
    assert (reread.space, reread.name) == (first, "alice")


def test_a_joined_space_is_the_default_even_before_it_arrives(services: NodeServices) -> None:
    joined = bytes(range(32)).hex()
    dispatch(Call(services), "space.join", {"space_id": joined, "peers": ["/ip4/127.0.0.1/tcp/1"]})
    services.repo.create_space("local", NOW_MS)
    with pytest.raises(UnknownSpace, match="not on this node yet"):
        services.space_id(None)


def test_joins_are_recorded_merged_and_kept(services: NodeServices, clock: Clock) -> None:
    space = bytes(range(32))
    services.request_join(space, ("/ip4/127.0.0.1/tcp/1",))
    services.request_join(space, ("/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/1"))
    (request,) = services.joins()
    assert (request.space, request.peers) == (space, ("/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"))
    reopened = NodeServices(services.home, services.config, services.identity, services.repo)
    assert reopened.joins() == [request]
    reopened.close()
