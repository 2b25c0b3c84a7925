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

A command that rewrites the store behind the API (``doctor --repair``) takes ``open_store``: the
store under the home lock, never a daemon's API — it refuses while a daemon runs, as the daemon
caches what the store holds.

With ``DISTSPACE_TOKEN`` set (a scoped token, ``distspace token``: an agent's), a command
authenticates with it instead of HOME/api.token and only ever goes through the daemon: opening
the store itself would step around the token's scope.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Protocol

from node.api_client import ApiClient, ApiUnavailable
from node.errors import HomeLocked
from node.home import NodeHome

if TYPE_CHECKING:
    from store.repo import Repo

# A starting daemon binds its socket within a second or two of taking the lock; a command on the
# store holds the lock for one call. Waiting this long covers both on a loaded machine.
WAIT_S = 15.0
POLL_S = 0.02
TOKEN_ENV = "DISTSPACE_TOKEN"


class NodeApi(Protocol):
    """What a command holds of its node, daemon or store alike: API calls."""

    def call(self, method: str, **params: Any) -> dict[str, Any]: ...


class NodeBusy(Exception):
    """The home stayed locked while no daemon answered."""


class DaemonRunning(NodeBusy):
    """A daemon runs on the home, and the command must work on the store alone."""


@contextmanager
def open_node(home: NodeHome) -> Iterator[NodeApi]:
    """The daemon's API if one runs on ``home``, else the store under the home lock.

    Raises:
        NodeBusy: neither became available within WAIT_S.
    """
    if os.environ.get(TOKEN_ENV):
        client = _daemon(home)
        if client is None:
            raise ApiUnavailable(f"{TOKEN_ENV} is set, so this goes through a daemon only, and none answers on {home.api_socket}")
        with client:
            yield client
        return
    reached = _daemon_or_lock(home)
    if isinstance(reached, ApiClient):
        with reached:
            yield reached
        return
    with reached, _LocalNode(home) as node:
        yield node


@contextmanager
def open_store(home: NodeHome) -> Iterator[_LocalNode]:
    """The store of ``home`` opened in this process under the home lock (its ``repo`` and the
    API's method code), for a command that rewrites it.

    Raises:
        DaemonRunning: a daemon answers on the home's socket: stop it first.
        NodeBusy: the home stayed locked (another command) for WAIT_S.
    """
    reached = _daemon_or_lock(home)
    if isinstance(reached, ApiClient):
        reached.close()
        raise DaemonRunning(f"a daemon runs on {home.path}: stop it (Ctrl-C or SIGTERM on distspace up), then run this again")
    with reached, _LocalNode(home) as node:
        yield node


def _daemon_or_lock(home: NodeHome) -> ApiClient | IO[str]:
    """A client of the daemon running on ``home``, or the home lock, whichever comes first.

    Raises:
        NodeBusy: neither within WAIT_S.
    """
    deadline = time.monotonic() + WAIT_S
    while True:
        client = _daemon(home)
        if client is not None:
            return client
        try:
            return home.lock()
        except HomeLocked:
            if time.monotonic() >= deadline:
                raise NodeBusy(f"{home.path} is locked but no daemon answers on {home.api_socket}; try again") from None
            time.sleep(POLL_S)


def _daemon(home: NodeHome) -> ApiClient | None:
    if not home.api_socket.exists():
        return None
    try:
        token = os.environ.get(TOKEN_ENV) or home.token_file.read_text()
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

    @property
    def repo(self) -> Repo:
        return self._repo

    def __enter__(self) -> _LocalNode:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._services.close()
        self._repo.close()
