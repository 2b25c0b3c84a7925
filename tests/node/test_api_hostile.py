"""Hostile local clients against a real daemon: each attack, then an honest client is still served.

Every test here runs its attack over the daemon's real sockets — the Unix socket and the
WebSocket, with raw bytes where a well-behaved client library would refuse to send them — and
ends by showing that the daemon process lives and an honest client authenticates and reads.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from api_helpers import (  # noqa: F401 - transport is a fixture
    TRANSPORTS,
    ApiConnection,
    Daemon,
    connect,
    daemon_with_a_space,
    distspace,
    own_directory,
    running_daemon,
    transport,
)
from node.api import MAX_PRE_AUTH_CONNECTIONS, OUTBOX_CHARS, PRE_AUTH_MESSAGE_BYTES
from node.api_methods import MAX_LOG_LIMIT
from node.api_schema import schema
from node.rpc import INVALID_PARAMS, INVALID_REQUEST, MAX_JSON_DEPTH, PARSE_ERROR, UNAUTHORIZED, RpcError
from protocol.space import INDEX_DOC_ID

DEEP = "[" * 100_000  # the reproduced crash: RecursionError out of json.loads, pre-auth
FILE_BYTES = 2 * 1024 * 1024  # the largest write: each notification of it is 2.8 M characters of base64


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_a_space(tmp_path_factory, "hostile") as running:
        yield running


async def served(daemon: Daemon, transport: str = "unix") -> None:
    """The daemon lives, and an honest client authenticates and reads a file over ``transport``."""
    assert daemon.process.poll() is None, "the daemon died"
    async with connect(daemon, transport) as honest:
        await honest.call("fs.write", path="honest.txt", text="still here", parents=True)
        assert (await honest.call("fs.read", path="honest.txt"))["text"] == "still here"


async def closed(api: ApiConnection) -> list[object]:
    """Everything the daemon sends until it closes the connection."""
    seen = []
    while (message := await api.receive()) is not None:
        seen.append(message)
    return seen


async def attack(api: ApiConnection, text: str) -> list[object]:
    """Send ``text`` (the daemon may hang up while it goes) and collect the answer up to the close."""
    try:
        await api.send(text)
    except (ConnectionClosed, trio.BrokenResourceError):
        pass  # cut off mid-message: what it said before closing is still read below
    return await closed(api)


# ----- before auth -----


@pytest.mark.parametrize("message", [DEEP, DEEP[: PRE_AUTH_MESSAGE_BYTES - 1]], ids=["100k-deep", "deep-under-the-size-limit"])
async def test_a_deeply_nested_first_message_closes_only_that_connection(daemon: Daemon, transport: str, message: str) -> None:
    async with connect(daemon, transport, token="") as attacker:
        replies = await attack(attacker, message)
    assert all(reply["error"]["code"] in (PARSE_ERROR, INVALID_REQUEST, UNAUTHORIZED) for reply in replies), replies  # type: ignore[index]
    await served(daemon, transport)


async def test_a_first_message_over_the_pre_auth_limit_is_refused(daemon: Daemon, transport: str) -> None:
    padding = "x" * PRE_AUTH_MESSAGE_BYTES
    async with connect(daemon, transport, token="") as attacker:
        replies = await attack(attacker, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": daemon.token, "pad": padding}}))
    if transport == "unix":  # the WebSocket closes with 1009 instead
        assert [reply["error"]["data"]["error"] for reply in replies] == ["MessageTooLarge"]  # type: ignore[index]
    await served(daemon, transport)


async def test_a_large_call_right_after_auth_is_served(daemon: Daemon, transport: str) -> None:
    """The pre-auth limit ends with auth: the next message may be as large as any."""
    async with connect(daemon, transport) as api:
        await api.call("fs.write", path="large.txt", text="y" * (PRE_AUTH_MESSAGE_BYTES * 4))
        assert len((await api.call("fs.read", path="large.txt"))["text"]) == PRE_AUTH_MESSAGE_BYTES * 4


async def test_connections_waiting_to_authenticate_are_capped(daemon: Daemon) -> None:
    async with connect(daemon, "unix") as observer:
        idle: list[trio.SocketStream] = []
        try:
            for _ in range(MAX_PRE_AUTH_CONNECTIONS):
                idle.append(await trio.open_unix_socket(daemon.ready["api"]["unix"]))
            with trio.fail_after(10):
                while (await observer.call("node.stats"))["api"]["pre_auth_connections"] < MAX_PRE_AUTH_CONNECTIONS:
                    await trio.lowlevel.checkpoint()
            async with connect(daemon, "unix", token="") as refused:
                replies = await closed(refused)
            assert [reply["error"]["data"]["error"] for reply in replies] == ["TooManyConnections"]  # type: ignore[index]
            with pytest.raises(ConnectionRejected) as handshake:
                async with open_websocket_url(daemon.ready["api"]["websocket"]):
                    pass
            assert handshake.value.status_code == 503
            # One of the waiting connections authenticates: a slot frees, a new client gets in.
            first = idle.pop()
            await first.send_all(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": daemon.token}}).encode() + b"\n")
            assert b'"result"' in await first.receive_some(4096)
            await first.aclose()
            await served(daemon, "websocket")
        finally:
            for stream in idle:
                await stream.aclose()
    async with connect(daemon, "unix") as api:
        stats = (await api.call("node.stats"))["api"]
        assert stats["refused_connections"] >= 2


async def test_a_silent_client_is_closed_at_the_auth_deadline(daemon: Daemon) -> None:
    async with connect(daemon, "unix", token="") as silent:
        replies = await closed(silent)
    assert replies and replies[0]["error"]["code"] == UNAUTHORIZED  # type: ignore[index]
    await served(daemon)


# ----- after auth -----


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (DEEP, PARSE_ERROR),
        ('{"jsonrpc": "2.0", "id": 1, "method": "node.status", "params": {"x": ' + "[" * 200 + "]" * 200 + "}}", INVALID_REQUEST),
    ],
    ids=["100k-unclosed", "200-deep"],
)
async def test_deep_nesting_after_auth_gets_an_error_and_the_connection_lives(daemon: Daemon, transport: str, message: str, code: int) -> None:
    async with connect(daemon, transport) as api:
        reply = await api.exchange(message)
        assert reply["error"]["code"] == code
        assert f"deeper than {MAX_JSON_DEPTH}" in reply["error"]["message"]
        assert (await api.call("node.status"))["daemon"]
    await served(daemon, transport)


async def test_history_log_limit_is_capped(daemon: Daemon) -> None:
    assert schema().methods["history.log"].params["properties"]["limit"]["maximum"] == MAX_LOG_LIMIT
    async with connect(daemon, "unix") as api:
        with pytest.raises(RpcError) as caught:
            await api.call("history.log", limit=MAX_LOG_LIMIT + 1)
        assert caught.value.code == INVALID_PARAMS and f"at most {MAX_LOG_LIMIT}" in caught.value.message
        assert len((await api.call("history.log", limit=MAX_LOG_LIMIT))["entries"]) <= MAX_LOG_LIMIT
        assert len((await api.call("history.log"))["entries"]) <= 100  # the default when absent


# ----- the WebSocket handshake -----


async def handshake(daemon: Daemon, headers: dict[str, str]) -> bytes:
    """The status line of the daemon's answer to a raw WebSocket upgrade with ``headers``."""
    port = int(daemon.ready["api"]["websocket"].rsplit(":", 1)[1].strip("/"))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET / HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in {"Host": f"127.0.0.1:{port}", **headers}.items() if value]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        with trio.fail_after(10):
            while b"\r\n" not in answer and (data := await stream.receive_some(4096)):
                answer += data
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, b"101"),  # a program: no Origin
        ({"Origin": "http://localhost:5173"}, b"101"),  # a page served from this machine
        ({"Origin": "http://127.0.0.1:8080"}, b"101"),
        ({"Origin": "http://[::1]:3000"}, b"101"),
        ({"Host": "localhost:{port}"}, b"101"),
        ({"Origin": "https://evil.example"}, b"403"),
        ({"Origin": "http://localhost.evil.example"}, b"403"),
        ({"Origin": "null"}, b"403"),
        ({"Host": "evil.example:{port}"}, b"403"),  # DNS rebinding: a page on a name resolved to 127.0.0.1
        ({"Host": "127.0.0.1:1"}, b"403"),
        ({"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"}, b"403"),
    ],
    ids=lambda value: value.decode() if isinstance(value, bytes) else "-".join(f"{k}={v}" for k, v in value.items()) or "none",
)
async def test_the_websocket_refuses_foreign_hosts_and_origins(daemon: Daemon, headers: dict[str, str], status: bytes) -> None:
    port = daemon.ready["api"]["websocket"].rsplit(":", 1)[1].strip("/")
    line = await handshake(daemon, {name: value.replace("{port}", port) for name, value in headers.items()})
    assert line.split()[1] == status, line
    await served(daemon, "websocket")


