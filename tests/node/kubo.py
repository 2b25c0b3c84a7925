"""The ``kubo`` fixture: a real kubo IPFS daemon, offline on loopback, for one test
(benchmarks/kubo says how it is started and where the binary comes from: .ci/kubo); the test
skips, naming .ci/kubo, when the binary is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.kubo import NO_KUBO_REASON, Kubo, kubo_binary, start_kubo

__all__ = ["Kubo", "kubo"]


@pytest.fixture
def kubo(tmp_path: Path) -> Iterator[Kubo]:
    """A kubo daemon, offline, for one test; skips when the binary is missing."""
    binary = kubo_binary()
    if binary is None:
        pytest.skip(NO_KUBO_REASON)
    daemon = start_kubo(binary, tmp_path / "ipfs-repo")
    try:
        yield daemon
    finally:
        daemon.stop()
