"""The local API servers: JSON-RPC 2.0 over a loopback WebSocket and over the node's Unix socket.

Two transports, one protocol (``node/rpc.py``) and one set of methods (``node/api_methods.py``):

- the Unix socket ``HOME/api.sock`` carries one JSON text per line. A client needs nothing but a
  socket and a JSON parser, so the stdlib client (``node/api_client.py``) and ``distspace cat``
  cost one connect and a line each way. The socket is born 0600 (bound under a umask, never
  chmod-ed after) inside the 0700 home.
- a WebSocket on 127.0.0.1 (``config.api_port``, 0 picks a free port) carries one JSON text
  message per message, for editors and tools whose runtime has a WebSocket client but no Unix
  sockets (browser-based editors, other platforms, a port forwarded into a container).

Authentication is the same on both: the first call of a connection must be ``auth`` with the
token of ``HOME/api.token`` (0600, readable by the user alone). A wrong or missing token, any
other first call, or no call within AUTH_TIMEOUT_S is answered with -32001 and the connection is
closed. The token, not the loopback address, is the gate: any local user and any web page in a
local browser can reach 127.0.0.1, but only the node's user can read the token. A scoped token
(``token.create``, kept by digest in HOME/api.tokens) authenticates too, and its connection may
only do what its scope allows (node/api_scopes.py); a later ``auth`` on the connection changes
the scope to the new token's (a wrong one leaves it as it was).

Before ``auth`` a client is a stranger, and costs us little: its first message may hold
PRE_AUTH_MESSAGE_BYTES (an auth call is ~100), and at most MAX_PRE_AUTH_CONNECTIONS connections
wait to authenticate at a time; one more is refused at once. The WebSocket also refuses (403) a
handshake whose ``Host`` is not this loopback port — a web page that rebinds its own name to
127.0.0.1 still sends that name (DNS rebinding) — and one whose ``Origin`` is not a loopback page
(``http://localhost:ANY-PORT``, ``http://127.0.0.1:...``, ``http://[::1]:...``, or https). A
browser always sends ``Origin``; programs (the CLI, editors' extensions, scripts) send none, and
are let through to the token check. ``Origin: null`` (a sandboxed frame, a ``file:`` page) is
refused: it is any page at all.

Whatever a client sends ends, at worst, its own connection: a message nested deeper than
``rpc.MAX_JSON_DEPTH`` gets an error reply, a failure handling one client's input is logged and
counted (``node.stats`` ``api``) and closes that connection only, and a failure computing a
subscription's notification costs that subscription its notification, never the server.

Each connection runs a reader and a writer. The reader runs calls one at a time in arrival order;
handlers are synchronous and the store is single-threaded, so a call runs to completion without
interleaving with another and sees and leaves a consistent store. A long method (git.import, a
big fs.batch) runs in steps (``dispatch_steps``), each one such a consistent piece of work: the
daemon serves everything else between them (other clients, sync, presence) instead of stalling
for the whole call; cancelled between steps, it runs no more of them. Replies and notifications leave
through one outbox, in order, bounded both in messages (OUTBOX_MESSAGES) and in characters
(OUTBOX_CHARS: one file notification can carry 2.8 MB). A reply waits for room (back-pressure on
a client that sends but does not read); a notification never waits: a client whose outbox is
full is cut off and told so in the log, since holding notifications for a stuck client without
bound would let it grow the daemon's memory. It reconnects and resubscribes, and each subscribe
result carries the state.
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from node import rpc
from node.api_methods import Call, dispatch_steps
from node.api_scopes import TokenScope
from node.errors import LocalNodeError
from node.home import MIN_TOKEN_CHARS, TOKEN_CREATED, TokenTableDamaged
from node.logs import event
from node.metrics import LOOPBACK_NAMES, loopback_host
from node.presence_anchors import presence_view
from node.services import NodeServices
from node.subscriptions import Subscriptions

# A write carries at most MAX_WRITE_BYTES (2 MiB): as base64 2.8 MB, as JSON text with escapes up to
# 6x for control characters. 8 MiB admits every write a client would sensibly send.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# An auth call is ~100 bytes (a 43-character token in a JSON-RPC envelope); 4 KiB leaves room for
# a long id and whitespace, and is all a client that has not shown the token can make us hold.
PRE_AUTH_MESSAGE_BYTES = 4 * 1024
# Editors and the CLI open a few connections at a time and authenticate within milliseconds;
# 64 waiting at once is a local process flooding us, which then costs at most 64 x 4 KiB.
MAX_PRE_AUTH_CONNECTIONS = 64
# Replies and notifications queued for one client: 1,000 subscriptions with a burst of 10
# notifications each. A client that lets more pile up is cut off.
OUTBOX_MESSAGES = 10_000
# ... and their size, in characters of JSON text (a byte each for the base64, hex and ASCII that
# make up most replies): a dozen whole-file notifications of the largest file (2 MiB, 2.8 MB as
# base64). A client 32 Mi characters behind is not reading; cut off, it resubscribes.
OUTBOX_CHARS = 32 * 1024 * 1024
AUTH_TIMEOUT_S = 5.0
WS_HANDSHAKE_TIMEOUT_S = 5.0
WS_CLOSE_TIMEOUT_S = 2.0
UNIX_RECEIVE_BYTES = 64 * 1024
UNIX_BACKLOG = 128
# The socket is born with the mode a umask leaves it: 0o177 makes it 0600 (rw for us alone).
UNIX_SOCKET_UMASK = 0o177
# sun_path holds 108 bytes on Linux, with its NUL: a longer home cannot have its socket there.
UNIX_PATH_MAX_BYTES = 107
LOOPBACK = "127.0.0.1"
ORIGIN_SCHEMES = ("http", "https")
HTTP_FORBIDDEN = 403
HTTP_UNAVAILABLE = 503

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
    token = services.home.api_token()
    if token.replaced is not None:
        level = logging.INFO if token.replaced == TOKEN_CREATED else logging.WARNING
        event(log, "api.token_written", level, file=services.home.token_file, why=token.replaced)
    server = _Server(services, token.value)
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
                        max_message_size=PRE_AUTH_MESSAGE_BYTES,  # raised per connection once it authenticates
                        connect_timeout=WS_HANDSHAKE_TIMEOUT_S,
                        disconnect_timeout=WS_CLOSE_TIMEOUT_S,
                    )
                )
            except OSError as error:
                raise ApiStartError(f"the API cannot listen on {LOOPBACK}:{port}: {error.strerror}") from error
            listener = _unix_listener(socket_path)
            await nursery.start(partial(trio.serve_listeners, server.serve_unix, [listener]))
            nursery.start_soon(server.flush_notifications)
            endpoints = ApiEndpoints(f"ws://{LOOPBACK}:{websocket.port}/", str(socket_path))
            services.api = endpoints.to_json()
            event(log, "api.listening", websocket=endpoints.websocket, unix=endpoints.unix)
            task_status.started(endpoints)
    finally:
        server.subscriptions.close()
        services.api = {}
        # Synchronous on purpose: one local unlink at shutdown, and an await here, in a cancelled
        # scope, would raise Cancelled before the socket file is gone.
        socket_path.unlink(missing_ok=True)  # noqa: ASYNC240


def _unix_listener(path: Path) -> trio.SocketListener:
    """Listen on ``path``, born 0600: the umask is set around a synchronous bind, so no task
    runs (and no other client connects) while the socket exists with a wider mode."""
    if len(os.fsencode(path)) > UNIX_PATH_MAX_BYTES:
        raise ApiStartError(f"the API socket path {path} is longer than {UNIX_PATH_MAX_BYTES} bytes; use a shorter home")
    path.unlink(missing_ok=True)  # a dead daemon's: the caller holds the home lock, so no live one has it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(UNIX_SOCKET_UMASK)
        try:
            sock.bind(os.fspath(path))
        finally:
            os.umask(previous)
        sock.listen(UNIX_BACKLOG)
    except OSError as error:
        sock.close()
        raise ApiStartError(f"the API cannot listen on {path}: {error.strerror}") from error
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


class _Server:
    """What every connection shares: the node, the subscriptions, the token, the counters."""

    def __init__(self, services: NodeServices, token: str) -> None:
        self.services = services
        self.subscriptions = Subscriptions(services)
        self.subscriptions.presence_view = partial(presence_view, services, self.subscriptions)
        self._token = token.encode()
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)
        self.subscriptions.wake = self._wake
        self.pre_auth = 0  # connections admitted that have not authenticated yet
        self.counts: Counter[str] = Counter()

    def authentic(self, token: object) -> bool:
        """Whether ``token`` is the full token; never for a configured token too short to be one."""
        if len(self._token) < MIN_TOKEN_CHARS or not isinstance(token, str):
            return False
        return hmac.compare_digest(token.encode(), self._token)

    def access(self, token: object) -> tuple[bool, TokenScope | None]:
        """Whether ``token`` admits, and to which scope (None: the full token's, everything).

        The table is read at each auth (a few hundred bytes), so a token made by ``token.create``
        or forgotten by ``token.revoke`` counts from the next connection on.
        """
        if self.authentic(token):
            return True, None
        if not isinstance(token, str):
            return False, None
        try:
            scoped = self.services.home.scoped_token(token.strip())
        except TokenTableDamaged as error:
            event(log, "api.token_table_damaged", logging.ERROR, error=error)
            return False, None
        if scoped is None or (scoped.expires_ms is not None and self.services.clock() >= scoped.expires_ms):
            return False, None
        return True, TokenScope.of(scoped)

    def stats(self) -> dict[str, int]:
        """The API's counters, for ``node.stats``."""
        return {
            "pre_auth_connections": self.pre_auth,
            "notify_failures": self.subscriptions.failures,
            **{name: self.counts[name] for name in _COUNTERS},
        }

    def admit(self, kind: str) -> bool:
        """Take a pre-auth slot for a new connection; False (logged, counted) when none is free."""
        if self.pre_auth >= MAX_PRE_AUTH_CONNECTIONS:
            self.counts["refused_connections"] += 1
            event(log, "api.too_many_unauthenticated", logging.WARNING, transport=kind, limit=MAX_PRE_AUTH_CONNECTIONS)
            return False
        self.pre_auth += 1
        return True

    def _wake(self) -> None:
        try:
            self._wake_send.send_nowait(None)
        except trio.WouldBlock:
            pass  # a flush is already due

    async def flush_notifications(self) -> None:
        """Turn store writes into file and tree notifications, after the writes' calls return.

        ``Subscriptions.flush`` contains the store's and Automerge's failures per subscription;
        anything else is a bug in it, counted and logged here so that the API keeps serving.
        """
        async for _ in self._wake_receive:
            try:
                self.subscriptions.flush()
            except Exception:  # counted (flush_failures) and logged; the API lives on
                self.counts["flush_failures"] += 1
                event(log, "api.flush_failed", logging.ERROR, exc_info=True)

    async def serve_websocket(self, request: WebSocketRequest) -> None:
        with self._contained("websocket"):
            refusal = _websocket_refusal(request)
            if refusal is not None:
                self.counts["refused_handshakes"] += 1
                event(log, "api.websocket_refused", logging.WARNING, reason=refusal)
                await _reject(request, HTTP_FORBIDDEN, refusal)
                return
            if not self.admit("websocket"):
                await _reject(request, HTTP_UNAVAILABLE, "too many connections waiting to authenticate")
                return
            accepted = False
            try:
                websocket = await request.accept()
                accepted = True
            except ConnectionClosed:
                return
            finally:
                if not accepted:  # the connection that would have released the slot never started
                    self.pre_auth -= 1
            await _Connection(self, _WebSocketTransport(websocket), "websocket").run()

    async def serve_unix(self, stream: trio.SocketStream) -> None:
        with self._contained("unix"):
            async with stream:
                if not self.admit("unix"):
                    error = rpc.RpcError(rpc.UNAUTHORIZED, "too many connections waiting to authenticate; retry", "TooManyConnections")
                    try:
                        await stream.send_all(rpc.encode(rpc.error_reply(None, error)).encode() + b"\n")
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    return
                await _Connection(self, _UnixTransport(stream), "unix").run()

    @contextmanager
    def _contained(self, kind: str) -> Iterator[None]:
        """Whatever fails in one connection's handler ends that connection, never the server."""
        try:
            yield
        except Exception:  # counted (connection_failures) and logged; the API lives on
            self.counts["connection_failures"] += 1
            event(log, "api.connection_failed", logging.ERROR, exc_info=True, transport=kind)


# Counted events of the API, reported by ``node.stats`` (0 until they happen).
_COUNTERS = ("connection_failures", "flush_failures", "internal_errors", "refused_connections", "refused_handshakes", "slow_clients")


def _websocket_refusal(request: WebSocketRequest) -> str | None:
    """Why a handshake is refused (its Host or Origin is not loopback), or None to go on."""
    # trio-websocket 0.12 lists every header but Host, which wsproto keeps as ``Request.host``.
    host = request._event.host
    if not loopback_host(host, getattr(request.local, "port", -1)):  # a TCP endpoint; -1 matches no Host
        return f"Host {host!r} is not this loopback port"
    origins = [value for name, value in request.headers if name.lower() == b"origin"]
    if len(origins) > 1 or (origins and not _loopback_origin(origins[0])):
        return f"Origin {b', '.join(origins).decode('latin-1')!r} is not a loopback page"
    return None


def _loopback_origin(origin: bytes) -> bool:
    """Whether ``origin`` is a page served from this machine's loopback (any port)."""
    try:
        parts = urlsplit(origin.decode("ascii"))
        hostname = parts.hostname
        _ = parts.port  # a malformed port raises
    except (UnicodeDecodeError, ValueError):
        return False
    names = {name.strip("[]") for name in LOOPBACK_NAMES}
    return parts.scheme in ORIGIN_SCHEMES and hostname in names and parts.path in ("", "/") and not parts.query


async def _reject(request: WebSocketRequest, status: int, reason: str) -> None:
    try:
        await request.reject(status, body=f"{reason}\n".encode())
    except ConnectionClosed:
        pass


class _Disconnected(Exception):
    """The client went away while we sent to it."""


class _MessageTooLarge(Exception):
    """A client sent a message above its connection's limit."""


class _Transport(Protocol):
    async def receive(self) -> str | bytes | None:
        """The next message, or None once the client has closed."""

    async def send(self, text: str) -> None: ...

    def allow(self, limit: int) -> None:
        """Accept messages of up to ``limit`` bytes from now on (raised once authenticated)."""


class _Outbox:
    """The texts queued for one client, bounded in count (the channel) and in characters."""

    def __init__(self) -> None:
        self._send, self.receive = trio.open_memory_channel[str](OUTBOX_MESSAGES)
        self.chars = 0
        self._drained = trio.Event()

    def offer(self, text: str) -> bool:
        """Queue without waiting; False when the client is already too far behind."""
        if self.chars + len(text) > OUTBOX_CHARS:
            return False
        try:
            self._send.send_nowait(text)
        except trio.WouldBlock:
            return False
        self.chars += len(text)
        return True

    async def put(self, text: str) -> None:
        """Queue once there is room (a reply bigger than the whole budget goes alone)."""
        while self.chars and self.chars + len(text) > OUTBOX_CHARS:
            if self._drained.is_set():
                self._drained = trio.Event()
            await self._drained.wait()
        await self._send.send(text)
        self.chars += len(text)

    def sent(self, text: str) -> None:
        self.chars -= len(text)
        self._drained.set()

    async def close(self) -> None:
        """No more texts: the writer drains what is queued, then ends."""
        await self._send.aclose()


class _Connection:
    """One client: a reader running its calls in order, a writer draining its outbox."""

    def __init__(self, server: _Server, transport: _Transport, kind: str) -> None:
        self._server = server
        self._transport = transport
        self._kind = kind
        self._call = Call(server.services, server.subscriptions, self, server.stats)
        self._outbox = _Outbox()
        self._scope = trio.CancelScope()
        self._pre_auth = True  # holds one of the server's pre-auth slots

    def notify(self, method: str, params: dict[str, Any]) -> None:
        try:
            queued = self._outbox.offer(rpc.encode(rpc.notification(method, params)))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return  # the connection is closing
        if not queued:
            self._server.counts["slow_clients"] += 1
            event(log, "api.client_too_slow", logging.WARNING, transport=self._kind, queued_chars=self._outbox.chars, limit_chars=OUTBOX_CHARS)
            self._scope.cancel()

    async def run(self) -> None:
        event(log, "api.connected", logging.DEBUG, transport=self._kind)
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write)
                    try:
                        await self._read()
                    finally:
                        await self._outbox.close()
        finally:
            self._leave_pre_auth()
            self._server.subscriptions.drop(self)
            event(log, "api.disconnected", logging.DEBUG, transport=self._kind)

    def _leave_pre_auth(self) -> None:
        if self._pre_auth:
            self._pre_auth = False
            self._server.pre_auth -= 1

    async def _read(self) -> None:
        try:
            first: str | bytes | None = None
            with trio.move_on_after(AUTH_TIMEOUT_S) as deadline:
                first = await self._transport.receive()
            if deadline.cancelled_caught:
                error = rpc.RpcError(rpc.UNAUTHORIZED, f"authenticate within {AUTH_TIMEOUT_S:g} s of connecting", "Unauthorized")
                await self._outbox.put(rpc.encode(rpc.error_reply(None, error)))
                return
            if first is None or not await self._authenticate(first):
                return
            while (text := await self._transport.receive()) is not None:
                reply = await self._handle(text)
                if reply is not None:
                    await self._outbox.put(reply)
        except _MessageTooLarge:
            limit = PRE_AUTH_MESSAGE_BYTES if self._pre_auth else MAX_MESSAGE_BYTES
            error = rpc.RpcError(rpc.INVALID_REQUEST, f"a message is at most {limit} bytes{' before auth' if self._pre_auth else ''}", "MessageTooLarge")
            await self._outbox.put(rpc.encode(rpc.error_reply(None, error)))

    async def _write(self) -> None:
        try:
            async for text in self._outbox.receive:
                await self._transport.send(text)
                self._outbox.sent(text)
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
        if "result" in reply:  # before the reply goes: a client may send its next call as soon as it reads it
            self._leave_pre_auth()
            self._transport.allow(MAX_MESSAGE_BYTES)
        await self._outbox.put(rpc.encode(reply))
        if "error" in reply:
            event(log, "api.unauthorized", logging.WARNING, transport=self._kind)
        return "result" in reply

    def _auth(self, request: rpc.Request) -> dict[str, Any]:
        admitted, scope = self._server.access(request.params.get("token"))
        if not admitted:
            error = rpc.RpcError(rpc.UNAUTHORIZED, "wrong token: give the contents of HOME/api.token, or a live scoped token", "Unauthorized")
            return rpc.error_reply(request.id, error)
        self._call.scope = scope
        shown = None if scope is None else scope.to_json()
        return rpc.result_reply(request.id, {"peer_id": self._server.services.identity.peer_id, "scope": shown})

    async def _handle(self, text: str | bytes) -> str | None:
        """The reply text to one message, or None when it held only notifications."""
        incoming = rpc.decode(text)
        replies = list(incoming.replies)
        for request in incoming.requests:
            reply = await self._run(request)
            if request.wants_reply:
                replies.append(reply)
        if not replies:
            return None
        return rpc.encode(replies if incoming.batch else replies[0])

    async def _run(self, request: rpc.Request) -> dict[str, Any]:
        if request.method == rpc.AUTH_METHOD:
            return self._auth(request)
        steps = dispatch_steps(self._call, request.method, request.params)
        try:
            while True:
                next(steps)
                await trio.lowlevel.checkpoint()  # a long method's step is done: the other clients' turn
        except StopIteration as done:
            return rpc.result_reply(request.id, done.value)
        except rpc.RpcError as error:
            return rpc.error_reply(request.id, error)
        except Exception as error:  # a bug in a handler: count and log it, answer, keep serving
            self._server.counts["internal_errors"] += 1
            event(log, "api.internal_error", logging.ERROR, exc_info=True, method=request.method)
            message = f"internal error in {request.method} ({type(error).__name__}); the daemon log has the details"
            return rpc.error_reply(request.id, rpc.RpcError(rpc.INTERNAL_ERROR, message, "InternalError"))
        finally:
            steps.close()  # cancelled between steps (the client left, the daemon stops): the rest is not run


class _WebSocketTransport:
    def __init__(self, websocket: WebSocketConnection) -> None:
        self._websocket = websocket

    def allow(self, limit: int) -> None:
        # trio-websocket 0.12 checks each message against this attribute as it arrives (and
        # closes with 1009 above it); serve_websocket set it to PRE_AUTH_MESSAGE_BYTES.
        self._websocket._max_message_size = limit

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
        self._limit = PRE_AUTH_MESSAGE_BYTES

    def allow(self, limit: int) -> None:
        self._limit = limit

    async def receive(self) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end > self._limit or (end < 0 and len(self._buffer) > self._limit):
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
