"""A node's settings: ``HOME/config.toml``, every field with an embedded default.

``folder`` (with ``folder_space``) names the folder the daemon mirrors a space into
(node/mirror.py); ``check_folder`` is the one rule of which folders may be mirrored, for the
daemon, ``distspace clone`` and the API's ``mirror.start`` alike.

A module of its own so that finding the home and its daemon (node/home.py) costs nothing: the
settings name a ``PeerKind``, whose module pulls in the signing library, and a command that
only talks to a running daemon never reads them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from node.errors import ConfigError
from protocol.identity import PeerKind
from store.defaults import DEFAULT_SNAPSHOT_EVERY

DEFAULT_LISTEN = ("/ip4/127.0.0.1/tcp/0",)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Settings from ``config.toml``; every field has an embedded default."""

    name: str = "distspace"
    kind: PeerKind = PeerKind.HUMAN
    listen: tuple[str, ...] = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    mdns: bool = True
    relay: bool = False
    api_port: int = 0  # 0: pick a free loopback port
    metrics_port: int | None = None
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    ipfs_api: str | None = None  # an IPFS daemon's RPC API (kubo's Addresses.API): snapshots are published there (node/ipfs.py)
    ipfs_allow_private: bool = False  # publish private spaces too: readable by whoever fetches the CID (nothing is encrypted)
    space: str | None = None  # the space of calls that name none (a name or id); the first init or join sets it
    folder: str | None = None  # a folder the daemon mirrors a space into (absolute, or from ~); none by default
    folder_space: str | None = None  # the space mirrored into ``folder`` (a name or id); None: the default space

    @classmethod
    def from_toml(cls, text: str, source: str = "config.toml") -> NodeConfig:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source}: {error}") from error
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
        try:
            values = {
                **raw,
                "kind": PeerKind(raw.get("kind", PeerKind.HUMAN.value)),
                "listen": tuple(raw.get("listen", DEFAULT_LISTEN)),
                "bootstrap": tuple(raw.get("bootstrap", ())),
            }
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{source}: {error}") from error
        config = cls(**values)
        config._check(source)
        return config

    def _check(self, source: str) -> None:
        if self.snapshot_every < 1:
            raise ConfigError(f"{source}: snapshot_every must be at least 1")
        if not 0 <= self.api_port <= 65535:
            raise ConfigError(f"{source}: api_port must be a port number")
        for name in ("space", "folder_space"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{source}: {name} must be a space's name or id, as a string")
        if self.folder is not None and (not isinstance(self.folder, str) or not Path(self.folder).expanduser().is_absolute()):
            raise ConfigError(f"{source}: folder must be an absolute path (or one starting with ~), as a string")

    def folder_path(self) -> Path | None:
        """``folder`` with ``~`` expanded; None when no folder is set."""
        return None if self.folder is None else Path(self.folder).expanduser()


class FolderRefused(ConfigError):
    """A folder may not be mirrored (``check_folder``'s rules, or the daemon's: one folder per
    space, one space per folder)."""


def check_folder(folder: Path, home: Path) -> Path:
    """``folder`` made absolute, if a space may be mirrored into it: a directory, or a path
    where one can be made, that is neither the node home nor inside it (the home holds the
    store: mirroring it would write the store into itself). The home inside the folder is
    fine: the mirror ignores it.

    Raises:
        FolderRefused: saying which rule the folder breaks.
    """
    absolute = Path(os.path.abspath(folder.expanduser()))
    resolved, home_resolved = absolute.resolve(), home.resolve()
    if resolved == home_resolved:
        raise FolderRefused(f"{absolute} is the node home: mirror the space into a folder of its own")
    if resolved.is_relative_to(home_resolved):
        raise FolderRefused(f"{absolute} is inside the node home ({home}): mirror the space into a folder outside it")
    if absolute.exists() and not absolute.is_dir():
        raise FolderRefused(f"{absolute} is not a directory")
    return absolute
