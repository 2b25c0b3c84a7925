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
    HOME/api.tokens     scoped API tokens (distspace token), 0600: JSON, each token's sha256 only
    HOME/api.sock       local API Unix socket
    HOME/daemon.lock    held (flock) while a daemon runs
    HOME/daemon.json    the running daemon's API endpoints, for clients
    HOME/peer_records.json  each space's members' signed peer records (node/peer_records.py), 0600
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NamedTuple

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
# What a command or the daemon makes (lock, config, keys, store, logs) is the user's alone,
# whatever umask the shell had: it holds the workspace and its history.
PRIVATE_UMASK = 0o077
TOKEN_CREATED = "created"  # ApiToken.replaced of a home's first token: expected, not a warning
# A scoped token is told apart from the full one at a glance (in a log, an agent's environment).
SCOPED_TOKEN_PREFIX = "dst_"
# Scoped tokens a home keeps: each agent run may make one; more is a script minting them in a loop.
MAX_SCOPED_TOKENS = 1_000

log = logging.getLogger("distspace.home")


class HomeUnsafe(LocalNodeError):
    """The home belongs to another user: its files could be read or swapped under us."""


class TokenTableDamaged(LocalNodeError):
    """HOME/api.tokens cannot be read as the token table: no scoped token is accepted until fixed."""


class TooManyTokens(LocalNodeError):
    """The home already keeps MAX_SCOPED_TOKENS scoped tokens."""


@dataclass(frozen=True, slots=True)
class ScopedToken:
    """A scoped API token as the home keeps it: its sha256, never the token itself, so a copy
    of the table admits nobody. ``role`` is "read" or "write"; ``paths`` (gitignore globs, empty:
    every path) scope its writes; ``space`` (hex) is the one space it may touch, None: any."""

    token_id: str  # the first hex digits of the digest: how a person names it
    digest: str  # sha256 of the token, hex
    role: str
    paths: tuple[str, ...]
    space: str | None
    expires_ms: int | None
    created_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.token_id,
            "digest": self.digest,
            "role": self.role,
            "paths": list(self.paths),
            "space": self.space,
            "expires_ms": self.expires_ms,
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ScopedToken:
        return cls(
            str(row["id"]),
            str(row["digest"]),
            str(row["role"]),
            tuple(str(path) for path in row["paths"]),
            None if row["space"] is None else str(row["space"]),
            None if row["expires_ms"] is None else int(row["expires_ms"]),
            int(row["created_ms"]),
        )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKEN_ID_CHARS = 12

def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# The umask the user started this process with, read once on import (before any thread or socket
# bind could race the flip that reads it): files made for them in a mirrored folder
# (node/mirror.py) get the mode any tool of theirs would give, not the store's private one.
USER_UMASK: Final = _current_umask()


def make_files_private() -> None:
    """Make every file this process creates from now on private (PRIVATE_UMASK); the user's own
    umask stays in USER_UMASK."""
    os.umask(PRIVATE_UMASK)


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
    def tokens_file(self) -> Path:
        return self.path / "api.tokens"

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

        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._write_private(self.token_file, token)
        return token

    def _write_private(self, path: Path, text: str) -> None:
        """Replace ``path`` by a file born 0600, synced then renamed: a crash leaves the old file
        or the new one whole, never an empty one."""
        import tempfile

        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{path.name}.")  # born 0600
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        except OSError:
            os.unlink(temporary)
            raise
        finally:
            os.close(fd)
        os.replace(temporary, path)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    # ----- scoped tokens -----

    def scoped_tokens(self) -> list[ScopedToken]:
        """Every scoped token the home keeps, oldest first (none without a table).

        Raises:
            TokenTableDamaged: the table is unreadable or malformed.
        """
        try:
            rows = json.loads(self.tokens_file.read_text())
            return [ScopedToken.from_json(row) for row in rows]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise TokenTableDamaged(f"{self.tokens_file} is damaged ({error}): delete it (every scoped token goes) and make new ones") from error

    def scoped_token(self, token: str) -> ScopedToken | None:
        """The scoped token ``token`` is, if the home keeps it (compared by digest, in constant time)."""
        import hmac

        if not token.startswith(SCOPED_TOKEN_PREFIX):
            return None
        digest = token_digest(token)
        found = None
        for row in self.scoped_tokens():
            if hmac.compare_digest(row.digest, digest):
                found = row
        return found

    def add_scoped_token(self, *, role: str, paths: tuple[str, ...], space: str | None, expires_ms: int | None, now_ms: int) -> tuple[str, ScopedToken]:
        """Mint a scoped token and keep its digest; returns the token (shown once) and its row.

        Raises:
            TooManyTokens: the table is full. TokenTableDamaged: it cannot be read.
        """
        import secrets

        self.ensure()
        rows = self.scoped_tokens()
        if len(rows) >= MAX_SCOPED_TOKENS:
            raise TooManyTokens(f"{self.tokens_file} already keeps {MAX_SCOPED_TOKENS} scoped tokens; revoke some (distspace token --revoke ID)")
        token = SCOPED_TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        digest = token_digest(token)
        row = ScopedToken(digest[:TOKEN_ID_CHARS], digest, role, paths, space, expires_ms, now_ms)
        self._write_private(self.tokens_file, json.dumps([r.to_json() for r in [*rows, row]], indent=1))
        return token, row

    def remove_scoped_token(self, token_id: str) -> bool:
        """Forget a scoped token by its id (or the whole digest); False if the home keeps none such."""
        rows = self.scoped_tokens()
        kept = [r for r in rows if token_id.lower() not in (r.token_id, r.digest)]
        if len(kept) == len(rows):
            return False
        self._write_private(self.tokens_file, json.dumps([r.to_json() for r in kept], indent=1))
        return True

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


def write_atomically(path: os.PathLike[str], text: str) -> None:
    """Write a whole file or nothing: a crash mid-write leaves the old one."""
    temporary = f"{os.fspath(path)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
