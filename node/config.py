"""A node's settings: ``HOME/config.toml``, every field with an embedded default.

A module of its own so that finding the home and its daemon (node/home.py) costs nothing: the
settings name a ``PeerKind``, whose module pulls in the signing library, and a command that
only talks to a running daemon never reads them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields

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
    ipfs_api: str | None = None
    space: str | None = None  # the space of calls that name none (a name or id); the first init or join sets it

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
        if self.space is not None and not isinstance(self.space, str):
            raise ConfigError(f"{source}: space must be a space's name or id, as a string")
