"""A map that remembers only its newest entries: what a peer can make us remember is bounded,
and forgetting the oldest only ever costs a repeat (a batch verified twice, a push not pruned)."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Remembers the newest ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: dict[K, V] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        if len(self._items) > self._limit:
            del self._items[next(iter(self._items))]

    def items(self) -> list[tuple[K, V]]:
        """The entries, oldest first (a copy: the map may change while they are used)."""
        return list(self._items.items())

    def discard(self, key: K) -> None:
        self._items.pop(key, None)
