"""The local API as a protocol: authentication, JSON-RPC errors, batches, limits, the stdlib client.

Against a real daemon over both sockets. Nothing here needs a space; the daemon's home holds one
so that the calls which read it can run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import trio

from api_helpers import Daemon, connect, daemon_with_a_space, transport  # noqa: F401 - transport is a fixture
from node.api import MAX_MESSAGE_BYTES
from node.api_client import ApiClient, ApiUnavailable
from node.api_schema import schema
from node.rpc import AUTH_METHOD, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, UNAUTHORIZED, RpcError


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_a_space(tmp_path_factory, "protocol") as running:
        yield running


async def test_a_wrong_token_is_refused_and_the_connection_closed(daemon: Daemon, transport: str) -> None:
    async with connect(daemon, transport, token="") as api:
        reply = await api.exchange({"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": "not-it"}})
        assert reply["error"]["code"] == UNAUTHORIZED
        assert "wrong token" in reply["error"]["message"]
        assert await api.receive() is None


@pytest.mark.parametrize(
    "first",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "fs.ls", "params": {}},
        {"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {}},
        {"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": 42}},
        [{"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": "x"}}],
    ],
    ids=["other-method", "no-token", "token-not-a-string", "batch"],
)
async def test_anything_but_a_valid_auth_first_is_refused(daemon: Daemon, transport: str, first: object) -> None:
    async with connect(daemon, transport, token="") as api:
        reply = await api.exchange(first)
        assert reply["error"]["code"] == UNAUTHORIZED
        assert await api.receive() is None


async def test_the_right_token_opens_every_method(daemon: Daemon, transport: str) -> None:
    """Each method of the schema is refused before auth and reaches its own params check after.

    Every call carries an unknown param, so no handler runs: the error says which gate stopped it.
    """
    methods = sorted(set(schema().methods) - {AUTH_METHOD})
    probe = {"probe": 1}
    for name in methods:
        async with connect(daemon, transport, token="") as api:
            reply = await api.exchange({"jsonrpc": "2.0", "id": 1, "method": name, "params": probe})
            assert reply["error"]["code"] == UNAUTHORIZED, (name, reply)
    async with connect(daemon, transport) as api:
        for name in methods:
            reply = await api.exchange({"jsonrpc": "2.0", "id": 1, "method": name, "params": probe})
            assert reply["error"]["code"] == INVALID_PARAMS, reply
            assert reply["error"]["message"].startswith(f"{name}: params "), reply
        assert (await api.call("node.status"))["daemon"] is True
        with pytest.raises(RpcError) as caught:  # a second auth is checked again
            await api.call("auth", token="not-it")
        assert caught.value.code == UNAUTHORIZED
        assert (await api.call("auth", token=daemon.token))["peer_id"] == daemon.ready["peer_id"]


@pytest.mark.parametrize(
    ("message", "code", "says"),
    [
        ("{not json", PARSE_ERROR, "not JSON"),
        ('{"id": 1, "method": "node.status"}', INVALID_REQUEST, '"jsonrpc" must be "2.0"'),
        ('{"jsonrpc": "2.0", "id": 1, "method": 7}', INVALID_REQUEST, '"method" must be a string'),
        ('{"jsonrpc": "2.0", "id": true, "method": "node.status"}', INVALID_REQUEST, "the id is"),
        ("[]", INVALID_REQUEST, "empty batch"),
        ('"hello"', INVALID_REQUEST, "a request is a JSON object"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fs.nope"}', METHOD_NOT_FOUND, "no method 'fs.nope'"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fs.read", "params": ["a"]}', INVALID_PARAMS, "params go by name"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fs.read", "params": {}}', INVALID_PARAMS, "params lacks path"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fs.read", "params": {"path": 1}}', INVALID_PARAMS, "params.path must be string, not 1"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fs.read", "params": {"path": "a", "verison": 1}}', INVALID_PARAMS, "unknown member(s) verison"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fs.read", "params": {"path": "a", "version": -1}}', INVALID_PARAMS, "at least 0"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fs.read", "params": {"path": "\\ud800"}}', INVALID_PARAMS, "lone surrogate"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "space.join", "params": {"space_id": "xyz"}}', INVALID_PARAMS, "must match"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "presence.set", "params": {"selection": [1]}}', INVALID_PARAMS, "2 to 2 items"),
    ],
)
async def test_malformed_calls_get_json_rpc_errors_that_say_what_is_wrong(
    daemon: Daemon, transport: str, message: str, code: int, says: str
) -> None:
    async with connect(daemon, transport) as api:
        reply = await api.exchange(message)
        assert reply["error"]["code"] == code, reply
        assert says in reply["error"]["message"]
        assert "Traceback" not in json.dumps(reply)
        assert (await api.call("node.status"))["daemon"]  # the connection lives on


async def test_a_batch_gets_one_reply_per_request_and_none_for_notifications(daemon: Daemon, transport: str) -> None:
    async with connect(daemon, transport) as api:
        batch = [
            {"jsonrpc": "2.0", "id": "a", "method": "node.status"},
            {"jsonrpc": "2.0", "method": "node.peers"},  # a notification: no reply
            {"jsonrpc": "2.0", "id": "b", "method": "no.such"},
            {"jsonrpc": "2.0", "id": "c"},
        ]
        replies = {reply["id"]: reply for reply in await api.exchange(batch)}
        assert set(replies) == {"a", "b", "c"}
        assert "result" in replies["a"]
        assert replies["b"]["error"]["code"] == METHOD_NOT_FOUND
        assert replies["c"]["error"]["code"] == INVALID_REQUEST


async def test_a_message_over_the_limit_is_refused(daemon: Daemon, transport: str) -> None:
    async with connect(daemon, transport) as api:
        await api.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "fs.write", "params": {"path": "a", "text": "x" * MAX_MESSAGE_BYTES}}))
        if transport == "unix":
            reply = await api.receive()
            assert reply["error"]["data"]["error"] == "MessageTooLarge"
        with trio.fail_after(10):
            while await api.receive() is not None:
                pass


async def test_the_stdlib_client(daemon: Daemon) -> None:
    with ApiClient.connect(daemon.home.api_socket, daemon.token) as client:
        assert client.peer_id == daemon.ready["peer_id"]
        client.call("fs.write", path="client.txt", text="one")
        client.call("subscribe.file", path="client.txt")
        client.call("fs.splice", path="client.txt", position=3, insert=" two")
        change = client.next_notification(timeout=10)
        assert change["method"] == "file.changed"
        assert change["params"]["edits"] == [{"index": 3, "delete": 0, "insert": " two"}]
        with pytest.raises(RpcError) as caught:
            client.call("fs.read", path="missing.txt")
        assert (caught.value.code, caught.value.name) == (1003, "NotFound")
        with pytest.raises(TimeoutError):
            client.next_notification(timeout=0.05)
    with pytest.raises(RpcError) as refused:
        ApiClient.connect(daemon.home.api_socket, "not-it")
    assert refused.value.code == UNAUTHORIZED
    with pytest.raises(ApiUnavailable):
        ApiClient.connect(daemon.home.path / "no.sock", daemon.token)
