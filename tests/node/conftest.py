"""Fixtures and hooks for the node tests: a thread-leak check on every test, and figures.

Everything runs real libp2p hosts on 127.0.0.1. Figures (latencies and connect times)
are collected through the ``figures`` fixture and printed after the run, never asserted: the
machine is shared and timings are for the report, not a gate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_figures: list[str] = []

@pytest.fixture
def figures() -> Callable[[str, str], None]:
    """``figures(name, text)`` records one line for the summary printed after the run."""

    def record(name: str, text: str) -> None:
        _figures.append(f"{name}: {text}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures:
        terminalreporter.section("node figures (loopback, shared 2-core machine)")
        for line in _figures:
            terminalreporter.write_line(line)


def _foreign_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before``, other than trio's idle worker-thread cache.

    trio.to_thread keeps finished workers ("Trio thread N") parked for reuse and lets them exit
    after 10 s idle; they hold nothing of ours. Anything else, such as libp2p's "asyncio-bridge"
    loop for aiortc, must be gone when its host is.
    """
    return [t for t in threading.enumerate() if t not in before and not t.name.startswith("Trio thread")]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = _foreign_threads(before)
    assert not leftover, f"threads left behind: {[t.name for t in leftover]}"
