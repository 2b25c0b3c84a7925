"""The local API servers: JSON-RPC 2.0 over a loopback WebSocket and over the node's Unix socket.

Two transports, one protocol (``node/rpc.py``) and one set of methods (``node/api_methods.py``):

- the Unix socket ``HOME/api.sock`` carries one JSON text per line. A client needs nothing but a
  socket and a JSON parser, so the stdlib client (``node/api_client.py``) and ``distspace cat``
  cost one connect and a line each way. The socket is 0600 inside the 0700 home.
- a WebSocket on 127.0.0.1 (``config.api_port``, 0 picks a free port) carries one JSON text
  message per message, for editors and tools whose runtime has a WebSocket client but no Unix
  sockets (browser-based editors, other platforms, a port forwarded into a container).

Authentication is the same on both: the first call of a connection must be ``auth`` with the
token of ``HOME/api.token`` (0600, readable by the user alone). A wrong or missing token, any
other first call, or no call within AUTH_TIMEOUT_S is answered with -32001 and the connection is
closed. The token, not the loopback address, is the gate: any local user and any web page in a
local browser can reach 127.0.0.1, but only the node's user can read the token.

Each connection runs a reader and a writer. The reader runs calls one at a time in arrival order;
handlers are synchronous and the store is single-threaded, so a call runs to completion without
interleaving with another and sees and leaves a consistent store. Replies and notifications leave
through one bounded outbox, in order. A reply waits for room (back-pressure on a client that sends
but does not read); a notification never waits: a client whose outbox is full is cut off and told
so in the log, since holding notifications for a stuck client without bound would let it grow
the daemon's memory. It reconnects and resubscribes, and each subscribe result carries the state.
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from node import rpc
from node.api_methods import Call, dispatch
from node.errors import LocalNodeError
from node.logs import event
from node.services import NodeServices
from node.subscriptions import Subscriptions
from store.errors import StoreError

# A write carries at most MAX_WRITE_BYTES (2 MiB): as base64 2.8 MB, as JSON text with escapes up to
# 6x for control characters. 8 MiB admits every write a client would sensibly send.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Replies and notifications queued for one client: 1,000 subscriptions with a burst of 10
# notifications each. A client that lets more pile up is cut off.
OUTBOX_MESSAGES = 10_000
AUTH_TIMEOUT_S = 5.0
WS_HANDSHAKE_TIMEOUT_S = 5.0
WS_CLOSE_TIMEOUT_S = 2.0
UNIX_RECEIVE_BYTES = 64 * 1024
UNIX_BACKLOG = 128
# sun_path holds 108 bytes on Linux, with its NUL: a longer home cannot have its socket there.
UNIX_PATH_MAX_BYTES = 107
LOOPBACK = "127.0.0.1"

log = logging.getLogger("distspace.api")


class ApiStartError(LocalNodeError):
    """The local API could not listen: the port is taken, or the socket path is too long."""


@dataclass(frozen=True, slots=True)
class ApiEndpoints:
    websocket: str  # ws://127.0.0.1:PORT/
    unix: str  # the socket's path

    def to_json(self) -> dict[str, str]:
        return {"websocket": self.websocket, "unix": self.unix}


async def serve_api(
    services: NodeServices, *, port: int, socket_path: Path, task_status: trio.TaskStatus[ApiEndpoints] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the local API on both transports until cancelled; reports the endpoints once listening.

    Raises:
        ApiStartError: a transport cannot listen.
    """
    server = _Server(services, services.home.api_token())
    try:
        async with trio.open_nursery() as nursery:
            try:
                websocket = await nursery.start(
                    partial(
                        serve_websocket,
                        server.serve_websocket,
                        LOOPBACK,
                        port,
                        None,
                        max_message_size=MAX_MESSAGE_BYTES,
                        connect_timeout=WS_HANDSHAKE_TIMEOUT_S,
                        disconnect_timeout=WS_CLOSE_TIMEOUT_S,
                    )
                )
            except OSError as error:
                raise ApiStartError(f"the API cannot listen on {LOOPBACK}:{port}: {error.strerror}") from error
            listener = await _unix_listener(socket_path)
            await nursery.start(partial(trio.serve_listeners, server.serve_unix, [listener]))
            nursery.start_soon(server.flush_notifications)
            endpoints = ApiEndpoints(f"ws://{LOOPBACK}:{websocket.port}/", str(socket_path))
            services.api = endpoints.to_json()
            event(log, "api.listening", websocket=endpoints.websocket, unix=endpoints.unix)
            task_status.started(endpoints)
    finally:
        server.subscriptions.close()
        services.api = {}
        socket_path.unlink(missing_ok=True)


