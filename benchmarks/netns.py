"""netns: sync across network namespaces (issue 18's Measure) — real ``distspace up`` daemons,
each in a namespace of its own (benchmarks/netns_topology.py), driven through their APIs.

1. ``edit_to_peer``: a splice through Alice's API until Bob's ``file.changed`` notification,
   one edit at a time: ``direct`` (both on one LAN) and ``relayed`` (each behind its own NAT
   router, a relay host with ``up --relay`` on the public LAN between them: Bob reaches Alice
   only at her ``/p2p-circuit`` address; the relay is a member too, so an edit takes whichever
   of the circuit and the relay's replica is first), in the same run; the direct figures are
   the relayed ones' baseline.
2. ``heal``: five hosts on one LAN split 2 | 3 (nftables drop by address); 1,000 edits through
   the five APIs during the partition; time from the heal until every daemon holds the same
   heads for the file and the same change count.
3. ``relay cost``: during the relayed edits, the relay daemon's CPU time (utime + stime from
   /proc) and the bytes through its interface (both ways, /proc/net/dev in its namespace), per
   relayed edit.

Needs root and ``ip``/``nft`` (BenchmarkError otherwise). Namespaces have no delay emulation
(no netem here): the figures are the software's cost over veth, not a WAN's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.measure import log
from benchmarks.netns_topology import Host, Topology
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from cli.daemon_process import DaemonProcess, start_daemon, stop_all

PORT = 4001
SAMPLES, QUICK_SAMPLES = 200, 40
HEAL_EDITS, QUICK_HEAL_EDITS = 1_000, 200
READY_TIMEOUT_S = 60.0
WAIT_S = 120.0  # any one wait (an edit's arrival, a convergence) longer than this is a failure
POLL_S = 0.02
PATH = "bench.txt"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class NetnsBenchmarkFailed(BenchmarkError):
    """An edit never arrived, or the nodes never converged, within WAIT_S."""


def _distspace() -> str:
    return str(Path(sys.executable).with_name("distspace"))


def _cli(home: Path, *args: str) -> str:
    return subprocess.run([_distspace(), "--home", str(home), *args], check=True, capture_output=True, text=True).stdout


class _Node:
    def __init__(self, host: Host, home: Path) -> None:
        self.host, self.home = host, home
        _cli(home, "id")
        self.peer_id = json.loads(_cli(home, "id", "--json"))["peer_id"]
        self.process: DaemonProcess | None = None

    @property
    def dial(self) -> str:
        return f"/ip4/{self.host.address}/tcp/{PORT}/p2p/{self.peer_id}"

    def start(self, *args: str) -> DaemonProcess:
        listen = f"/ip4/{self.host.address}/tcp/{PORT}"
        command = self.host.command(_distspace())
        self.process = start_daemon(self.home, "--no-mdns", "--listen", listen, *args, command=command, ready_timeout_s=READY_TIMEOUT_S)
        return self.process

    def api(self) -> Any:
        from node.api_client import ApiClient

        assert self.process is not None
        return ApiClient.connect(Path(self.process.ready["api"]["unix"]), (self.home / "api.token").read_text())


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise NetnsBenchmarkFailed(f"{what} within {WAIT_S:.0f} s")
        time.sleep(POLL_S)


def _read(api: Any) -> str | None:
    from node.rpc import RpcError

    try:
        return str(api.call("fs.read", path=PATH)["text"])
    except RpcError:
        return None


def _latencies(writer: Any, reader: Any, samples: int) -> list[float]:
    """Closed loop: one splice, then Bob's notification that carries it, ``samples`` times."""
    writer.call("fs.write", path=PATH, text="", parents=False)
    _until(lambda: _read(reader) is not None, "the file reached the peer")
    reader.call("subscribe.file", path=PATH)
    latencies = []
    for k in range(samples):
        marker = f"<{k:05d}>"
        began = time.perf_counter()
        writer.call("fs.splice", path=PATH, position=0, delete=0, insert=marker)
        deadline = time.monotonic() + WAIT_S
        while True:
            message = reader.next_notification(timeout=max(0.01, deadline - time.monotonic()))
            params = message.get("params", {})
            texts = [e.get("insert", "") for e in params.get("edits", [])] + [params.get("text", "") or ""]
            if any(marker in text for text in texts):
                break
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _interface_bytes(host: Host) -> int:
    for line in host.run("cat", "/proc/net/dev").stdout.splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == host.links[0].interface:
            values = counters.split()
            return int(values[0]) + int(values[8])
    raise NetnsBenchmarkFailed(f"no counters for {host.name}'s interface")


def _space(home: Path) -> dict[str, Any]:
    return dict(json.loads(_cli(home, "--json", "init", "bench", "--public")))


def _relayed_pair(relay: _Node, alice: _Node, bob: _Node) -> list[DaemonProcess]:
    """Alice (behind her NAT) makes a private space, the relay joins by her relay ticket; her
    config says she is not reachable and names the relay, so her ticket's first address is her
    circuit; Bob (behind his) joins by it. Returns their daemons once Bob is connected to her."""
    _cli(alice.home, "init", "relayed")
    _cli(relay.home, "join", json.loads(_cli(alice.home, "invite", "--role", "relay", "--json"))["ticket"])
    config = alice.home / "config.toml"
    config.write_text(config.read_text() + f'reachability = "private"\nrelays = ["{relay.dial}"]\n')
    daemons = [relay.start("--relay"), alice.start()]
    circuit = f"{relay.dial}/p2p-circuit/p2p/{alice.peer_id}"
    _until(lambda: json.loads(_cli(alice.home, "--json", "status"))["reachable"][:1] == [circuit], "Alice's circuit address")
    _cli(bob.home, "join", json.loads(_cli(alice.home, "invite", "--role", "write", "--json"))["ticket"])
    daemons.append(bob.start())
    with bob.api() as api:
        _until(lambda: alice.peer_id in [p["peer_id"] for p in api.call("node.peers")["peers"]], "Bob connected to Alice")
    return daemons


