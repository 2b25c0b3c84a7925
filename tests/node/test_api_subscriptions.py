"""Subscriptions and presence of the local API, against a real daemon, over both sockets.

An editor's view: alice watches files and the tree over one connection while bob writes over
another; what alice receives must rebuild exactly what bob wrote.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from api_helpers import TRANSPORTS, ApiConnection, Daemon, connect, daemon_with_a_space, own_directory
from node.api import OUTBOX_MESSAGES

SUBSCRIPTIONS = 1000
CONNECTIONS = 4


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_a_space(tmp_path_factory, "subscriptions") as running:
        yield running


@pytest.fixture(params=TRANSPORTS)
async def alice(daemon: Daemon, request: pytest.FixtureRequest) -> AsyncIterator[ApiConnection]:
    async with connect(daemon, request.param) as connection:
        yield connection


@pytest.fixture
async def bob(daemon: Daemon) -> AsyncIterator[ApiConnection]:
    async with connect(daemon, "unix") as connection:
        yield connection


@pytest.fixture
async def root(bob: ApiConnection, request: pytest.FixtureRequest) -> str:
    name = own_directory(request)
    await bob.call("fs.mkdir", path=name)
    return name


async def until(api: ApiConnection, method: str, done: Any) -> list[dict[str, Any]]:
    """Notifications of ``method`` up to the first whose params satisfy ``done``."""
    seen = []
    while True:
        message = await api.notification()
        if message["method"] == method:
            seen.append(message["params"])
            if done(message["params"]):
                return seen


def apply(text: str, edits: list[dict[str, Any]]) -> str:
    for edit in edits:
        text = text[: edit["index"]] + edit["insert"] + text[edit["index"] + edit["delete"] :]
    return text


async def test_file_edits_rebuild_the_content(alice: ApiConnection, bob: ApiConnection, root: str) -> None:
    path = f"{root}/main.py"
    await bob.call("fs.write", path=path, text="def greet(name):\n    return 'hello ' + name\n")
    watched = await alice.call("subscribe.file", path=path)
    buffer = watched["text"]
    steps = [
        ("fs.splice", {"position": 4, "delete": 5, "insert": "welcome"}),
        ("fs.write", {"text": "def welcome(name, punctuation='!'):\n    return 'hi ' + name + punctuation\n"}),
        ("fs.splice", {"position": 0, "delete": 0, "insert": "# 😀 greetings\n"}),
    ]
    for method, params in steps:
        await bob.call(method, path=path, **params)
        heads = (await bob.call("fs.stat", path=path))["heads"]
        for change in await until(alice, "file.changed", lambda p, heads=heads: p["heads"] == heads):
            assert change["subscription"] == watched["subscription"] and change["path"] == path
            buffer = apply(buffer, change["edits"])
        assert buffer == (await bob.call("fs.read", path=path))["text"]


async def test_a_watched_file_is_followed_when_moved_and_removed(alice: ApiConnection, bob: ApiConnection, root: str) -> None:
    await bob.call("fs.write", path=f"{root}/a.txt", text="a")
    watched = await alice.call("subscribe.file", path=f"{root}/a.txt")
    await bob.call("fs.mv", source=f"{root}/a.txt", target=f"{root}/b.txt")
    moved = (await until(alice, "file.changed", lambda p: True))[0]
    assert (moved["path"], moved["file_id"], moved["edits"]) == (f"{root}/b.txt", watched["file_id"], [])
    await bob.call("fs.rm", path=f"{root}/b.txt")
    assert (await until(alice, "file.changed", lambda p: True))[0]["path"] is None


async def test_a_binary_file_sends_its_new_bytes(alice: ApiConnection, bob: ApiConnection, root: str) -> None:
    await bob.call("fs.write", path=f"{root}/logo.png", base64=base64.b64encode(b"\x89PNG\x00one").decode())
    watched = await alice.call("subscribe.file", path=f"{root}/logo.png")
    assert base64.b64decode(watched["base64"]) == b"\x89PNG\x00one"
    await bob.call("fs.write", path=f"{root}/logo.png", base64=base64.b64encode(b"\x89PNG\x00two").decode())
    change = (await until(alice, "file.changed", lambda p: True))[0]
    assert (change["encoding"], base64.b64decode(change["base64"])) == ("binary", b"\x89PNG\x00two")


async def test_tree_changes_name_what_was_added_moved_modified_and_removed(
    alice: ApiConnection, bob: ApiConnection, root: str
) -> None:
    await alice.call("subscribe.tree")
    steps = [
        (("fs.write", {"path": f"{root}/d/new.txt", "text": "1", "parents": True}),
         [{"change": "added", "path": f"{root}/d", "kind": "dir"}, {"change": "added", "path": f"{root}/d/new.txt", "kind": "file"}]),
        (("fs.write", {"path": f"{root}/d/new.txt", "text": "2"}),
         [{"change": "modified", "path": f"{root}/d/new.txt", "kind": "file"}]),
        (("fs.mv", {"source": f"{root}/d", "target": f"{root}/e"}),
         [{"change": "moved", "path": f"{root}/e", "from": f"{root}/d", "kind": "dir"},
          {"change": "moved", "path": f"{root}/e/new.txt", "from": f"{root}/d/new.txt", "kind": "file"}]),
        (("fs.rm", {"path": f"{root}/e", "recursive": True}),
         [{"change": "removed", "path": f"{root}/e", "kind": "dir"}, {"change": "removed", "path": f"{root}/e/new.txt", "kind": "file"}]),
    ]
    for (method, params), expected in steps:
        version = (await bob.call(method, **params))["version"]
        notifications = await until(alice, "tree.changed", lambda p, v=version: p["version"] >= v)
        changes = [change for n in notifications for change in n["changes"] if change["path"].startswith(root)]
        assert changes == expected


async def test_unsubscribe_ends_a_subscription(alice: ApiConnection, bob: ApiConnection, root: str) -> None:
    await bob.call("fs.write", path=f"{root}/f.txt", text="x")
    watched = await alice.call("subscribe.file", path=f"{root}/f.txt")
    await alice.call("subscribe.tree")
    assert (await alice.call("unsubscribe", subscription=watched["subscription"]))["removed"] is True
    assert (await alice.call("unsubscribe", subscription=watched["subscription"]))["removed"] is False
    await bob.call("fs.write", path=f"{root}/f.txt", text="y")
    assert (await alice.notification())["method"] == "tree.changed"  # file notifications would come first


async def test_presence_is_broadcast_and_goes_with_its_connection(daemon: Daemon, alice: ApiConnection, root: str) -> None:
    assert (await alice.call("subscribe.presence"))["presence"] == []
    other = next(transport for transport in TRANSPORTS if transport != alice.transport)  # both carry presence.set
    async with connect(daemon, other) as carol:
        shown = await carol.call("presence.set", client="vim", path=f"{root}/x.py", cursor=3, selection=[1, 3], name="Carol")
        change = (await until(alice, "presence.changed", lambda p: True))[0]
        assert (change["presence"], change["removed"]) == (shown, False)
        assert (await alice.call("presence.list"))["presence"] == [shown]
        assert (await carol.call("presence.clear", client="vim"))["removed"] is True
        assert (await until(alice, "presence.changed", lambda p: True))[0]["removed"] is True
        await carol.call("presence.set", client="agent", path=f"{root}/x.py")
        await until(alice, "presence.changed", lambda p: not p["removed"])
    gone = (await until(alice, "presence.changed", lambda p: True))[0]
    assert (gone["presence"]["client"], gone["removed"]) == ("agent", True)
    assert (await alice.call("presence.list"))["presence"] == []


async def test_peers_subscription_starts_with_the_peers_connected_now(alice: ApiConnection) -> None:
    watched = await alice.call("subscribe.peers")
    assert watched["peers"] == (await alice.call("node.peers"))["peers"]


async def test_a_thousand_subscriptions_hold(daemon: Daemon, bob: ApiConnection, root: str, figures: Any) -> None:
    """1,000 subscriptions over four connections (both transports) all see one write."""
    path = f"{root}/hot.txt"
    await bob.call("fs.write", path=path, text="0")
    per_connection = SUBSCRIPTIONS // CONNECTIONS
    async with trio.open_nursery() as nursery:
        connections = []
        for index in range(CONNECTIONS):
            connection = await nursery.start(_hold, daemon, TRANSPORTS[index % 2])
            for number in range(per_connection):
                if number % 2:
                    await connection.call("subscribe.file", path=path)
                else:
                    await connection.call("subscribe.tree")
            connections.append(connection)
        assert (await bob.call("node.stats"))["subscriptions"] >= SUBSCRIPTIONS
        started = time.perf_counter()
        await bob.call("fs.write", path=path, text="1")
        counts = []
        for connection in connections:
            methods = [(await connection.notification())["method"] for _ in range(per_connection)]
            counts.append(len(methods))
            assert methods.count("file.changed") == methods.count("tree.changed") == per_connection // 2
        figures("api fan-out", f"{sum(counts)} notifications of one write in {(time.perf_counter() - started) * 1000:.0f} ms")
        nursery.cancel_scope.cancel()


async def _hold(daemon: Daemon, transport: str, *, task_status: trio.TaskStatus[ApiConnection]) -> None:
    async with connect(daemon, transport) as connection:
        task_status.started(connection)
        await trio.sleep_forever()


async def test_a_client_that_stops_reading_is_cut_off(daemon: Daemon, bob: ApiConnection, root: str) -> None:
    """Its notifications would pile up without bound; the daemon drops it and serves the rest."""
    path = f"{root}/busy.txt"
    await bob.call("fs.write", path=path, text="0")
    async with connect(daemon, "unix") as sleepy:
        for _ in range(SUBSCRIPTIONS):
            await sleepy.call("subscribe.tree")
        rounds = OUTBOX_MESSAGES // SUBSCRIPTIONS + 20  # the outbox, plus what the socket buffers hold
        for number in range(rounds):
            await bob.call("fs.write", path=path, text=str(number + 1))
        with trio.fail_after(20):
            while await sleepy.receive() is not None:
                pass
    assert (await bob.call("node.stats"))["subscriptions"] < SUBSCRIPTIONS
