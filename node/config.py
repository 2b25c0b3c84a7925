"""A node's settings: ``HOME/config.toml``, every field with an embedded default.

``folder`` (with ``folder_space``) names the folder the daemon mirrors a space into
(node/mirror.py); ``check_folder`` is the one rule of which folders may be mirrored, for the
daemon, ``distspace clone`` and the API's ``mirror.start`` alike.

Where a node listens. A home without ``listen`` in its config listens on loopback only
(``DEFAULT_LISTEN``: a random port, reachable from this machine alone). ``distspace init`` and
``distspace join`` write a config for a home that has none (``write_initial_config``): a port
chosen once (``choose_port``, free for TCP and UDP) on every interface, TCP and QUIC-v1
(``lan_listen``), so the addresses in tickets and peers.json stay valid across restarts and
another machine can dial them. An existing config.toml is never rewritten. Listening openly
is safe because private spaces admit a peer before disclosing anything (protocol/replicator.py);
an open space is readable by whoever can dial.

``reachability`` says whether other machines can dial our addresses: ``public`` (yes),
``private`` (behind a NAT or firewall: hold a reservation on a relay of our spaces and
announce the ``/p2p-circuit`` address, node/network.py), or ``auto``: private unless an
interface has a global address (``node.host.reachable_publicly``). ``relays`` names relays
(multiaddrs with ``/p2p/``) to hold reservations on whatever the reachability; a private node
also reserves on each relay of its spaces it connects to.

A module of its own so that finding the home and its daemon (node/home.py) costs nothing: the
settings name a ``PeerKind``, whose module pulls in the signing library, and a command that
only talks to a running daemon never reads them.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

from node.errors import ConfigError
from protocol.identity import PeerKind
from store.defaults import DEFAULT_SNAPSHOT_EVERY

DEFAULT_LISTEN = ("/ip4/127.0.0.1/tcp/0",)
# Where init's stable port is drawn from: registered ports below Linux's ephemeral range
# (32768-60999), so an outgoing connection's local port never holds it when the daemon starts.
STABLE_PORT_MIN: Final = 20000
STABLE_PORT_MAX: Final = 32000
STABLE_PORT_TRIES: Final = 64
REACHABILITY = ("auto", "public", "private")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Settings from ``config.toml``; every field has an embedded default."""

    name: str = "distspace"
    kind: PeerKind = PeerKind.HUMAN
    listen: tuple[str, ...] = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    mdns: bool = True
    relay: bool = False
    relays: tuple[str, ...] = ()  # relays to hold a reservation on (multiaddrs with /p2p/)
    reachability: str = "auto"  # auto | public | private: can other machines dial our addresses?
    hole_punch: bool = True  # try a direct connection (DCUtR) to a peer reached through a relay
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
                "relays": tuple(raw.get("relays", ())),
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
        if self.reachability not in REACHABILITY:
            raise ConfigError(f"{source}: reachability must be one of {', '.join(REACHABILITY)}, not {self.reachability!r}")
        for name in ("space", "folder_space"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{source}: {name} must be a space's name or id, as a string")
        if self.folder is not None and (not isinstance(self.folder, str) or not Path(self.folder).expanduser().is_absolute()):
            raise ConfigError(f"{source}: folder must be an absolute path (or one starting with ~), as a string")

    def folder_path(self) -> Path | None:
        """``folder`` with ``~`` expanded; None when no folder is set."""
        return None if self.folder is None else Path(self.folder).expanduser()


def dialable_elsewhere(addr: str) -> bool:
    """Whether another machine could dial an announced address: a relay circuit, a name, or
    an IP that is neither loopback nor a wildcard (string work only: no multiaddr import)."""
    if "/p2p-circuit" in addr:
        return True
    parts = addr.split("/")
    if len(parts) < 3:
        return False
    if parts[1] in ("dns", "dns4", "dns6"):
        return True
    if parts[1] not in ("ip4", "ip6"):
        return False
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return False
    return not ip.is_loopback and not ip.is_unspecified


def loopback_warning(addrs: list[str]) -> str | None:
    """What ``distspace status`` warns when a running network is reachable from this machine only."""
    if not addrs or any(dialable_elsewhere(addr) for addr in addrs):
        return None
    return (
        "only loopback is reachable: other machines cannot dial this node; listen on every interface "
        '(config.toml: listen = ["/ip4/0.0.0.0/tcp/PORT"], or distspace up --listen /ip4/0.0.0.0/tcp/PORT)'
    )


def lan_listen(port: int) -> tuple[str, ...]:
    """Every interface, TCP and QUIC-v1 on one port (the daemon announces each interface's
    address, node/host.py). py-libp2p 0.8.1's QUIC transport works (tests/node/test_sync_transports.py)."""
    return (f"/ip4/0.0.0.0/tcp/{port}", f"/ip4/0.0.0.0/udp/{port}/quic-v1")


def choose_port(rng: random.Random | None = None) -> int:
    """A port free now for both TCP and UDP on every interface, from the stable range.

    Raises:
        ConfigError: no free port in ``STABLE_PORT_TRIES`` draws.
    """
    rng = rng or random.Random()
    for _ in range(STABLE_PORT_TRIES):
        port = rng.randrange(STABLE_PORT_MIN, STABLE_PORT_MAX)
        if _free(port, socket.SOCK_STREAM) and _free(port, socket.SOCK_DGRAM):
            return port
    raise ConfigError(f"no free port in {STABLE_PORT_MIN}-{STABLE_PORT_MAX} after {STABLE_PORT_TRIES} tries: set listen in config.toml")


def _free(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def initial_config_text(port: int) -> str:
    """The config.toml a new home gets: its stable listen addresses, with what they mean."""
    listen = ", ".join(f'"{addr}"' for addr in lan_listen(port))
    return (
        "# Written by the home's first init or join (node/config.py says every setting).\n"
        "# Listen on every interface on a port chosen once, so other machines can dial the\n"
        "# addresses in tickets and peers.json after restarts. Loopback only instead:\n"
        '# listen = ["/ip4/127.0.0.1/tcp/0"]\n'
        f"listen = [{listen}]\n"
        "# Behind a NAT: reachability = \"private\" (or \"auto\"), and relays = [\"/ip4/.../tcp/.../p2p/RELAY\"]\n"
    )


def write_initial_config(config_file: Path, rng: random.Random | None = None) -> int | None:
    """Write ``initial_config_text`` if the home has no config.toml; returns the port, or None
    when a config exists (an existing home keeps its settings, whatever they are)."""
    if config_file.exists():
        return None
    port = choose_port(rng)
    config_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with config_file.open("x") as out:  # a concurrent init's file wins, never half of each
            out.write(initial_config_text(port))
    except FileExistsError:
        return None
    return port


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