# ----- the token -----


@pytest.mark.parametrize("bad_token", ["", "\n", "short"], ids=["empty", "newline", "short"])
async def test_a_bad_token_file_is_replaced_and_an_empty_token_never_accepted(tmp_path: Path, bad_token: str) -> None:
    home = tmp_path / "home"
    distspace(home, "init", "main")
    (home / "api.token").write_text(bad_token)
    with running_daemon(home) as daemon:
        token = daemon.token
        assert len(token) >= 32 and token != bad_token.strip()
        assert (home / "api.token").stat().st_mode & 0o777 == 0o600
        assert "event=api.token_written" in daemon.log.read_text()
        for transport in TRANSPORTS:
            for guess in ("", bad_token):
                async with connect(daemon, transport, token="") as attacker:
                    reply = await attacker.exchange({"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": guess}})
                    assert reply["error"]["code"] == UNAUTHORIZED
            await served(daemon, transport)


# ----- a client that never reads -----


async def test_a_subscriber_that_never_reads_is_cut_off_by_bytes(daemon: Daemon, request: pytest.FixtureRequest, figures: object) -> None:
    """Each write of a 2 MiB binary file sends every subscriber its content, 2.8 M characters. A
    stalled one is cut off once its outbox holds OUTBOX_CHARS, long before OUTBOX_MESSAGES
    (10,000) of them; a subscriber that reads gets every notification."""
    path = f"{own_directory(request)}.bin"
    notification_chars = FILE_BYTES * 4 // 3
    writes = OUTBOX_CHARS // notification_chars + 8  # beyond the budget, with the socket buffers' share
    async with connect(daemon, "unix") as writer, connect(daemon, "unix") as stalled, connect(daemon, "unix") as reader:
        slow_before = (await writer.call("node.stats"))["api"]["slow_clients"]
        await writer.call("fs.write", path=path, base64="")
        await stalled.call("subscribe.file", path=path)
        await reader.call("subscribe.file", path=path)
        for _ in range(writes):
            await writer.call("fs.write", path=path, base64=base64.b64encode(os.urandom(FILE_BYTES)).decode())
            assert (await reader.notification())["params"]["path"] == path  # the honest subscriber keeps up
        rss_kib = _rss_kib(daemon.process.pid)
        with trio.fail_after(30):  # what the kernel buffered reaches it, then the end
            while await stalled.receive() is not None:
                pass
        stats = (await writer.call("node.stats"))["api"]
    assert stats["slow_clients"] == slow_before + 1  # the stalled one, not the reader
    assert "event=api.client_too_slow" in daemon.log.read_text()
    figures("api stalled subscriber", f"cut off within {writes} notifications of {notification_chars} chars; daemon RSS {rss_kib / 1024:.0f} MiB")  # type: ignore[operator]
    await served(daemon)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ----- a doc that cannot be read under a subscriber -----