def direct_and_relayed(samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dsnetb-") as root, Topology() as net:
        results: dict[str, Any] = {}
        lan = net.lan("lan", "198.18.0.0/24")
        a, b = _Node(net.host("a", lan), Path(root) / "a"), _Node(net.host("b", lan), Path(root) / "b")
        public = net.lan("public", "198.18.1.0/24")
        inside_c, inside_d = net.lan("homec", "198.18.2.0/24"), net.lan("homed", "198.18.3.0/24")
        relay = _Node(net.host("relay", public), Path(root) / "relay")
        net.router("natc", inside_c, public)
        net.router("natd", inside_d, public)
        c, d = _Node(net.host("c", inside_c), Path(root) / "c"), _Node(net.host("d", inside_d), Path(root) / "d")
        space = _space(a.home)
        _cli(b.home, "join", space["space_id"], "--genesis", space["genesis"])
        daemons = []
        try:
            daemons += [a.start(), b.start("--peer", a.dial)]
            daemons += _relayed_pair(relay, c, d)
            with a.api() as writer, b.api() as reader:
                results["direct"] = _latencies(writer, reader, samples)
            assert relay.process is not None
            cpu, sent = _cpu_s(relay.process.process.pid), _interface_bytes(relay.host)
            with c.api() as writer, d.api() as reader:
                results["relayed"] = _latencies(writer, reader, samples)
                peers = reader.call("node.peers")["peers"]
            results["relay_cpu_ms_per_edit"] = (_cpu_s(relay.process.process.pid) - cpu) * 1000 / samples
            results["relay_bytes_per_edit"] = (_interface_bytes(relay.host) - sent) / samples
            results["through_circuit"] = any(p["peer_id"] == c.peer_id and all("/p2p-circuit" in x for x in p["addrs"]) for p in peers)
        finally:
            stop_all(daemons)
        return results


def heal(edits: int) -> float:
    """Seconds from the heal of a 2 | 3 partition, with ``edits`` made during it, to the same heads
    and change counts on all five daemons."""
    with tempfile.TemporaryDirectory(prefix="dsnetb-") as root, Topology() as net:
        lan = net.lan("lan", "198.18.4.0/24")
        nodes = [_Node(net.host(f"h{i}", lan), Path(root) / f"h{i}") for i in range(5)]
        space = _space(nodes[0].home)
        for node in nodes[1:]:
            _cli(node.home, "join", space["space_id"], "--genesis", space["genesis"])
        daemons = []
        try:
            for node in nodes:
                daemons.append(node.start(*[a for other in nodes if other is not node for a in ("--peer", other.dial)]))
            apis = [node.api() for node in nodes]
            try:
                apis[0].call("fs.write", path=PATH, text="", parents=False)
                for api in apis:
                    _until(lambda api=api: _read(api) is not None, "the file reached every daemon")
                net.partition([n.host for n in nodes[:2]], [n.host for n in nodes[2:]])
                for k in range(edits):
                    apis[k % len(apis)].call("fs.splice", path=PATH, position=0, delete=0, insert=f"<{k}>")
                net.heal_partition()
                healed = time.perf_counter()

                def converged() -> bool:
                    heads = [sorted(api.call("fs.stat", path=PATH)["heads"]) for api in apis]
                    changes = [sum(s["changes"] for s in api.call("node.stats")["spaces"]) for api in apis]
                    return all(h == heads[0] for h in heads) and len(set(changes)) == 1

                _until(converged, "the five daemons converged after the heal")
                seconds = time.perf_counter() - healed
                text = _read(apis[0]) or ""
                if not all(f"<{k}>" in text for k in range(edits)):
                    raise NetnsBenchmarkFailed("converged without every edit")
                return seconds
            finally:
                for api in apis:
                    api.close()
        finally:
            stop_all(daemons)


@benchmark("netns")
def netns(options: RunOptions) -> Iterator[Figure]:
    samples = QUICK_SAMPLES if options.quick else SAMPLES
    log(f"netns: edit to peer, direct and through a relay between two NATs ({samples} edits each)")
    paths = direct_and_relayed(samples)
    direct, relayed = paths["direct"], paths["relayed"]
    path = "circuit" if paths["through_circuit"] else "relay_replica"
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        direct_q = statistics.median(direct) if q == 0.5 else _p(direct, q)
        relayed_q = statistics.median(relayed) if q == 0.5 else _p(relayed, q)
        yield Figure(f"edit_to_peer.direct.{label}", round(direct_q, 2), "ms")
        yield Figure(f"edit_to_peer.relayed_{path}.{label}", round(relayed_q, 2), "ms", "direct", round(direct_q, 2))
    yield Figure("relay.cpu_per_edit", round(paths["relay_cpu_ms_per_edit"], 3), "ms")
    yield Figure("relay.bytes_per_edit", round(paths["relay_bytes_per_edit"]), "bytes")
    edits = QUICK_HEAL_EDITS if options.quick else HEAL_EDITS
    log(f"netns: five hosts, {edits} edits during a 2 | 3 partition, then heal")
    yield Figure(f"heal.converge_after_{edits}_edits", round(heal(edits), 3), "s")
