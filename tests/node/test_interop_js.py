"""A foreign libp2p peer talks to our daemon: js-libp2p (the reference JS implementation, npm)
dials a real ``distspace up`` over TCP + Noise + yamux and completes identify and ping
(issue 18). The peer is tests/interop/js/peer.mjs, installed by ``make test`` (npm ci); it
listens on nothing and dials the daemon on 127.0.0.1 only.

A stranger to the daemon's private space, it is answered identify and ping and nothing else:
the daemon opens it no sync session and logs no failure of ours.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api_helpers import distspace
from e2e_helpers import daemon

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js"
NODE = shutil.which("node")
PEER_TIMEOUT_S = 60  # node's start (~1 s) and the dial; peer.mjs gives up itself after 20 s

pytestmark = pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "libp2p").is_dir(),
    reason="needs node and js-libp2p: run npm ci in tests/interop/js (make test does)",
)


def js_peer(addr: str) -> dict[str, Any]:
    """Run the js-libp2p peer against ``addr``; the JSON line it prints."""
    assert NODE is not None
    done = subprocess.run([NODE, "peer.mjs", addr], cwd=JS_DIR, capture_output=True, text=True, timeout=PEER_TIMEOUT_S)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"peer.mjs exited {done.returncode}: {done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_js_libp2p_identifies_and_pings_our_daemon_over_tcp_noise_yamux(tmp_path: Path) -> None:
    home = tmp_path / "home"
    distspace(home, "init", "main")
    with daemon(home) as running:
        addr = next(a for a in running.ready["addrs"] if "/ip4/127.0.0.1/tcp/" in a)
        peer_id = addr.rsplit("/p2p/", 1)[1]
        answer = js_peer(addr)
        assert answer["peer_id"] == peer_id  # Noise authenticated our Ed25519 key
        assert answer["encryption"] == "/noise" and answer["multiplexer"] == "/yamux/1.0.0"
        assert answer["agent"].startswith("py-libp2p/")
        assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/distspace/sync/1"} <= set(answer["protocols"])
        assert addr.rsplit("/p2p/", 1)[0] in answer["listen_addrs"]
        assert len(answer["ping_ms"]) == 3 and all(isinstance(rtt, int | float) for rtt in answer["ping_ms"])
        again = js_peer(addr)  # a second foreign connection is served as the first
        assert again["peer_id"] == peer_id
        status = json.loads(distspace(home, "--json", "status").stdout)
        assert status["daemon"] and status["network"]
