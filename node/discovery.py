"""Finding peers: a persistent peerstore, mDNS on the LAN, and the backoff of redials.

- ``PeerStore`` is ``peers.json`` in the node home: the addresses of peers we synced with or
  were told about (bootstrap, mDNS), so a restarted node redials them without being told
  again. A JSON file of our own, not libp2p's in-memory peerstore and not the store's schema:
  it holds hints, never truth, and is rewritten atomically.
- ``MdnsDiscovery`` announces this node as ``_distspace._udp.local.`` and browses for others,
  on the interfaces whose addresses we announce (``mdns_interfaces``: a node listening on every
  interface is found on the LAN; a loopback-only node, as in tests, stays on loopback).
  Its TXT record carries our protocol and a short tag per space (a hash of the space id:
  peers that share a space recognise each other; others learn nothing about the space), so
  the node dials only peers that speak our protocol and share a space — libp2p's own mDNS
  would also hand us every unrelated libp2p node on the LAN.
  zeroconf is thread-based: registering probes for ~1.6 s and would block the trio loop, so
  it runs in a worker thread; browse callbacks arrive on zeroconf's thread and are handed to
  trio with the run's token. zeroconf runs its own asyncio loop in its own single thread; no
  asyncio code of ours runs anywhere.
- ``Backoff``: exponential with jitter, so a dead peer costs a dial a minute, not a storm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import multiaddr
import trio

from node.home import write_atomically
from node.host import SYNC_PROTOCOL
from node.logs import event

logger = logging.getLogger(__name__)

__all__ = [
    "MDNS_SERVICE_TYPE",
    "Backoff",
    "MdnsDiscovery",
    "MdnsPeer",
    "PeerStore",
    "mdns_filter",
    "mdns_interfaces",
    "space_tag",
    "transport_rank",
]

PEERSTORE_FILE: Final = "peers.json"
# Peers remembered; the least recently seen go first. A team and its agents fit many times.
PEERSTORE_MAX_PEERS: Final = 256
# Addresses remembered per peer (a peer listens on a handful: TCP, QUIC, webrtc-direct).
PEERSTORE_MAX_ADDRS: Final = 8
# A peer not seen for this long is forgotten: its addresses are surely stale.
PEERSTORE_TTL_MS: Final = 30 * 24 * 3600 * 1000

MDNS_SERVICE_TYPE: Final = "_distspace._udp.local."
# Space tags in one announcement: a TXT record holds at most ~1300 bytes in one packet.
MDNS_MAX_TAGS: Final = 64
MDNS_MAX_ADDRS: Final = 4
MDNS_TAG_BYTES: Final = 8  # 64 bits: collisions between unrelated spaces never matter
MDNS_TAG_DOMAIN: Final = b"distspace/mdns-space-tag/v1\x00"
MDNS_RESOLVE_TIMEOUT_MS: Final = 3000
# Announcements waiting for the trio side; more are dropped (they repeat every few seconds).
MDNS_INBOX: Final = 64


def space_tag(space: bytes) -> str:
    """What mDNS announces for a space: enough to match, not the id itself."""
    return hashlib.sha256(MDNS_TAG_DOMAIN + space).digest()[:MDNS_TAG_BYTES].hex()


def transport_rank(addr: str) -> int:
    """Dial preference: TCP (fast bulk, ~45 MB/s), QUIC (~1 MiB/s bulk in py-libp2p 0.8.1),
    webrtc-direct, then relay circuits (two hops)."""
    if "/p2p-circuit" in addr:
        return 4
    if "/tcp/" in addr:
        return 0
    if "/quic" in addr:
        return 1
    if "/webrtc-direct" in addr:
        return 2
    return 3


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with +-25% jitter: ``next()`` gives the wait before the next try."""

    initial_s: float = 0.25
    max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    _current_s: float = 0.0

    def next(self) -> float:
        self._current_s = self.initial_s if not self._current_s else min(self._current_s * 2, self.max_s)
        return self._current_s * self.rng.uniform(0.75, 1.25)

    def reset(self) -> None:
        self._current_s = 0.0


# ----- the persistent peerstore -----


