"""How a command reaches its node: the running daemon's API, or the store directly.

Every command is one or more API calls (``node/api_methods.py``). With a daemon running they go
over its Unix socket; without one, the command takes the home lock, opens the store and runs the
same method code in-process, so the result is the same either way.

The home lock is what keeps the two from racing (node/daemon.py): the daemon holds it for its
life, a command on the store holds it until it exits. So a command tries the socket first, then
the lock; if the lock is taken but nobody answers on the socket, a daemon is starting (or another
command is working) and the command retries both until WAIT_S has passed. A daemon started while
a command works on the store waits for the lock the same way.

The store path imports the store and method modules only when it is taken: with a daemon,
``distspace cat`` loads the stdlib client and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from node.api_client import ApiClient, ApiUnavailable
from node.errors import HomeLocked
from node.home import NodeHome

# A starting daemon binds its socket within a second or two of taking the lock; a command on the
# store holds the lock for one call. Waiting this long covers both on a loaded machine.
WAIT_S = 15.0
POLL_S = 0.02


class Node(Protocol):
    def call(self, method: str, **params: Any) -> dict[str, Any]: ...


class NodeBusy(Exception):
    """The home stayed locked while no daemon answered."""


@contextmanager
def open_node(home: NodeHome) -> Iterator[Node]:
    """The daemon's API if one runs on ``home``, else the store under the home lock.

    Raises:
        NodeBusy: neither became available within WAIT_S.
    """
    deadline = time.monotonic() + WAIT_S
    while True:
        client = _daemon(home)
        if client is not None:
            with client:
                yield client
            return
        try:
            lock = home.lock()
        except HomeLocked:
            if time.monotonic() >= deadline:
                raise NodeBusy(f"{home.path} is locked but no daemon answers on {home.api_socket}; try again") from None
            time.sleep(POLL_S)
            continue
        with lock, _LocalNode(home) as node:
            yield node
        return


def _daemon(home: NodeHome) -> ApiClient | None:
    if not home.api_socket.exists():
        return None
    try:
        token = home.token_file.read_text()
    except FileNotFoundError:
        return None  # the daemon has not written it yet
    try:
        return ApiClient.connect(home.api_socket, token)
    except ApiUnavailable:
        return None  # a dead daemon's socket, or one not listening yet


class _LocalNode:
    """The node's store opened in this process, for one command, with the API's method code."""

    def __init__(self, home: NodeHome) -> None:
        from node.api_methods import Call, dispatch
        from node.services import NodeServices
        from store.repo import Repo

        config = home.config()
        identity = home.identity()
        self._repo = Repo.open(home.database, identity, snapshot_every=config.snapshot_every)
        self._services = NodeServices(home, config, identity, self._repo)
        self._call = Call(self._services)
        self._dispatch = dispatch

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._dispatch(self._call, method, params)

    def __enter__(self) -> _LocalNode:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._services.close()
        self._repo.close()
