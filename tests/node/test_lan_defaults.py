"""Defaults that work on a LAN (issue 18): init's stable port, what a node announces, mDNS
interfaces, the loopback warning. Pure functions, plus one daemon on loopback.

No test dials a LAN interface of this machine: ``announce`` is given made-up interface
addresses, and the daemon below listens on 127.0.0.1 only.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
from pathlib import Path

import multiaddr
import pytest

from api_helpers import distspace, running_daemon
from node.config import (
    STABLE_PORT_MAX,
    STABLE_PORT_MIN,
    NodeConfig,
    choose_port,
    dialable_elsewhere,
    lan_listen,
    loopback_warning,
    write_initial_config,
)
from node.discovery import mdns_interfaces, mdns_properties
from node.errors import ConfigError
from node.host import announce, reachable_publicly

PEER = "12D3KooWHSHBEWj6j6p3E4nmN1ATp4Zm9JsXCpyhCYRzDNi2saKh"
INTERFACES = [ipaddress.ip_address(ip) for ip in ("127.0.0.1", "198.18.1.7", "198.19.0.3", "::1", "fd00::2")]


def test_init_writes_every_interface_on_a_stable_port_and_keeps_an_existing_config(tmp_path: Path) -> None:
    config_file = tmp_path / "home" / "config.toml"
    port = write_initial_config(config_file, random.Random(7))
    assert port is not None and STABLE_PORT_MIN <= port < STABLE_PORT_MAX
    config = NodeConfig.from_toml(config_file.read_text())
    assert config.listen == lan_listen(port) == (f"/ip4/0.0.0.0/tcp/{port}", f"/ip4/0.0.0.0/udp/{port}/quic-v1")
    assert config.reachability == "auto" and config.relays == () and config.hole_punch
    assert write_initial_config(config_file) is None  # an existing home keeps its config
    assert NodeConfig.from_toml(config_file.read_text()).listen == lan_listen(port)


def test_choose_port_skips_a_taken_port(tmp_path: Path) -> None:
    first = choose_port(random.Random(1))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("0.0.0.0", first))
        assert choose_port(random.Random(1)) != first  # same draws: the taken one is passed over


def test_config_refuses_an_unknown_reachability() -> None:
    with pytest.raises(ConfigError, match="reachability must be one of"):
        NodeConfig.from_toml('reachability = "sometimes"\n')
    config = NodeConfig.from_toml('reachability = "private"\nrelays = ["/ip4/127.0.0.1/tcp/4001/p2p/R"]\nhole_punch = false\n')
    assert (config.reachability, config.relays, config.hole_punch) == ("private", ("/ip4/127.0.0.1/tcp/4001/p2p/R",), False)


def test_a_wildcard_is_announced_as_each_interface_loopback_last() -> None:
    listening = [multiaddr.Multiaddr(a) for a in ("/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/tcp/4001")]
    assert [str(a) for a in announce(listening, INTERFACES)] == [
        "/ip4/198.18.1.7/tcp/4001",
        "/ip4/198.19.0.3/tcp/4001",
        "/ip4/198.18.1.7/udp/4001/quic-v1",
        "/ip4/198.19.0.3/udp/4001/quic-v1",
        "/ip6/fd00::2/tcp/4001",
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/127.0.0.1/udp/4001/quic-v1",
        "/ip6/::1/tcp/4001",
    ]
    explicit = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/5")]
    assert announce(explicit, INTERFACES) == explicit  # an explicit address is announced as it is


def test_what_counts_as_reachable_from_elsewhere() -> None:
    assert dialable_elsewhere(f"/ip4/198.18.1.7/tcp/4001/p2p/{PEER}")
    assert dialable_elsewhere(f"/ip4/127.0.0.1/tcp/4001/p2p/R/p2p-circuit/p2p/{PEER}")  # through the relay
    assert dialable_elsewhere("/dns4/example.org/tcp/4001")
    assert not dialable_elsewhere(f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}")
    assert not dialable_elsewhere("/ip4/0.0.0.0/tcp/4001")
    assert not dialable_elsewhere("/ip6/::1/tcp/4001")
    assert reachable_publicly(["/ip4/8.8.8.8/tcp/1"]) and not reachable_publicly(["/ip4/198.18.1.7/tcp/1", "/ip4/198.18.0.1/tcp/1"])


def test_the_loopback_warning() -> None:
    loopback = [f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"]
    assert loopback_warning(loopback) is not None and "only loopback" in str(loopback_warning(loopback))
    assert loopback_warning([*loopback, f"/ip4/198.18.1.7/tcp/4001/p2p/{PEER}"]) is None
    assert loopback_warning([]) is None  # no network running: nothing to warn about


def test_mdns_runs_on_the_interfaces_announced_and_stays_on_loopback_otherwise() -> None:
    assert mdns_interfaces([f"/ip4/198.18.1.7/tcp/1/p2p/{PEER}", f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}"]) == ["198.18.1.7", "127.0.0.1"]
    assert mdns_interfaces([f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}"]) == ["127.0.0.1"]
    assert mdns_interfaces([f"/ip4/127.0.0.1/tcp/1/p2p/R/p2p-circuit/p2p/{PEER}"]) == ["127.0.0.1"]
    assert mdns_interfaces([]) == ["127.0.0.1"]


def test_mdns_announces_lan_addresses_and_loopback_only_when_there_is_nothing_else() -> None:
    lan, loopback = f"/ip4/198.18.1.7/tcp/1/p2p/{PEER}", f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}"
    both = mdns_properties(PEER, [lan, loopback], [b"s" * 32])
    assert both["a0"] == lan and "a1" not in both
    assert mdns_properties(PEER, [loopback], [b"s" * 32])["a0"] == loopback


def test_status_on_a_loopback_daemon_warns_and_names_nothing_to_dial(tmp_path: Path) -> None:
    home = tmp_path / "home"
    distspace(home, "init", "main")
    assert "0.0.0.0" in (home / "config.toml").read_text()
    with running_daemon(home):  # the helper listens on 127.0.0.1 only
        status = json.loads(distspace(home, "--json", "status").stdout)
        assert status["reachable"] == [] and "only loopback" in status["warning"]
        assert all("/ip4/127.0.0.1/" in addr for addr in status["addrs"])
        text = distspace(home, "status").stdout.decode()
        assert "warning   only loopback is reachable" in text
