"""JSON-RPC 2.0 for the local API, without I/O: decode requests, encode replies, name the errors.

Both transports carry the same JSON texts — one WebSocket text message, or one line on the Unix
socket, per message — so everything about the protocol lives here and the servers only move text.
Standard library only: the stdlib client (``node/api_client.py``) and the CLI import this module
on their fast path, where ``distspace cat`` must not pay for trio or the store.

Params go by name (a JSON object), never by position: every method's params are described by name
in ``node/api_schema.json``. Batches (a JSON array of requests) are answered with an array.

Errors carry a code a program can switch on, a message a person can read, and ``data.error``,
the name of the error (``"NotFound"``, ``"InvalidParams"``...). Codes:

- the standard ones: -32700 parse error, -32600 invalid request, -32601 method not found,
  -32602 invalid params, -32603 internal error (a bug; the daemon logs it, the client gets no
  traceback);
- -32001 unauthorized (no or a wrong token; the connection is closed after it), -32002 the method
  needs a running daemon (subscriptions and presence, called on the store directly);
- 1000-1099: the workspace and store refused the call (see ``STORE_ERROR_CODES`` in
  ``node/api_methods.py``); nothing was changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
DAEMON_REQUIRED = -32002

AUTH_METHOD = "auth"
VERSION = "2.0"
# Requests one batch may hold: calls run one at a time and the connection waits for the whole
# batch, so a batch is bounded like the work of one call; an editor's batch is a handful.
MAX_BATCH_REQUESTS = 1_000
# A call of this API nests at most 4 deep (batch, request, params, a selection pair); 32 leaves
# room for clients' own extensions while keeping every recursive walk of a message (the schema
# check, encoding a reply) far below Python's recursion limit of 1,000.
MAX_JSON_DEPTH = 32

RequestId = int | str | None


class RpcError(Exception):
    """A JSON-RPC error: raised by handlers and validators, sent as the error object of a reply,
    and raised again by clients when a reply carries one."""

    def __init__(self, code: int, message: str, name: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.name = name

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"error": self.name}}

    @classmethod
    def from_json(cls, error: object) -> RpcError:
        """The error a reply's ``error`` member describes, tolerating a server that sends less."""
        if not isinstance(error, dict):
            return cls(INTERNAL_ERROR, f"malformed error object: {error!r}", "MalformedReply")
        data = error.get("data")
        name = data.get("error") if isinstance(data, dict) else None
        code = error.get("code")
        return cls(
            code if isinstance(code, int) else INTERNAL_ERROR,
            str(error.get("message", "unknown error")),
            name if isinstance(name, str) else "Error",
        )


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message, "InvalidParams")


@dataclass(frozen=True, slots=True)
class Request:
    """One call. A request without an ``id`` member is a notification: it gets no reply."""

    id: RequestId
    method: str
    params: dict[str, Any]
    wants_reply: bool


@dataclass(frozen=True, slots=True)
class Incoming:
    """A decoded message: the calls to run, the replies already known (malformed members), and
    whether it was a batch (replies then go back as one array)."""

    requests: list[Request]
    replies: list[dict[str, Any]]
    batch: bool


def decode(text: str | bytes) -> Incoming:
    """Parse one message; never raises: what cannot be run becomes an error reply."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        return Incoming([], [error_reply(None, RpcError(PARSE_ERROR, f"not JSON: {error}", "ParseError"))], False)
    except RecursionError:  # the parser recurses per level: "[" * 100000 gets here, not to a reply
        return Incoming([], [error_reply(None, _too_deep(PARSE_ERROR, "ParseError"))], False)
    if _nested_deeper(message, MAX_JSON_DEPTH):
        return Incoming([], [error_reply(None, _too_deep(INVALID_REQUEST, "InvalidRequest"))], False)
    if isinstance(message, list):
        if not message:
            return Incoming([], [error_reply(None, _invalid("an empty batch"))], False)
        if len(message) > MAX_BATCH_REQUESTS:
            return Incoming([], [error_reply(None, _invalid(f"a batch holds at most {MAX_BATCH_REQUESTS} requests"))], False)
        requests, replies = [], []
        for member in message:
            request = _request(member)
            if isinstance(request, Request):
                requests.append(request)
            else:
                replies.append(request)
        return Incoming(requests, replies, True)
    request = _request(message)
    if isinstance(request, Request):
        return Incoming([request], [], False)
    return Incoming([], [request], False)


def _request(member: object) -> Request | dict[str, Any]:
    """A request, or the error reply for a member that is not one."""
    if not isinstance(member, dict):
        return error_reply(None, _invalid(f"a request is a JSON object, not {type(member).__name__}"))
    request_id = member.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str | None):
        return error_reply(None, _invalid("the id is a string, an integer or null"))
    if member.get("jsonrpc") != VERSION:
        return error_reply(request_id, _invalid('"jsonrpc" must be "2.0"'))
    method = member.get("method")
    if not isinstance(method, str):
        return error_reply(request_id, _invalid('"method" must be a string'))
    params = member.get("params", {})
    if not isinstance(params, dict):
        return error_reply(request_id, invalid_params(f"{method}: params go by name, as a JSON object"))
    return Request(request_id, method, params, "id" in member)


def _nested_deeper(message: object, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep; level by level, not recursively."""
    level = [message] if isinstance(message, list | dict) else []
    for _ in range(limit):
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, list | dict)
        ]
        if not level:
            return False
    return bool(level)


def _too_deep(code: int, name: str) -> RpcError:
    return RpcError(code, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", name)


def _invalid(reason: str) -> RpcError:
    return RpcError(INVALID_REQUEST, f"invalid request: {reason}", "InvalidRequest")


def request(request_id: RequestId, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "id": request_id, "method": method, "params": params}


def result_reply(request_id: RequestId, result: object) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "id": request_id, "result": result}


def error_reply(request_id: RequestId, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "id": request_id, "error": error.to_json()}


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "method": method, "params": params}


def encode(message: object) -> str:
    """Compact JSON text with no raw line break, so it is also one line on the Unix socket.

    Text goes out unescaped (a file of CJK text stays its size); a string that is not valid
    Unicode (a lone surrogate in a name a peer sent) makes the whole message go out ASCII-escaped
    instead of failing the transport's UTF-8 encoding.
    """
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":"))
    return text
