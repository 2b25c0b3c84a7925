"""A node's home directory: config, key, database, API token and socket, and the process lock.

One directory per node keeps every piece of a peer's state in one place a user can back up or
delete, and the lock makes a second daemon on the same home fail fast instead of corrupting it.
The home is the user's alone: it holds the signing key, the token and every file of every space.
``ensure`` makes it 0700 (tightening a home made wider, with a warning) and refuses one owned by
another user, whose owner could swap the files in it under us.

Layout::

    HOME/config.toml    settings (node/config.py; optional, embedded defaults otherwise)
    HOME/identity.key   Ed25519 seed, 0600
    HOME/store.sqlite   the store (WAL)
    HOME/api.token      local API token, 0600 (at least MIN_TOKEN_CHARS; a bad one is replaced)
    HOME/api.sock       local API Unix socket
    HOME/daemon.lock    held (flock) while a daemon runs
    HOME/daemon.json    the running daemon's API endpoints, for clients
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

from node.errors import HomeLocked, LocalNodeError
from node.logs import event

if TYPE_CHECKING:  # loaded when used: a command that only reaches the daemon needs neither
    from node.config import NodeConfig
    from protocol.identity import Identity

# secrets.token_urlsafe(32) gives 43 characters (256 bits); a token of fewer than 32 characters
# (an emptied or truncated file, a hand-written "test") is guessable or a mistake: replaced.
MIN_TOKEN_CHARS = 32
TOKEN_BYTES = 32
HOME_MODE = 0o700
TOKEN_CREATED = "created"  # ApiToken.replaced of a home's first token: expected, not a warning

log = logging.getLogger("distspace.home")


class HomeUnsafe(LocalNodeError):
    """The home belongs to another user: its files could be read or swapped under us."""


class ApiToken(NamedTuple):
    """The token clients must give, and why it was just written (None: it was already good)."""

    value: str
    replaced: str | None


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
        """Create the home 0700, or make an existing one so.

        Raises:
            HomeUnsafe: it is owned by another user.
        """
        self.path.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
        info = self.path.stat()
        if info.st_uid != os.getuid():
            raise HomeUnsafe(f"{self.path} belongs to user {info.st_uid}, not to you ({os.getuid()}): use a home of your own")
        mode = stat.S_IMODE(info.st_mode)
        if mode & ~HOME_MODE:
            self.path.chmod(HOME_MODE)
            event(log, "home.made_private", logging.WARNING, home=self.path, mode=oct(mode), now=oct(HOME_MODE))

    def identity(self) -> Identity:
        from protocol.identity import Identity

        self.ensure()
        return Identity.load_or_create(self.key_file)

    def config(self) -> NodeConfig:
        from node.config import NodeConfig

        if not self.config_file.exists():
            return NodeConfig()
        return NodeConfig.from_toml(self.config_file.read_text(), str(self.config_file))

    def api_token(self) -> ApiToken:
        """The local API token; a missing, short or unreadable one is replaced by a new one.

        The new token is written to a temporary file, synced and renamed over the old, so a
        crash leaves either token whole, never an empty file that would admit an empty token.
        """
        self.ensure()
        try:
            token = self.token_file.read_text().strip()
        except FileNotFoundError:
            return ApiToken(self._new_token(), TOKEN_CREATED)
        except (OSError, UnicodeDecodeError) as error:
            return ApiToken(self._new_token(), f"unreadable ({error})")
        if len(token) < MIN_TOKEN_CHARS:
            return ApiToken(self._new_token(), f"{len(token)} characters, fewer than {MIN_TOKEN_CHARS}")
        return ApiToken(token, None)

    def _new_token(self) -> str:
        import secrets  # only a daemon start that finds no good token makes one
        import tempfile

        token = secrets.token_urlsafe(TOKEN_BYTES)
        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=".api.token.")  # born 0600
        try:
            os.write(fd, token.encode())
            os.fsync(fd)
        except OSError:
            os.unlink(temporary)
            raise
        finally:
            os.close(fd)
        os.replace(temporary, self.token_file)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return token

    def lock(self) -> IO[str]:
        """Take the daemon lock; the returned file holds it until closed (or the process dies)."""
        self.ensure()
        handle = open(self.lock_file, "a+")  # the open file *is* the lock
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
