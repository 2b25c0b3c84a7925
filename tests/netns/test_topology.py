"""The namespace helper itself (benchmarks/netns_topology.py): NAT lets a host out but nobody in,
partitions and cut links stop traffic and heal restores it, and nothing outlives its run —
not on close, not on SIGTERM, and a dead run's leftovers are swept by the next."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from benchmarks.netns_topology import PREFIX, Host, Topology, TopologyError, namespaces, run


def reaches(source: Host, target: Host) -> bool:
    return source.run("ping", "-c", "1", "-W", "1", target.address, check=False).returncode == 0


@pytest.mark.skipif(shutil.which("ping") is None, reason="ping is missing (apt-get install iputils-ping)")
def test_nat_partitions_and_cuts_stop_traffic_and_heal_restores_it() -> None:
    with Topology() as net:
        public, inside = net.lan("public", "198.18.0.0/24"), net.lan("inside", "198.18.1.0/24")
        server, other = net.host("server", public), net.host("other", public)
        net.router("nat", inside, public)
        behind = net.host("behind", inside)
        assert reaches(behind, server) and not reaches(server, behind)  # out through the NAT, never in
        net.partition([server], [other])
        assert not reaches(server, other) and reaches(behind, server)  # hosts in no group are untouched
        net.heal_partition()
        assert reaches(server, other)
        server.links[0].cut()
        assert not reaches(other, server)
        server.links[0].heal()
        assert reaches(other, server)
        made = [n for n in namespaces() if n.startswith(net.prefix)]
        assert len(made) == 6  # 2 switches, 3 hosts, 1 router
    assert not [n for n in namespaces() if n.startswith(net.prefix)]


def test_addresses_outside_the_benchmarking_range_are_refused() -> None:
    with Topology() as net:
        with pytest.raises(TopologyError, match="benchmarking range"):
            net.lan("wrong", "203.0.113.0/24")
        lan = net.lan("right", "198.18.0.0/24")
        with pytest.raises(TopologyError, match="benchmarking range"):
            net.connect(net.host("h"), lan, "203.0.113.5/24")


def test_a_run_killed_by_sigterm_deletes_its_namespaces_and_a_dead_runs_are_swept() -> None:
    child = textwrap.dedent(
        """
        import os, signal, sys
        from benchmarks.netns_topology import Topology
        net = Topology()
        net.host("a", net.lan("l", "198.18.0.0/24"))
        net.host("sleeper").run("true")
        print(net.prefix, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode == -15, done.stderr
    prefix = done.stdout.strip()
    assert prefix.startswith(PREFIX) and not [n for n in namespaces() if n.startswith(prefix)]
    # A run that died without cleaning up (SIGKILL): its pid is gone, the next run sweeps it.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    orphan = f"{PREFIX}{dead.stdout.strip()}x0-orphan"
    run("ip", "netns", "add", orphan)
    with Topology():
        assert orphan not in namespaces()
