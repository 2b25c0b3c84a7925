"""A node's home directory: config, key, database, API token and socket, and the process lock.

One directory per node keeps every piece of a peer's state in one place a user can back up or
delete, and the lock makes a second daemon on the same home fail fast instead of corrupting it.

Layout::

    HOME/config.toml    settings (node/config.py; optional, embedded defaults otherwise)
    HOME/identity.key   Ed25519 seed, 0600
    HOME/store.sqlite   the store (WAL)
    HOME/api.token      local API token, 0600
    HOME/api.sock       local API Unix socket
    HOME/daemon.lock    held (flock) while a daemon runs
    HOME/daemon.json    the running daemon's API endpoints, for clients
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from node.errors import HomeLocked

if TYPE_CHECKING:  # loaded when used: a command that only reaches the daemon needs neither
    from node.config import NodeConfig
    from protocol.identity import Identity


def default_home() -> Path:
    """``$DISTSPACE_HOME``, else ``$XDG_DATA_HOME/distspace``, else ``~/.local/share/distspace``."""
    if explicit := os.environ.get("DISTSPACE_HOME"):
        return Path(explicit)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "distspace"


@dataclass(frozen=True, slots=True)
class NodeHome:
    """Paths of one node home, and the operations that must be safe against a running daemon."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.toml"

    @property
    def key_file(self) -> Path:
        return self.path / "identity.key"

    @property
    def database(self) -> Path:
        return self.path / "store.sqlite"

    @property
    def token_file(self) -> Path:
        return self.path / "api.token"

    @property
    def api_socket(self) -> Path:
        return self.path / "api.sock"

    @property
    def lock_file(self) -> Path:
        return self.path / "daemon.lock"

    @property
    def daemon_file(self) -> Path:
        return self.path / "daemon.json"

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def identity(self) -> Identity:
        from protocol.identity import Identity

        self.ensure()
        return Identity.load_or_create(self.key_file)

    def config(self) -> NodeConfig:
        from node.config import NodeConfig

        if not self.config_file.exists():
            return NodeConfig()
        return NodeConfig.from_toml(self.config_file.read_text(), str(self.config_file))

    def api_token(self) -> str:
        """The local API token, created 0600 on first use."""
        self.ensure()
        try:
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.token_file.read_text().strip()
        import secrets  # only the daemon's first start makes a token

        token = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w") as token_file:
            token_file.write(token)
        return token

    def lock(self) -> IO[str]:
        """Take the daemon lock; the returned file holds it until closed (or the process dies)."""
        self.ensure()
        handle = open(self.lock_file, "a+")  # noqa: SIM115 - the open file *is* the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.close()
            raise HomeLocked(f"another daemon is running on {self.path}") from error
        return handle

    def daemon_running(self) -> bool:
        """Whether some process holds the daemon lock right now."""
        if not self.lock_file.exists():
            return False
        with open(self.lock_file, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
