"""Prometheus text exposition on a loopback port: ``GET /metrics`` and nothing else.

A scraper needs one plain-text page, so this is a few dozen lines on ``trio.serve_tcp`` rather
than a web framework or a second event loop. Names get the ``distspace_`` prefix; a name
ending in ``_total`` is a counter, anything else a gauge. Bound to 127.0.0.1 only: the
numbers say who we talk to and how much. A request whose ``Host`` is not this loopback port
(``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT``) is refused with 403: a web page that
rebinds its own name to 127.0.0.1 reaches the port, but names its own host (DNS rebinding).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Final

import trio

from node.logs import event

logger = logging.getLogger(__name__)

__all__ = ["loopback_host", "render", "serve_metrics"]

PREFIX: Final = "distspace_"
# A request line and headers beyond this are not a scraper's: close.
MAX_REQUEST_BYTES: Final = 8192
REQUEST_TIMEOUT_S: Final = 5.0
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")

Collect = Callable[[], dict[str, float]]


def render(values: dict[str, float]) -> str:
    """The text format: ``# TYPE`` then the sample, per metric, sorted by name."""
    lines = []
    for name, value in sorted(values.items()):
        metric = PREFIX + _INVALID.sub("_", name)
        lines.append(f"# TYPE {metric} {'counter' if metric.endswith('_total') else 'gauge'}")
        lines.append(f"{metric} {float(value):g}")
    return "\n".join(lines) + "\n"


LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "[::1]")


def loopback_host(host: str | None, port: int) -> bool:
    """Whether an HTTP ``Host`` value names loopback at ``port`` (what a local client sends)."""
    return host is not None and host.lower() in {f"{name}:{port}" for name in LOOPBACK_NAMES}


def _host_header(header_lines: bytes) -> str | None:
    """The Host header's value; None when absent, repeated or not ASCII."""
    hosts = [
        value.strip() for name, _, value in (line.partition(b":") for line in header_lines.split(b"\r\n")) if name.strip().lower() == b"host"
    ]
    if len(hosts) != 1 or not hosts[0].isascii():
        return None
    return hosts[0].decode("ascii")


async def serve_metrics(port: int, collect: Collect, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``collect()`` on 127.0.0.1:``port`` (0: any free port) until cancelled.

    Reports the bound port through ``task_status.started(port)``.
    """

    async def handle(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST_BYTES:
                    data = await stream.receive_some(MAX_REQUEST_BYTES)
                    if not data:
                        return
                    request += data
                head_line, _, header_lines = request.partition(b"\r\n")
                parts = head_line.split()
                if not loopback_host(_host_header(header_lines.partition(b"\r\n\r\n")[0]), bound):
                    status, body = "403 Forbidden", b"the Host header must name this loopback port\n"
                elif len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] in (b"/metrics", b"/"):
                    status, body = "200 OK", render(collect()).encode()
                else:
                    status, body = "404 Not Found", b"not found\n"
                head = f"HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                await stream.send_all(head.encode() + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]
    event(logger, "metrics.started", port=bound)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        task_status.started(bound)