async def test_an_unreadable_doc_under_a_subscriber_costs_only_its_notification(tmp_path: Path) -> None:
    """The index doc's recorded heads at the tree subscriber's version are rewritten in the
    store's SQLite file while the daemon runs (as damage on disk would be): computing that
    subscriber's tree changes, Automerge refuses the unknown change hash (``InvalidHash``).
    That subscriber misses its notification; a file's watcher and every call go on."""
    home = tmp_path / "home"
    distspace(home, "init", "main")
    with running_daemon(home) as daemon:
        async with connect(daemon, "unix") as writer, connect(daemon, "websocket") as watcher:
            await writer.call("fs.write", path="fine.txt", text="one")
            fine = await watcher.call("subscribe.file", path="fine.txt")
            tree = await watcher.call("subscribe.tree")
            _forge_index_heads(daemon.home.database, tree["version"])
            await writer.call("fs.write", path="new.txt", text="the index changes")
            await writer.call("fs.splice", path="fine.txt", position=3, insert=" two")
            while (message := await watcher.notification())["params"]["subscription"] != fine["subscription"]:
                assert message["params"]["subscription"] != tree["subscription"], message
            assert message["params"]["edits"] == [{"index": 3, "delete": 0, "insert": " two"}]
            assert (await writer.call("fs.read", path="fine.txt"))["text"] == "one two"
            stats = (await writer.call("node.stats"))["api"]
        assert stats["notify_failures"] >= 1 and stats["flush_failures"] == 0
        assert "event=api.notify_failed" in daemon.log.read_text()
        await served(daemon, "websocket")


def _forge_index_heads(database: Path, version: int) -> None:
    """Point the index doc's heads at every version up to ``version`` at a change nobody has."""
    with sqlite3.connect(database, timeout=10) as db:
        updated = db.execute("UPDATE versions SET heads = ? WHERE doc = ? AND number <= ?", (b"\xee" * 32, INDEX_DOC_ID, version)).rowcount
    db.close()
    assert updated >= 1, "no version row of the index doc: has the store's layout changed?"