async def _unix_listener(path: Path) -> trio.SocketListener:
    if len(os.fsencode(path)) > UNIX_PATH_MAX_BYTES:
        raise ApiStartError(f"the API socket path {path} is longer than {UNIX_PATH_MAX_BYTES} bytes; use a shorter home")
    path.unlink(missing_ok=True)  # a dead daemon's: the caller holds the home lock, so no live one has it
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        path.chmod(0o600)
        sock.listen(UNIX_BACKLOG)
    except OSError as error:
        sock.close()
        raise ApiStartError(f"the API cannot listen on {path}: {error.strerror}") from error
    return trio.SocketListener(sock)


class _Server:
    """What every connection shares: the node, the subscriptions, the token."""

    def __init__(self, services: NodeServices, token: str) -> None:
        self.services = services
        self.subscriptions = Subscriptions(services)
        self._token = token.encode()
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)
        self.subscriptions.wake = self._wake

    def authentic(self, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self._token)

    def _wake(self) -> None:
        try:
            self._wake_send.send_nowait(None)
        except trio.WouldBlock:
            pass  # a flush is already due

    async def flush_notifications(self) -> None:
        """Turn store writes into file and tree notifications, after the writes' calls return."""
        async for _ in self._wake_receive:
            try:
                self.subscriptions.flush()
            except StoreError as error:  # a damaged doc: its watchers miss this change, the rest go on
                event(log, "api.flush_failed", logging.ERROR, error=error)

    async def serve_websocket(self, request: WebSocketRequest) -> None:
        try:
            websocket = await request.accept()
        except ConnectionClosed:
            return
        await _Connection(self, _WebSocketTransport(websocket), "websocket").run()

    async def serve_unix(self, stream: trio.SocketStream) -> None:
        async with stream:
            await _Connection(self, _UnixTransport(stream), "unix").run()


class _Disconnected(Exception):
    """The client went away while we sent to it."""


class _MessageTooLarge(Exception):
    """A client sent a message above MAX_MESSAGE_BYTES."""


class _Transport(Protocol):
    async def receive(self) -> str | bytes | None:
        """The next message, or None once the client has closed."""

    async def send(self, text: str) -> None: ...


