"""Helpers for the local API tests: a real daemon process, and a test client over either socket.

The daemon is the installed ``distspace up --json``, read up to its ready line; the client speaks
JSON-RPC over the Unix socket (trio stream, one JSON text per line) or the WebSocket
(trio-websocket) and checks every result and notification against ``node/api_schema.json``, so
any test that calls a method also tests that the schema describes it.

(A module of its own, named uniquely, so test files import it by name; the CLI tests import it
as ``tests.node.api_helpers``.)
"""

from __future__ import annotations

import json
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import IO, Any

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from cli.daemon_process import DaemonNotReady, start_daemon
from node.api_schema import schema
from node.home import NodeHome
from node.rpc import RpcError

DISTSPACE = str(Path(sys.executable).with_name("distspace"))
# Anything a daemon does on loopback finishes far inside this; a hang fails fast instead.
STEP_TIMEOUT_S = 20.0
TRANSPORTS = ("unix", "websocket")


@dataclass
class Daemon:
    home: NodeHome
    process: subprocess.Popen[bytes]
    ready: dict[str, Any]
    log: Path

    @property
    def token(self) -> str:
        return self.home.token_file.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the daemon and wait for it; kill it if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per transport (import it into the test module)."""
    return request.param


def distspace(home: Path, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the installed command on ``home``; with ``check``, fail the test on a non-zero exit."""
    result = subprocess.run([DISTSPACE, "--home", str(home), *args], input=input, capture_output=True, timeout=STEP_TIMEOUT_S)
    if check and result.returncode != 0:
        raise AssertionError(f"distspace {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}")
    return result


def read_line(pipe: IO[bytes], timeout: float = STEP_TIMEOUT_S) -> bytes:
    """One line from a child's pipe, or an AssertionError after ``timeout``."""
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no line within {timeout} s")
    return pipe.readline()


@contextmanager
def daemon_with_a_space(tmp_path_factory: pytest.TempPathFactory, label: str) -> Iterator[Daemon]:
    """A daemon on a fresh home holding one space, "main" (so calls may leave ``space`` out)."""
    home = tmp_path_factory.mktemp(label) / "home"
    distspace(home, "init", "main")
    with running_daemon(home) as running:
        yield running


def own_directory(request: pytest.FixtureRequest) -> str:
    """A path for one test's files, from its name: tests sharing a daemon do not collide."""
    return re.sub(r"[^\w.-]+", "_", request.node.name)


LOOPBACK_TCP = "/ip4/127.0.0.1/tcp/0"


@contextmanager
def running_daemon(home: Path, *args: str) -> Iterator[Daemon]:
    """``distspace up --json --no-mdns`` on ``home`` (mDNS would find the other tests' daemons),
    from its ready line until the block ends, its log in a file beside the home; never left
    running (cli/daemon_process.py starts it, as it does the demo's and the benchmarks')."""
    log = home.parent / f"{home.name}-daemon.log"
    # init writes config.toml listening on every interface; tests send traffic to 127.0.0.1 only.
    listen = () if "--listen" in args else ("--listen", LOOPBACK_TCP)
    try:
        started = start_daemon(home, "--no-mdns", *listen, *args, log=log, command=[DISTSPACE], ready_timeout_s=STEP_TIMEOUT_S)
    except DaemonNotReady as error:
        raise AssertionError(f"{error}: {_log(home)}") from None
    try:
        yield Daemon(NodeHome(home), started.process, started.ready, log)
    finally:
        started.kill()


def _log(home: Path) -> str:
    return (home.parent / f"{home.name}-daemon.log").read_text(errors="replace")


class ApiConnection:
    """One client connection: calls, raw messages, notifications; replies checked by the schema."""

    def __init__(self, transport: str, send: Any, receive: Any) -> None:
        self.transport = transport
        self._send = send
        self._receive = receive
        self._ids = count(1)
        self._notifications: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Run a method; raises RpcError for an error reply. Results must match the schema."""
        request_id = next(self._ids)
        reply = await self.exchange({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        assert reply["id"] == request_id, reply
        if "error" in reply:
            raise RpcError.from_json(reply["error"])
        schema().check_result(method, reply["result"])
        return reply["result"]

    async def exchange(self, message: Any) -> Any:
        """Send a message (any JSON, or raw text) and return the next reply (not a notification)."""
        await self.send(message)
        while True:
            reply = await self.receive()
            assert reply is not None, "the daemon closed the connection"
            if isinstance(reply, dict) and "id" not in reply:
                self._notifications.append(reply)
                continue
            return reply

    async def send(self, message: Any) -> None:
        await self._send(message if isinstance(message, str) else json.dumps(message))

    async def receive(self) -> Any:
        """The next message, or None once the daemon has closed the connection."""
        with trio.fail_after(STEP_TIMEOUT_S):
            text = await self._receive()
        return None if text is None else json.loads(text)

    async def notification(self) -> dict[str, Any]:
        """The next notification, checked against the schema."""
        if self._notifications:
            message = self._notifications.pop(0)
        else:
            message = await self.receive()
            assert message is not None, "the daemon closed the connection"
            assert "id" not in message, f"a reply where a notification was expected: {message}"
        schema().check_notification(message["method"], message["params"])
        return message


@asynccontextmanager
async def connect(daemon: Daemon, transport: str, *, token: str | None = None) -> AsyncIterator[ApiConnection]:
    """A connection over ``transport``, authenticated with the daemon's token unless ``token``
    is given (then the auth call is left to the test: pass "" to skip it)."""
    async with _open(daemon, transport) as connection:
        if token is None:
            result = await connection.call("auth", token=daemon.token)
            assert result["peer_id"] == daemon.ready["peer_id"]
        elif token:
            await connection.call("auth", token=token)
        yield connection


@asynccontextmanager
async def _open(daemon: Daemon, transport: str) -> AsyncIterator[ApiConnection]:
    if transport == "websocket":
        async with open_websocket_url(daemon.ready["api"]["websocket"]) as websocket:

            async def receive_message() -> str | None:
                try:
                    return await websocket.get_message()
                except ConnectionClosed:
                    return None

            yield ApiConnection(transport, websocket.send_message, receive_message)
        return
    stream = await trio.open_unix_socket(daemon.ready["api"]["unix"])
    buffer = bytearray()

    async def send_line(text: str) -> None:
        await stream.send_all(text.encode() + b"\n")

    async def receive_line() -> bytes | None:
        while (end := buffer.find(b"\n")) < 0:
            try:
                data = await stream.receive_some(1 << 16)
            except trio.BrokenResourceError:  # reset: the daemon closed with our data unread
                return None
            if not data:
                return None
            buffer.extend(data)
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        return line

    async with stream:
        yield ApiConnection(transport, send_line, receive_line)
