"""``distspace demo``, the README's main job, run as a user runs it: three daemons converge.

The demo checks convergence itself and fails otherwise; this test re-reads its ``--json``
summary so that a demo quietly showing less (a peer left out, an edit lost, history missing)
fails too.
"""

from __future__ import annotations

import json
import subprocess

from cli_helpers import DISTSPACE

# The demo takes ~6 s on an idle laptop; a hang fails here (a deadline, not a measure).
DEMO_TIMEOUT_S = 120.0
EVERY_EDIT = ('"Hi, "', '"""Greet someone by name."""', "(name: str) -> str:", "def farewell(name):", '"Dist-Space"')


def test_three_peers_edit_at_once_and_apart_and_converge_with_a_signed_history() -> None:
    result = subprocess.run([DISTSPACE, "demo", "--json"], capture_output=True, timeout=DEMO_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    summary = json.loads(result.stdout)  # stdout is the summary alone; progress went to stderr
    assert summary["converged"]

    peers = summary["peers"]
    assert [(peer["name"], peer["kind"]) for peer in peers] == [("alice", "human"), ("bob", "human"), ("ada", "agent")]
    assert len({(peer["history_sha256"], peer["changes"]) for peer in peers}) == 1
    assert all(peer["verified"] for peer in peers)

    files = summary["files"]
    assert set(files) == {"greet.py", "README.md", "tests/test_greet.py", "CHANGELOG.md", "TODO.md"}
    assert all(edit in files["greet.py"] for edit in EVERY_EDIT)  # the concurrent and the offline ones
    assert files["README.md"].endswith("Run: python greet.py\n")  # made while bob was away

    history = summary["history"]
    assert len(history) == peers[0]["changes"]
    by_author = {entry["author"]: (entry["name"], entry["kind"]) for entry in history}
    assert by_author == {peer["peer_id"]: (peer["name"], peer["kind"]) for peer in peers}
    assert any(entry["message"] == "bob: farewell, offline" for entry in history)
