"""Small networks of Linux network namespaces, for multi-host tests and benchmarks (issue 18).

A ``Topology`` makes hosts (one namespace each, loopback up), LANs (a bridge in a switch
namespace of its own, so nothing is added to the caller's namespace), veth links between a
host and a LAN, and routers that masquerade one LAN behind their address on another (NAT,
nftables). Faults are nftables rules too (``tc netem`` has no kernel module here): random loss
on a link (``numgen random mod 100 < N drop`` at the ingress of both of its ends), a cut link
(drop everything), partitions between groups of hosts (drop by address), and ``heal``.

Addresses come from 198.18.0.0/15 (RFC 2544's benchmarking range) only, and nothing is routed
out of the namespaces: no link reaches the caller's namespace.

Every namespace is named ``dsnet<pid>x<n>-...``: parallel runs never collide, and one whose
process is gone is a leftover, which ``sweep_stale`` (run by every new topology) deletes.
``close`` — on leaving the ``with`` block, at exit, and on SIGTERM/SIGHUP — kills the processes
still running in its namespaces (a namespace stays alive while one runs inside it) and deletes
them, which deletes every link and bridge in them too.

Only the standard library and the ``ip`` and ``nft`` commands (Debian ``iproute2``,
``nftables``); root is needed, and ``unavailable()`` says why it cannot run here.
"""

from __future__ import annotations

import atexit
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, Final

from benchmarks.registry import BenchmarkError

PREFIX: Final = "dsnet"
ALLOWED: Final = ipaddress.IPv4Network("198.18.0.0/15")
# ``ip``/``nft`` finish in milliseconds; a hung one fails the caller instead of hanging it.
COMMAND_TIMEOUT_S: Final = 20.0
_STALE = re.compile(rf"^{PREFIX}(\d+)x\d+-")
_COUNTER = itertools.count()
_LIVE: set[Topology] = set()
_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


class TopologyError(BenchmarkError):
    """A namespace, link or rule could not be made (the command and its stderr say why)."""


def unavailable() -> str | None:
    """Why namespaces cannot be built here (not root, a command missing), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for command, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(command) is None:
            return f"`{command}` is missing (apt-get install {package})"
    return None


def run(*argv: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One ``ip``/``nft`` command; raises TopologyError with its stderr when it fails."""
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if check and result.returncode != 0:
        raise TopologyError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def _pids(namespace: str) -> list[int]:
    listed = run("ip", "netns", "pids", namespace, check=False).stdout.split()
    return [int(pid) for pid in listed if pid.isdigit()]


def _delete_namespace(namespace: str) -> None:
    """Kill what runs inside (SIGKILL: a namespace outlives ``ip netns del`` while a process
    holds it), then delete it."""
    for pid in _pids(namespace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    run("ip", "netns", "delete", namespace, check=False)


def namespaces() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.strip()]


def sweep_stale() -> list[str]:
    """Delete the namespaces of runs whose process is gone (killed, or aborted before cleanup)."""
    swept = []
    for namespace in namespaces():
        found = _STALE.match(namespace)
        if found is None or _alive(int(found.group(1))):
            continue
        _delete_namespace(namespace)
        swept.append(namespace)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_address(address: ipaddress.IPv4Interface) -> None:
    if address.ip not in ALLOWED:
        raise TopologyError(f"{address} is outside {ALLOWED}: topologies use the benchmarking range only")


@dataclass(eq=False)
class Host:
    """One namespace: a host, or a router (which is a host with two links and forwarding)."""

    name: str
    namespace: str
    links: list[Link] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The address of its first link (a router: its inside one)."""
        if not self.links:
            raise TopologyError(f"{self.name} has no link")
        return str(self.links[0].address.ip)

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def run(self, *argv: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.command(*argv), input=input, check=check)

    def nft(self, script: str) -> None:
        """Apply an nftables script (one transaction) in this namespace."""
        self.run("nft", "-f", "-", input=script)


@dataclass(eq=False)
class Lan:
    """A bridge (in its own switch namespace) and the subnet its hosts' addresses come from."""

    name: str
    namespace: str
    subnet: ipaddress.IPv4Network
    gateway: str | None = None  # a router's inside address, once one serves this LAN
    hosts: list[Host] = field(default_factory=list)
    _next: Any = None

    def next_address(self) -> ipaddress.IPv4Interface:
        if self._next is None:
            self._next = self.subnet.hosts()
        return ipaddress.IPv4Interface(f"{next(self._next)}/{self.subnet.prefixlen}")


