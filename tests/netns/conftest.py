"""The multi-host tests: every host a network namespace (benchmarks/netns_topology.py) running a
real ``distspace up``; the test drives each daemon's API over its Unix socket, which lives in
the daemon's home and so is reachable from the test's own namespace.

They need root and the ``ip`` and ``nft`` commands; without them every test here is skipped,
saying which is missing. The node tests' helpers (tests/node: api_helpers, e2e_helpers) are
put on the import path, as pytest does for tests/node itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.netns_topology import unavailable

NODE_HELPERS = str(Path(__file__).resolve().parents[1] / "node")
if NODE_HELPERS not in sys.path:
    sys.path.insert(0, NODE_HELPERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = unavailable()
    if reason is None:
        return
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=f"multi-host tests in network namespaces: {reason}"))
