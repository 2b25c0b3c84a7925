"""The admin methods of the local API — status, peers, stats, verify, spaces — against a real
daemon over both sockets. The daemon's home starts with no space: the tests create them."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from api_helpers import TRANSPORTS, ApiConnection, Daemon, connect, running_daemon
from node.rpc import INVALID_PARAMS, RpcError
from protocol.identity import Identity
from protocol.space import Genesis


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("admin") / "home") as running:
        yield running


@pytest.fixture(params=TRANSPORTS)
async def api(daemon: Daemon, request: pytest.FixtureRequest) -> AsyncIterator[ApiConnection]:
    async with connect(daemon, request.param) as connection:
        yield connection


async def test_status_says_who_the_node_is_and_where_its_api_listens(daemon: Daemon, api: ApiConnection) -> None:
    before_ms = time.time_ns() // 1_000_000
    status = await api.call("node.status")
    after_ms = time.time_ns() // 1_000_000
    assert status["peer_id"] == daemon.ready["peer_id"]
    assert Identity.load(daemon.home.key_file).public_key.hex() == status["public_key"]
    assert status["daemon"] is True
    # Counted from the start the daemon recorded in daemon.json, read during the call.
    started_ms = json.loads(daemon.home.daemon_file.read_text())["started_ms"]
    assert before_ms - started_ms - 1 <= status["uptime_s"] * 1000 <= after_ms - started_ms + 1
    assert status["api"] == daemon.ready["api"]
    assert status["addrs"] == daemon.ready["addrs"]
    assert status["home"] == str(daemon.home.path)
    assert (await api.call("node.peers")) == {"daemon": True, "peers": []}


async def test_the_token_and_socket_are_for_the_user_alone(daemon: Daemon, api: ApiConnection) -> None:
    for path in (daemon.home.token_file, daemon.home.api_socket, daemon.home.key_file):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


async def test_create_a_space_work_in_it_snapshot_and_verify(api: ApiConnection) -> None:
    created = await api.call("space.create", name=f"work-{api.transport}")
    space = created["space_id"]
    assert Genesis.decode(base64.b64decode(created["genesis"])).space_id.hex() == space
    listed = {s["space_id"]: s for s in (await api.call("space.list"))["spaces"]}
    assert listed[space]["name"] == f"work-{api.transport}" and listed[space]["version"] == 0

    assert (await api.call("space.snapshot", space=space))["manifest"] is None  # nothing to save yet
    await api.call("fs.write", space=space[:12], path="a.txt", text="a")  # an id prefix names it too
    await api.call("fs.write", space=f"work-{api.transport}", path="b.txt", text="b")  # so does its name
    stats = {s["space_id"]: s for s in (await api.call("node.stats"))["spaces"]}
    assert (stats[space]["docs"], stats[space]["changes"], stats[space]["version"]) == (3, 4, 4)
    snapshot = await api.call("space.snapshot", space=space)
    assert snapshot["manifest"].startswith("bafy") and snapshot["docs"] == 3
    assert (await api.call("node.stats"))["database_bytes"] > 0
    assert await api.call("node.verify") == {"ok": True, "problems": [], "kept": []}


async def test_calls_that_name_no_space_go_to_the_first_one_created(daemon: Daemon, api: ApiConnection) -> None:
    await api.call("space.create", name=f"first-{api.transport}")  # the home's first, unless an earlier test made one
    default = daemon.home.config().space
    for suffix in ("x", "y"):
        await api.call("space.create", name=f"many-{api.transport}-{suffix}")
    assert default is not None and daemon.home.config().space == default
    assert (await api.call("fs.ls"))["space"] == default


async def test_join_adds_a_space_by_genesis_or_records_it_for_the_network(api: ApiConnection) -> None:
    elsewhere = Genesis.create(Identity.generate(), f"theirs-{api.transport}", 1_700_000_000_000)
    space = elsewhere.space_id.hex()
    encoded = base64.b64encode(elsewhere.encode()).decode()
    joined = await api.call("space.join", space_id=space, genesis=encoded)
    assert (joined["status"], joined["name"]) == ("joined", f"theirs-{api.transport}")
    assert space in {s["space_id"] for s in (await api.call("space.list"))["spaces"]}

    unknown = Genesis.create(Identity.generate(), "unseen", 1).space_id.hex()
    peer = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQGDj1kyangvVcgV4yFFX2p6NeRZeXPdP93t67rQpt2Ys"
    pending = await api.call("space.join", space_id=unknown, peers=[peer])
    assert (pending["status"], pending["peers"]) == ("pending", [peer])
    pending_joins = (await api.call("space.list"))["pending"]
    assert {"space_id": unknown, "peers": [peer]} in pending_joins
    assert (await api.call("node.status"))["pending_joins"] == len(pending_joins)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"peers": []}, "give a peer"),
        ({"genesis": "bm90IGEgZ2VuZXNpcw=="}, "not a valid genesis"),
        ({"genesis": "%%%"}, "not a valid genesis"),
        ({"genesis": base64.b64encode(Genesis.create(Identity(bytes(32)), "other", 1).encode()).decode()}, "is of space"),
    ],
)
async def test_a_bad_join_is_refused(api: ApiConnection, params: dict[str, object], says: str) -> None:
    with pytest.raises(RpcError) as caught:
        await api.call("space.join", space_id="ab" * 32, **params)
    assert caught.value.code == INVALID_PARAMS
    assert says in caught.value.message
