"""Causal order: a batch of changes sorted so that each comes after its deps.

Both change stores (protocol/memory.py, store/ingest.py) take a batch in any order, store what
can be stored, each change after its deps, and leave out what waits for a dep they lack.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence


def causal_order(deps_of: Mapping[bytes, Sequence[bytes]], known: Container[bytes]) -> list[bytes]:
    """The changes of ``deps_of`` (hash -> deps) that are not ``known`` and whose deps are known
    or come before them, each after its deps.

    One pass takes a batch already in causal order (as senders send them); the rest are sorted
    by Kahn's algorithm. A change that depends, directly or not, on one neither known nor in
    the batch is left out.
    """
    done: set[bytes] = set()
    ordered: list[bytes] = []
    out_of_order: list[bytes] = []
    for change_hash, deps in deps_of.items():
        if change_hash in known:
            continue
        if all(dep in done or dep in known for dep in deps):
            ordered.append(change_hash)
            done.add(change_hash)
        else:
            out_of_order.append(change_hash)
    missing: dict[bytes, int] = {}
    dependents: dict[bytes, list[bytes]] = {}
    ready = []
    for change_hash in out_of_order:
        absent = {dep for dep in deps_of[change_hash] if dep not in done and dep not in known}
        missing[change_hash] = len(absent)
        for dep in absent:
            dependents.setdefault(dep, []).append(change_hash)
        if not absent:
            ready.append(change_hash)
    while ready:
        change_hash = ready.pop()
        ordered.append(change_hash)
        for dependent in dependents.get(change_hash, ()):
            missing[dependent] -= 1
            if not missing[dependent]:
                ready.append(dependent)
    return ordered


__all__ = ["causal_order"]
