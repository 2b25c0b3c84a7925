"""The TypeScript client (clients/js) against a real daemon: its node tests, run from here.

The package's tests (clients/js/test/*.test.mjs, node's built-in runner) talk to two daemons this
module starts, peers sharing the space "main": they get their homes in ``DISTSPACE_TEST_HOME``
and ``DISTSPACE_TEST_PEER_HOME`` and, for the test where an agent types alongside two editors,
this interpreter and the agent script (js_agent.py, a client of ``node.api_client`` as an agent
would be). The run must pass every test and skip none. `make test`
builds the package first (npm ci, npm run build: clients/js/dist).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.node.api_helpers import distspace, running_daemon

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"
AGENT = Path(__file__).resolve().with_name("js_agent.py")
NODE = shutil.which("node")
# The node tests' own steps time out at 20 s; the whole run is a few seconds on loopback.
NODE_RUN_TIMEOUT_S = 300

pytestmark = pytest.mark.skipif(
    NODE is None or not (CLIENT_DIR / "dist" / "index.js").is_file(),
    reason="needs node and the built client: npm ci && npm run build in clients/js (make test does it)",
)


def test_js_client_suite_passes_against_real_daemons(tmp_path: Path) -> None:
    assert NODE is not None
    home, peer_home = tmp_path / "home", tmp_path / "peer-home"
    space = json.loads(distspace(home, "--json", "init", "main", "--public").stdout)
    distspace(peer_home, "join", space["space_id"], "--genesis", space["genesis"])
    with running_daemon(home) as daemon, running_daemon(peer_home, "--peer", next(a for a in daemon.ready["addrs"] if "/tcp/" in a)):
        env = {
            **os.environ,
            "DISTSPACE_TEST_HOME": str(home),
            "DISTSPACE_TEST_PEER_HOME": str(peer_home),
            "DISTSPACE_TEST_PYTHON": sys.executable,
            "DISTSPACE_TEST_AGENT": str(AGENT),
        }
        tests = sorted(str(path.relative_to(CLIENT_DIR)) for path in (CLIENT_DIR / "test").glob("*.test.mjs"))
        run = subprocess.run(
            [NODE, "--test", "--test-reporter=tap", *tests], cwd=CLIENT_DIR, env=env, capture_output=True, text=True, timeout=NODE_RUN_TIMEOUT_S
        )
    report = f"node --test exited {run.returncode}\n{run.stdout}\n{run.stderr}"
    counts = {name: int(value) for name, value in re.findall(r"^# (pass|fail|skipped|todo|cancelled) (\d+)$", run.stdout, re.MULTILINE)}
    assert run.returncode == 0, report
    assert counts.get("fail") == 0 and counts.get("cancelled") == 0, report
    assert counts.get("skipped") == 0 and counts.get("todo") == 0, report
    assert counts.get("pass", 0) > 0, report
