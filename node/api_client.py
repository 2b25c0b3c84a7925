"""A blocking client of the local API over the node's Unix socket; standard library only.

For scripts, agents and the ``distspace`` command: it imports neither trio nor the store, so
connecting and making a call costs milliseconds. ::

    from node.api_client import ApiClient

    with ApiClient.connect(home / "api.sock", (home / "api.token").read_text()) as api:
        api.call("fs.write", path="notes.md", text="hello\\n")
        api.call("subscribe.file", path="notes.md")
        change = api.next_notification(timeout=10)  # {"method": "file.changed", "params": {...}}

Calls are answered in order on one connection; notifications that arrive meanwhile are kept
for ``next_notification``. Errors the daemon answers are raised as ``node.rpc.RpcError`` (its
``code`` and ``name`` say which); a daemon that cannot be reached or goes away is
``ApiUnavailable``.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any

from node import rpc

DEFAULT_TIMEOUT_S = 120.0  # a call runs to completion in the daemon; verify of a big store is slow
_RECEIVE_BYTES = 256 * 1024


class ApiUnavailable(Exception):
    """No daemon answers on the socket, or the connection broke."""


class ApiClient:
    """One authenticated connection to the daemon."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._ids = itertools.count(1)
        self._buffer = bytearray()
        self._notifications: deque[dict[str, Any]] = deque()
        self.peer_id = ""

    @classmethod
    def connect(cls, socket_path: Path, token: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> ApiClient:
        """Connect and authenticate.

        Raises:
            ApiUnavailable: no daemon listens there. RpcError: the token was refused.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(socket_path))
        except OSError as error:
            sock.close()
            raise ApiUnavailable(f"no daemon answers on {socket_path}: {error.strerror or error}") from error
        client = cls(sock)
        try:
            client.peer_id = client.call(rpc.AUTH_METHOD, token=token.strip())["peer_id"]
        except BaseException:
            client.close()
            raise
        return client

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one method and return its result.

        Raises:
            RpcError: the daemon refused the call. ApiUnavailable: the connection broke.
        """
        request_id = next(self._ids)
        self._send(rpc.request(request_id, method, params))
        while True:
            message = self._receive()
            if "id" not in message:
                self._notifications.append(message)
            elif message["id"] == request_id:
                if "error" in message:
                    raise rpc.RpcError.from_json(message["error"])
                result: dict[str, Any] = message["result"]
                return result
            elif message["id"] is None and "error" in message:  # refused before it was read (auth, size)
                raise rpc.RpcError.from_json(message["error"])

    def next_notification(self, timeout: float | None = None) -> dict[str, Any]:
        """The next notification (``{"method", "params"}``), waiting up to ``timeout`` seconds.

        Raises:
            TimeoutError: none came in time. ApiUnavailable: the connection broke.
        """
        if self._notifications:
            return self._notifications.popleft()
        previous = self._socket.gettimeout()
        self._socket.settimeout(timeout)
        try:
            while True:
                message = self._receive()
                if "id" not in message:
                    return message
        finally:
            self._socket.settimeout(previous)

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._socket.sendall(rpc.encode(message).encode() + b"\n")
        except OSError as error:
            raise ApiUnavailable(f"the connection to the daemon broke: {error.strerror or error}") from error

    def _receive(self) -> dict[str, Any]:
        while (end := self._buffer.find(b"\n")) < 0:
            try:
                data = self._socket.recv(_RECEIVE_BYTES)
            except TimeoutError:
                raise
            except OSError as error:
                raise ApiUnavailable(f"the connection to the daemon broke: {error.strerror or error}") from error
            if not data:
                raise ApiUnavailable("the daemon closed the connection")
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            message = json.loads(line)
        except ValueError as error:
            raise ApiUnavailable(f"the daemon sent a line that is not JSON: {error}") from error
        if not isinstance(message, dict):
            raise ApiUnavailable("the daemon sent a message that is not a JSON object")
        return message