class _Connection:
    """One client: a reader running its calls in order, a writer draining its outbox."""

    def __init__(self, server: _Server, transport: _Transport, kind: str) -> None:
        self._server = server
        self._transport = transport
        self._kind = kind
        self._call = Call(server.services, server.subscriptions, self)
        self._outbox_send, self._outbox_receive = trio.open_memory_channel[str](OUTBOX_MESSAGES)
        self._scope = trio.CancelScope()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        try:
            self._outbox_send.send_nowait(rpc.encode(rpc.notification(method, params)))
        except trio.WouldBlock:
            event(log, "api.client_too_slow", logging.WARNING, transport=self._kind, queued=OUTBOX_MESSAGES)
            self._scope.cancel()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the connection is closing

    async def run(self) -> None:
        event(log, "api.connected", logging.DEBUG, transport=self._kind)
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write)
                    async with self._outbox_send:  # closed after the reader: the writer drains, then ends
                        await self._read()
        finally:
            self._server.subscriptions.drop(self)
            event(log, "api.disconnected", logging.DEBUG, transport=self._kind)

    async def _read(self) -> None:
        try:
            with trio.move_on_after(AUTH_TIMEOUT_S):
                first = await self._transport.receive()
            if first is None or not await self._authenticate(first):
                return
            while (text := await self._transport.receive()) is not None:
                reply = self._handle(text)
                if reply is not None:
                    await self._outbox_send.send(reply)
        except _MessageTooLarge:
            error = rpc.RpcError(rpc.INVALID_REQUEST, f"a message is at most {MAX_MESSAGE_BYTES} bytes", "MessageTooLarge")
            await self._outbox_send.send(rpc.encode(rpc.error_reply(None, error)))

    async def _write(self) -> None:
        try:
            async for text in self._outbox_receive:
                await self._transport.send(text)
        except _Disconnected:
            self._scope.cancel()

    async def _authenticate(self, text: str | bytes) -> bool:
        """Answer the first message: it must be one auth call with the right token."""
        incoming = rpc.decode(text)
        request = incoming.requests[0] if len(incoming.requests) == 1 and not incoming.batch else None
        if request is None or request.method != rpc.AUTH_METHOD:
            error = rpc.RpcError(rpc.UNAUTHORIZED, "authenticate first: the first call must be auth with the token of HOME/api.token", "Unauthorized")
            reply = rpc.error_reply(request.id if request else None, error)
        else:
            reply = self._auth(request)
        await self._outbox_send.send(rpc.encode(reply))
        if "error" in reply:
            event(log, "api.unauthorized", logging.WARNING, transport=self._kind)
        return "result" in reply

    def _auth(self, request: rpc.Request) -> dict[str, Any]:
        if self._server.authentic(request.params.get("token")):
            return rpc.result_reply(request.id, {"peer_id": self._server.services.identity.peer_id})
        error = rpc.RpcError(rpc.UNAUTHORIZED, "wrong token: give the contents of HOME/api.token", "Unauthorized")
        return rpc.error_reply(request.id, error)

    def _handle(self, text: str | bytes) -> str | None:
        """The reply text to one message, or None when it held only notifications."""
        incoming = rpc.decode(text)
        replies = list(incoming.replies)
        for request in incoming.requests:
            reply = self._run(request)
            if request.wants_reply:
                replies.append(reply)
        if not replies:
            return None
        return rpc.encode(replies if incoming.batch else replies[0])

    def _run(self, request: rpc.Request) -> dict[str, Any]:
        if request.method == rpc.AUTH_METHOD:
            return self._auth(request)
        try:
            return rpc.result_reply(request.id, dispatch(self._call, request.method, request.params))
        except rpc.RpcError as error:
            return rpc.error_reply(request.id, error)
        except Exception as error:  # noqa: BLE001 - a bug in a handler: log it, answer, keep serving
            event(log, "api.internal_error", logging.ERROR, exc_info=True, method=request.method)
            message = f"internal error in {request.method} ({type(error).__name__}); the daemon log has the details"
            return rpc.error_reply(request.id, rpc.RpcError(rpc.INTERNAL_ERROR, message, "InternalError"))


class _WebSocketTransport:
    def __init__(self, websocket: WebSocketConnection) -> None:
        self._websocket = websocket

    async def receive(self) -> str | bytes | None:
        try:
            return await self._websocket.get_message()
        except ConnectionClosed:
            return None

    async def send(self, text: str) -> None:
        try:
            await self._websocket.send_message(text)
        except ConnectionClosed as error:
            raise _Disconnected from error


class _UnixTransport:
    """Newline-delimited messages over a stream; blank lines are ignored."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no line break

    async def receive(self) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end > MAX_MESSAGE_BYTES or (end < 0 and len(self._buffer) > MAX_MESSAGE_BYTES):
                raise _MessageTooLarge
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                if line.strip():
                    return line
                continue
            self._scanned = len(self._buffer)
            try:
                data = await self._stream.receive_some(UNIX_RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            self._buffer += data

    async def send(self, text: str) -> None:
        try:
            await self._stream.send_all(text.encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise _Disconnected from error