@dataclass(eq=False)
class Link:
    """A veth pair: ``interface`` in the host, ``port`` on the LAN's bridge."""

    host: Host
    lan: Lan
    interface: str
    port: str
    address: ipaddress.IPv4Interface

    def _ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.host.namespace, self.interface), (self.lan.namespace, self.port)

    def loss(self, percent: int) -> None:
        """Drop ``percent`` % of the packets each way, at random (0: none)."""
        if not 0 <= percent <= 100:
            raise TopologyError(f"loss must be a percentage, not {percent}")
        self._ingress("" if percent == 0 else f"numgen random mod 100 < {percent} drop")

    def cut(self) -> None:
        """Drop every packet each way: the host is unplugged from this LAN."""
        self._ingress("drop")

    def heal(self) -> None:
        """No loss, no cut."""
        self._ingress("")

    def _ingress(self, rule: str) -> None:
        for namespace, interface in self._ends():
            table = f"ds_{interface}"
            chain = f"chain in {{\n type filter hook ingress device \"{interface}\" priority 0;\n {rule}\n }}" if rule else ""
            # ``add`` then ``delete`` makes the delete safe when the table is absent; one transaction.
            script = f"add table netdev {table}\ndelete table netdev {table}\n"
            if rule:
                script += f"table netdev {table} {{\n {chain}\n}}\n"
            run("ip", "netns", "exec", namespace, "nft", "-f", "-", input=script)


