"""Who dials whom: the overlay each node's connection manager keeps up.

Each edge has an owner, the peer that dials it (and redials it while it is down). A ``mesh``
gives each peer ``degree`` random neighbors, a ``ring`` a ring with chords, a ``full`` topology every pair (the lower index
dials), a ``star`` every ordinary peer ``relay_links`` relays and every relay the others.

Random graphs can come out split, and a neighbor can leave or be banned. The manager sees every
peer, as a rendezvous service would, so ``connect_honest`` joins the honest peers' components
with extra edges: what the experiments measure is the protocol, not bad luck in the graph.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from simulations.scenario import TopologyOptions

Edges = dict[int, set[int]]  # owner -> the neighbors it dials


def build(options: TopologyOptions, peers: Sequence[int], relays: Collection[int], rng: random.Random) -> Edges:
    edges: Edges = {peer: set() for peer in peers}
    match options.kind:
        case "full":
            for peer in peers:
                edges[peer] = {other for other in peers if other > peer}
        case "star":
            for peer in peers:
                if peer in relays:
                    edges[peer] = {other for other in relays if other > peer}
                else:
                    edges[peer] = set(rng.sample(sorted(relays), options.relay_links))
        case "ring":
            half = len(peers) // 2
            for i, peer in enumerate(peers):
                edges[peer] = {peers[(i + 1) % len(peers)]} - {peer}
                if i < half and len(peers) > 3:
                    edges[peer].add(peers[i + half])
        case _:
            for peer in peers:
                edges[peer] = set(rng.sample([p for p in peers if p != peer], min(options.degree, len(peers) - 1)))
    return edges


def pick_neighbors(
    options: TopologyOptions, peer: int, edges: Edges, candidates: Sequence[int], relays: Collection[int], rng: random.Random, count: int
) -> list[int]:
    """Up to ``count`` new neighbors for ``peer`` among ``candidates`` (relays only, in a star)."""
    linked = edges.get(peer, set()) | {owner for owner, dialed in edges.items() if peer in dialed}
    pool = [c for c in candidates if c != peer and c not in linked and (options.kind != "star" or c in relays)]
    return rng.sample(pool, min(count, len(pool)))


def connect_honest(edges: Edges, honest: Sequence[int], rng: random.Random) -> list[tuple[int, int]]:
    """Add edges until the honest peers (through honest peers only) form one component; return
    the added (owner, neighbor) pairs."""
    parent = {peer: peer for peer in honest}

    def root(peer: int) -> int:
        while parent[peer] != peer:
            parent[peer] = parent[parent[peer]]
            peer = parent[peer]
        return peer

    for owner, dialed in edges.items():
        for neighbor in dialed:
            if owner in parent and neighbor in parent:
                parent[root(owner)] = root(neighbor)
    components: dict[int, list[int]] = {}
    for peer in honest:
        components.setdefault(root(peer), []).append(peer)
    groups = sorted(components.values())
    added = []
    for group in groups[1:]:
        owner, neighbor = rng.choice(group), rng.choice(groups[0])
        edges.setdefault(owner, set()).add(neighbor)
        added.append((owner, neighbor))
    return added
