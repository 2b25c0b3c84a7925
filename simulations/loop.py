"""A virtual clock and a heap of due callbacks: the whole scheduler of a simulation.

Time is an integer count of microseconds, so sums of latencies never round differently from one
run to the next. Callbacks due at the same time run in the order they were scheduled (a counter
breaks every tie), so a run depends on nothing but its seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

US_PER_MS = 1_000
EPOCH_MS = 1_700_000_000_000  # virtual time 0 on the wall clock the peers see (commit times, timers)


class EventLoop:
    def __init__(self) -> None:
        self.now_us = 0
        self.events = 0  # callbacks run so far
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._stopped = False

    @property
    def now_ms(self) -> int:
        return self.now_us // US_PER_MS

    def at(self, time_us: int, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` at ``time_us`` (now, if that has passed)."""
        heapq.heappush(self._heap, (max(time_us, self.now_us), self._seq, callback, args))
        self._seq += 1

    def after(self, delay_us: int, callback: Callable[..., None], *args: Any) -> None:
        self.at(self.now_us + delay_us, callback, *args)

    def stop(self) -> None:
        """End ``run`` after the current callback."""
        self._stopped = True

    def run(self) -> None:
        """Run callbacks in time order until ``stop`` or until none is left."""
        heap, pop = self._heap, heapq.heappop
        self._stopped = False
        while heap and not self._stopped:
            self.now_us, _, callback, args = pop(heap)
            self.events += 1
            callback(*args)
