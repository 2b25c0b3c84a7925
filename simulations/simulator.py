"""The driver: real Replicators and MemoryChangeStores on a seeded discrete-event loop.

One ``random.Random(seed)`` draws everything — roles, graph, latencies, weather, fault times,
edits — and hands each Replicator a generator seeded from it; the loop breaks ties by
scheduling order. So a seed names one run, byte for byte: ``record_events`` keeps every event
fed to a Replicator and every action it returned (frames by length and CRC), which two runs
must match line for line.

Each ``Node`` is what the node process would be: identity, store (it survives crashes: that is
what acknowledged means), the Replicator (rebuilt empty after a crash), the typing buffer, open
connections and their timers, and a connection manager that dials its edges of the overlay
(simulations/topology.py) and redials them while they are down. Actions are interpreted as the
node does: ``Send`` goes to the network, ``Disconnect`` closes our end (the other end hears of
it a latency later), ``SetTimer`` replaces the connection's timer, ``Applied`` acknowledges
changes, ``PeerPenalized`` past the disconnect score makes the manager replace that neighbor.

A run has two phases. Until ``duration_ms`` the workload runs under the fault model. Then the
network heals — partitions end, offline peers return, crashed peers restart; the link weather
stays — and the run ends as soon as every honest peer present holds every change an honest
writer signed (``NotConverged`` after ``settle_ms_max``). The checkers then look at the stores.

A private space (scenario.SpaceOptions, simulations/membership.py) adds its capability log to
every store: the Replicators then admit, refuse and authorise by it, as the node's do. A writer
the run revokes is neither honest nor hostile: it types like any writer, is offline when the
root revokes it, and comes back; what it signed at or below the revocation's cutoff is owed to
everyone (the convergence target), the rest to no one (the checkers look for it everywhere).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import random
import zlib
from collections import Counter
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import native
from protocol.capabilities import Role as Capability
from protocol.events import (
    Applied,
    CapabilitiesAdded,
    Connected,
    ConnectionLost,
    ConnId,
    DataReceived,
    Disconnect,
    Event,
    PeerPenalized,
    Send,
    SetTimer,
    TimerFired,
)
from protocol.identity import Identity
from protocol.limits import DISCONNECT_SCORE
from protocol.memory import MemoryChangeStore
from protocol.replicator import Replicator
from protocol.space import Genesis
from simulations import membership, topology
from simulations.checks import Outcome, Outsider, Replica, check_all
from simulations.errors import NotConverged, ScenarioError
from simulations.hostile import attack_frame, planted_edit
from simulations.loop import EPOCH_MS, US_PER_MS, EventLoop
from simulations.metrics import DELIVERY_SHARE, GOSSIP_ANCHOR_MS, Ledger, Sample, distribution, share_within
from simulations.network import Link, Network
from simulations.scenario import Scenario
from simulations.traces import load_trace
from simulations.workload import Item, RandomEdits, TraceReplay, Workload

DIAL_SPREAD_MS = 100  # peers starting together dial over this long, not all in one instant
REVOKE_RETRY_MS = 500  # a revocation due while the root is down waits for its restart
LEAVE_RETRY_US = 1_000 * US_PER_MS  # a leave due while every reader is down waits for one to be back


class Role(enum.Enum):
    WRITER = "writer"
    READER = "reader"
    RELAY = "relay"
    HOSTILE = "hostile"
    REVOKED = "revoked"  # a writer the root revokes during the run: neither honest nor hostile


# What each kind of peer holds in a private space (a hostile peer: a reader, or a stranger).
GRANTED = {Role.WRITER: Capability.WRITE, Role.REVOKED: Capability.WRITE, Role.READER: Capability.READ, Role.RELAY: Capability.RELAY}


@dataclass(eq=False, slots=True)
class Node:
    index: int
    name: str
    role: Role
    identity: Identity
    store: MemoryChangeStore = field(default_factory=MemoryChangeStore)
    writer: int | None = None  # its number among the writers
    replicator: Replicator | None = None  # None while crashed, before joining, after leaving
    incarnation: int = 0  # bumped by every crash and restart: stale events are ignored
    present: bool = True  # joined and not left
    joined_us: int = 0
    conns: dict[int, Link] = field(default_factory=dict)  # open connections by link id
    timers: dict[int, int] = field(default_factory=dict)  # link id -> at_ms the Replicator asked for
    armed: dict[int, int] = field(default_factory=dict)  # link id -> at_ms of its one event in the loop
    dialing: set[int] = field(default_factory=set)  # neighbors with a dial under way
    banned: set[int] = field(default_factory=set)  # peers its Replicator banned: not redialed
    typing: list[Item] = field(default_factory=list)  # typed, not yet signed
    flush_at_us: int | None = None
    waiting: bool = False  # a writer blocked until something arrives in its store
    acknowledged: dict[bytes, bytes] = field(default_factory=dict)  # change -> doc
    last_ack_us: int = 0
    stats: Counter[str] = field(default_factory=Counter)  # of Replicators it ran before
    busy_until_us: int = 0  # its processor serves what came before until then (CpuOptions)
    next_stall_us: int | None = None

    @property
    def honest(self) -> bool:
        """Measured and checked: not hostile, and not a writer the run revokes."""
        return self.role not in (Role.HOSTILE, Role.REVOKED)

    @property
    def key(self) -> bytes:
        return self.identity.public_key


@dataclass(frozen=True, slots=True)
class Result:
    summary: dict[str, Any]
    samples: tuple[Sample, ...]
    delivery_ms: tuple[float, ...]  # per change: time to 99% of the honest peers
    delivery_whole_ms: tuple[float, ...]  # the same, of changes signed while the network was whole
    bytes_per_peer: tuple[int, ...]  # sent and received, per honest peer present at the end
    partitions_ms: tuple[tuple[float, float], ...]
    heal_ms: float
    events: tuple[str, ...] | None


def reproduce_command(scenario: Scenario, seed: int) -> str:
    return f"python -m simulations run {scenario.source or scenario.name} --seed {seed} --peers {scenario.peers} --edits {scenario.workload.edits}"


class Simulation:
    def __init__(self, scenario: Scenario, seed: int, *, record_events: bool = False) -> None:
        self.scenario = scenario
        self.seed = seed
        self.rng = random.Random(seed)
        self.loop = EventLoop()
        self.events: list[str] | None = [] if record_events else None
        self.ledger = Ledger()
        self.samples: list[Sample] = []
        self.partition_periods: list[tuple[int, int]] = []
        self.counters: Counter[str] = Counter()
        self.healed_us: int | None = None
        self.calm_since_us: int | None = None  # when the last partition, offline period or crash ended
        self.converged_us: int | None = None
        self.nodes = self._make_nodes()
        self.by_key = {node.key: node for node in self.nodes}
        self.revoked = [membership.RevokedWriter(node.index, node.key) for node in self.nodes if node.role is Role.REVOKED]
        self.strangers: set[int] = set()  # hostile peers the log does not name
        self.hostile_readers: set[int] = set()  # hostile peers holding a read grant
        self.outsider_digests: dict[int, bytes] = {}  # a stranger -> its log's digest at the start
        if scenario.space.private:
            self.space = self._found_private_space()
        else:
            self.space = Genesis.create(self.nodes[0].identity, "simulation", EPOCH_MS, nonce=bytes(16)).space_id
        self.relays = {node.index for node in self.nodes if node.role is Role.RELAY}
        self.network = Network(scenario.faults.link, self.rng, self.loop, self.relays, self._on_frame, self._on_closed)
        initial = [node.index for node in self.nodes if node.present]
        self.edges = topology.build(scenario.topology, initial, self.relays, self.rng)
        honest = [i for i in initial if self.nodes[i].honest]
        topology.connect_honest(self.edges, honest, self.rng)
        if self.revoked:  # a writer to be revoked first syncs like any: tie it to the honest overlay
            topology.connect_honest(self.edges, honest + [r.node for r in self.revoked], self.rng)
        self.workload = self._make_workload()

    # ----- building -----

    def _make_nodes(self) -> list[Node]:
        s = self.scenario
        count, joins = s.peers, s.faults.churn.joins
        relays = set(range(min(s.topology.relays, count - 1))) if s.topology.kind == "star" else set()
        hostile = set(range(count - round(s.faults.hostile.share * count), count))
        ordinary = [i for i in range(count) if i not in relays and i not in hostile]
        writers = ordinary[: s.workload.writers]
        revocations = len(s.space.revocations)
        if revocations >= len(writers):
            raise ScenarioError(f"{revocations} revocations need more than {revocations} writers (the root is one), got {len(writers)}")
        revoked = set(writers[len(writers) - revocations :])
        nodes = []
        for index in range(count + joins):
            if index in relays:
                role = Role.RELAY
            elif index in hostile:
                role = Role.HOSTILE
            elif index in revoked:
                role = Role.REVOKED
            else:
                role = Role.WRITER if index in writers else Role.READER
            seed = hashlib.sha256(b"simulation peer %d/%d" % (self.seed, index)).digest()
            node = Node(index, f"{role.value}-{index}", role, Identity(seed), present=index < count)
            node.writer = writers.index(index) if index in writers else None
            nodes.append(node)
        return nodes

    def _found_private_space(self) -> bytes:
        """Peer 0's private genesis and grants (scenario.SpaceOptions): every store but the
        strangers' holds them; a stranger holds them too, knowing the space and who is in it,
        and holds no grant; a joiner gets its proof when it joins."""
        hostile = [n for n in self.nodes if n.role is Role.HOSTILE]
        self.hostile_readers = {n.index for n in hostile[: self.scenario.space.hostile_readers]}
        self.strangers = {n.index for n in hostile if n.index not in self.hostile_readers}
        for node in hostile:
            node.name = f"{'hostile-reader' if node.index in self.hostile_readers else 'stranger'}-{node.index}"
        grants = [(n.key, GRANTED.get(n.role, Capability.READ)) for n in self.nodes[1:] if n.index not in self.strangers]
        genesis, log = membership.found_space(self.nodes[0].identity, grants)
        records = [record.encode() for record in log.records()]
        for node in self.nodes:
            joiner = not node.present
            node.store = membership.private_store(genesis, [] if joiner else records)
            if node.index in self.strangers:
                self.outsider_digests[node.index] = node.store.capability_log(genesis.space_id).digest
        return genesis.space_id

    def _make_workload(self) -> Workload:
        options = self.scenario.workload
        writers = sum(node.writer is not None for node in self.nodes)
        if options.kind == "random":
            return RandomEdits(options, self.space, writers, self.rng)
        trace = load_trace(options.trace, options.edits, agents=writers, edits_per_turn=options.edits_per_turn)
        return TraceReplay(options, self.space, trace, writers)

    # ----- the run -----

    def run(self) -> Result:
        started = perf_counter()
        s, loop = self.scenario, self.loop
        for node in self.nodes:
            if node.present:
                self._start(node, spread_ms=DIAL_SPREAD_MS)
        for node in self.nodes:
            if node.writer is not None:
                loop.at(self.workload.first_us(node.writer), self._type, node, node.incarnation)
        self._schedule_faults()
        loop.at(s.duration_ms * US_PER_MS, self._heal)
        loop.at(0, self._sample)
        loop.run()
        simulated_s = perf_counter() - started
        if self.converged_us is None:
            raise NotConverged(self._lagging())
        started = perf_counter()
        check_all(self._outcome())
        return self._result(simulated_s, perf_counter() - started)

    def _schedule_faults(self) -> None:
        s, loop, rng = self.scenario, self.loop, self.rng
        faults, start_ms = s.faults, s.workload.start_ms
        for number, partition in enumerate(faults.partitions):
            loop.at(partition.at_ms * US_PER_MS, self._partition, number)
        for offline in s.workload.offline:
            loop.at(offline.at_ms * US_PER_MS, self._go_offline, offline.peers, offline.duration_ms)
        latest_crash_ms = max(start_ms, s.duration_ms - faults.crashes.downtime_ms)
        for _ in range(faults.crashes.count):
            loop.at(round(rng.uniform(start_ms, latest_crash_ms) * US_PER_MS), self._crash)
        for _ in range(faults.churn.leaves):
            loop.at(round(rng.uniform(start_ms, s.duration_ms) * US_PER_MS), self._leave)
        for node in self.nodes[s.peers :]:
            loop.at(round(rng.uniform(start_ms, s.duration_ms) * US_PER_MS), self._join, node)
        for node in self.nodes:
            if node.role is Role.HOSTILE:
                loop.at(start_ms * US_PER_MS + self._attack_pause_us(), self._attack, node)
        for number, revocation in enumerate(s.space.revocations):
            revoked = self.revoked[number]
            loop.at(revocation.offline_at_ms * US_PER_MS, self.network.offline.add, revoked.node)
            loop.at(revocation.at_ms * US_PER_MS, self._revoke, revoked)
            loop.at(revocation.back_at_ms * US_PER_MS, self._go_online, [revoked.node])

    # ----- interpreting the Replicator -----

    def _feed(self, node: Node, event: Event) -> None:
        assert node.replicator is not None
        actions = node.replicator.handle(event, EPOCH_MS + self.loop.now_ms)
        log = self.events
        if log is not None:
            log.append(f"{self.loop.now_us} {node.name} {_describe(event)}")
        timers: list[SetTimer] = []
        for action in actions:
            match action:
                case Send(conn, data):
                    link = node.conns.get(_link_id(conn))
                    if link is not None:
                        self.network.send(link, link.side_of(node.index), data)
                case SetTimer():
                    timers.append(action)
                    continue  # logged below, in a reproducible order
                case Applied(_, doc, hashes, _):
                    self._acknowledge(node, doc, hashes)
                case Disconnect(conn, _):
                    self._disconnect(node, _link_id(conn))
                case PeerPenalized():
                    self._penalized(node, action)
            if log is not None:
                log.append(f"  {_describe(action)}")
        # The Replicator orders its timers by object identity: sort them, so the run is
        # reproducible (the loop breaks ties by scheduling order).
        for timer in sorted(timers, key=lambda t: _link_id(t.conn)):
            if timer.conn in node.conns:
                self._set_timer(node, _link_id(timer.conn), timer.at_ms)
                if log is not None:
                    log.append(f"  {_describe(timer)}")

    def _set_timer(self, node: Node, conn: int, at_ms: int) -> None:
        """Traffic keeps pushing a connection's deadline (its heartbeat) later: keep one event in
        the loop per connection, moved only when the deadline comes earlier; an event that fires
        before the deadline re-arms itself."""
        node.timers[conn] = at_ms
        armed = node.armed.get(conn)
        if armed is None or at_ms < armed:
            node.armed[conn] = at_ms
            self.loop.at((at_ms - EPOCH_MS) * US_PER_MS, self._timer, node, node.incarnation, conn, at_ms)

    def _timer(self, node: Node, incarnation: int, conn: int, armed_ms: int) -> None:
        if node.incarnation != incarnation or node.armed.get(conn) != armed_ms:
            return  # the node restarted, or an earlier event replaced this one
        del node.armed[conn]
        at_ms = node.timers.get(conn)
        if at_ms is None:
            return
        if at_ms > armed_ms:
            self._set_timer(node, conn, at_ms)
        else:
            del node.timers[conn]
            if self.scenario.faults.cpu.on:
                self._queue(node, self._feed_if_alive, node, node.incarnation, conn, TimerFired(conn))
            else:
                self._feed(node, TimerFired(conn))

    def _on_frame(self, link: Link, side: int, frame: bytes) -> None:
        node = self.nodes[link.peers[side]]
        if self.scenario.faults.cpu.on:
            self._queue(node, self._feed_if_alive, node, node.incarnation, link.id, DataReceived(link.id, frame))
        else:
            self._feed(node, DataReceived(link.id, frame))

    def _queue(self, node: Node, handle: Any, *args: Any) -> None:
        """Handle an event once the node's processor has served what came before it and any
        stall due meanwhile has passed (scenario.CpuOptions)."""
        cpu, now = self.scenario.faults.cpu, self.loop.now_us
        start = max(now, node.busy_until_us)
        if cpu.stalls_per_s and cpu.stall_ms_max:
            if node.next_stall_us is None:
                node.next_stall_us = now + self._stall_gap_us()
            while node.next_stall_us <= start:
                self.counters["cpu_stalls"] += 1
                start = max(start, node.next_stall_us + round(self.rng.uniform(0, cpu.stall_ms_max) * US_PER_MS))
                node.next_stall_us += self._stall_gap_us()
        node.busy_until_us = start + round(cpu.service_ms * US_PER_MS)
        self.loop.at(node.busy_until_us, handle, *args)

    def _stall_gap_us(self) -> int:
        return max(1, round(self.rng.expovariate(self.scenario.faults.cpu.stalls_per_s) * 1_000_000))

    def _feed_if_alive(self, node: Node, incarnation: int, conn: int, event: Event) -> None:
        """A queued event, unless the node restarted or the connection closed meanwhile."""
        if node.incarnation == incarnation and node.replicator is not None and conn in node.conns:
            self._feed(node, event)

    def _on_closed(self, link: Link, side: int) -> None:
        """The other end closed and we heard of it."""
        node = self.nodes[link.peers[side]]
        if node.conns.pop(link.id, None) is None:
            return
        node.timers.pop(link.id, None)
        node.armed.pop(link.id, None)
        self.network.close(link, side, tell_other=False)
        self._feed(node, ConnectionLost(link.id))
        self._connection_ended(node, link.peers[1 - side])

    def _disconnect(self, node: Node, conn: int) -> None:
        link = node.conns.pop(conn, None)
        if link is None:
            return
        node.timers.pop(conn, None)
        node.armed.pop(conn, None)
        side = link.side_of(node.index)
        self.network.close(link, side)
        self._connection_ended(node, link.peers[1 - side])

    def _acknowledge(self, node: Node, doc: bytes, hashes: tuple[bytes, ...]) -> None:
        if node.honest:
            now = self.loop.now_us
            for change_hash in hashes:
                if self._doomed(change_hash):
                    self.counters["revoked_changes_acknowledged_by_honest"] += 1  # the checkers name it
                    continue
                if change_hash not in node.acknowledged:
                    node.acknowledged[change_hash] = doc
                    self.ledger.arrived(change_hash, node.index, now)
            node.last_ack_us = now
        if node.waiting:
            node.waiting = False
            self.loop.at(self.loop.now_us, self._type, node, node.incarnation)

    def _penalized(self, node: Node, penalty: PeerPenalized) -> None:
        offender = self.by_key.get(penalty.peer)
        banned = penalty.score >= DISCONNECT_SCORE and offender is not None
        if node.honest:
            who = "honest" if offender is None or offender.honest else self._kind_of(offender)
            self.counters[f"penalties_of_{who}.{penalty.offense}"] += 1
            if banned:
                self.counters[f"bans_of_{who}"] += 1
        if banned:
            assert offender is not None
            node.banned.add(offender.index)
            if offender.index in self.edges.get(node.index, ()):
                self._replace_edge(node, offender.index)

    # ----- the connection manager -----

    def _start(self, node: Node, *, spread_ms: int = 0) -> None:
        node.replicator = Replicator(node.identity, node.store, random.Random(self.rng.getrandbits(64)), [self.space], self.scenario.sync)
        node.incarnation += 1
        for neighbor in sorted(self.edges.get(node.index, ())):
            self._schedule_dial(node, neighbor, round(self.rng.uniform(0, spread_ms) * US_PER_MS))

    def _schedule_dial(self, node: Node, neighbor: int, delay_us: int) -> None:
        if neighbor not in node.dialing:
            node.dialing.add(neighbor)
            self.loop.after(delay_us, self._dial, node, neighbor, node.incarnation)

    def _redial_us(self) -> int:
        return round(self.scenario.topology.redial_interval_ms * self.rng.uniform(0.5, 1.5) * US_PER_MS)

    def _dial(self, node: Node, neighbor: int, incarnation: int) -> None:
        if node.incarnation != incarnation:
            return
        other = self.nodes[neighbor]
        if neighbor not in self.edges.get(node.index, ()) or self._connected(node, neighbor):
            node.dialing.discard(neighbor)
        elif not other.present:
            node.dialing.discard(neighbor)
            self._replace_edge(node, neighbor)
        elif other.replicator is None or not self.network.reachable(node.index, neighbor):
            self.loop.after(self._redial_us(), self._dial, node, neighbor, incarnation)
        else:
            handshake_us = 2 * self.network.one_way_us(node.index, neighbor)
            self.loop.after(handshake_us, self._connect, node, incarnation, other, other.incarnation)

    def _connect(self, node: Node, incarnation: int, other: Node, other_incarnation: int) -> None:
        if node.incarnation != incarnation:
            return
        if other.incarnation != other_incarnation or other.replicator is None or not self.network.reachable(node.index, other.index):
            self.loop.after(self._redial_us(), self._dial, node, other.index, incarnation)
            return
        node.dialing.discard(other.index)
        link = self.network.open_link(node.index, other.index)
        node.conns[link.id] = other.conns[link.id] = link
        self._feed(other, Connected(link.id, node.key, None))
        if link.id in node.conns:
            self._feed(node, Connected(link.id, other.key, self.space))

    def _connected(self, node: Node, neighbor: int) -> bool:
        return any(neighbor in link.peers for link in node.conns.values())

    def _connection_ended(self, node: Node, neighbor: int) -> None:
        if node.replicator is not None and neighbor in self.edges.get(node.index, ()) and neighbor not in node.banned:
            self._schedule_dial(node, neighbor, self._redial_us())

    def _replace_edge(self, node: Node, gone: int) -> None:
        edges = self.edges.setdefault(node.index, set())
        edges.discard(gone)
        candidates = [n.index for n in self.nodes if n.present and n.index not in node.banned]
        for neighbor in topology.pick_neighbors(self.scenario.topology, node.index, self.edges, candidates, self.relays, self.rng, 1):
            edges.add(neighbor)
            self._schedule_dial(node, neighbor, 0)

    def _keep_honest_connected(self) -> None:
        present = {n.index for n in self.nodes if n.present}
        edges = {owner: dialed & present for owner, dialed in self.edges.items() if owner in present}
        honest = [n.index for n in self.nodes if n.present and n.honest]
        for owner, neighbor in topology.connect_honest(edges, honest, self.rng):
            self.edges.setdefault(owner, set()).add(neighbor)
            self._schedule_dial(self.nodes[owner], neighbor, 0)

    # ----- the workload -----

    def _type(self, node: Node, incarnation: int) -> None:
        if node.incarnation != incarnation or node.replicator is None:
            return
        assert node.writer is not None
        typed = self.workload.type(node.writer, node, self.loop.now_us)
        if typed.item is not None:
            node.typing.append(typed.item)
            if len(node.typing) >= self.scenario.workload.commit_edits_max:
                self._sign(node)
            elif node.flush_at_us is None:
                node.flush_at_us = self.loop.now_us + self.scenario.workload.commit_interval_ms * US_PER_MS
                self.loop.at(node.flush_at_us, self._flush, node, incarnation)
        if typed.next_us is not None:
            self.loop.at(typed.next_us, self._type, node, incarnation)
        node.waiting = typed.blocked

    def _flush(self, node: Node, incarnation: int) -> None:
        if node.incarnation == incarnation and node.flush_at_us == self.loop.now_us:
            self._sign(node)

    def _sign(self, node: Node) -> None:
        items, node.typing, node.flush_at_us = node.typing, [], None
        if not items:
            return
        assert node.writer is not None
        now_ms = EPOCH_MS + self.loop.now_ms
        if self.scenario.space.private and node.store.capability_log(self.space).write_refusal(node.key, (), now_ms):
            self.counters["edits_refused_locally"] += len(items)  # as the node's Workspace refuses them
            return
        revoked = next((r for r in self.revoked if r.node == node.index), None)
        for commit in self.workload.sign(node.writer, node, items, now_ms):
            decoded = [native.decode_change(raw) for raw in commit.changes]
            hashes = tuple(change.hash for change in decoded)
            split = bool(self.network.partitions or self.network.offline) or any(n.present and n.replicator is None for n in self.nodes)
            for change in decoded:
                if revoked is None:
                    self.ledger.signed(change.hash, self.loop.now_us, split=split)
                else:  # judged by the revocation: not a delivery to measure
                    revoked.signed[change.hash] = (commit.doc, change.seq)
            self.counters["commits"] += 1
            self._acknowledge(node, commit.doc, hashes)
            self._feed(node, commit)

    # ----- faults -----

    def _partition(self, number: int) -> None:
        partition = self.scenario.faults.partitions[number]
        present = [n.index for n in self.nodes if n.present]
        side = frozenset(self.rng.sample(present, round(partition.share * len(present))))
        self.network.partitions.append(side)
        self.loop.after(partition.duration_ms * US_PER_MS, self._end_partition, side, self.loop.now_us)

    def _end_partition(self, side: frozenset[int], since_us: int) -> None:
        if side in self.network.partitions:
            self.network.partitions.remove(side)
            self.partition_periods.append((since_us, self.loop.now_us))
            self.calm_since_us = self.loop.now_us

    def _go_offline(self, count: int, duration_ms: int) -> None:
        writers = [n.index for n in self.nodes if n.present and n.writer is not None and n.honest]
        others = [n.index for n in self.nodes if n.present and n.honest and n.writer is None]
        chosen = (writers + others)[:count]
        self.network.offline.update(chosen)
        self.counters["offline"] += len(chosen)
        self.loop.after(duration_ms * US_PER_MS, self._go_online, chosen)

    def _go_online(self, peers: list[int]) -> None:
        if self.network.offline & set(peers):
            self.network.offline.difference_update(peers)
            self.calm_since_us = self.loop.now_us

    def _crash(self) -> None:
        alive = [n for n in self.nodes if n.present and n.honest and n.replicator is not None]
        if not alive:
            return
        node = self.rng.choice(alive)
        self.counters["crashes"] += 1
        self._stop(node)
        if node.writer is not None:
            self.workload.lost(node.writer, node.typing)
            self.counters["edits_lost_in_crashes"] += len(node.typing)
        node.typing, node.flush_at_us, node.waiting = [], None, False
        self.loop.after(self.scenario.faults.crashes.downtime_ms * US_PER_MS, self._restart, node, node.incarnation)

    def _stop(self, node: Node) -> None:
        """The node's process ends: its memory goes, its connections reset, its store stays."""
        assert node.replicator is not None
        node.stats.update(node.replicator.stats)
        node.replicator = None
        node.incarnation += 1
        for link in node.conns.values():
            self.network.close(link, link.side_of(node.index))
        node.conns.clear()
        node.timers.clear()
        node.armed.clear()
        node.dialing.clear()
        node.banned.clear()

    def _restart(self, node: Node, incarnation: int) -> None:
        if node.incarnation != incarnation or not node.present:
            return
        self.calm_since_us = self.loop.now_us
        self._start(node)
        if node.writer is not None:
            self.loop.at(self.loop.now_us, self._type, node, node.incarnation)

    def _leave(self) -> None:
        readers = [n for n in self.nodes if n.present and n.role is Role.READER and n.replicator is not None]
        if not readers:  # every reader is down just now: leave once one is back, within the run
            if self.loop.now_us + LEAVE_RETRY_US <= self.scenario.duration_ms * US_PER_MS:
                self.loop.after(LEAVE_RETRY_US, self._leave)
            return
        node = self.rng.choice(readers)
        self.counters["leaves"] += 1
        self._stop(node)
        node.present = False
        self.edges.pop(node.index, None)
        self.ledger.left(node.acknowledged)
        self._keep_honest_connected()

    def _join(self, node: Node) -> None:
        node.present, node.joined_us = True, self.loop.now_us
        self.counters["joins"] += 1
        t = self.scenario.topology
        candidates = [n.index for n in self.nodes if n.present and n is not node]
        count = len(candidates) if t.kind == "full" else t.relay_links if t.kind == "star" else t.degree
        self.edges[node.index] = set(topology.pick_neighbors(t, node.index, self.edges, candidates, self.relays, self.rng, count))
        if self.scenario.space.private:
            # What a ticket gives: the joiner's grant and its chain to the root, whom it dials.
            root = self.nodes[0]
            proof = root.store.capability_log(self.space).proof_for(node.key)
            node.store.add_capability_records(self.space, [record.encode() for record in proof])
            self.edges[node.index].add(root.index)
        self._start(node)

    def _revoke(self, revoked: membership.RevokedWriter) -> None:
        """The root revokes the writer, keeping what its store holds of the writer's changes,
        and tells its Replicator (which pushes the record to its sessions)."""
        root = self.nodes[0]
        if root.replicator is None:
            self.loop.after(REVOKE_RETRY_MS * US_PER_MS, self._revoke, revoked)
            return
        record = membership.revocation(root.identity, root.store, self.space, revoked.key, EPOCH_MS + self.loop.now_ms)
        revoked.cutoff = dict(record.seen)
        added = root.store.add_capability_records(self.space, [record.encode()])
        self.counters["revocations"] += 1
        self._forget_doomed(revoked)
        self._feed(root, CapabilitiesAdded(self.space, tuple(added)))

    def _forget_doomed(self, revoked: membership.RevokedWriter) -> None:
        """The writer's changes above the cutoff that honest peers acknowledged before the
        revocation (the root had not got them yet) can never be everywhere: out of the
        convergence target, counted, and left in the stores for the checkers to name."""
        doomed = {h for h in revoked.signed if revoked.doomed(h)}
        for node in self.nodes:
            held = sorted(doomed.intersection(node.acknowledged))
            if node.honest and held:
                self.counters["revoked_changes_acknowledged_by_honest"] += len(held)
                for change_hash in held:
                    del node.acknowledged[change_hash]
        self.ledger.withdraw(doomed)

    def _doomed(self, change_hash: bytes) -> bool:
        return any(revoked.doomed(change_hash) for revoked in self.revoked)

    def _kind_of(self, node: Node) -> str:
        return "hostile_reader" if node.index in self.hostile_readers else node.role.value

    def _attack_pause_us(self) -> int:
        return round(self.rng.expovariate(1 / self.scenario.faults.hostile.attack_interval_ms) * US_PER_MS)

    def _attack(self, node: Node) -> None:
        hostile = self.scenario.faults.hostile
        links = [link for _, link in sorted(node.conns.items()) if link.sent[link.side_of(node.index)]]
        if node.replicator is not None and links:
            link = self.rng.choice(links)
            # A read-only member only writes (well-formed, signed): refused at ingest, never banned.
            kind = self.rng.choice(("unauthorised-write",) if node.index in self.hostile_readers else hostile.attacks)
            self.counters[f"attacks.{kind}"] += 1
            if kind == "unauthorised-write":
                doc = self.rng.choice(self.workload.docs)
                self._feed(node, node.store.commit(node.identity, self.space, doc, [planted_edit(self.rng)], now_ms=EPOCH_MS + self.loop.now_ms))
            else:
                writers = [n.key for n in self.nodes if n.writer is not None]
                frame = attack_frame(
                    kind, self.rng, self.space, self.rng.choice(self.workload.docs), node.identity, self.rng.choice(writers), EPOCH_MS + self.loop.now_ms
                )
                self.network.send(link, link.side_of(node.index), frame)
        self.loop.after(self._attack_pause_us(), self._attack, node)

    def _heal(self) -> None:
        """The fault phase ends: partitions heal, offline peers return, crashed peers restart."""
        self.healed_us = self.loop.now_us
        for side in list(self.network.partitions):
            self._end_partition(side, self.healed_us)
        self._go_online(sorted(self.network.offline))
        for node in self.nodes:
            if node.present and node.replicator is None:
                self._restart(node, node.incarnation)

    # ----- measuring -----

    def _honest_present(self) -> list[Node]:
        return [n for n in self.nodes if n.present and n.honest]

    def _sample(self) -> None:
        now = self.loop.now_us
        honest = self._honest_present()
        total = len(self.ledger.holders)
        held = [len(n.acknowledged) for n in honest]
        delivered = sum(held) / (total * len(honest)) if total else 1.0
        up_to_date = sum(h == total for h in held) / len(honest)
        self.samples.append(Sample(now / US_PER_MS, delivered, up_to_date))
        if self.healed_us is not None:
            finished = self.workload.done() and not any(n.typing for n in self.nodes)
            if finished and up_to_date == 1.0:
                self.converged_us = max(n.last_ack_us for n in honest)
                self.loop.stop()
                return
            if now - self.healed_us > self.scenario.settle_ms_max * US_PER_MS:
                self.loop.stop()
                return
        self.loop.after(self.scenario.sample_interval_ms * US_PER_MS, self._sample)

    def _lagging(self) -> str:
        total = len(self.ledger.holders)
        behind = [n for n in self._honest_present() if len(n.acknowledged) < total]
        detail = ", ".join(f"{n.name} holds {len(n.acknowledged)}/{total} ({len(n.conns)} connections)" for n in behind[:5])
        state = "the workload did not finish" if not self.workload.done() else f"{len(behind)} honest peers behind"
        return f"no convergence {self.scenario.settle_ms_max} ms after healing: {state}; {detail}"

    def _outcome(self) -> Outcome:
        honest = self._honest_present()
        text_doc = self.workload.docs[0] if isinstance(self.workload, TraceReplay) else None
        writers = sorted((n for n in self.nodes if n.writer is not None), key=lambda n: n.writer or 0)
        return Outcome(
            space=self.space,
            replicas=[Replica(n.name, n.store, n.acknowledged) for n in honest],
            authored=frozenset(self.ledger.signed_us).union(*(r.signed for r in self.revoked)),
            hostile_keys=frozenset(n.key for n in self.nodes if n.role is Role.HOSTILE),
            text_doc=text_doc,
            expected_text=self.workload.expected_text([n.key for n in writers]) if text_doc is not None else None,
            private=self.scenario.space.private,
            revoked={r.key: dict(r.signed) for r in self.revoked},
            outsiders=[Outsider(n.name, n.key, n.store, self.outsider_digests[n.index]) for n in self.nodes if n.index in self.strangers],
        )

    def _membership_summary(self, stats: Counter[str]) -> dict[str, Any]:
        """What a private space's run did: the log everyone ended with, each revocation's
        outcome, and what the capability checks refused (summed over every Replicator)."""
        root = self.nodes[0]
        log = root.store.capability_log(self.space)
        revoked = []
        for r in self.revoked:
            node = self.nodes[r.node]
            revoked.append({"peer": node.name, **r.counts(), "cutoff": {doc.hex()[:8]: seq for doc, seq in sorted((r.cutoff or {}).items())}})
        keys = (
            "changes_unauthorised", "refused_not_admitted", "not_admitted_not_opened", "closed_not_admitted",
            "proofs_sent", "proofs_taken", "capability_logs_sent", "capability_records_sent", "capability_records_received",
        )  # fmt: skip
        return {
            "records": len(log),
            "members": len(log.members(EPOCH_MS + self.loop.now_ms)),
            "log_digest": log.digest.hex()[:16],
            "revoked": revoked,
            "strangers": len(self.strangers),
            "hostile_readers": len(self.hostile_readers),
            "replicators": {k: stats[k] for k in keys},
        }

    def _result(self, simulated_s: float, checked_s: float) -> Result:
        s, net = self.scenario, self.network
        assert self.converged_us is not None and self.healed_us is not None
        honest = self._honest_present()
        peers = {n.index: n.joined_us for n in honest}
        delivery = self.ledger.delivery_ms(peers, DELIVERY_SHARE)
        delivery_whole = self.ledger.delivery_ms(peers, DELIVERY_SHARE, whole_only=True)
        delivery_all = self.ledger.delivery_ms(peers, 1.0)
        stats: Counter[str] = Counter()
        for node in self.nodes:
            stats.update(node.stats)
            if node.replicator is not None:
                stats.update(node.replicator.stats)
        edits = len(self.ledger.signed_us)
        end_s = self.loop.now_us / 1e6
        traffic = [net.bytes_sent[i] + net.bytes_received[i] for i in sorted(peers)]
        bytes_sent = sum(net.bytes_sent.values())
        last_signed = max(self.ledger.signed_us.values(), default=0)
        summary = {
            "scenario": s.name,
            "seed": self.seed,
            "peers": s.peers,
            "honest_peers_at_end": len(honest),
            "writers": sum(n.writer is not None for n in self.nodes),
            "edits_signed": edits,
            "commits": self.counters["commits"],
            "virtual_ms": {
                "healed": self.healed_us / US_PER_MS,
                "converged": self.converged_us / US_PER_MS,
                "convergence_after_heal": max(0, self.converged_us - self.healed_us) / US_PER_MS,
                "last_fault_ended": None if self.calm_since_us is None else self.calm_since_us / US_PER_MS,
                "convergence_after_last_fault": None if self.calm_since_us is None else max(0, self.converged_us - self.calm_since_us) / US_PER_MS,
                "backlog_delivered_after_last_fault": None if self.calm_since_us is None else (self.ledger.backlog_cleared_us(self.calm_since_us, peers) - self.calm_since_us) / US_PER_MS,
                "convergence_after_last_edit": (self.converged_us - last_signed) / US_PER_MS,
            },
            "delivery_ms": {
                "to_99pct": distribution(delivery),
                "to_99pct_whole_network": distribution(delivery_whole),
                "to_all": distribution(delivery_all),
                "share_of_edits_99pct_within_300ms": share_within(delivery, GOSSIP_ANCHOR_MS),
                "share_of_edits_99pct_within_300ms_whole_network": share_within(delivery_whole, GOSSIP_ANCHOR_MS),
                "edits_signed_while_split": len(self.ledger.signed_split),
            },
            "messages_sent": net.stats["frames_sent"],
            "bytes_sent": bytes_sent,
            "bytes_per_edit_per_peer": round(bytes_sent / max(1, edits) / s.peers, 1),
            "per_peer_bytes": _bytes_distribution(traffic),
            "per_peer_bytes_per_s": _bytes_distribution([round(v / end_s) for v in traffic]),
            "duplicates": {"batches_received_twice": stats["duplicate_batches"], "frames_duplicated_by_network": net.stats["frames_duplicated"]},
            "network": dict(sorted(net.stats.items())),
            "replicators": {k: stats[k] for k in ("changes_applied", "status_mismatches", "pending_expired", "refused_banned", "reply_changes_sent", "prunes_sent", "wants_sent")},
            "faults": dict(sorted(self.counters.items())),
            "writes_lost_with_leavers": self.ledger.lost_with_leavers,
            **({"space": self._membership_summary(stats)} if s.space.private else {}),
            "wall_s": {"simulation": round(simulated_s, 2), "checks": round(checked_s, 2)},
            "events": self.loop.events,
            "event_log_sha256": hashlib.sha256("\n".join(self.events).encode()).hexdigest() if self.events is not None else None,
        }
        return Result(
            summary=summary,
            samples=tuple(self.samples),
            delivery_ms=tuple(delivery),
            delivery_whole_ms=tuple(delivery_whole),
            bytes_per_peer=tuple(traffic),
            partitions_ms=tuple((a / US_PER_MS, b / US_PER_MS) for a, b in self.partition_periods),
            heal_ms=self.healed_us / US_PER_MS,
            events=tuple(self.events) if self.events is not None else None,
        )


def _bytes_distribution(values: list[int]) -> dict[str, float | None]:
    return {"mean": round(sum(values) / len(values)) if values else None, **distribution([float(v) for v in values])}


def _link_id(conn: ConnId) -> int:
    """The Replicator names connections by the ids we gave it: link ids."""
    assert isinstance(conn, int)
    return conn


def _describe(item: Any) -> str:
    """An event or action as one log line: bytes by length and CRC, everything else as is."""
    parts = [type(item).__name__]
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if isinstance(value, bytes):
            parts.append(f"{len(value)}b{zlib.crc32(value):08x}")
        elif isinstance(value, tuple):
            parts.append("[" + " ".join(f"{zlib.crc32(v):08x}" if isinstance(v, bytes) else str(v) for v in value) + "]")
        elif dataclasses.is_dataclass(value):
            parts.append(_describe(value))
        else:
            parts.append(str(value))
    return " ".join(parts)


def run_seed(scenario: Scenario, seed: int, *, record_events: bool = False) -> Result:
    """Run one seed; any error it lets out carries the command that reproduces the run."""
    try:
        return Simulation(scenario, seed, record_events=record_events).run()
    except Exception as error:
        error.add_note(f"reproduce: {reproduce_command(scenario, seed)}")
        raise