class PeerStore:
    """``peers.json``: peer id -> addresses and when we last saw the peer.

    Loaded once, saved atomically when changed (the caller decides when: ``save_if_dirty``).
    A damaged file is set aside as ``peers.json.bad`` and the node starts with an empty store:
    it only holds hints.
    """

    def __init__(self, path: Path | None, *, clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.path = path
        self._clock = clock
        self._peers: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text())
            peers = raw["peers"]
            for peer_id, entry in peers.items():
                addrs = [str(multiaddr.Multiaddr(a)) for a in entry["addrs"]][:PEERSTORE_MAX_ADDRS]
                self._peers[str(peer_id)] = {"addrs": addrs, "last_seen_ms": int(entry.get("last_seen_ms", 0))}
        except Exception as error:  # any damage: keep nothing from it
            event(logger, "peerstore.damaged", logging.WARNING, path=path, error=repr(error))
            self._peers = {}
            try:
                path.replace(path.with_name(path.name + ".bad"))
            except OSError:
                pass
        self._expire()

    def peers(self) -> dict[str, list[str]]:
        return {peer_id: list(entry["addrs"]) for peer_id, entry in self._peers.items()}

    def addrs(self, peer_id: str) -> list[str]:
        entry = self._peers.get(peer_id)
        return list(entry["addrs"]) if entry else []

    def remember(self, peer_id: str, addrs: Iterable[str], *, seen: bool = True) -> None:
        """Add addresses for a peer (newest first); ``seen`` also stamps it as alive now."""
        entry = self._peers.setdefault(peer_id, {"addrs": [], "last_seen_ms": 0})
        merged = list(dict.fromkeys([*[str(a) for a in addrs], *entry["addrs"]]))[:PEERSTORE_MAX_ADDRS]
        if merged != entry["addrs"]:
            entry["addrs"] = merged
            self._dirty = True
        if seen:
            entry["last_seen_ms"] = self._clock()
            self._dirty = True
        if len(self._peers) > PEERSTORE_MAX_PEERS:
            oldest = min(self._peers, key=lambda p: self._peers[p]["last_seen_ms"])
            del self._peers[oldest]

    def forget(self, peer_id: str) -> None:
        if self._peers.pop(peer_id, None) is not None:
            self._dirty = True

    def save_if_dirty(self) -> None:
        """Write the file (whole or not at all) if anything changed; errors are logged."""
        if not self._dirty or self.path is None:
            return
        self._expire()
        try:
            write_atomically(self.path, json.dumps({"version": 1, "peers": self._peers}, indent=1, sort_keys=True))
            self._dirty = False
        except OSError as error:
            event(logger, "peerstore.save_failed", logging.WARNING, path=self.path, error=repr(error))

    def _expire(self) -> None:
        now = self._clock()
        stale = [p for p, e in self._peers.items() if e["last_seen_ms"] and now - e["last_seen_ms"] > PEERSTORE_TTL_MS]
        for peer_id in stale:
            del self._peers[peer_id]
            self._dirty = True


# ----- mDNS -----


@dataclass(frozen=True, slots=True)
class MdnsPeer:
    """A peer announced on the LAN that speaks our protocol and shares a space with us."""

    peer_id: str
    addrs: tuple[str, ...]


def mdns_properties(peer_id: str, addrs: Sequence[str], spaces: Iterable[bytes]) -> dict[str, str]:
    """Our TXT record: protocol, peer id, a few addresses, one tag per space. Loopback addresses
    only when we have no other (a peer on the LAN cannot use them; the few slots go to ones it can)."""
    tags = sorted(space_tag(space) for space in spaces)[:MDNS_MAX_TAGS]
    texts = [str(a) for a in addrs]
    beyond = [a for a in texts if not _on_loopback(a)]
    ordered = sorted(beyond or texts, key=transport_rank)[:MDNS_MAX_ADDRS]
    properties = {"proto": str(SYNC_PROTOCOL), "peer": peer_id, "spaces": ",".join(tags)}
    properties.update({f"a{i}": addr for i, addr in enumerate(ordered)})
    return properties


def mdns_filter(properties: dict[bytes | str, bytes | str | None], own_peer_id: str, spaces: Iterable[bytes]) -> MdnsPeer | None:
    """The peer a TXT record announces, if it is for us: our protocol, a space in common, not
    ourselves, and addresses that name the announced peer. Anything else (other libp2p
    nodes, other apps, malformed records) is None."""

    def text(key: str) -> str:
        value = properties.get(key.encode(), properties.get(key))
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value or ""

    if text("proto") != str(SYNC_PROTOCOL):
        return None
    peer_id = text("peer")
    if not peer_id or peer_id == own_peer_id:
        return None
    theirs = set(filter(None, text("spaces").split(",")))
    if not theirs & {space_tag(space) for space in spaces}:
        return None
    addrs = []
    for index in range(MDNS_MAX_ADDRS):
        addr = text(f"a{index}")
        try:
            parsed = multiaddr.Multiaddr(addr)
        except Exception:
            continue
        if parsed.get_peer_id() == peer_id:
            addrs.append(str(parsed))
    return MdnsPeer(peer_id, tuple(addrs)) if addrs else None


def _on_loopback(addr: str) -> bool:
    return addr.startswith(("/ip4/127.", "/ip6/::1/"))