class Topology:
    """Hosts, LANs, links and routers in namespaces this object made and always deletes."""

    def __init__(self) -> None:
        reason = unavailable()
        if reason is not None:
            raise TopologyError(reason)
        sweep_stale()
        self.prefix = f"{PREFIX}{os.getpid()}x{next(_COUNTER)}-"
        self.hosts: dict[str, Host] = {}
        self.lans: dict[str, Lan] = {}
        self._namespaces: list[str] = []
        self._partitioned: list[Host] = []
        self._closed = False
        with _LOCK:
            _LIVE.add(self)
        _install_handlers()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def _namespace(self, name: str) -> str:
        if not re.fullmatch(r"[a-z0-9]{1,24}", name):
            raise TopologyError(f"name {name!r}: lowercase letters and digits, at most 24")
        namespace = self.prefix + name
        run("ip", "netns", "add", namespace)
        self._namespaces.append(namespace)
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        return namespace

    def lan(self, name: str, subnet: str) -> Lan:
        """A LAN: a bridge in a switch namespace of its own, hosts numbered from ``subnet``."""
        network = ipaddress.ip_network(subnet)
        if not isinstance(network, ipaddress.IPv4Network) or not network.subnet_of(ALLOWED):
            raise TopologyError(f"{subnet} is outside {ALLOWED}: topologies use the benchmarking range only")
        namespace = self._namespace(f"sw{name}")
        run("ip", "-n", namespace, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", namespace, "link", "set", "br0", "up")
        self.lans[name] = made = Lan(name, namespace, network)
        return made

    def host(self, name: str, *lans: Lan) -> Host:
        """A host on each of ``lans`` (addresses in order from each LAN's subnet)."""
        if name in self.hosts:
            raise TopologyError(f"there is a host {name} already")
        self.hosts[name] = made = Host(name, self._namespace(name))
        for lan in lans:
            self.connect(made, lan)
        return made

    def connect(self, host: Host, lan: Lan, address: str | None = None) -> Link:
        """A veth pair from ``host`` (``eth<k>``) to ``lan``'s bridge; the LAN's gateway, if it
        has one and this is the host's first link, becomes its default route."""
        interface, port = f"eth{len(host.links)}", f"p{len(lan.hosts)}"
        chosen = ipaddress.IPv4Interface(address) if address is not None else lan.next_address()
        _check_address(chosen)
        run("ip", "-n", lan.namespace, "link", "add", port, "type", "veth", "peer", "name", interface, "netns", host.namespace)
        run("ip", "-n", lan.namespace, "link", "set", port, "master", "br0", "up")
        run("ip", "-n", host.namespace, "addr", "add", str(chosen), "dev", interface)
        run("ip", "-n", host.namespace, "link", "set", interface, "up")
        link = Link(host, lan, interface, port, chosen)
        host.links.append(link)
        lan.hosts.append(host)
        if lan.gateway is not None and len(host.links) == 1:
            run("ip", "-n", host.namespace, "route", "add", "default", "via", lan.gateway)
        return link

    def router(self, name: str, inside: Lan, outside: Lan) -> Host:
        """A NAT router: forwards ``inside``'s traffic out to ``outside`` under its own outside
        address (nftables masquerade), lets replies back, and drops connections opened from
        outside. ``inside``'s hosts (those made after it too) route through it by default."""
        router = self.host(name, inside, outside)
        router.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        wan = router.links[1].interface
        router.nft(
            "table inet nat {\n"
            " chain postrouting {\n  type nat hook postrouting priority srcnat;\n"
            f"  oifname \"{wan}\" masquerade\n }}\n"
            " chain forward {\n  type filter hook forward priority 0;\n"
            f"  iifname \"{wan}\" ct state new drop\n }}\n"
            "}\n"
        )
        inside.gateway = str(router.links[0].address.ip)
        for host in inside.hosts:
            if host is not router and host.links and host.links[0].lan is inside:
                host.run("ip", "route", "replace", "default", "via", inside.gateway)
        return router

    def partition(self, *groups: Iterable[Host]) -> None:
        """Hosts in different groups can no longer reach each other (hosts in no group are
        untouched); replaces any partition in force."""
        self.heal_partition()
        sets = [list(group) for group in groups]
        for index, group in enumerate(sets):
            others = sorted({str(link.address.ip) for other in sets[:index] + sets[index + 1 :] for host in other for link in host.links})
            if not others:
                continue
            addresses = ", ".join(others)
            for host in group:
                host.nft(
                    "table inet partition {\n"
                    f" chain input {{\n  type filter hook input priority 0;\n  ip saddr {{ {addresses} }} drop\n }}\n"
                    f" chain output {{\n  type filter hook output priority 0;\n  ip daddr {{ {addresses} }} drop\n }}\n"
                    "}\n"
                )
                self._partitioned.append(host)

    def heal_partition(self) -> None:
        for host in self._partitioned:
            host.nft("add table inet partition\ndelete table inet partition\n")
        self._partitioned = []

    def links(self) -> list[Link]:
        return [link for host in self.hosts.values() for link in host.links]

    def close(self) -> None:
        """Kill every process still in its namespaces and delete them (links and bridges go
        with them). Safe to repeat; runs at exit and on SIGTERM/SIGHUP too."""
        if self._closed:
            return
        self._closed = True
        for namespace in reversed(self._namespaces):
            _delete_namespace(namespace)
        with _LOCK:
            _LIVE.discard(self)


def _close_all() -> None:
    with _LOCK:
        live = list(_LIVE)
    for topology in live:
        topology.close()


def _install_handlers() -> None:
    """At exit, and on SIGTERM/SIGHUP (which skip atexit), delete every live topology; the
    signal is then handed to the handler that was there before (by default: die of it)."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_close_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)

        def on_signal(received: int, frame: FrameType | None, previous: Any = previous) -> None:
            _close_all()
            if callable(previous):
                previous(received, frame)
                return
            signal.signal(received, signal.SIG_DFL if previous is None else previous)
            os.kill(os.getpid(), received)

        signal.signal(signum, on_signal)