def mdns_interfaces(addrs: Iterable[str]) -> list[str]:
    """The IPv4 addresses mDNS runs on: those of our direct addresses (node/host.py announces
    each interface's for a wildcard listen), loopback included only when listed; just
    loopback for a node with no IPv4 address of its own (relay circuits only, IPv6 only)."""
    found: list[str] = []
    for addr in addrs:
        parts = str(addr).split("/")
        if len(parts) > 2 and parts[1] == "ip4" and "p2p-circuit" not in parts and parts[2] not in found:
            found.append(parts[2])
    return found or ["127.0.0.1"]


class MdnsDiscovery:
    """Announce ourselves and report matching peers through ``on_found`` (on the trio thread).

    ``update(addrs, spaces)`` re-announces after our spaces or addresses change.
    """

    def __init__(
        self,
        peer_id: str,
        addrs: Sequence[str],
        spaces: Iterable[bytes],
        on_found: Callable[[MdnsPeer], None],
        *,
        interfaces: Sequence[str] | None = None,
    ) -> None:
        self.peer_id = peer_id
        self._addrs = list(addrs)
        self._spaces = set(spaces)
        self._on_found = on_found
        # Loopback-only nodes stay on loopback (tests, single machine).
        self._interfaces = list(interfaces) if interfaces is not None else mdns_interfaces(addrs)
        self._zeroconf: Any = None
        self._info: Any = None
        self.found: dict[str, MdnsPeer] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, browse and report until cancelled; unregister and close on the way out."""
        from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

        token = trio.lowlevel.current_trio_token()
        send, receive = trio.open_memory_channel[str](MDNS_INBOX)

        def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
            # zeroconf's thread: hand the name over, resolve it on ours (never block theirs).
            if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
                try:
                    token.run_sync_soon(_offer, send, name)
                except trio.RunFinishedError:
                    pass

        interfaces = self._interfaces
        zeroconf = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only))
        self._zeroconf = zeroconf
        browser = None
        try:
            self._info = self._service_info()
            await trio.to_thread.run_sync(zeroconf.register_service, self._info)
            browser = ServiceBrowser(zeroconf, MDNS_SERVICE_TYPE, handlers=[on_change])
            event(logger, "mdns.started", peer_id=self.peer_id, interfaces=",".join(self._interfaces))
            task_status.started()
            async with receive:
                async for name in receive:
                    await self._resolve(name)
        finally:
            with trio.CancelScope(shield=True):
                if browser is not None:
                    await trio.to_thread.run_sync(browser.cancel)
                await trio.to_thread.run_sync(self._close)

    async def update(self, addrs: Sequence[str], spaces: Iterable[bytes]) -> None:
        """Announce new addresses or spaces (takes a worker thread for zeroconf's I/O)."""
        self._addrs = list(addrs)
        self._spaces = set(spaces)
        if self._zeroconf is None or self._info is None:
            return
        self._info = self._service_info()
        await trio.to_thread.run_sync(self._zeroconf.update_service, self._info)

    def _service_info(self) -> Any:
        from zeroconf import ServiceInfo

        properties = mdns_properties(self.peer_id, self._addrs, self._spaces)
        return ServiceInfo(
            MDNS_SERVICE_TYPE,
            f"{self.peer_id}.{MDNS_SERVICE_TYPE}",
            addresses=[socket.inet_aton(ip) for ip in self._interfaces],
            port=_first_port(self._addrs),
            properties=properties,
            server=f"{self.peer_id[-20:].lower()}.local.",
        )

    async def _resolve(self, name: str) -> None:
        if name == f"{self.peer_id}.{MDNS_SERVICE_TYPE}":
            return
        info = await trio.to_thread.run_sync(self._zeroconf.get_service_info, MDNS_SERVICE_TYPE, name, MDNS_RESOLVE_TIMEOUT_MS)
        if info is None:
            return
        peer = mdns_filter(info.properties or {}, self.peer_id, self._spaces)
        if peer is None:
            event(logger, "mdns.ignored", logging.DEBUG, service=name)
            return
        if self.found.get(peer.peer_id) != peer:
            self.found[peer.peer_id] = peer
            event(logger, "mdns.found", peer_id=peer.peer_id, addrs=",".join(peer.addrs))
        self._on_found(peer)

    def _close(self) -> None:
        zeroconf, self._zeroconf = self._zeroconf, None
        if zeroconf is None:
            return
        try:
            if self._info is not None:
                zeroconf.unregister_service(self._info)
        finally:
            zeroconf.close()


def _offer(send: trio.MemorySendChannel[str], name: str) -> None:
    try:
        send.send_nowait(name)
    except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # a full inbox: the announcement repeats


def _first_port(addrs: Sequence[str]) -> int:
    for addr in sorted(addrs, key=transport_rank):
        parts = str(addr).split("/")
        for proto in ("tcp", "udp"):
            if proto in parts:
                return int(parts[parts.index(proto) + 1])
    return 9
